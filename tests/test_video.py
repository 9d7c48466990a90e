"""Video clips, live streams and face tracks, on real encoded video and real streams.

Clips are encoded by the tests with PyAV (tests/videoclips.py) from the sample photos moving over a
background; streams are served on 127.0.0.1 by Debian's ffmpeg in HTTP listen mode (skipped where
the ffmpeg binary is missing). Detection and embedding use the real models.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facelake.errors import ConfigError, FacelakeError, ImageTooLarge, ImageUnreadable
from facelake.sources.video import (
    StreamReader,
    VideoReader,
    VideoTooLarge,
    VideoUnreadable,
    expand_url,
    is_video,
    mask_url,
    sha256_stream,
)
from facelake.vision.track import Tracker, iou

from .videoclips import Actor, background, encode, encode_audio, face_patch, render

FPS = 25


@pytest.fixture(scope="module")
def analyzer():  # type: ignore[no-untyped-def]
    from facelake.vision.analyzer import FaceAnalyzer

    an = FaceAnalyzer()
    an.load()
    return an


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The clips several tests share, encoded once."""
    root = tmp_path_factory.mktemp("clips")
    ob, bi = face_patch("obama.jpg", 110), face_patch("biden.jpg", 100)
    passing = render(640, 360, 3.0, FPS, [Actor(ob, (-40, 60), (560, 90))])
    return {
        "passing": encode(root / "passing.mp4", passing, FPS, creation_time="2024-05-01T10:00:00.000000Z"),
        "passing_fs": encode(root / "passing_fs.mp4", passing, FPS, faststart=True),
        "crossing": encode(root / "crossing.mp4", render(
            640, 360, 4.0, FPS, [Actor(ob, (-40, 40), (560, 40)), Actor(bi, (560, 30), (-40, 30))]), FPS),
        "turn_back": encode(root / "turn_back.mkv", render(640, 360, 4.0, FPS, [
            Actor(ob, (-40, 40), (250, 40), 0.0, 2.0), Actor(ob, (250, 40), (-40, 40), 2.0, 4.0),
            Actor(bi, (560, 40), (270, 40), 0.0, 2.0), Actor(bi, (270, 40), (560, 40), 2.0, 4.0),
        ]), FPS, codec="mpeg4"),
        "static": encode(root / "static.mp4", render(640, 360, 3.0, FPS, []), FPS),
    }


