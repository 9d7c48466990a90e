"""The `facelake` command end to end on real photos, on a real DuckDB file and a real PostgreSQL."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facelake.cli import app
from facelake.identities.matching import CALIBRATED
from facelake.sources import Entry
from facelake.store.base import Target
from facelake.vision.models import EMBEDDING_DIMS, FUSION

from .dbs import NewDb, empty, missing, rows

runner = CliRunner()


def cli(db: Target, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_ingest_stores_images_and_sightings_with_camera_from_folder(db: Target, tmp_path: Path, cams: Path) -> None:
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    images = rows(db, "SELECT uri, camera, status, width, height, taken_at IS NOT NULL FROM images ORDER BY uri")
    assert [r[1:3] for r in images] == [("frontdoor", "ok"), ("frontdoor", "ok"), ("garden", "ok")]
    for uri, *_, width, height, has_time in images:
        assert (width, height) == Image.open(uri).size and has_time
    faces = rows(db, "SELECT face_index, box, landmarks, det_score, quality, embedding, model, "
                     "octet_length(thumb), person_id, cluster_id FROM sightings")
    assert len(faces) == 3
    for face_index, box, landmarks, score, quality, embedding, model, thumb, person, cluster in faces:
        assert (face_index, len(box), np.shape(landmarks), len(embedding)) == (0, 4, (5, 2), 320)
        assert score > 0.9 and 0 < quality <= 1 and thumb > 500
        assert model == FUSION
        assert person is None and cluster is None
        assert abs(float(np.dot(embedding, embedding)) - 1) < 1e-4


def test_reingest_is_a_noop_and_new_files_are_picked_up(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    before = rows(db, "SELECT count(*) FROM images"), rows(db, "SELECT count(*), max(sighting_id) FROM sightings")
    # Same bytes under another name are the same image.
    shutil.copy(cams / "garden" / "c.jpg", cams / "garden" / "c-copy.jpg")
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0 and "skipped" in output
    after = rows(db, "SELECT count(*) FROM images"), rows(db, "SELECT count(*), max(sighting_id) FROM sightings")
    assert after == before
    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert rows(db, "SELECT count(*) FROM images")[0][0] == before[0][0][0] + 1


def test_camera_option_overrides_the_folder(db: Target, tmp_path: Path, cams: Path) -> None:
    assert cli(db, "ingest", str(cams / "garden" / "c.jpg"), "--camera", "porch", "--workers", "1")[0] == 0
    assert rows(db, "SELECT camera FROM images") == [("porch",)]


IMAGE_COLUMNS = "image_id, uri, camera, taken_at, width, height, bytes, status, error"


def _bad_inputs(folder: Path, good: Path) -> dict[str, str]:
    """Writes one file per kind of broken input; returns name → expected words in the error."""
    folder.mkdir(parents=True, exist_ok=True)
    for nothing in ("zero.jpg", "zero2.jpg", "zero.mp4", "zero2.mp4"):  # one sha256: never "copies" of each other
        (folder / nothing).write_bytes(b"")
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "text.jpg").write_text("this is a text file, not a photo\n")
    (folder / "random.png").write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    Image.new("L", (12000, 12000)).save(folder / "bomb.png")
    return {"zero.jpg": "empty", "zero2.jpg": "empty", "zero.mp4": "empty", "zero2.mp4": "empty", "truncated.jpg": "truncated", "text.jpg": "not an image",
            "random.png": "", "bomb.png": "MP"}


def test_bad_files_are_recorded_and_the_batch_goes_on(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    assert cli(db, "ingest", str(cams / "garden"), "--workers", "1")[0] == 0
    kept = rows(db, f"SELECT {IMAGE_COLUMNS} FROM images"), rows(db, "SELECT * FROM sightings")
    expected = _bad_inputs(cams / "garden" / "bad", samples / "obama.jpg")
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    errors = {Path(uri).name: error for uri, error in rows(db, "SELECT uri, error FROM images WHERE status = 'error'")}
    assert set(errors) == set(expected)
    for name, words in expected.items():
        assert words.lower() in errors[name].lower(), (name, errors[name])
    assert rows(db, "SELECT count(*) FROM images WHERE status = 'ok'")[0][0] == 3, "good files after bad ones"
    assert rows(db, f"SELECT {IMAGE_COLUMNS} FROM images WHERE camera = 'garden' AND status = 'ok'") == kept[0]
    now = rows(db, "SELECT * FROM sightings")
    assert all(r in now for r in kept[1]), "stored sightings untouched"
    # Re-running on the same broken files updates their error rows; it never adds rows.
    cli(db, "ingest", str(cams), "--workers", "1")
    assert rows(db, "SELECT count(*) FROM images")[0][0] == 3 + len(expected)


def test_unreadable_directory_is_recorded(db: Target, tmp_path: Path, cams: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = cams / "attic"
    locked.mkdir()
    if os.geteuid() == 0:
        # root reads any directory, so make this one fail the way a permission error does.
        real_scandir = os.scandir

        def scandir(path: object) -> object:
            if Path(str(path)) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        code, output = cli(db, "ingest", str(cams), "--workers", "1")
    finally:
        locked.chmod(0o755)
    assert code == 0, output
    errors = rows(db, "SELECT uri, error FROM images WHERE status = 'error'")
    assert errors == [(str(locked), "cannot read directory: Permission denied")]
    assert rows(db, "SELECT count(*) FROM images WHERE status = 'ok'")[0][0] == 3


def test_parallel_workers_store_the_same_rows(new_db: NewDb, cams: Path) -> None:
    one, two = new_db("one"), new_db("two")
    assert cli(one, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(two, "ingest", str(cams), "--workers", "2")[0] == 0
    sql = "SELECT image_id, face_index, box, embedding FROM sightings ORDER BY image_id, face_index"
    a, b = rows(one, sql), rows(two, sql)
    assert [r[:2] for r in a] == [r[:2] for r in b]
    for ra, rb in zip(a, b):
        assert np.allclose(ra[2], rb[2], atol=1e-3) and np.allclose(ra[3], rb[3], atol=1e-5)


@pytest.mark.slow
def test_a_run_killed_mid_batch_resumes_with_every_image_once(db: Target, tmp_path: Path, samples: Path) -> None:
    src = tmp_path / "cams" / "cam1"
    src.mkdir(parents=True)
    base = Image.open(samples / "obama.jpg").convert("RGB")
    base = base.resize((base.width // 2, base.height // 2))
    n = 10
    for i in range(n):  # distinct bytes: a different pixel in each copy
        img = base.copy()
        img.putpixel((i, 0), (i * 20, 0, 0))
        img.save(src / f"{i:02d}.jpg", quality=90)
    cmd = [sys.executable, "-m", "facelake.cli", "--db", str(db), "ingest", str(tmp_path / "cams"), "-v",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    stored = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("new "):
            stored += 1
            if stored == 3:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    partial = rows(db, "SELECT count(*) FROM images")[0][0]
    assert 3 <= partial < n
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*), count(DISTINCT uri) FROM images WHERE status = 'ok'") == [(n, n)]
    assert rows(db, "SELECT count(*), count(DISTINCT image_id) FROM sightings") == [(n, n)]


def test_a_batch_of_images_is_written_whole_or_not_at_all(db: Target) -> None:
    """Ingest writes a worker's batch with one multi-row statement per table (DuckDB); a face
    the database refuses takes the whole batch back, and the same batch then goes in once."""
    from facelake.store import ImageRecord, SightingRecord, open_store

    def face(index: int, model: str | None = FUSION) -> SightingRecord:
        return SightingRecord(index, (1.0, 2.0, 30.0, 30.0), np.zeros((5, 2), np.float32), 0.9, 0.5,
                              np.ones(EMBEDDING_DIMS[FUSION], np.float32), model, b"jpeg",  # type: ignore[arg-type]
                              context=(b"ctx", (1.0, 2.0, 3.0, 4.0), np.zeros((5, 2), np.float32)))

    a, b = ImageRecord("img-a", "/cams/a.jpg", "door", "ok"), ImageRecord("img-b", "/cams/b.jpg", "door", "ok")
    with open_store(db) as store:
        with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
            store.write_images([(a, [face(0), face(1)], "v1"), (b, [face(0, model=None)], "v1")])  # model is NOT NULL
        assert store.query("SELECT count(*) FROM images")[1] == [(0,)]
        first = store.write_images([(a, [face(0), face(1)], "v1"), (b, [face(0)], "v1")])
        assert first[0] is not None and first[1] is not None and len(set(first[0] + first[1])) == 3
        assert store.write_images([(a, [face(0), face(1)], "v1")]) == [None]  # stored: left untouched
    assert rows(db, "SELECT count(*), count(DISTINCT sighting_id) FROM sightings") == [(3, 3)]
    assert rows(db, "SELECT count(*) FROM face_contexts") == [(3,)]
    assert rows(db, "SELECT count(*) FROM source_objects") == [(2,)]
    assert rows(db, "SELECT image_id, face_index, sighting_id FROM sightings ORDER BY sighting_id") == [
        ("img-a", 0, first[0][0]), ("img-a", 1, first[0][1]), ("img-b", 0, first[1][0])]


def test_sql_is_read_only_and_speaks_json_and_csv(db: Target, tmp_path: Path, cams: Path) -> None:
    cli(db, "ingest", str(cams), "--workers", "1")
    code, output = cli(db, "sql", "SELECT camera, count(*) AS n FROM images GROUP BY 1 ORDER BY 1", "--json")
    assert code == 0 and json.loads(output) == [{"camera": "frontdoor", "n": 2}, {"camera": "garden", "n": 1}]
    code, output = cli(db, "sql", "SELECT camera, count(*) AS n FROM images GROUP BY 1 ORDER BY 1", "--csv")
    assert output.splitlines() == ["camera,n", "frontdoor,2", "garden,1"]
    code, output = cli(db, "sql", "--report", "sightings_per_camera_hour", "--json")
    report = json.loads(output)
    assert code == 0 and sum(r["sightings"] for r in report) == 3
    assert all(isinstance(r["hour"], int) for r in report), "numbers are JSON numbers on every engine"
    for statement in ("DELETE FROM images", "DROP TABLE sightings", "INSERT INTO audit VALUES (now(), 'x', 'y', 'z')",
                      "UPDATE people SET name = 'x'", "SELECT 1; DELETE FROM images", "SET threads = 1",
                      "COPY images TO '/tmp/facelake-leak.csv'"):
        code, output = cli(db, "sql", statement)
        assert code == 3 and "read-only" in output, statement
    assert rows(db, "SELECT count(*) FROM images")[0][0] == 3
    code, output = cli(db, "sql", "SELEC nonsense")
    assert code == 4 and "SQL error" in output


def test_sql_on_a_missing_database_says_so(db: Target) -> None:
    code, output = cli(missing(db), "sql", "SELECT 1")
    assert code == 4 and "does not exist" in output


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    from .servers import free_port

    code, output = cli(f"postgresql://facelake:s3cret@127.0.0.1:{free_port()}/facelake", "stats")
    assert code == 4 and "cannot connect to postgresql://facelake:***@127.0.0.1" in output
    assert "s3cret" not in output


def test_export_parquet_round_trips(db: Target, tmp_path: Path, cams: Path) -> None:
    import pyarrow.parquet as pq

    cli(db, "ingest", str(cams), "--workers", "1")
    code, output = cli(db, "export", "--parquet", str(tmp_path / "out"))
    assert code == 0, output
    images = pq.read_table(tmp_path / "out" / "images.parquet")
    sightings = pq.read_table(tmp_path / "out" / "sightings.parquet")
    assert images.num_rows == 3 and sightings.num_rows == 3
    assert {"image_id", "uri", "camera", "taken_at", "gps_lat", "gps_lon", "status"} <= set(images.column_names)
    first = sightings.to_pylist()[0]
    assert len(first["embedding"]) == 320 and len(first["box"]) == 4
    assert set(first["landmarks"][0]) == {"x", "y"} and len(first["landmarks"]) == 5
    stored = rows(db, "SELECT embedding FROM sightings ORDER BY sighting_id LIMIT 1")[0][0]
    assert np.allclose(first["embedding"], stored)


def test_stats_counts_per_camera(db: Target, tmp_path: Path, cams: Path) -> None:
    cli(db, "ingest", str(cams), "--workers", "1")
    code, output = cli(db, "stats", "--json")
    assert code == 0
    per_camera = {r["camera"]: (r["images"], r["faces"]) for r in json.loads(output)["per_camera"]}
    assert per_camera == {"frontdoor": (2, 2), "garden": (1, 1)}


def test_embed_jsonl_is_the_documented_machine_interface(tmp_path: Path, samples: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    paths = [samples / "biden.jpg", bad, samples / "obama.jpg"]
    code, output = cli(tmp_path / "unused.duckdb", "embed", *map(str, paths), "--jsonl")
    assert code == 0
    lines = [json.loads(line) for line in output.splitlines()]
    assert [r["image"] for r in lines] == [str(p) for p in paths]
    assert lines[1] == {"image": str(bad), "faces": 0, "error": lines[1]["error"]} and lines[1]["error"]
    for r in (lines[0], lines[2]):
        assert set(r) == {"image", "faces", "detections"} and r["faces"] == len(r["detections"]) == 1
        det = r["detections"][0]
        assert set(det) == {"box", "score", "landmarks", "embedding", "recognisability"}
        assert len(det["box"]) == 4 and len(det["landmarks"]) == 5 and len(det["embedding"]) == EMBEDDING_DIMS[FUSION]
        assert 0.5 <= det["recognisability"] <= 1.0, "a clear portrait is recognisable"
    a, b = (np.array(r["detections"][0]["embedding"]) for r in (lines[0], lines[2]))
    assert float(a @ b) < CALIBRATED[FUSION].match
    assert not (tmp_path / "unused.duckdb").exists(), "embed never writes a database"


@pytest.mark.parametrize("detector", ["hog", "mtcnn"])
def test_detector_option_selects_the_detector_and_rejects_unknown_names(
    tmp_path: Path, samples: Path, detector: str
) -> None:
    code, output = cli(tmp_path / "x.duckdb", "embed", str(samples / "biden.jpg"), "--jsonl", "--detector", detector)
    assert code == 0, output
    record = json.loads(output)
    assert record["faces"] == 1 and len(record["detections"][0]["embedding"]) == 320
    _, default = cli(tmp_path / "x.duckdb", "embed", str(samples / "biden.jpg"), "--jsonl")
    same_face = np.dot(record["detections"][0]["embedding"], json.loads(default)["detections"][0]["embedding"])
    assert same_face > 0.97, "each detector's face embeds like RetinaFace's"
    code, output = cli(tmp_path / "x.duckdb", "embed", str(samples / "obama.jpg"), "--detector", "yolo")
    assert code == 2 and "detector" in output and all(n in output for n in ("retinaface", "hog", "mtcnn"))


def test_embed_uses_every_core_for_many_images_with_the_same_output(tmp_path: Path, samples: Path) -> None:
    from facelake import load_settings
    from facelake.pipeline.ingest import EMBED_POOL_FROM, embed_paths

    folder = tmp_path / "many"
    folder.mkdir()
    names = ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg"]
    for i in range(EMBED_POOL_FROM):
        shutil.copy(samples / names[i % len(names)], folder / f"{i:02d}.jpg")
    settings = load_settings(db=tmp_path / "unused.duckdb")
    one = list(embed_paths([folder], settings, workers=1))
    pooled = list(embed_paths([folder], settings, workers=None))
    assert [r.uri for r in pooled] == [r.uri for r in one], "input order kept"
    for a, b in zip(one, pooled):
        assert len(a.faces) == len(b.faces) == 1
        assert np.allclose(a.faces[0].embedding, b.faces[0].embedding, atol=1e-6)


def test_a_short_run_is_cut_into_several_batches_per_worker() -> None:
    from facelake.pipeline.executors import BATCHES_PER_WORKER, batch_size

    assert batch_size(8, 2, 24) == 3  # 8 batches: 4 for each worker, not 2 and 1
    assert batch_size(8, 2, 1000) == 8  # long runs keep the configured size
    assert batch_size(8, 2, 3) == 1
    assert batch_size(8, 1, 24) == 8 and batch_size(8, 4, None) == 8
    assert 24 / batch_size(8, 2, 24) >= BATCHES_PER_WORKER * 2


def test_worker_processes_end_with_a_killed_ingest(tmp_path: Path, samples: Path) -> None:
    import time

    import psutil

    src = tmp_path / "cams" / "cam1"
    src.mkdir(parents=True)
    base = Image.open(samples / "obama.jpg").convert("RGB")
    for i in range(40):
        img = base.copy()
        img.putpixel((i, 0), (i * 5, 0, 0))
        img.save(src / f"{i:02d}.jpg", quality=90)
    cmd = [sys.executable, "-m", "facelake.cli", "--db", str(tmp_path / "k.duckdb"), "ingest", str(src), "-v",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("new "):
            break
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2, "the run uses worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        time.sleep(0.2)
    assert not [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], \
        "a killed ingest leaves no worker behind"


def test_file_names_that_are_not_utf8_are_stored_readable_and_exact(db: Target, tmp_path: Path, samples: Path) -> None:
    """Linux names are bytes: ``caf\\xe9.jpg`` (Latin-1) is no UTF-8 string, and it aborted the
    whole run on both engines (0 images stored, every re-run the same)."""
    root = tmp_path / "cams"
    odd_folder = root / os.fsdecode(b"d\xf6r")  # the camera comes from this folder's name
    odd_folder.mkdir(parents=True)
    shutil.copy(samples / "obama.jpg", root / "good.jpg")
    shutil.copy(samples / "biden.jpg", odd_folder / os.fsdecode(b"caf\xe9.jpg"))
    (odd_folder / os.fsdecode(b"bad\xff.jpg")).write_bytes(b"not a photo")
    code, output = cli(db, "ingest", str(root), "--workers", "1", "-v")
    assert code == 0, output
    stored = rows(db, "SELECT uri, uri_bytes, camera, status FROM images ORDER BY uri")
    by_name = {Path(uri).name: (bytes(raw) if raw is not None else None, camera, status)
               for uri, raw, camera, status in stored}
    assert set(by_name) == {"good.jpg", "caf\\xe9.jpg", "bad\\xff.jpg"}
    assert by_name["good.jpg"] == (None, "cams", "ok")
    raw, camera, status = by_name["caf\\xe9.jpg"]
    assert status == "ok" and camera == "d\\xf6r"
    assert raw is not None and Path(os.fsdecode(raw)).read_bytes() == (samples / "biden.jpg").read_bytes(), \
        "the exact name is kept: it opens the file"
    assert by_name["bad\\xff.jpg"][2] == "error"
    assert rows(db, "SELECT count(*) FROM sightings") == [(2,)]
    code, output = cli(db, "ingest", str(root), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM images") == [(3,)], "a re-run adds nothing"
    assert rows(db, "SELECT count(*) FROM source_objects") == [(2,)]


def test_folder_links_are_followed_once_each_and_loops_end(tmp_path: Path, samples: Path) -> None:
    """Two links back up the tree listed forever (1 GB after 90 s); one listed each file ~40 times; a
    link from one camera's folder to another's stored the other's files as the first camera's."""
    from facelake.sources import FolderSource

    cams = tmp_path / "cams"
    (cams / "door" / "sub").mkdir(parents=True)
    shutil.copy(samples / "obama.jpg", cams / "door" / "a.jpg")
    shutil.copy(samples / "biden.jpg", cams / "door" / "sub" / "b.jpg")
    (cams / "door" / "loop").symlink_to(cams)
    (cams / "door" / "sub" / "up").symlink_to(cams / "door")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(samples / "obama2.jpg", elsewhere / "c.jpg")
    (cams / "garden").symlink_to(elsewhere)  # a link to a folder outside is followed
    (cams / "yard").mkdir()
    shutil.copy(samples / "biden.jpg", cams / "yard" / "d.jpg")
    (cams / "door" / "yardlink").symlink_to(cams / "yard")  # listed first ("door" < "yard"), never used
    (cams / "raw" / "cam09").mkdir(parents=True)
    shutil.copy(samples / "obama3.jpg", cams / "raw" / "cam09" / "e.jpg")
    (cams / "porch").symlink_to(cams / "raw" / "cam09")  # a camera's folder as a link: its name is the camera
    listed = [(Path(e.uri).relative_to(cams).as_posix(), e.camera)
              for e in itertools.islice(FolderSource(cams).entries(), 100)]
    assert sorted(listed) == [("door/a.jpg", "door"), ("door/sub/b.jpg", "door"), ("garden/c.jpg", "garden"),
                              ("porch/e.jpg", "porch"), ("yard/d.jpg", "yard")], \
        "each file once, under its own folder's camera"


class _Listing:
    """A source of ``n`` unreadable places that counts how far it has been listed."""

    uri, read_threads = "test://listing", 1

    def __init__(self, n: int) -> None:
        self.n, self.listed = n, 0

    def entries(self) -> Iterator[Entry]:
        for i in range(self.n):
            self.listed += 1
            yield Entry(f"test://listing/{i:05d}.jpg", "cam", error="cannot read file: test")

    def read(self, entry: Entry, max_bytes: int) -> bytes:
        raise AssertionError("never read: each entry carries its error")

    def local_path(self, entry: Entry) -> Path | None:
        return None


def test_a_long_listing_is_ingested_as_it_is_listed(tmp_path: Path) -> None:
    """The listing was built whole before the first image: a huge tree held it all in memory."""
    from facelake import load_settings
    from facelake.pipeline.ingest import Ingestor, _Known

    source = _Listing(_Known.BULK + 50)
    seen_at: list[int] = []
    totals: list[int] = []
    settings = load_settings(db=tmp_path / "l.duckdb")
    with Ingestor(settings, workers=1) as ingestor:
        summary = ingestor.run([source], on_listed=totals.append,
                               on_image=lambda uri, outcome, faces, error: seen_at.append(source.listed))
    assert summary.failed == source.n and totals == [source.n]
    assert seen_at[0] < source.n, "the first image was written before the listing ended"
    short = _Listing(10)
    with Ingestor(settings, workers=1) as ingestor:
        ingestor.run([short], on_listed=totals.append)
    assert totals[-1] == 10


def test_a_missing_source_is_a_usage_error_and_writes_nothing(db: Target, tmp_path: Path, cams: Path) -> None:
    """`ingest demo-camz` exited 0 with a permanent error row under a camera made up from the
    parent folder; `import` of a lake folder that does not exist said "imported 0"."""
    code, output = cli(db, "ingest", str(cams), str(tmp_path / "demo-camz"), "--workers", "1")
    assert code == 2 and "no such file or folder" in output and "demo-camz" in output, output
    assert empty(db, "images") and empty(db, "source_objects"), "nothing written, the good source neither"
    code, output = cli(db, "import", str(tmp_path / "no-lake"))
    assert code == 2 and "no such folder" in output and "imported 0" not in output, output
    assert empty(db, "images")


def test_a_missing_extra_is_named_before_any_worker_starts(tmp_path: Path, cams: Path) -> None:
    """`--detector mtcnn` without its extra printed a 141-line BrokenProcessPool traceback: each
    worker process failed to build its models. The extra is hidden from every process here
    (sitecustomize runs in the workers too)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['mtcnn'] = None  # as if not installed\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "facelake.cli", "--db", str(tmp_path / "m.duckdb"), "ingest", str(cams),
           "--detector", "mtcnn", "--workers", "2"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 5, proc.stderr
    assert "pip install 'facelake[mtcnn]'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 3, proc.stderr
    assert not (tmp_path / "m.duckdb").exists()


