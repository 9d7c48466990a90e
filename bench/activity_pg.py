"""/activity's and /people's counts on PostgreSQL: the logs kept by triggers (``PgReports.hours``,
``PgPeople``) against grouping the sightings (the shared SQL) or counting a person's index entries
(what ``PgPeople`` ran before), at N sightings, and what the triggers cost a writer.

The database: 60 images of two faces written by the store (as ingest writes them), then copied in
one ``INSERT … SELECT`` into N sightings over 8 cameras and 90 days (no embeddings or crops: the
counts read neither); half the faces are one person's. Then each way of counting p50 / p99 over 15 calls (checked equal), and
``write_images`` batches of 8 images with the triggers, without (``DISABLE TRIGGER USER``), and
with them again. The server is the tests' pgserver, its data under ``--pg-dir`` (deleted first).

Usage: python bench/activity_pg.py [--sightings 1000000] [--pg-dir /work/bench/pgh]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from million import pg_server

from facelake.store import open_store
from facelake.store.base import ImageRecord, Store
from facelake.store.people import People
from facelake.store.reports import Reports
from tests.test_postgres import _face

WHEN = "TIMESTAMP '2024-01-01' + make_interval(secs => (k * 7919 + abs(hashtext(b.image_id)) % 600) % (90 * 86400))"


def build(url: str, sightings: int) -> None:
    import psycopg

    with open_store(url) as store:
        person = store.people.add("Barack", "bench")
        for n in range(60):
            image = ImageRecord(f"base-{n}", f"/c/{n}.jpg", f"cam{n % 8}", "ok",
                                taken_at=datetime(2024, 1, 1) + timedelta(hours=n))
            store.write_image(image, [_face(person), dataclasses.replace(_face(None), face_index=1)])
    with psycopg.connect(url, autocommit=True) as con:
        copies = max(1, sightings // 120)
        con.execute(f"""INSERT INTO images (image_id, uri, camera, taken_at, taken_at_source, format, width, height,
                            bytes, ingested_at, status)
                        SELECT b.image_id || '#' || k, b.uri || '#' || k, 'cam' || (k % 8), {WHEN}, b.taken_at_source,
                               b.format, b.width, b.height, b.bytes, b.ingested_at, b.status
                        FROM images b, generate_series(1, {copies}) k""")
        t = time.perf_counter()
        con.execute(f"""INSERT INTO sightings (image_id, face_index, box, landmarks, det_score, quality, model,
                            seen_at, camera, person_id)
                        SELECT b.image_id || '#' || k, s.face_index, s.box, s.landmarks, s.det_score, s.quality,
                               s.model, {WHEN}, 'cam' || (k % 8), s.person_id
                        FROM images b JOIN sightings s USING (image_id), generate_series(1, {copies}) k
                        WHERE b.image_id LIKE 'base-%'""")
        copied = time.perf_counter() - t
        con.execute("VACUUM ANALYZE")
        n = con.execute("SELECT count(*) FROM sightings").fetchone()[0]  # type: ignore[index]
        log = con.execute("SELECT count(*) FROM sighting_hours").fetchone()[0]  # type: ignore[index]
    print(f"{n:,} sightings; their copy in one INSERT took {copied:.1f} s with the triggers; {log:,} rows of log")


def timed(fn: Callable[[], list[tuple[datetime, int]]]) -> tuple[float, float, int]:
    fn()
    times, out = [], []
    for _ in range(15):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), len(out)


def writes(store: Store, tag: str, batches: int = 150) -> float:
    t = time.perf_counter()
    for b in range(batches):
        store.write_images([(ImageRecord(f"{tag}-{b}-{i}", f"/c/{tag}{b}{i}.jpg", f"cam{i}", "ok",
                                         taken_at=datetime(2024, 5, 1) + timedelta(minutes=b)),
                             [_face(None), dataclasses.replace(_face(None), face_index=1)], None) for i in range(8)])
    return (time.perf_counter() - t) / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--pg-dir", type=Path, default=Path("/work/bench/pgh"))
    args = parser.parse_args()
    shutil.rmtree(args.pg_dir, ignore_errors=True)
    with pg_server(args.pg_dir) as url:
        build(url, args.sightings)
        with open_store(url) as store:
            mine, shared = store.reports, Reports(store._sql)
            mid = datetime(2024, 2, 1, 10, 30)
            assert mine.hours() == shared.hours() and mine.hours("cam3", mid) == shared.hours("cam3", mid)
            print(f"{'counts per hour':<44} {'now: the log':>22} {'before: grouped':>22}")
            for name, camera, since in (("all cameras", None, None), ("cam3 since a time mid-hour", "cam3", mid)):
                a = timed(lambda: mine.hours(camera, since))  # noqa: B023
                b = timed(lambda: shared.hours(camera, since))  # noqa: B023
                print(f"{name + f' ({a[2]} hours)':<44} {f'{a[0]:.1f} / {a[1]:.1f} ms':>22} "
                      f"{f'{b[0]:.1f} / {b[1]:.1f} ms':>22}")
            assert store.people.listing() == People(store._sql).listing()
            pid = store.people.find("Barack")
            a = timed(lambda: [(p.person_id, p.sightings) for p in store.people.listing()])  # type: ignore[misc]
            b = timed(lambda: store.query("SELECT count(*) FROM sightings WHERE person_id = ?", [pid])[1])  # type: ignore[arg-type,return-value]
            c = timed(lambda: [(p.person_id, p.sightings) for p in People(store._sql).listing()])  # type: ignore[misc]
            print(f"people listing ({store.people.listing()[0].sightings:,} faces of one person): {a[0]:.1f} / {a[1]:.1f} ms "
                  f"now; before, the person's count alone {b[0]:.1f} / {b[1]:.1f} ms; the shared SQL's pass "
                  f"{c[0]:.1f} / {c[1]:.1f} ms")
            on = writes(store, "on")
            store.query("ALTER TABLE sightings DISABLE TRIGGER USER")
            off = writes(store, "off")
            store.query("ALTER TABLE sightings ENABLE TRIGGER USER")
            again = writes(store, "again")
            print(f"write_images, 8 images of 2 faces a batch: {on:.1f} / {again:.1f} ms with the triggers, "
                  f"{off:.1f} ms without")
    shutil.rmtree(args.pg_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
