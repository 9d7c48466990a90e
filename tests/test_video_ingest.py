"""Video clips through the whole line: a clip in a folder → tracks in the database, on both engines.

The clips are encoded by the tests (tests/videoclips.py) from the sample face photos moving over
a background, so how many people pass, and when, is known by construction.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from facelake.store.base import Target

from .dbs import execute, rows
from .test_ingest import cli
from .videoclips import Actor, encode, face_patch, render

FPS = 10


def clip(path: Path, actors: list[Actor], seconds: float = 3.0, faststart: bool = False,
         creation_time: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode(path, render(640, 360, seconds, FPS, actors), FPS, faststart=faststart, creation_time=creation_time)


def walker(name: str, y: float = 60.0, reverse: bool = False, t0: float = 0.0, t1: float = 1e9) -> Actor:
    start, end = (20.0, y), (420.0, y)
    return Actor(face_patch(name, 160), end if reverse else start, start if reverse else end, t0, t1)


def test_one_person_passing_is_one_track_with_a_few_best_faces(db: Target, tmp_path: Path) -> None:
    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")], creation_time="2024-05-01T10:00:00Z")
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    local = datetime(2024, 5, 1, 10, tzinfo=UTC).astimezone().replace(tzinfo=None)  # stored as local wall time
    assert rows(db, "SELECT camera, status, format, width, height, taken_at, taken_at_source FROM images") == [
        ("door", "ok", "video/h264", 640, 360, local, "container")]
    tracks = rows(db, "SELECT track_id, camera, start_s, end_s, frames, model, template IS NOT NULL, "
                      "best_sighting_id, started_at FROM tracks")
    assert len(tracks) == 1, tracks
    track_id, camera, start_s, end_s, frames, model, has_template, best, started = tracks[0]
    assert camera == "door" and has_template and frames >= 5 and 0 <= start_s < end_s <= 3.0
    assert model == rows(db, "SELECT DISTINCT model FROM sightings")[0][0]
    assert started == rows(db, "SELECT taken_at FROM images")[0][0] + timedelta(seconds=start_s)
    faces = rows(db, "SELECT sighting_id, track_id, offset_s, quality FROM sightings ORDER BY quality DESC")
    assert 1 <= len(faces) <= 3, "a track keeps its top-K faces, not one sighting per frame"
    assert {f[1] for f in faces} == {track_id} and best == faces[0][0]
    assert all(start_s <= f[2] <= end_s for f in faces)
    # Each face is listed at the moment it was filmed: the clip's start plus its offset.
    taken = rows(db, "SELECT taken_at FROM images")[0][0]
    seen = rows(db, "SELECT offset_s, seen_at FROM sightings")
    assert all(abs(at - (taken + timedelta(seconds=off))) < timedelta(milliseconds=1) for off, at in seen), (taken, seen)
    assert any(off > 0.1 for off, _ in seen), seen
    # Re-ingesting the same clip adds nothing.
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM tracks") == [(1,)] and rows(db, "SELECT count(*) FROM images") == [(1,)]


def test_two_people_crossing_are_two_tracks(db: Target, tmp_path: Path) -> None:
    clip(tmp_path / "cams" / "hall" / "cross.mkv",
         [walker("obama.jpg", 40.0), walker("biden.jpg", 120.0, reverse=True)], seconds=3.0)
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM tracks") == [(2,)]
    per_track = rows(db, "SELECT track_id, count(*) FROM sightings GROUP BY 1 ORDER BY 1")
    assert len(per_track) == 2 and all(n >= 1 for _, n in per_track)


def test_an_enrolled_person_is_named_once_per_track(db: Target, tmp_path: Path, samples: Path) -> None:
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output
    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")])
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    person = rows(db, "SELECT person_id FROM people WHERE name = 'Barack'")[0][0]
    assert rows(db, "SELECT person_id, match_score IS NOT NULL FROM tracks") == [(person, True)]
    assert {r[0] for r in rows(db, "SELECT person_id FROM sightings WHERE track_id IS NOT NULL")} == {person}, \
        "every sighting of the track carries the track's one name"


def test_broken_clips_are_recorded_and_a_truncated_one_keeps_what_came_before(db: Target, tmp_path: Path) -> None:
    cams = tmp_path / "cams" / "door"
    whole = clip(tmp_path / "whole.mp4", [walker("obama.jpg")], seconds=4.0, faststart=True)
    data = whole.read_bytes()
    cams.mkdir(parents=True)
    (cams / "truncated.mp4").write_bytes(data[: int(len(data) * 0.7)])
    (cams / "empty.mp4").write_bytes(b"")
    (cams / "noise.mp4").write_bytes(bytes(range(256)) * 40)
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    status = dict(rows(db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images"))
    assert status == {"truncated.mp4": "ok", "empty.mp4": "error", "noise.mp4": "error"}
    error = rows(db, "SELECT error FROM images WHERE uri LIKE '%truncated.mp4'")[0][0]
    assert error, "the damage is recorded beside what was kept"
    assert rows(db, "SELECT count(*) FROM tracks")[0][0] >= 1
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert rows(db, "SELECT count(*) FROM tracks")[0][0] == 1 and rows(db, "SELECT count(*) FROM images") == [(3,)]


@pytest.mark.parametrize("suffix", [".avi"])
def test_embed_reads_a_clip_as_its_tracks_best_faces(tmp_path: Path, suffix: str) -> None:
    import json

    from typer.testing import CliRunner

    from facelake.cli import app

    path = clip(tmp_path / f"walk{suffix}", [walker("biden.jpg")])
    result = CliRunner().invoke(app, ["embed", "--jsonl", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[0])
    assert out["image"] == str(path) and 1 <= out["faces"] <= 3


def test_forget_and_purge_erase_track_templates(db: Target, tmp_path: Path, samples: Path) -> None:
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output
    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")])
    clip(tmp_path / "cams" / "yard" / "stranger.mp4", [walker("biden.jpg")])
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM tracks WHERE template IS NOT NULL") == [(2,)]
    code, output = cli(db, "forget", "Barack")
    assert code == 0, output
    assert rows(db, "SELECT camera, person_id, template IS NULL FROM tracks ORDER BY camera") == [
        ("door", None, True), ("yard", None, False)], "the erased person's track keeps no template and no name"
    # The stranger's track expires with its faces once the retention period is over.
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now() - timedelta(days=400)])
    code, output = cli(db, "purge")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM tracks WHERE template IS NOT NULL") == [(0,)]
    assert rows(db, "SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND track_id IS NOT NULL") == [(0,)]


def test_identify_names_a_stored_clip_by_its_tracks(db: Target, tmp_path: Path, samples: Path) -> None:
    clip(tmp_path / "cams" / "door" / "cross.mp4",
         [walker("obama.jpg", 40.0), walker("biden.jpg", 160.0, reverse=True)])
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM tracks WHERE person_id IS NOT NULL") == [(0,)]
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output
    code, output = cli(db, "identify")
    assert code == 0, output
    person = rows(db, "SELECT person_id FROM people WHERE name = 'Barack'")[0][0]
    named = rows(db, "SELECT track_id, person_id FROM tracks ORDER BY person_id NULLS LAST")
    assert [p for _, p in named] == [person, None], "Barack's track is named, the other stays unknown"
    per_track = rows(db, "SELECT track_id, count(DISTINCT coalesce(person_id, -1)) FROM sightings "
                         "WHERE track_id IS NOT NULL GROUP BY 1")
    assert all(n == 1 for _, n in per_track), "every face of a track carries the track's one name"
    assert rows(db, f"SELECT count(*) FROM sightings WHERE track_id = {named[0][0]} AND person_id = {person}")[0][0] >= 1


def test_clustering_groups_tracks_once_each_and_names_follow_the_track(db: Target, tmp_path: Path) -> None:
    clip(tmp_path / "cams" / "door" / "a.mp4", [walker("obama.jpg")], creation_time="2024-05-01T10:00:00Z")
    clip(tmp_path / "cams" / "yard" / "b.mp4", [walker("obama.jpg", reverse=True)], creation_time="2024-05-01T11:00:00Z")
    clip(tmp_path / "cams" / "yard" / "c.mp4", [walker("biden.jpg")], creation_time="2024-05-01T12:00:00Z")
    # A group needs three faces of evidence (the density rule): a third visit, from another photo.
    clip(tmp_path / "cams" / "door" / "d.mp4", [walker("obama2.jpg")], creation_time="2024-05-01T13:00:00Z")
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    code, output = cli(db, "cluster")
    assert code == 0, output
    tracks = rows(db, "SELECT camera, cluster_id FROM tracks ORDER BY started_at")
    assert tracks[0][1] is not None and tracks[0][1] == tracks[1][1] == tracks[3][1], "one person's tracks: one group"
    assert tracks[2][1] != tracks[0][1]
    mixed = rows(db, "SELECT track_id FROM sightings WHERE track_id IS NOT NULL GROUP BY 1 "
                     "HAVING count(DISTINCT coalesce(cluster_id, -1)) > 1")
    assert mixed == [], "every face of a track is in its track's group"
    group = tracks[0][1]
    code, output = cli(db, "clusters", "name", str(group), "Barack", "--consent", "asked")
    assert code == 0, output
    person = rows(db, "SELECT person_id FROM people WHERE name = 'Barack'")[0][0]
    named = rows(db, "SELECT person_id FROM tracks ORDER BY started_at")
    assert [named[0], named[1], named[3]] == [(person,)] * 3


def test_a_clip_cut_before_its_first_frame_is_an_error_and_clips_are_batches_of_their_own(
    db: Target, tmp_path: Path
) -> None:
    from facelake.pipeline.executors import job_batches
    from facelake.pipeline.records import Job

    whole = clip(tmp_path / "whole.mp4", [walker("obama.jpg")], faststart=True).read_bytes()
    moov = whole.index(b"mdat")
    cams = tmp_path / "cams" / "door"
    cams.mkdir(parents=True)
    (cams / "cut.mp4").write_bytes(whole[: moov + 64])  # the index, then 56 bytes of the first frame
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT status FROM images") == [("error",)], "nothing decoded: nothing to keep, retried later"

    def job(name: str) -> Job:
        return Job(name, name, "cam", None, None)

    names = ["a.jpg", "b.jpg", "c.mp4", "d.jpg", "e.mkv", "f.mkv", "g.jpg", "h.jpg", "i.jpg"]
    assert [[j.uri for j in b] for b in job_batches(map(job, names), 2)] == [
        ["a.jpg", "b.jpg"], ["c.mp4"], ["d.jpg"], ["e.mkv"], ["f.mkv"], ["g.jpg", "h.jpg"], ["i.jpg"]]


def test_capture_keeps_the_camera_name_inside_its_folder(tmp_path: Path) -> None:
    from facelake.config import load_settings
    from facelake.triggers.capture import Capture

    run = Capture("http://127.0.0.1:9/cam", "../../escape", str(tmp_path / "to"), load_settings())
    assert "/" not in run.camera and not run.camera.startswith(".")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="scripts/test.sh installs Debian's ffmpeg")
@pytest.mark.parametrize(("turn", "tag"), [(1, "270"), (-1, "90")], ids=["phone-portrait", "other-way"])
def test_a_phone_clip_recorded_sideways_is_turned_upright(db: Target, tmp_path: Path, turn: int, tag: str) -> None:
    """The face is stored turned a quarter (``turn``: 1 counter-clockwise) and the clip's display
    matrix says how to show it; the frames must come out as ffmpeg itself shows them: upright.
    A phone's portrait clip is the first case (its matrix reads -90). facelake once turned both
    the wrong way (upside-down faces, too unclear to be named)."""
    import av
    import numpy as np

    from facelake.sources.video import upright_rgb

    sideways = Actor(np.ascontiguousarray(np.rot90(face_patch("obama.jpg", 160), turn)), (60.0, 20.0), (100.0, 300.0))
    raw = encode(tmp_path / "raw.mp4", render(360, 640, 3.0, FPS, [sideways]), FPS)
    phone = tmp_path / "cams" / "phone" / "rotated.mp4"
    phone.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(raw), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={tag}", str(phone)], check=True)
    shown = tmp_path / "shown.png"  # ffmpeg's own display of the clip (it applies the matrix)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(phone), "-frames:v", "1", str(shown)],
                   check=True)
    with av.open(str(phone)) as clip:
        ours = upright_rgb(next(clip.decode(video=0)))
    theirs = np.asarray(Image.open(shown).convert("RGB"), dtype=np.float32)
    assert ours.shape == theirs.shape and np.abs(ours.astype(np.float32) - theirs).mean() < 12, "as ffmpeg shows it"
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT width, height FROM images") == [(640, 360)], "stored as it is shown"
    for landmarks, box in rows(db, "SELECT landmarks, box FROM sightings"):
        eyes_y = (landmarks[0][1] + landmarks[1][1]) / 2
        mouth_y = (landmarks[3][1] + landmarks[4][1]) / 2
        assert eyes_y < mouth_y and box[0] + box[2] <= 640 and box[1] + box[3] <= 360, "an upright face"


def test_a_clip_without_a_creation_time_starts_at_its_mtime_less_its_length(db: Target, tmp_path: Path) -> None:
    import os

    path = clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")], seconds=3.0)
    written = datetime(2024, 5, 1, 10, 0, 3).timestamp()  # a recorder closes the file when it stops filming
    os.utime(path, (written, written))
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    ((taken, source),) = rows(db, "SELECT taken_at, taken_at_source FROM images")
    assert source == "mtime" and abs((taken - datetime(2024, 5, 1, 10, 0, 0)).total_seconds()) < 0.2, taken


def test_search_returns_a_track_once(db: Target, tmp_path: Path, samples: Path) -> None:
    from facelake import load_settings, search

    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")])
    shutil.copy(samples / "obama2.jpg", tmp_path / "cams" / "door" / "photo.jpg")
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    kept = rows(db, "SELECT count(*) FROM sightings WHERE track_id IS NOT NULL")[0][0]
    assert kept >= 2, "the track keeps several faces (else this test proves nothing)"
    hits = search(load_settings(db=db), samples / "obama3.jpg", top=5)
    assert len(hits) == 2 and sorted(h.track_id is not None for h in hits) == [False, True], hits
    assert hits[0].score >= hits[1].score


def test_a_track_keeps_a_still_of_its_best_frame_until_its_person_is_erased(
    db: Target, tmp_path: Path, samples: Path
) -> None:
    import io

    from PIL import Image

    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output
    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")])
    assert cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")[0] == 0
    ((still,),) = rows(db, "SELECT still FROM tracks")
    frame = Image.open(io.BytesIO(bytes(still)))
    assert frame.format == "JPEG" and frame.size == (640, 360), "the whole frame, not a crop"
    assert cli(db, "forget", "Barack")[0] == 0
    assert rows(db, "SELECT still IS NULL FROM tracks") == [(True,)], "erased with the person"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_long_clip_reports_how_far_it_got_while_it_is_read(db: Target, tmp_path: Path, workers: int) -> None:
    """An hour of footage is minutes of work: the worker (in this process, or a pool's) says how far it got."""
    from dataclasses import replace

    from facelake import load_settings
    from facelake.pipeline import Ingestor, InProcessExecutor, local_executor
    from facelake.sources import FolderSource

    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")], seconds=4.0)
    settings = load_settings(db=db)
    executor = local_executor(settings, workers)
    holder = executor.worker if isinstance(executor, InProcessExecutor) else executor
    holder.video = replace(holder.video, progress_every_s=0.0)  # report every batch of frames
    heard: list[tuple[str, float, float | None]] = []
    with Ingestor(settings, executor=executor) as ingestor:
        summary = ingestor.run([FolderSource(tmp_path / "cams")],
                               on_clip=lambda uri, s, d: heard.append((uri, s, d)))
    assert summary.new == 1
    uri = str(tmp_path / "cams" / "door" / "walk.mp4")
    assert heard and {h[0] for h in heard} == {uri}
    seconds = [h[1] for h in heard]
    assert seconds == sorted(seconds) and 0 < seconds[-1] < 4.0
    assert all(h[2] is not None and abs(h[2] - 4.0) < 0.3 for h in heard), "with the clip's length"
