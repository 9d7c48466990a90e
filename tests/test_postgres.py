"""PostgreSQL as the store for many writers: plain and pgvector servers, concurrency, copy.

The rest of the suite runs every store test on DuckDB and on PostgreSQL with pgvector; this
file covers what only a server has: several processes writing at once, an erasure racing a
writer, a server without pgvector, and moving a database between the engines.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facelake.store import ImageRecord, SightingRecord, Store, Target, open_store

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


def _year(store: Store, images: int = 60) -> list[int]:
    """``images`` photos of two faces each over 8 cameras and three days (several at the same
    second: keyset pages must break ties by id), one person, unknown faces in three clusters."""
    pid = store.people.add("Barack", "test")
    start = datetime(2024, 1, 1, 8)
    for n in range(images):
        taken = start + timedelta(hours=(n * 7) % 60, seconds=(n // 3) % 2)
        image = ImageRecord(f"img-{n}", f"/cams/{n}.jpg", f"cam{n % 8}", "ok", taken_at=taken)
        store.write_image(image, [_face(pid if n % 3 else None), dataclasses.replace(_face(None), face_index=1)])
    ids = [int(r[0]) for r in store.query("SELECT sighting_id FROM sightings ORDER BY 1")[1]]
    store.clusters.save_grouping([(sid, 1 + sid % 3) for sid in ids if sid % 2 == 0], len(ids), "test")
    store.query("ANALYZE")
    return ids


def _plans(store: Store, monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]) -> str:
    """The EXPLAIN of every SELECT ``call`` sends on the store's connection, with sequential scans
    off: on a small table the planner *can* use an index, which is what these tests ask."""
    from facelake.store.pg import _Connection

    plans: list[str] = []
    real = _Connection.execute

    def explaining(self: _Connection, sql: str, params: Any = None) -> Any:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            plans.append("\n".join(r[0] for r in real(self, "EXPLAIN " + sql, params).fetchall()))
        return real(self, sql, params)

    store.query("SET enable_seqscan = off")
    monkeypatch.setattr(_Connection, "execute", explaining)
    try:
        call()
    finally:
        monkeypatch.setattr(_Connection, "execute", real)
        store.query("RESET enable_seqscan")
    return "\n".join(plans)


def test_the_listings_plans_use_an_index_for_every_filter(pg_servers: PostgresServers,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The latest migration's indexes, and the listings' page picked through them (a filter the
    primary key cannot serve walked it backwards past every other row; ?cluster= read the table)."""
    db: Target = pg_servers.database("pgvector")
    with open_store(db) as store:
        _year(store)
        pid = store.people.find("Barack")
        indexes = {r[0] for r in store.query("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                             "('sightings', 'images')")[1]}
        assert {"sightings_person_id", "sightings_camera_id", "sightings_cluster", "sightings_person_camera",
                "images_camera", "images_gps"} <= indexes
        assert "sightings_person" not in indexes, "replaced by (person_id, sighting_id)"
        for call, index in ((lambda: store.reports.sightings(cluster=2, limit=5), "sightings_cluster"),
                            (lambda: store.reports.sightings(camera="cam3", limit=5), "sightings_camera_id"),
                            (lambda: store.reports.sightings(person=pid, limit=5), "sightings_person_id"),
                            (lambda: store.clusters.best_faces_of([1, 2]), "sightings_cluster"),
                            (lambda: store.clusters.listing(2), "sightings_cluster"),
                            (lambda: store.people.listing(), "sightings_person_camera"),
                            (lambda: store.people.listing(), "sightings_person_seen"),
                            (lambda: store.reports.cameras(), "images_camera"),
                            (lambda: store.reports.gps_cells(), "images_gps")):
            plan = _plans(store, monkeypatch, call)
            assert index in plan, plan
            first = plan.split("\n\n")[0] if "\n\n" in plan else plan
            assert "Seq Scan on sightings" not in first and "Sort Key: s.sighting_id" not in first, plan


def test_keyset_pages_return_every_sighting_once(pg_servers: PostgresServers) -> None:
    """Page by page to the end, by id (the API) and by capture time (the dashboard), whole and by
    camera, person and cluster: every sighting once, in order, ties at the same second included."""
    db: Target = pg_servers.database("pgvector")
    with open_store(db) as store:
        ids = _year(store)
        pid = store.people.find("Barack")
        every = rows(db, "SELECT sighting_id, seen_at, camera, person_id, cluster_id FROM sightings")
        for name, value in (("camera", "cam5"), ("person", pid), ("cluster", 2), (None, None)):
            want = [r for r in every if name is None or r[{"camera": 2, "person": 3, "cluster": 4}[name]] == value]
            got, cursor = [], None
            while page := store.reports.sightings(**({name: value} if name else {}), before_id=cursor, limit=7):
                got += [r.sighting_id for r in page]
                cursor = page[-1].sighting_id
            assert got == sorted((r[0] for r in want), reverse=True), name
            if name == "cluster":
                continue
            shown, before = [], None
            while page := store.reports.timeline(**({name: value} if name else {}), before=before, limit=7):
                shown += [r.sighting_id for r in page]
                before = (page[-1].taken_at, page[-1].sighting_id)
            assert shown == [r[0] for r in sorted(want, key=lambda r: (r[1], r[0]), reverse=True)], name
        assert len(ids) == 120


def test_postgresql_reports_count_as_the_shared_sql_does(pg_servers: PostgresServers) -> None:
    """PostgreSQL's own SQL for the dashboard's counts (store/pg.py) answers what the SQL written
    for both engines answers, on the same database."""
    from facelake.store.clusters import Clusters
    from facelake.store.pg import PgClusters, PgReports
    from facelake.store.reports import Reports

    db: Target = pg_servers.database("pgvector")
    with open_store(db) as store:
        _year(store)
        pid = store.people.find("Barack")
        assert pid is not None
        store.query("UPDATE images SET camera = NULL WHERE image_id = 'img-7'")  # an image with no camera
        mine, shared = store.reports, Reports(store._sql)
        assert isinstance(mine, PgReports) and isinstance(store.clusters, PgClusters)
        for camera in (None, "cam2"):
            assert mine.activity(camera) == shared.activity(camera) and sum(mine.activity(camera).values()) > 0
            # Folded from one pass per hour, as counted directly per weekday-hour and per day.
            where = "camera <> 'enrollment' AND seen_at IS NOT NULL" + (f" AND camera = '{camera}'" if camera else "")
            direct = store.query(f"SELECT EXTRACT(ISODOW FROM seen_at) - 1, EXTRACT(HOUR FROM seen_at), count(*) "
                                 f"FROM sightings WHERE {where} GROUP BY 1, 2")[1]
            assert mine.activity(camera) == {(int(d), int(h)): int(n) for d, h, n in direct}
            daily = store.query(f"SELECT CAST(seen_at AS DATE), count(*) FROM sightings WHERE {where} "
                                "GROUP BY 1 ORDER BY 1")[1]
            assert mine.per_day(camera) == [(d, int(n)) for d, n in daily] and len(daily) > 1
        assert mine.cameras() == shared.cameras() == [f"cam{i}" for i in range(8)]
        from facelake.store.people import People

        listing = store.people.listing()
        assert listing == People(store._sql).listing(), "PostgreSQL's people counts are the shared ones"
        barack = next(p for p in listing if p.person_id == pid)
        assert barack.sightings > 0 and barack.last_seen is not None and barack.cameras == tuple(
            f"cam{i}" for i in range(8))
        assert store.clusters.listing(2) == Clusters(store._sql, store.people).listing(2)
        assert len(store.clusters.listing(2)) == 3
        for size, limit, offset in ((2, 1, 0), (2, 2, 1), (2, 5, 2), (1, None, 0), (4, None, 0)):
            assert store.clusters.listing(size, limit, offset) == Clusters(store._sql, store.people).listing(
                size, limit, offset), "counted, then the page's clusters read: as one grouped pass"
        # A page's best faces in one statement: the same as the shared SQL's, and as one cluster at a time.
        page = [c.cluster_id for c in store.clusters.listing(1)] + [999]
        for limit in (1, 3, 12):
            together = store.clusters.best_faces_of(page, limit)
            assert together == Clusters(store._sql, store.people).best_faces_of(page, limit)
            assert together == {c: store.clusters.best_faces(c, limit) for c in page} and together[999] == []
            assert all(0 < len(together[c]) <= limit for c in page[:-1])


def test_the_hours_kept_by_triggers_count_what_grouping_the_sightings_counts(pg_servers: PostgresServers) -> None:
    """``sighting_hours``, ``person_sightings`` (migration 9's triggers) and ``cluster_sightings``
    (migration 10's) after writes, faces named, renamed and unnamed, an image's faces deleted, a
    person forgotten and one removed, faces moved to another camera and time, clusters regrouped,
    merged, named and dismissed, compactions of the logs and a start time mid-hour: every count is
    the one a pass over the sightings gives (the shared SQL)."""
    from facelake.store.clusters import Clusters
    from facelake.store.people import People
    from facelake.store.reports import Reports

    db: Target = pg_servers.database("pgvector")
    with open_store(db) as store:
        ids = _year(store)
        mine, shared = store.reports, Reports(store._sql)

        def agree(note: str) -> None:
            for camera in (None, "cam2", "cam9"):
                for since in (None, datetime(2024, 1, 2, 9), datetime(2024, 1, 2, 9, 20, 0, 500)):
                    assert mine.hours(camera, since) == shared.hours(camera, since), (note, camera, since)
            counted = store.query("SELECT count(*) FROM sightings WHERE camera <> 'enrollment' AND seen_at IS NOT NULL")
            assert store.query("SELECT sum(n) FROM sighting_hours")[1] == counted[1], ("the log itself", note)
            assert store.people.listing() == People(store._sql).listing(), ("the people's counts", note)
            named = store.query("SELECT count(*) FROM sightings WHERE person_id IS NOT NULL")[1][0][0]
            assert (store.query("SELECT coalesce(sum(n), 0) FROM person_sightings")[1][0][0] or 0) == named, note
            for size, limit, offset in ((1, None, 0), (2, None, 0), (1, 2, 1), (3, 1, 0)):
                assert [(c.cluster_id, c.faces) for c in store.clusters.listing(size, limit, offset)] == \
                    [(c.cluster_id, c.faces) for c in Clusters(store._sql, store.people).listing(size, limit, offset)], \
                    ("the clusters' counts", note, size, limit, offset)

        agree("written")
        assert len(store.clusters.listing(1)) == 3
        store.clusters.save_grouping([(sid, 4 + sid % 5) for sid in ids if sid % 3 == 0], len(ids), "test")
        agree("regrouped")
        store.clusters.merge(5, 6, "test")
        agree("two clusters merged")
        store.clusters.dismiss(7, [m for m, _ in store.clusters.members(7)], "test")
        agree("a cluster dismissed")
        assert sum(n for _, n in mine.hours()) == len(ids)
        joe, ann = store.people.add("Joe", "test"), store.people.add("Ann", "test")
        store.query(f"UPDATE sightings SET person_id = {joe} WHERE sighting_id % 7 = 0")  # named, renamed
        store.query(f"UPDATE sightings SET person_id = {ann} WHERE sighting_id % 11 = 0")
        store.query("UPDATE sightings SET person_id = NULL WHERE sighting_id % 13 = 0")  # unnamed
        agree("named, renamed and unnamed")
        store.query("DELETE FROM sightings WHERE image_id = 'img-4'")
        agree("one image's faces deleted")
        store.people.erase("Barack", "test", forget=True)
        agree("a person forgotten")
        store.people.erase("Ann", "test", forget=False)
        agree("a person removed")
        assert store.query("SELECT DISTINCT person_id FROM person_sightings")[1] == [(joe,)], \
            "no trace of the erased ids"
        store.query("UPDATE sightings SET camera = 'cam9', seen_at = seen_at + INTERVAL '30 minutes' "
                    "WHERE sighting_id % 5 = 0")
        store.query("UPDATE sightings SET cluster_id = 7 WHERE sighting_id % 2 = 0")  # no camera, no time
        agree("faces moved")
        store.query("SELECT sighting_counts_compact()")
        assert store.query("SELECT count(*) FROM sighting_hours WHERE n <= 0")[1] == [(0,)]
        store.query("SELECT cluster_counts_compact()")
        assert store.query("SELECT count(*) - count(DISTINCT cluster_id), count(*) FILTER (WHERE n <= 0) "
                           "FROM cluster_sightings")[1] == [(0, 0)], "one positive row per cluster once folded"
        agree("compacted")
        carl = store.people.add("Carl", "test")
        store.clusters.assign(5, carl, [m for m, _ in store.clusters.members(5)], "test")
        agree("a cluster named")
        _year(store, images=10)
        agree("written after the compaction")


def test_a_read_only_store_searches_without_creating_the_index(pg_servers: PostgresServers) -> None:
    """A reader (`facelake sql`'s role, a read-only store) cannot create an index: it searches
    with the one there, else without, and never fails (it raised "read-only transaction")."""
    from facelake.store.pg import _hnsw_name
    from facelake.vision.models import FUSION

    db: Target = pg_servers.database("pgvector")
    vec = np.ones(320, np.float32) / np.sqrt(320)
    with open_store(db) as store:
        store.write_image(ImageRecord("img-1", "/cams/a.jpg", "door", "ok"), [
            SightingRecord(0, (1.0, 2.0, 30.0, 40.0), np.zeros((5, 2), np.float32), 0.99, 0.8, vec, FUSION, b"j")])
        store.query(f"DROP INDEX IF EXISTS {_hnsw_name(FUSION)}")
    release()
    with open_store(db, read_only=True) as reader:
        hits = reader.nearest(FUSION, 320, vec, 3)
    assert hits is not None and [h.score for h in hits] == [pytest.approx(1.0, abs=1e-5)]
    assert rows(db, "SELECT to_regclass(?) IS NULL", [_hnsw_name(FUSION)]) == [(True,)]
    release()
    with open_store(db) as writer:
        assert writer.nearest(FUSION, 320, vec, 3) is not None
    assert rows(db, "SELECT to_regclass(?) IS NOT NULL", [_hnsw_name(FUSION)]) == [(True,)], \
        "a writing store makes the index on its first search"

