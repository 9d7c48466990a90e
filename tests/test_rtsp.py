"""`facelake watch rtsp://...` against a real RTSP server (GStreamer's gst-rtsp-server, run by
tests/rtsp_server.py under Debian's Python): basic auth with the password from the environment,
a wrong password, the server killed and restarted mid-stream, SIGTERM with a face in view."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import quote

import pytest

from facelake.sources.video import StreamReader

from .dbs import rows
from .test_watch import Watch, no_watch_left  # noqa: F401 (autouse)
from .videoclips import Actor, encode, face_patch, render

DEBIAN_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
PROBE = """
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
raise SystemExit(1 if missing else 0)
"""


def _gst_rtsp_missing() -> str | None:
    """Why gst-rtsp-server cannot run here (None when it can)."""
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return f"no {DEBIAN_PYTHON} (Debian's Python runs the RTSP server)"
    try:
        probe = subprocess.run([DEBIAN_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{DEBIAN_PYTHON} cannot probe GStreamer: {exc}"
    if probe.returncode:
        detail = f"missing elements: {probe.stdout.strip()}" if probe.stdout.strip() else probe.stderr.strip()[-200:]
        return ("scripts/test.sh installs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and "
                f"gstreamer1.0-plugins-good/-bad for the RTSP tests ({detail})")
    return None


pytestmark = pytest.mark.skipif(bool(reason := _gst_rtsp_missing()), reason=reason or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspCamera:
    """tests/rtsp_server.py serving ``clip`` on 127.0.0.1:``port``/cam, (re)started and killed at will."""

    def __init__(self, clip: Path, port: int, user: str | None = None, password: str | None = None) -> None:
        self.clip, self.port = clip, port
        self.auth = ["--user", user, "--password", password or ""] if user else []
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.played_at: list[float] = []
        """monotonic times at which a client was let in and the clip started playing for it"""

    def url(self, userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self.proc = subprocess.Popen([DEBIAN_PYTHON, str(SERVER), str(self.clip), "--port", str(self.port),
                                      "--path", "/cam", *self.auth],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace")
        ready = threading.Event()

        def pump(stream) -> None:  # type: ignore[no-untyped-def]
            for line in stream:  # decoded with errors="replace": a stray byte must not end the reading
                line = line.rstrip("\n")
                self.lines.append(line)
                if line.startswith("ready"):
                    ready.set()
                elif line == "media playing":
                    self.played_at.append(time.monotonic())
            ready.set()

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        ready.wait(30)
        if self.proc.poll() is not None or not any(line.startswith("ready") for line in self.lines):
            pytest.fail(f"the RTSP server did not start: {self.lines[-20:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def cameras() -> Iterator[list[RtspCamera]]:
    made: list[RtspCamera] = []
    yield made
    for camera in made:
        camera.kill()


def _everything(db: Path) -> str:
    """Every row of every table, as text (to look for a password in)."""
    tables = [t for (t,) in rows(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
    return "\n".join(repr(rows(db, f'SELECT * FROM "{t}"')) for t in tables)


def _tracks(db: Path) -> list[tuple]:  # type: ignore[type-arg]
    return rows(db, "SELECT t.camera, t.frames, t.start_s, t.end_s, t.started_at, t.ended_at, i.format, i.uri "
                    "FROM tracks t JOIN images i USING (image_id) ORDER BY t.started_at")


def _camera_line(watch: Watch, camera: str = "door") -> str:
    return next((line for line in watch.out if line.startswith(f"camera {camera}:")), "")


def _counter(line: str, name: str) -> int:
    """``camera door: received 120, dropped 0, reconnects 1, ...`` → the named count."""
    for part in line.split(":", 1)[1].split(","):
        key, _, value = part.strip().partition(" ")
        if key == name:
            return int(value)
    raise AssertionError(f"no {name} in {line!r}")


def test_credentials_from_the_environment_reach_the_camera_and_sigterm_commits_the_open_track(
        tmp_path: Path, cameras: list[RtspCamera]) -> None:
    # One person crosses (0-3 s), nobody (3-6 s), another crosses (6-16 s).
    actors = [Actor(face_patch("obama.jpg", 150), (20.0, 50.0), (400.0, 60.0), 0.0, 3.0),
              Actor(face_patch("biden.jpg", 150), (400.0, 60.0), (40.0, 50.0), 6.0, 16.0)]
    clip = encode(tmp_path / "scene.mp4", render(640, 360, 16.0, 10, actors), 10)
    # A password with URL delimiters in it: percent-encoded into the URL when it is filled in.
    secret, wrong = "Door:Pw@77/31", "not-the-pw-4410"
    camera = RtspCamera(clip, _free_port(), "viewer", secret)
    cameras.append(camera)
    camera.start()
    url = camera.url("viewer:${CAM_PW}")
    good = Watch(tmp_path / "good.duckdb", url, "--camera", "door", "--workers", "1", env={"CAM_PW": secret})
    # Side by side (it only waits): the same camera with a wrong password, giving up after 4 s.
    bad = Watch(tmp_path / "bad.duckdb", url, "--camera", "door", "--workers", "1",
                env={"CAM_PW": wrong, "FACELAKE_STREAM_TIMEOUT_S": "4"})

    # The first person's track is written once they have been gone for track_max_age_s.
    good.wait_for(lambda: good.new_lines("#t="), 60, "the first track's segment")
    try:
        good.wait_for(lambda: camera.played_at, 10, "the camera's own line that it played (read by a thread)")
    except pytest.fail.Exception as failed:
        pytest.fail(f"{failed}; the camera said {camera.lines[-20:]}")
    assert len(camera.played_at) == 1, "only the right password gets the clip played"
    # The second person is in view from 6 s after the clip started: let them be seen a while.
    good.wait_for(lambda: time.monotonic() - camera.played_at[0] > 9.5, 20, "the second person in view")
    assert good.stop() == 0, "\n".join(good.err[-40:])
    tracks = _tracks(tmp_path / "good.duckdb")
    assert len(tracks) == 2, (tracks, good.out, good.err[-10:])
    assert all(t[0] == "door" and t[1] >= 3 and t[6] == "stream" for t in tracks), tracks
    assert all(t[7].startswith("rtsp://viewer:***@127.0.0.1:") for t in tracks), tracks
    # The open track was committed at SIGTERM, while the person was still in view (till 16 s).
    assert (tracks[1][5] - tracks[1][4]).total_seconds() >= 1.5, tracks[1]
    everything = "\n".join(good.out + good.err) + _everything(tmp_path / "good.duckdb")
    for form in (secret, quote(secret, safe="")):
        assert form not in everything, "the password is filled in at open time and never stored or printed"
    assert "viewer:***@" in everything

    # The wrong password: the camera answers 401, and the reader gives up at once with a masked,
    # clear error instead of retrying a password that stays wrong.
    bad.wait_for(lambda: any("refused the credentials" in line for line in bad.err), 60, "the wrong password's error")
    time.sleep(3.0)  # as long as a few backoffs: no retry may follow
    assert bad.proc.poll() is None, "a camera refusing the watcher does not end the watch"
    assert not any("reconnecting" in line for line in bad.err), bad.err[-10:]
    assert bad.stop() == 0, "\n".join(bad.err[-40:])
    error = _camera_line(bad)
    assert "error cannot open rtsp://viewer:***@127.0.0.1:" in error and "401" in error, (error, bad.out)
    assert "refused the credentials; not retried" in error, error
    assert _counter(error, "received") == 0 and _counter(error, "reconnects") == 0
    assert rows(tmp_path / "bad.duckdb", "SELECT count(*) FROM images") == [(0,)]
    everything = "\n".join(bad.out + bad.err) + _everything(tmp_path / "bad.duckdb")
    assert wrong not in everything and secret not in everything


def test_the_watcher_reconnects_when_the_camera_restarts_and_tracks_stay_consistent(
        tmp_path: Path, cameras: list[RtspCamera]) -> None:
    # One person walking slowly across the whole 14-s clip: in view whenever the clip plays.
    actors = [Actor(face_patch("obama.jpg", 150), (20.0, 50.0), (420.0, 70.0), 0.0, 14.0)]
    clip = encode(tmp_path / "walk.mp4", render(640, 360, 14.0, 10, actors), 10)
    port = _free_port()
    first = RtspCamera(clip, port)
    cameras.append(first)
    first.start()
    db = tmp_path / "live.duckdb"
    watch = Watch(db, first.url(), "--camera", "door", "--workers", "1")
    watch.wait_for(lambda: first.played_at and time.monotonic() - first.played_at[0] > 4.0, 60, "4 s of the stream")
    killed_at = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    first.kill()  # mid-stream, the face in view
    second = RtspCamera(clip, port)  # the camera back on the same port
    cameras.append(second)
    second.start()
    watch.wait_for(lambda: second.played_at and time.monotonic() - second.played_at[0] > 4.0, 30,
                   "4 s of the stream after the reconnection")
    back_at = datetime.now(UTC).replace(tzinfo=None)
    assert watch.stop() == 0, "\n".join(watch.err[-40:])
    line = _camera_line(watch)
    assert _counter(line, "reconnects") >= 1, (line, watch.err[-20:])
    assert "error" not in line, line
    assert any("reconnecting in" in err for err in watch.err), watch.err[-20:]

    tracks = _tracks(db)
    assert tracks, (watch.out, watch.err[-20:])
    assert all(t[0] == "door" and t[6] == "stream" for t in tracks), tracks
    assert all(t[1] >= 1 and t[2] <= t[3] and t[4] <= t[5] for t in tracks), tracks
    # One person at a time in the scene: tracks follow one another, none covers another's stretch.
    for before, after in pairwise(tracks):
        assert before[5] <= after[4], ("overlapping tracks", tracks)
    assert rows(db, "SELECT count(*), count(DISTINCT (image_id, track_index)) FROM tracks")[0][0] == len(tracks)
    assert rows(db, "SELECT count(*) FROM sightings s WHERE NOT EXISTS "
                    "(SELECT 1 FROM tracks t WHERE t.track_id = s.track_id)") == [(0,)]
    # Both stretches of the stream were seen: before the kill and after the reconnection.
    assert tracks[0][4] < killed_at and tracks[-1][5] > back_at - timedelta(seconds=3), (killed_at, back_at, tracks)
    assert sum(t[1] for t in tracks) >= 20, tracks
    # The last track was open at SIGTERM (the face still in view) and was committed then.
    assert (tracks[-1][5] - tracks[-1][4]).total_seconds() >= 2.0, tracks


def test_the_seconds_ffmpeg_buffers_while_opening_are_sampled_not_dropped(
        tmp_path: Path, cameras: list[RtspCamera]) -> None:
    """FFmpeg reads ~2 s of the stream (analyzeduration) before av.open returns, and those frames
    leave the decoder all at once: they are stamped and sampled by the stream's clock from the
    moment the connection opened. Sampled by the wall clock, the burst's first two frames were
    kept (4 ms apart) and the next 2 s dropped: a hole at every (re)connection that split tracks."""
    clip = encode(tmp_path / "still.mp4", render(320, 240, 8.0, 10, []), 10)
    camera = RtspCamera(clip, _free_port())
    cameras.append(camera)
    camera.start()
    frames: list[tuple[datetime, datetime]] = []  # (the frame's stamp, when the reader handed it over)
    reader = StreamReader(camera.url(), fps=5.0, queue_size=100, first_frame_timeout_s=15).start()
    try:
        deadline = time.monotonic() + 20
        while len(frames) < 20 and time.monotonic() < deadline:  # the clip's first 4 s, at 5/s
            frame = reader.get(timeout=1)
            if frame is not None:
                frames.append((frame.captured_at, datetime.now(UTC)))
    finally:
        reader.stop()
    assert len(frames) == 20, (len(frames), reader.last_error, reader.error)
    gaps = [round((b[0] - a[0]).total_seconds(), 3) for a, b in pairwise(frames)]
    assert all(0.15 <= g <= 0.25 for g in gaps), gaps
    assert all(stamp <= got for stamp, got in frames), "never stamped later than it arrived"
    assert reader.reconnects == 0 and reader.error is None
