"""`facelake watch` as a real process: files arriving, files written slowly, SIGTERM mid-batch, buckets polled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from facelake.store.base import Target

from .dbs import rows

JPEGS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg"]


class Watch:
    """A running `facelake watch`; collects its output lines as they come."""

    started: ClassVar[list[Watch]] = []
    """Every watch a test started: :func:`no_watch_left` kills those a failed assertion left running."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "facelake.cli", "--db", str(db), "watch", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        Watch.started.append(self)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"{what} not seen within {timeout:.0f} s; stdout={self.out} stderr={self.err[-20:]}")

    def ready(self) -> None:
        self.wait_for(lambda: any(line.startswith("watching") for line in self.err), 60, "watcher start")

    def new_lines(self, name: str = "") -> list[str]:
        return [line for line in self.out if line.startswith("new ") and name in line]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture(autouse=True)
def no_watch_left() -> Iterator[None]:
    """A test that fails mid-way leaves no `watch` process behind it (two outlived a failed run)."""
    yield
    while Watch.started:
        watch = Watch.started.pop()
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(timeout=30)


def test_dropped_files_are_ingested_within_seconds_and_slow_writes_once_whole(db: Target, tmp_path: Path, samples: Path) -> None:
    cams = tmp_path / "cams"
    (cams / "door").mkdir(parents=True)
    watch = Watch(db, str(cams), "--workers", "1", "--settle", "0.5")
    watch.ready()
    shutil.copy(samples / "obama.jpg", cams / "door" / "a.jpg")
    latency = watch.wait_for(lambda: watch.new_lines("a.jpg"), 15, "a.jpg ingested")
    assert latency < 10
    data = (samples / "biden.jpg").read_bytes()
    with open(cams / "door" / "slow.jpg", "wb") as f:  # ~1.6 s of writing, in 30 kB pieces
        for i in range(0, len(data), 30_000):
            f.write(data[i : i + 30_000])
            f.flush()
            time.sleep(0.13)
    watch.wait_for(lambda: watch.new_lines("slow.jpg"), 15, "slow.jpg ingested")
    (cams / "door" / "notes.txt").write_text("not an image")
    time.sleep(1.0)
    assert watch.stop() == 0
    assert rows(db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images ORDER BY 1") == [
        ("a.jpg", "ok"), ("slow.jpg", "ok")]
    assert rows(db, "SELECT count(*) FROM sightings") == [(2,)]
    assert not [line for line in watch.out if line.startswith("failed")]


def test_a_name_that_is_not_utf8_is_followed_with_its_neighbours(db: Target, tmp_path: Path, samples: Path) -> None:
    """watchfiles cannot decode such a name: it raised out of the follower, which then saw
    nothing more, and the events that came with it (good.jpg here) were lost."""
    cams = tmp_path / "cams"
    (cams / "door").mkdir(parents=True)
    watch = Watch(db, str(cams), "--workers", "1", "--settle", "0.5")
    watch.ready()
    shutil.copy(samples / "obama.jpg", cams / "door" / "good.jpg")
    shutil.copy(samples / "biden.jpg", cams / "door" / os.fsdecode(b"caf\xe9.jpg"))
    watch.wait_for(lambda: watch.new_lines("good.jpg") and watch.new_lines("caf\\xe9.jpg"), 20, "both ingested")
    shutil.copy(samples / "obama2.jpg", cams / "door" / "later.jpg")
    watch.wait_for(lambda: watch.new_lines("later.jpg"), 20, "the follower goes on")
    assert watch.stop() == 0
    assert rows(db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images ORDER BY 1") == [
        ("caf\\xe9.jpg", "ok"), ("good.jpg", "ok"), ("later.jpg", "ok")]


def test_sigterm_mid_batch_loses_and_duplicates_nothing(db: Target, tmp_path: Path, samples: Path) -> None:
    cams = tmp_path / "cams"
    (cams / "door").mkdir(parents=True)
    for name in JPEGS:
        shutil.copy(samples / name, cams / "door" / name)
    # One image per batch, so the images in hand when SIGTERM arrives are few and the rest wait.
    watch = Watch(db, str(cams), "--workers", "1", env={"FACELAKE_BATCH_IMAGES": "1"})
    watch.wait_for(lambda: watch.new_lines(), 90, "a first image")
    assert watch.stop() == 0
    stored_first = len(watch.new_lines())
    assert 1 <= stored_first < len(JPEGS), "stopped mid-batch"
    images = rows(db, "SELECT image_id, status FROM images")
    assert len(images) == stored_first and {s for _, s in images} == {"ok"}
    # Every stored image has all its sightings (one transaction per image).
    assert rows(db, "SELECT count(*) FROM images i WHERE NOT EXISTS "
                    "(SELECT 1 FROM sightings s WHERE s.image_id = i.image_id)") == [(0,)]
    again = Watch(db, str(cams), "--workers", "1")
    again.ready()
    assert again.stop() == 0
    assert len(again.new_lines()) == len(JPEGS) - stored_first
    assert rows(db, "SELECT count(*), count(DISTINCT image_id) FROM images") == [(len(JPEGS), len(JPEGS))]
    assert rows(db, "SELECT count(*) FROM (SELECT image_id, face_index FROM sightings GROUP BY 1, 2 "
                    "HAVING count(*) > 1)") == [(0,)]


def test_a_watched_bucket_is_polled(db: Target, tmp_path: Path, samples: Path, gcs: str) -> None:
    from google.cloud import storage

    name = f"cams-{uuid.uuid4().hex[:10]}"
    bucket = storage.Client().create_bucket(name)
    bucket.blob("door/old.jpg").upload_from_filename(samples / "obama.jpg")
    watch = Watch(db, f"gs://{name}", "--workers", "1", "--poll", "0.5")
    watch.ready()
    assert watch.new_lines("old.jpg"), "the rescan takes what was there before"
    bucket.blob("door/new.jpg").upload_from_filename(samples / "biden.jpg")
    watch.wait_for(lambda: watch.new_lines("new.jpg"), 15, "new.jpg ingested")
    assert watch.stop() == 0
    assert rows(db, "SELECT camera, count(*) FROM images GROUP BY 1") == [("door", 2)]


def test_commands_read_a_duckdb_file_beside_a_running_watch(tmp_path: Path, samples: Path) -> None:
    """DuckDB lets one process hold a file: watch lets go of it when idle, so `sql`, `visits` and
    `stats` run beside it, and a file arriving after them is still ingested."""
    from .test_ingest import cli

    db = tmp_path / "home.duckdb"
    cams = tmp_path / "cams"
    (cams / "door").mkdir(parents=True)
    watch = Watch(db, str(cams), "--workers", "1", "--settle", "0.3")
    try:
        watch.ready()
        shutil.copy(samples / "obama.jpg", cams / "door" / "a.jpg")
        watch.wait_for(lambda: watch.new_lines("a.jpg"), 30, "a.jpg ingested")
        for args in (["sql", "SELECT count(*) AS n FROM images"], ["visits"], ["stats"]):
            code, output = cli(db, *args)
            assert code == 0, (args, output)
        assert "1" in cli(db, "sql", "SELECT count(*) AS n FROM images")[1]
        shutil.copy(samples / "biden.jpg", cams / "door" / "b.jpg")
        watch.wait_for(lambda: watch.new_lines("b.jpg"), 30, "b.jpg ingested after the reads")
    finally:
        if watch.proc.poll() is None:
            assert watch.stop() == 0, watch.err[-20:]
    assert rows(db, "SELECT count(*) FROM images") == [(2,)]
    assert not Path(f"{db}.watch.json").exists(), "watch's note that it uses the file goes with it"