def test_a_photo_with_odd_exif_is_stored_upright_by_ingest_and_embed(tmp_path: Path, cams: Path, samples: Path) -> None:
    """Orientation 6 beside a tag of an unexpected type raised out of ImageOps.exif_transpose:
    the whole ingest stopped (and watch crash-looped), and embed crashed on the same file."""
    from .test_decode import ROTATE_270, _exif

    sideways = Image.open(samples / "obama.jpg").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    odd = cams / "garden" / "odd.jpg"
    sideways.save(odd, exif=_exif([ROTATE_270, (0x011A, 2, 2, b"7\x00")]))
    db = tmp_path / "odd.duckdb"
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT status, width < height FROM images WHERE uri = ?", [str(odd)]) == [("ok", True)]
    assert rows(db, "SELECT count(*) FROM images WHERE status = 'ok'") == [(4,)]
    code, output = cli(db, "embed", str(odd), "--jsonl")
    assert code == 0 and json.loads(output)["faces"] == 1, output


def test_a_worker_holds_at_most_max_pixels_of_decoded_images(tmp_path: Path) -> None:
    """A worker decoded its whole batch (8 images) before analysing any: 64 PNGs of 8,900x8,900
    peaked at 5.45 GB. Now the images are decoded and analysed in groups within max_pixels."""
    import io

    from facelake import load_settings
    from facelake.pipeline.records import Job
    from facelake.pipeline.worker import Worker

    settings = load_settings(db=tmp_path / "unused.duckdb", max_pixels=1_000_000)
    worker = Worker.from_settings(settings).load()
    groups: list[list[int]] = []
    analyze_many = worker.analyzer.analyze_many

    def spy(images: list[np.ndarray]) -> list[list[object]]:
        groups.append([int(im.shape[0] * im.shape[1]) for im in images])
        return analyze_many(images)  # type: ignore[return-value]

    worker.analyzer.analyze_many = spy  # type: ignore[method-assign]
    jobs = []
    rng = np.random.default_rng(5)
    for i in range(8):  # 0.36 MP each: two fit in 1 MP, three do not
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)).save(buf, format="PNG")
        jobs.append(Job(f"id{i}", f"/x/{i}.png", "cam", buf.getvalue(), None))
    jobs.insert(3, Job("bad", "/x/bad.png", "cam", b"not an image", None))
    results = worker.process(jobs)
    assert [r.job.image_id for r in results] == [j.image_id for j in jobs], "one result per job, in order"
    assert [r.error is None for r in results].count(True) == 8
    assert groups == [[360_000, 360_000]] * 4, "never more than max_pixels decoded at once"
