"""`cluster` and `identify` at a million sightings: peak memory and wall time (issue #21).

The database is `bench/million.py`'s (the sample photos ingested, each camera image and its faces
copied in SQL to about ``--sightings`` faces, every embedding moved by a little noise: one
unknown person's face copied ~166,000 times at 1M, the rest named). It is copied first (the
runs write to it). Each step is a real ``facelake`` process, its peak RSS read from /proc
(VmHWM, polled) and stopped past ``--stop-gb`` or ``--stop-s``:

1. ``cluster --full`` (every unknown face from scratch), then ``cluster`` again (nothing new);
2. one new face (a copy of an unknown face, moved by noise, inserted in SQL as the ingest would
   store it), then ``cluster``: what the background clustering after a new photo runs;
3. ``identify`` (every face against the gallery);
4. ``clusters name`` of the largest cluster (the dashboard's "Name" button: an enrollment, then
   naming only what it can change).

The goal of the issue (≤ 2 GB) is printed beside each figure. ``--code PATH`` runs another
checkout's ``src`` (e.g. main's, for the figures before).

``--strangers N`` builds another database instead: N unknown faces, none named, written through
the store's own ``write_images`` (4 faces an image, as a street camera's frame): random unit
vectors of the default embedder's length (strangers: two are ~0.0 ± 0.06 alike), except
``--planted`` of them (default 2 %) in tight groups of 5 faces of different images (each a random
centre moved by noise: ~0.94 alike within a group), so that a first ``cluster --full`` has most
faces lonely (each needs its neighbour list) and a few groups to find. Only the cluster step
makes sense there (``--steps cluster``); the groups found are checked against the planted ones.

Usage: python bench/memory.py [--sightings 1000000] [--db PATH (a built one, copied)] [--code SRC]
                              [--steps cluster new identify name] [--stop-gb 12] [--stop-s 180]
                              [--strangers N [--planted 0.02]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

GOAL_MB = 2048


def run(db: Path, args: list[str], code: Path, stop_mb: float, stop_s: float) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, outcome) of one ``facelake`` command, stopped past the limits."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, outcome = 0.0, ""
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            pass
        if peak > stop_mb or time.perf_counter() - start > stop_s:
            proc.kill()
            outcome = f"stopped at {peak / 1024:.1f} GB after {time.perf_counter() - start:.0f} s"
            break
        time.sleep(0.05)
    out = proc.communicate()[0]
    wall = time.perf_counter() - start
    if not outcome:
        outcome = out.strip().splitlines()[-1][:90] if out.strip() else f"exit {proc.returncode}"
        if proc.returncode:
            outcome = f"exit {proc.returncode}: {outcome}"
    return wall, peak, outcome


def new_face(db: Path) -> None:
    """One new unknown face, as an ingest of one photo stores it: a copy of an unknown face in a new
    image, its embedding moved by noise, no cluster yet."""
    from datetime import UTC, datetime

    import duckdb

    now = datetime.now(UTC).replace(tzinfo=None)
    with duckdb.connect(str(db)) as con:
        con.execute("""CREATE TEMP TABLE one AS SELECT * FROM sightings
                       WHERE person_id IS NULL AND embedding IS NOT NULL ORDER BY sighting_id LIMIT 1""")
        image = con.execute("SELECT image_id FROM one").fetchone()[0]
        con.execute("""INSERT INTO images BY NAME SELECT i.* REPLACE (sha256(i.image_id || '#new') AS image_id,
                           i.uri || '#new' AS uri, CAST(? AS TIMESTAMP) AS ingested_at)
                       FROM images i WHERE image_id = ?""", [now, image])
        con.execute("""INSERT INTO sightings BY NAME SELECT o.* REPLACE (nextval('sighting_seq') AS sighting_id,
                           sha256(o.image_id || '#new') AS image_id, NULL AS cluster_id,
                           list_transform(o.embedding, lambda x: x + (random() - 0.5) * 0.04)::FLOAT[] AS embedding)
                       FROM one o""")


def strangers_layout(n: int, planted: float, seed: int) -> tuple[int, np.ndarray]:
    """How many planted groups of 5, and which face each written sighting is: faces below
    ``5 * groups`` are the planted ones, 5 a group, spread over the images by the permutation."""
    import numpy as np

    return int(n * planted) // 5, np.random.default_rng(seed).permutation(n)


def build_strangers(db: Path, n: int, planted: float, seed: int = 0) -> None:
    """``n`` unknown faces through the store (see the docstring), written a few thousand at a time."""
    import numpy as np

    from facelake import load_settings
    from facelake.identities.matching import dim_of, model_of
    from facelake.store import ImageRecord, SightingRecord, open_store

    settings = load_settings(db=db)
    model, dim = model_of(settings), dim_of(settings)
    groups, order = strangers_layout(n, planted, seed)
    rng = np.random.default_rng([seed, 2])
    centres = np.random.default_rng([seed, 1]).normal(size=(groups, dim)).astype(np.float32)
    t = time.perf_counter()
    with open_store(db) as store:
        for start in range(0, n, 4000):
            rows = order[start : start + 4000]
            X = rng.normal(size=(len(rows), dim)).astype(np.float32)
            mine = rows < 5 * groups
            X[mine] = centres[rows[mine] // 5] + rng.normal(scale=0.25, size=(int(mine.sum()), dim)).astype(np.float32)
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            items = []
            for first in range(0, len(rows), 4):
                image = f"stranger-{start + first}"
                faces = [SightingRecord(f, (10.0 + 60 * f, 10.0, 50.0, 50.0), np.zeros((5, 2), np.float32), 0.95,
                                        0.8, X[first + f], model, b"", recognisability=0.9)
                         for f in range(min(4, len(rows) - first))]
                items.append((ImageRecord(image, f"/street/{image}.jpg", "street", "ok"), faces, None))
            store.write_images(items)
    print(f"built {n:,} unknown faces ({groups:,} planted groups of 5) in {time.perf_counter() - t:.0f} s", flush=True)


def planted_found(db: Path, n: int, planted: float, seed: int = 0) -> str:
    """How many planted groups came out as clusters of exactly their 5 faces, and how many other
    faces were grouped (the sightings are numbered in the order ``build_strangers`` wrote them)."""
    from collections import Counter

    import duckdb

    groups, order = strangers_layout(n, planted, seed)
    with duckdb.connect(str(db), read_only=True) as con:
        clusters = [c for (c,) in con.execute("SELECT cluster_id FROM sightings ORDER BY sighting_id").fetchall()]
    sizes = Counter(c for c in clusters if c is not None)
    members: dict[int, set[int | None]] = {}
    for face, c in zip(order.tolist(), clusters):
        if face < 5 * groups:
            members.setdefault(face // 5, set()).add(c)
    whole = sum(1 for cs in members.values() if len(cs) == 1 and None not in cs and sizes[next(iter(cs))] == 5)
    others = sum(1 for face, c in zip(order.tolist(), clusters) if face >= 5 * groups and c is not None)
    return f"{whole:,} of {groups:,} planted groups found whole, {others:,} strangers grouped"


def largest_cluster(db: Path) -> int | None:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT cluster_id FROM sightings WHERE cluster_id IS NOT NULL AND person_id IS NULL "
                          "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    return None if row is None else int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="a database built by bench/million.py (copied, never written)")
    parser.add_argument("--code", type=Path, default=ROOT / "src", help="the facelake source to run")
    parser.add_argument("--steps", nargs="+", default=["cluster", "new", "identify", "name"])
    parser.add_argument("--stop-gb", type=float, default=12.0)
    parser.add_argument("--stop-s", type=float, default=180.0)
    parser.add_argument("--work", type=Path, help="where the copy goes (default: a temporary folder)")
    parser.add_argument("--strangers", type=int, help="build N unknown faces (random, a few planted groups) instead")
    parser.add_argument("--planted", type=float, default=0.02, help="the share of --strangers in planted groups of 5")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="facelake-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "copy.duckdb"
    if args.db is None and args.strangers:
        build_strangers(db, args.strangers, args.planted)
    elif args.db is None:
        from million import build

        build(db, args.sightings)
    else:
        shutil.copy(args.db, db)
    limits = (args.code, args.stop_gb * 1024, args.stop_s)
    print(f"{'step':40} {'wall s':>8} {'peak RSS MB':>12}   goal    outcome")

    def show(name: str, wall: float, peak: float, outcome: str) -> None:
        print(f"{name:40} {wall:8.1f} {peak:12.0f}   ≤ {GOAL_MB}  {outcome}", flush=True)

    try:
        if "cluster" in args.steps:
            show("cluster --full", *run(db, ["cluster", "--full"], *limits))
            if args.strangers and args.db is None:
                print(f"  {planted_found(db, args.strangers, args.planted)}", flush=True)
            show("cluster (nothing new)", *run(db, ["cluster"], *limits))
        if "new" in args.steps:
            new_face(db)
            show("one new face, then cluster", *run(db, ["cluster"], *limits))
        if "identify" in args.steps:
            show("identify", *run(db, ["identify"], *limits))
        if "name" in args.steps:
            chosen = largest_cluster(db)
            if chosen is None:
                print("clusters name: no cluster to name (run the cluster step first)")
            else:
                show(f"clusters name {chosen} (the Name button)",
                     *run(db, ["clusters", "name", str(chosen), "Visitor", "--consent", "bench"], *limits))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
