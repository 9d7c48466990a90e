"""PostgreSQL as the store for many writers: plain and pgvector servers, concurrency, copy.

The rest of the suite runs every store test on DuckDB and on PostgreSQL with pgvector; this
file covers what only a server has: several processes writing at once, an erasure racing a
writer, a server without pgvector, and moving a database between the engines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelake.store import ImageRecord, SightingRecord, Target, open_store

from .dbs import PostgresServers, release, rows
from .test_ingest import cli

pytestmark = pytest.mark.usefixtures("released")


@pytest.fixture
def released() -> object:
    yield None
    release()


def _variants(samples: Path, folder: Path, names: list[str], copies: int) -> list[Path]:
    """``copies`` distinct files (one pixel differs) of each sample photo."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        base = Image.open(samples / name).convert("RGB")
        base = base.resize((base.width // 2, base.height // 2))
        for i in range(copies):
            img = base.copy()
            img.putpixel((i, 0), (255 - i * 30, 0, 0))
            path = folder / f"{Path(name).stem}-{i}.jpg"
            img.save(path, quality=90)
            out.append(path)
    return out


def test_plain_postgresql_without_pgvector_runs_the_whole_job(
    pg_servers: PostgresServers, cams: Path, samples: Path
) -> None:
    db = pg_servers.database("plain")
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    named = rows(db, """SELECT regexp_replace(i.uri, '^.*/', ''), p.name FROM sightings s JOIN images i USING (image_id)
                        LEFT JOIN people p USING (person_id) WHERE i.camera <> 'enrollment' ORDER BY 1""")
    assert named == [("a.jpg", "Barack"), ("b.jpg", None), ("c.jpg", "Barack")]
    code, output = cli(db, "stats", "--json")
    assert code == 0 and "real[]" in json.loads(output)["store"][0]["vectors"]
    assert rows(db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'sightings'::regclass "
                    "AND attname = 'embedding'") == [("real[]",)]
    code, output = cli(db, "search", str(samples / "obama2.jpg"), "--top", "2", "--json")
    assert code == 0, output
    assert sorted(Path(h["uri"]).name for h in json.loads(output)) == ["a.jpg", "c.jpg"]
    code, output = cli(db, "forget", "Barack")
    assert code == 0 and "index entries" in output, "the usearch index of a plain server is cleaned too"
    hits = json.loads(cli(db, "search", str(samples / "obama2.jpg"), "--json")[1])
    assert [Path(h["uri"]).name for h in hits] == ["b.jpg"]


def test_pgvector_search_is_sql_on_an_hnsw_index(pg_servers: PostgresServers, cams: Path, samples: Path) -> None:
    db = pg_servers.database("pgvector")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "stats", "--json")
    assert code == 0 and "pgvector 0.6" in json.loads(output)["store"][0]["vectors"]
    from facelake.store.pg import _hnsw_name
    from facelake.vision.models import FUSION

    with open_store(db) as store:
        vec = np.asarray(rows(db, "SELECT embedding FROM sightings ORDER BY sighting_id LIMIT 1")[0][0], np.float32)
        store.query("SET enable_seqscan = off")  # three rows: make the planner show that it *can* use it
        plan = "\n".join(r[0] for r in store.query(
            "EXPLAIN SELECT sighting_id FROM sightings WHERE model = ? AND embedding IS NOT NULL "
            "ORDER BY embedding::vector(320) <=> ?::vector(320) LIMIT 3",
            [FUSION, "[" + ",".join(map(str, vec.tolist())) + "]"])[1])
        assert _hnsw_name(FUSION) in plan, plan
        hits = store.nearest(FUSION, 320, vec, 3)
    assert hits is not None and hits[0].score == pytest.approx(1.0, abs=1e-5) and len(hits) == 3


@pytest.mark.slow
def test_four_processes_ingesting_overlapping_folders_store_every_image_once(
    pg_servers: PostgresServers, tmp_path: Path, samples: Path
) -> None:
    db = pg_servers.database("pgvector")
    pool = _variants(samples, tmp_path / "pool", ["obama.jpg", "biden.jpg", "obama2.jpg"], 3)  # 9 distinct images
    folders = []
    for k in range(4):  # each process sees 6 of the 9 images, every image is seen by 2 or 3 processes
        folder = tmp_path / f"cams{k}" / f"cam{k}"
        folder.mkdir(parents=True)
        for j, path in enumerate(pool):
            if (j + k) % 3 != 0:
                (folder / path.name).write_bytes(path.read_bytes())
        folders.append(folder.parent)
    procs = [subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", db, "ingest", str(f), "--workers", "1",
                               "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for f in folders]
    new = 0
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
        new += sum(line.startswith("new ") for line in out.splitlines())
    assert new == 9, "each image is reported new by exactly one writer (the others report it skipped)"
    assert rows(db, "SELECT count(*), count(DISTINCT image_id) FROM images WHERE status = 'ok'") == [(9, 9)]
    assert rows(db, "SELECT count(*), count(DISTINCT image_id) FROM sightings") == [(9, 9)]
    assert rows(db, "SELECT count(*) FROM source_objects") == [(24,)], "every listed path remembered, none twice"
    assert rows(db, "SELECT count(*) FROM images WHERE status = 'error'") == [(0,)]
    # A fifth run finds everything stored.
    code, output = cli(db, "ingest", str(folders[0]), "--workers", "1")
    assert code == 0 and "skipped" in output


def _face(person: int | None) -> SightingRecord:
    rng = np.random.default_rng(1)
    e = rng.normal(size=128).astype(np.float32)
    return SightingRecord(0, (1.0, 2.0, 30.0, 40.0), np.zeros((5, 2), np.float32), 0.99, 0.8, e / np.linalg.norm(e),
                          "dlib_face_recognition_resnet_model_v1", b"jpeg", person_id=person, match_score=0.97,
                          context=(b"ctx", (0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32)))


def test_an_erasure_racing_a_writer_leaves_nothing_of_the_person(pg_servers: PostgresServers, samples: Path) -> None:
    """The writer names a face as a person that ``forget`` is erasing at that moment: it waits
    for the erasure, then stores the face as the erasure would have left it."""
    db: Target = pg_servers.database("pgvector")
    with open_store(db) as store:
        pid = store.people.add("Barack", "test")
    finished: dict[str, float] = {}

    def write() -> None:
        with open_store(db) as writer:
            writer.write_image(ImageRecord("img-1", "/cams/a.jpg", "door", "ok"), [_face(pid)])
        finished["write"] = time.monotonic()

    with open_store(db) as eraser:
        with eraser.transaction():
            eraser._sql.lock_person(pid)
            thread = threading.Thread(target=write)
            thread.start()
            time.sleep(1.0)
            assert "write" not in finished, "the writer waits for the erasure"
            eraser.query("DELETE FROM people WHERE person_id = ?", [pid])
            finished["erase"] = time.monotonic()
        thread.join(timeout=30)
    assert finished["write"] >= finished["erase"]
    assert rows(db, "SELECT person_id, embedding IS NULL, thumb IS NULL, match_score FROM sightings") == [
        (None, True, True, None)]
    assert rows(db, "SELECT count(*) FROM face_contexts") == [(0,)]
    assert rows(db, "SELECT count(*) FROM audit WHERE action = 'identify'") == [(0,)]
    # And the other order: a writer that got there first is waited for, then erased by forget.
    with open_store(db) as store:
        pid = store.people.add("Joe", "test")
        store.write_image(ImageRecord("img-2", "/cams/b.jpg", "door", "ok"), [_face(pid)])
        store.people.erase("Joe", "test", forget=True)
    assert rows(db, "SELECT count(*) FROM sightings WHERE person_id IS NOT NULL OR (image_id = 'img-2' "
                    "AND embedding IS NOT NULL)") == [(0,)]


def test_copy_duckdb_to_postgresql_and_back_keeps_everything(
    pg_servers: PostgresServers, tmp_path: Path, cams: Path, samples: Path
) -> None:
    duck = tmp_path / "f.duckdb"
    assert cli(duck, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(duck, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(duck, "cluster")[0] == 0
    assert cli(duck, "tokens", "create", "--scope", "read", "--name", "t")[0] == 0
    for kind in ("pgvector", "plain"):
        pg = pg_servers.database(kind)
        code, output = cli(duck, "copy", "--from", str(duck), "--to", pg)
        assert code == 0 and "verified" in output, output
        back = tmp_path / f"back-{kind}.duckdb"
        code, output = cli(duck, "copy", "--from", pg, "--to", str(back))
        assert code == 0 and "verified" in output, output
        for table in ("images", "people", "sightings", "enrollments", "tokens", "source_objects"):
            assert rows(back, f"SELECT * FROM {table} ORDER BY 1, 2") == rows(duck, f"SELECT * FROM {table} ORDER BY 1, 2")
        # The copies work: names stay, and new ids do not collide with copied ones.
        assert json.loads(cli(pg, "people", "list", "--json")[1])[0]["name"] == "Barack"
        assert cli(pg, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
        assert cli(back, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
        hits = json.loads(cli(pg, "search", str(samples / "obama2.jpg"), "--top", "2", "--json")[1])
        assert sorted(Path(h["uri"]).name for h in hits) == ["a.jpg", "c.jpg"]
        code, output = cli(duck, "copy", "--from", str(duck), "--to", pg)
        assert code == 4 and "already holds data" in output