def _scene_change_clip(path: Path, with_face: bool) -> Path:
    """Scene A for 1.5 s, then a different, darker scene B; optionally a still face in both."""
    a, b = background(640, 360, seed=1), (background(640, 360, seed=7) // 3)
    actors = [Actor(face_patch("obama.jpg", 110), (260, 60), (262, 60))] if with_face else []
    return encode(path, render(640, 360, 3.0, FPS, actors, scene=lambda t: a if t < 1.5 else b), FPS)


# --- names, hashing, URLs ---

def test_is_video() -> None:
    assert all(is_video(f"cam/clip{s}") for s in (".mp4", ".MKV", ".mov", ".avi", ".mjpeg", ".mjpg", ".m4v", ".ts"))
    assert not any(is_video(n) for n in ("a.jpg", "a.png", "mp4", "a.mp4.part", "a.txt"))


def test_sha256_stream_matches_hashlib_and_reads_in_chunks() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    reads: list[int] = []

    class Recording(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return super().read(n)

    assert sha256_stream(Recording(data), chunk=1 << 20) == hashlib.sha256(data).hexdigest()
    assert reads and all(0 < n <= 1 << 20 for n in reads)  # never the whole file at once
    assert sha256_stream(io.BytesIO(b"")) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(("url", "masked"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
    ("rtsp://admin:p@ss/w0rd@cam.local/live", "rtsp://admin:***@cam.local/live"),
    ("http://user:secret@cam/video.mjpg?user=x&password=secret&fps=5", "http://user:***@cam/video.mjpg?user=x&password=***&fps=5"),
    ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ("rtsp://onlyuser@cam.local/s", "rtsp://onlyuser@cam.local/s"),
    ("/dev/video0", "/dev/video0"),
    ("rtsp://admin:${CAM_PW}@cam/s", "rtsp://admin:***@cam/s"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "hunter2" not in mask_url(url) and "secret" not in mask_url(url)


def test_expand_url_fills_placeholders_from_the_environment() -> None:
    env = {"CAM_PW": "p@ss:w/rd", "CAM_HOST": "10.0.0.9"}
    url = "rtsp://admin:${CAM_PW}@${CAM_HOST}/stream"
    assert expand_url(url, env) == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.9/stream"
    assert mask_url(expand_url(url, env)) == "rtsp://admin:***@10.0.0.9/stream"
    with pytest.raises(ConfigError, match="CAM_PW") as info:
        expand_url(url, {"CAM_HOST": "h"})
    assert "p@ss" not in str(info.value)


# --- decoding: sampling, key frames, motion, scene cuts ---

@pytest.mark.parametrize(("codec", "suffix", "size"), [
    ("libx264", ".mp4", (640, 360)),
    ("mpeg4", ".mkv", (320, 240)),
    ("mjpeg", ".avi", (480, 270)),
    ("libx264", ".mov", (1280, 720)),
])
def test_frames_are_sampled_at_the_requested_rate(tmp_path: Path, codec: str, suffix: str, size: tuple[int, int]) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV wheel has no {codec} encoder")
    frames = render(*size, 2.0, FPS, [Actor(face_patch("biden.jpg", size[0] // 6), (0, 10), (size[0], 30))])
    path = encode(tmp_path / f"clip{suffix}", frames, FPS, codec=codec)
    for fps, expected in ((5.0, 10), (2.0, 4), (None, 50)):
        reader = VideoReader(path, fps=fps, motion_threshold=0.0)
        got = list(reader.frames())
        assert reader.error is None
        assert (reader.info.width, reader.info.height) == size
        assert reader.info.fps == pytest.approx(FPS)
        assert reader.info.duration_s == pytest.approx(2.0, abs=0.1)
        assert len(got) == expected == reader.analysed
        assert reader.decoded == 50
        # the first frame at or after each point of the sampling grid (2 fps from 25: 0, 0.52, 1.0, ...)
        first_after = [math.ceil(round(i * FPS / (fps or FPS), 6)) for i in range(expected)]
        assert [f.offset_s for f in got] == pytest.approx([n / FPS for n in first_after], abs=1e-3)
        assert [f.index for f in got] == first_after
        assert got[0].pixels.shape == (size[1], size[0], 3) and got[0].pixels.dtype == np.uint8


def test_a_file_object_reads_like_a_path_and_creation_time_is_parsed(clips: dict[str, Path]) -> None:
    from_path = VideoReader(clips["passing"])
    assert from_path.info.creation_time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert from_path.info.codec == "h264" and from_path.info.frames == 75
    with open(clips["passing"], "rb") as fh:
        from_file = VideoReader(fh, name="passing.mp4")
        a = [f.pixels for f in from_path.frames()]
        b = [f.pixels for f in from_file.frames()]
    assert len(a) == len(b) == 15 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert VideoReader(clips["static"]).info.creation_time is None


def test_keyframes_only_decodes_only_key_frames(clips: dict[str, Path]) -> None:
    reader = VideoReader(clips["passing"], keyframes_only=True, fps=None, motion_threshold=0.0)
    got = list(reader.frames())
    # encode() uses a GOP of 12: key frames at 0, 12, 24, ... of 75
    assert [f.index for f in got] == list(range(0, 75, 12))
    assert all(f.keyframe for f in got)
    assert reader.decoded == len(got)  # the decoder skipped the rest unread
    full = VideoReader(clips["passing"], fps=None, motion_threshold=0.0)
    assert sum(f.keyframe for f in full.frames()) == len(got) and full.decoded == 75


def test_motion_gating_skips_a_still_scene_but_not_a_moving_face(clips: dict[str, Path]) -> None:
    still = VideoReader(clips["static"], fps=5.0, motion_refresh_s=1.0)
    offsets = [f.offset_s for f in still.frames()]
    assert offsets == pytest.approx([0.0, 1.0, 2.0])  # the first frame, then one a second
    assert still.skipped_motion == 12 and still.analysed == 3
    moving = VideoReader(clips["passing"], fps=5.0)
    assert len(list(moving.frames())) == 15 and moving.skipped_motion == 0


def test_a_scene_cut_is_flagged_once(tmp_path: Path) -> None:
    reader = VideoReader(_scene_change_clip(tmp_path / "cut.mp4", with_face=False), fps=5.0)
    got = list(reader.frames())
    assert [round(f.offset_s, 2) for f in got if f.scene_cut] == [1.6]
    assert reader.skipped_motion > 0  # the still scenes on either side are gated


def test_a_moving_face_is_not_a_scene_cut(clips: dict[str, Path]) -> None:
    for name in ("passing", "crossing", "turn_back"):
        assert not any(f.scene_cut for f in VideoReader(clips[name], fps=5.0).frames())


# --- bad input: a clear error, nothing escapes, what came before is kept ---

def test_truncated_mp4_keeps_earlier_frames_and_records_the_error(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["passing_fs"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    reader = VideoReader(cut, fps=5.0)
    got = list(reader.frames())
    assert 3 <= len(got) < 15
    assert reader.error is not None and "cut.mp4" in reader.error
    assert "truncated" in reader.error or "damaged" in reader.error
    whole = [f.pixels for f in VideoReader(clips["passing_fs"], fps=5.0).frames()]
    assert all(np.array_equal(a.pixels, b) for a, b in zip(got[:-1], whole, strict=False))


def test_mp4_without_moov_is_a_clear_error(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["passing"].read_bytes()  # moov at the end: cutting the file loses it
    assert data.find(b"moov") > len(data) // 2
    path = tmp_path / "nomoov.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoUnreadable, match="moov"):
        VideoReader(path)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty"),
    (os.urandom(200_000), "not a readable video"),
    (b"\x00\x00\x00\x18ftypisom" + os.urandom(5000), "moov"),
])
def test_hostile_bytes_named_mp4(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoUnreadable, match=message) as info:
        VideoReader(path)
    assert isinstance(info.value, ImageUnreadable) and isinstance(info.value, FacelakeError)
    with pytest.raises(VideoUnreadable):
        VideoReader(io.BytesIO(content), name="x.mp4")


@pytest.mark.parametrize(("codec", "name"), [("aac", "sound.m4a"), ("mp2", "sound.mp2")])
def test_audio_only_file_is_a_clear_error(tmp_path: Path, codec: str, name: str) -> None:
    path = encode_audio(tmp_path / name, codec)
    with pytest.raises(VideoUnreadable, match=f"no video stream.*audio {codec}"):
        VideoReader(path)


def test_frames_over_the_pixel_limit_are_refused(tmp_path: Path) -> None:
    eight_k = np.zeros((4320, 7680, 3), np.uint8)
    path = encode(tmp_path / "8k.avi", [eight_k, eight_k], FPS, codec="mjpeg")
    with pytest.raises(VideoTooLarge, match="7680x4320") as info:
        VideoReader(path)
    assert isinstance(info.value, ImageTooLarge)
    assert VideoReader(path, max_pixels=None).info.width == 7680  # the limit, not the file, refused it


def test_duration_and_size_limits(clips: dict[str, Path]) -> None:
    with pytest.raises(VideoTooLarge, match="duration"):
        VideoReader(clips["passing"], max_duration_s=1.0)
    with pytest.raises(VideoTooLarge, match="bytes"):
        VideoReader(clips["passing"], max_bytes=1000)


def test_garbage_timestamps_fall_back_to_frame_position(clips: dict[str, Path], tmp_path: Path) -> None:
    """Packets remuxed with pts that jump back and forth: the frames still come, in order, timed
    by their position at the nominal rate."""
    rng = np.random.default_rng(1)
    target = tmp_path / "garbage.mkv"
    with av.open(str(clips["turn_back"])) as src, av.open(str(target), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.stream, packet.time_base = stream, Fraction(1, 1000)
            packet.dts, packet.pts = i * 40, (i + int(rng.integers(0, 40))) * 40
            out.mux(packet)
    reader = VideoReader(target, fps=5.0, motion_threshold=0.0)
    got = list(reader.frames())
    offsets = [f.offset_s for f in got]
    assert reader.error is None and reader.timestamps_from_index
    assert reader.decoded == 100 and 15 <= len(got) <= 21
    assert all(b > a for a, b in itertools.pairwise(offsets)) and offsets[-1] < 4.1


def test_raw_h264_without_timestamps_named_mp4(tmp_path: Path) -> None:
    frames = render(320, 240, 2.0, FPS, [Actor(face_patch("obama.jpg", 60), (0, 20), (260, 40))])
    raw = encode(tmp_path / "raw.h264", frames, FPS)
    named = tmp_path / "raw.mp4"
    raw.rename(named)
    reader = VideoReader(named, fps=5.0, motion_threshold=0.0)
    got = list(reader.frames())
    assert reader.error is None and len(got) == 10
    assert [f.offset_s for f in got] == pytest.approx([i * 0.2 for i in range(10)], abs=0.05)


def test_corrupted_middle_never_raises(clips: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(clips["passing_fs"].read_bytes())
    rng = np.random.default_rng(3)
    for start in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        data[start:start + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path = tmp_path / "noisy.mp4"
    path.write_bytes(bytes(data))
    reader = VideoReader(path, fps=5.0)
    got = list(reader.frames())  # must not raise, whatever FFmpeg makes of it
    assert len(got) >= 3


# --- tracking on real detections ---

def _track(analyzer, path: Path, use_cuts: bool = True):  # type: ignore[no-untyped-def]
    tracker = Tracker(top_k=1000)
    ended, cuts = [], []
    for frame in VideoReader(path, fps=5.0).frames():
        if frame.scene_cut:
            cuts.append(frame.offset_s)
        faces = analyzer.analyze(frame.pixels)
        ended += tracker.update(frame.offset_s, faces, frame.scene_cut and use_cuts, frame.index)
    return ended + tracker.close(), cuts


@pytest.fixture(scope="module")
def references(analyzer) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    out = {}
    for name in ("obama.jpg", "biden.jpg"):
        frame = render(640, 360, 0.04, FPS, [Actor(face_patch(name, 110), (250, 60), (250, 60))])[0]
        out[name] = analyzer.analyze(frame)[0].embedding
    return out


def _person(embedding: np.ndarray, references: dict[str, np.ndarray]) -> str:
    return max(references, key=lambda n: float(references[n] @ embedding))


def test_one_person_passing_gives_one_track(analyzer, clips, references) -> None:  # type: ignore[no-untyped-def]
    tracks, _ = _track(analyzer, clips["passing"])
    assert len(tracks) == 1
    track = tracks[0]
    assert track.frames >= 13 and track.start_t == 0.0 and track.end_t == pytest.approx(2.8)
    assert float(track.template @ references["obama.jpg"]) > 0.9
    assert float(np.linalg.norm(track.template)) == pytest.approx(1.0, abs=1e-5)
    qualities = [b.face.quality for b in track.best]
    assert qualities == sorted(qualities, reverse=True) and track.best[0].face.thumb[:2] == b"\xff\xd8"
    assert track.area_min <= track.area_mean <= track.area_max
    assert track.box[0] > 400  # it ended on the right, where the face walked to


@pytest.mark.parametrize("clip", ["crossing", "turn_back"])
def test_two_people_crossing_give_two_tracks(analyzer, clips, references, clip) -> None:  # type: ignore[no-untyped-def]
    tracks, _ = _track(analyzer, clips[clip])
    assert len(tracks) == 2
    people = []
    for track in tracks:
        members = {_person(b.face.embedding, references) for b in track.best}
        assert len(members) == 1, f"track {track.track_id} mixes {members}"
        people.append(members.pop())
        assert track.frames >= 17
    assert sorted(people) == ["biden.jpg", "obama.jpg"]
    obama = tracks[people.index("obama.jpg")]
    # crossing: Obama ends on the right; turning back: on the left, where he came from
    assert (obama.box[0] > 320) == (clip == "crossing")


def test_a_scene_cut_ends_the_tracks(analyzer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same face at the same place on both sides of a cut: two tracks, split at the cut."""
    tracks, cuts = _track(analyzer, _scene_change_clip(tmp_path / "cut.mp4", with_face=True))
    assert cuts == [pytest.approx(1.6)]
    assert len(tracks) == 2
    first, second = tracks
    assert first.end_t < 1.6 <= second.start_t
    assert first.frames >= 1 and second.frames >= 1
    ignored, _ = _track(analyzer, tmp_path / "cut.mp4", use_cuts=False)
    assert len(ignored) == 1  # it is the cut, not the tracker's gates, that split the track


def test_an_unrecognisable_face_keeps_a_track_going_but_hardly_counts_in_its_template() -> None:
    from facelake.vision.types import Detection, Face

    def face(x: float, emb: np.ndarray, recognisability: float) -> Face:
        det = Detection(box=(x, 50.0, 40.0, 40.0), score=0.9, landmarks=np.zeros((5, 2), np.float32))
        return Face(detection=det, embedding=emb.astype(np.float32), quality=0.9, thumb=b"", model="test",
                    recognisability=recognisability)

    clear = np.array([1.0, 0.0, 0.0], np.float32)
    turned = np.array([0.8, 0.6, 0.0], np.float32)  # the same person walking on, face turned away
    tracker = Tracker(max_age_s=1.0, min_similarity=0.5, strong_similarity=0.7)
    tracker.update(0.0, [face(100, clear, 0.7)])
    tracker.update(0.2, [face(104, turned, 0.3)])
    tracker.update(0.4, [face(108, turned, 0.3)])
    (track,) = tracker.close()
    assert track.frames == 3, "the unclear frames are the same track"
    assert float(track.template @ clear) > 0.999, "the template is the recognisable face's"


def test_tracker_unit_gates_and_ageing() -> None:
    """No models: hand-made faces with known boxes and embeddings."""
    from facelake.vision.types import Detection, Face

    def face(x: float, emb: np.ndarray, q: float = 0.5) -> Face:
        det = Detection(box=(x, 50.0, 40.0, 40.0), score=0.9, landmarks=np.zeros((5, 2), np.float32))
        return Face(detection=det, embedding=emb.astype(np.float32), quality=q, thumb=b"", model="test")

    a = np.zeros(8, np.float32); a[0] = 1.0
    b = np.zeros(8, np.float32); b[1] = 1.0
    tracker = Tracker(max_age_s=1.0, top_k=2)
    assert tracker.update(0.0, [face(0, a), face(200, b)]) == []
    # they swap places in one step: overlap would say "swap", the embeddings forbid it
    assert tracker.update(0.2, [face(200, a), face(0, b)]) == []
    assert len(tracker.open) == 4  # two new tracks, no identity swap
    # 1.3 s with no analysed frame counts as max_step_s (1 s) of not seeing them: tracks 1 and 2
    # (unseen since 0.0) end, 3 and 4 (seen at 0.2) are at exactly max_age and end at the next look.
    ended = tracker.update(1.5, [])
    assert sorted(t.track_id for t in ended) == [1, 2]
    assert sorted(t.track_id for t in tracker.update(1.7, [])) == [3, 4]
    # a close, consistent face joins; the best list keeps the top 2 by quality
    tracker.update(2.0, [face(100, a, 0.2)])
    tracker.update(2.2, [face(104, a, 0.9)])
    tracker.update(2.4, [face(108, a, 0.5)])
    (track,) = tracker.close()
    assert track.frames == 3 and [round(x.face.quality, 1) for x in track.best] == [0.9, 0.5]
    assert track.velocity[0] == pytest.approx(20.0, rel=0.01)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="min_iou"):
        Tracker(min_iou=2.0)


# --- live streams through ffmpeg's HTTP listen mode ---

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, fmt: str, codec: str, seconds: int = 30) -> subprocess.Popen[bytes]:
    return subprocess.Popen([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
        "-i", "testsrc=size=320x240:rate=10", "-t", str(seconds), "-c:v", codec, "-f", fmt, "-listen", "1", url,
    ])


@pytest.fixture
def server() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


@needs_ffmpeg
@pytest.mark.parametrize(("fmt", "codec"), [("mpjpeg", "mjpeg"), ("mpegts", "mpeg2video")])
def test_stream_frames_arrive_and_a_dropped_server_reconnects(server, fmt: str, codec: str) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{_free_port()}/cam"
    server.append(_serve(url, fmt, codec))
    reader = StreamReader(url, fps=None, first_frame_timeout_s=15, backoff_s=0.2, backoff_max_s=1.0).start()
    try:
        frame = reader.get(timeout=15)
        assert frame is not None and frame.pixels.shape == (240, 320, 3)
        assert abs(datetime.now(UTC) - frame.captured_at) < timedelta(seconds=5)
        server[0].kill()
        server[0].wait()
        deadline = time.monotonic() + 10
        while reader.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reader.reconnects >= 1 and reader.error is None
        server.append(_serve(url, fmt, codec))
        before = reader.received
        deadline = time.monotonic() + 15
        while reader.received <= before + 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reader.received > before + 5  # frames again, after the reconnect
    finally:
        reader.stop()
    assert not reader.running and reader.error is None


@needs_ffmpeg
def test_a_full_queue_drops_the_oldest_frames(server) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{_free_port()}/cam"
    server.append(_serve(url, "mpjpeg", "mjpeg"))
    with StreamReader(url, fps=None, queue_size=2, first_frame_timeout_s=15) as reader:
        deadline = time.monotonic() + 15
        while reader.delivered < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        newest = reader.delivered - 1
        first = reader.get(timeout=1)
    assert reader.dropped >= 6
    assert reader.delivered == reader.dropped + 1 + reader.pending  # every frame is counted somewhere
    assert first is not None and first.index >= newest - 2  # the oldest were dropped, not the newest


@pytest.mark.parametrize("give_up", [True, False], ids=["bare reader", "watcher"])
def test_a_stream_that_never_sends_a_frame_times_out_with_a_masked_error(give_up: bool) -> None:
    """A server that accepts the connection and never answers (a wedged camera). The error comes
    when ``first_frame_timeout_s`` says, even with an open timeout longer than that; the watcher's
    reader (``give_up=False``) keeps trying, and nothing is counted as a *re*connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://admin:${{TEST_CAM_PW}}@127.0.0.1:{port}/cam"
        reader = StreamReader(url, fps=None, open_timeout_s=10.0, read_timeout_s=10.0, first_frame_timeout_s=2.0,
                              backoff_s=0.2, give_up=give_up, environ={"TEST_CAM_PW": "sup3rsecret"}).start()
        t0 = time.monotonic()
        if give_up:
            assert list(reader.frames()) == []
        else:
            while reader.error is None and time.monotonic() - t0 < 10:
                time.sleep(0.05)
        waited = time.monotonic() - t0
        assert waited < 4.5, f"the error came {waited:.1f} s after start, for a 2-s deadline"
        assert reader.error is not None and "no frame" in reader.error and "2 s" in reader.error
        assert "sup3rsecret" not in reader.error and "admin:***@" in reader.error
        assert "sup3rsecret" not in (reader.last_error or "")
        assert reader.running is not give_up
        assert reader.reconnects == 0 and reader.attempts >= 1
        reader.stop()
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_video_settings_are_validated() -> None:
    from pydantic import ValidationError

    from facelake.config import Settings

    settings = Settings()
    assert settings.video_fps == 5.0 and settings.video_motion_refresh_s < settings.track_max_age_s
    assert Settings(video_fps=2.0, track_top_k=5).track_top_k == 5
    for bad in ({"video_fps": 0}, {"track_top_k": 0}, {"video_scene_cut": 1.5}, {"video_fsp": 5}):
        with pytest.raises(ValidationError):
            Settings(**bad)
