"""Past one machine: engines, concurrent writers and vector search at scale (issue #9).

Three parts, each printed as a table beside its baseline:

1. engines: images/s of the built-in process pool against Ray Data actors (1 and 2) on the
   CCTV frame corpus of ``bench/throughput.py`` (seeded), each into a fresh DuckDB file, whole
   process, models loading included (the Ray rows pay for starting a local Ray too).
2. writers: 4 ``facelake ingest`` processes at once into one PostgreSQL database, on
   overlapping folders of the same corpus (every frame is given to 2 or 3 of them), against
   one process into DuckDB; then the checks: every image once, no sighting twice or lost.
3. vectors: search among N stored faces (synthetic, shaped like face embeddings; the data of
   ``bench/search.py``): pgvector's HNSW index through facelake's own query
   (``PgStore.nearest``, a round trip per query) against the usearch index, recall@10 against
   brute force.

The PostgreSQL server is PyPI's pgserver build (PostgreSQL 16 + pgvector 0.6), started on
127.0.0.1 for the run like the tests do.

Usage: python bench/scale.py [--frames 60] [--vectors 1000000] [--queries 200] [--only engines,writers,vectors]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from search import make_data
from throughput import make_corpus


def engines(corpus: Path) -> None:
    from facelake import load_settings
    from facelake.pipeline import ingest

    print(f"{'engine':24} {'images/s':>9} {'seconds':>8} {'faces':>6}")
    for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        db = corpus.parent / f"{engine}-{workers}.duckdb"
        start = time.perf_counter()
        summary = ingest([corpus], load_settings(db=db), workers=workers, engine=engine)
        seconds = time.perf_counter() - start
        name = f"{'process pool' if engine == 'local' else 'Ray Data actors'}, {workers}"
        print(f"{name:24} {summary.new / seconds:9.2f} {seconds:8.1f} {summary.faces:6d}", flush=True)


def _ingest(db: str, folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", db, "ingest", str(folder), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def writers(corpus: Path, pg_admin: str) -> None:
    from facelake.store import open_store
    from tests.servers import new_database

    frames = sorted(corpus.glob("*.jpg"))
    work = corpus.parent / "writers"
    folders = []
    for k in range(4):  # frame j goes to the writers k with (j + k) % 3 != 0: 2 or 3 writers each
        folder = work / f"w{k}" / "cam"
        folder.mkdir(parents=True)
        for j, frame in enumerate(frames):
            if (j + k) % 3 != 0:
                (folder / frame.name).symlink_to(frame)
        folders.append(folder.parent)
    given = sum(len(list(f.glob("cam/*.jpg"))) for f in folders)

    duck = str(corpus.parent / "one-writer.duckdb")
    start = time.perf_counter()
    out = _ingest(duck, corpus.parent / "corpus").communicate()[0]
    one_s = time.perf_counter() - start
    with open_store(Path(duck), read_only=True) as store:
        one = store.query("SELECT count(*) FROM sightings")[1][0][0]

    db = new_database(pg_admin, "writers")
    start = time.perf_counter()
    procs = [_ingest(db, f) for f in folders]
    outs = [p.communicate()[0] for p in procs]
    four_s = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise SystemExit("a writer failed:\n" + "\n".join(outs) + out)
    with open_store(db, read_only=True) as store:
        images, distinct = store.query("SELECT count(*), count(DISTINCT image_id) FROM images WHERE status = 'ok'")[1][0]
        faces, distinct_faces = store.query(
            "SELECT count(*), count(DISTINCT (image_id, face_index)) FROM sightings")[1][0]
    print(f"{len(frames)} frames; the 4 writers are given {given} files in all (each frame to 2 or 3 of them)")
    print(f"{'store':34} {'seconds':>8} {'files/s':>8} {'frames/s':>9} {'images':>7} {'sightings':>10}")
    print(f"{'DuckDB, 1 process (baseline)':34} {one_s:8.1f} {len(frames) / one_s:8.2f} {len(frames) / one_s:9.2f} "
          f"{len(frames):7d} {one:10d}")
    print(f"{'PostgreSQL, 4 processes at once':34} {four_s:8.1f} {given / four_s:8.2f} {len(frames) / four_s:9.2f} "
          f"{images:7d} {faces:10d}")
    ok = images == distinct == len(frames) and faces == distinct_faces == one
    print(f"every image once: {images == distinct == len(frames)}; no sighting twice: {faces == distinct_faces}; "
          f"none lost (same count as DuckDB): {faces == one}  -> {'OK' if ok else 'FAILED'}")


def vectors(n: int, queries: int, seed: int, pg_admin: str) -> None:
    import psycopg

    from facelake.identities.index import _new_index
    from facelake.store import open_store
    from facelake.store.pg import _hnsw_ddl, _hnsw_name
    from facelake.vision.models import DLIB_RESNET
    from tests.servers import new_database

    X, Q = make_data(n, queries, seed)
    exact = np.empty((len(Q), 10), dtype=np.int64)
    for i, q in enumerate(Q):
        sims = X @ q
        top = np.argpartition(-sims, 10)[:10]
        exact[i] = top[np.argsort(-sims[top])]

    def recall(found: list[list[int]]) -> float:
        return float(np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact)]))

    index = _new_index(128)
    t = time.perf_counter()
    index.add(np.arange(n, dtype=np.uint64), X, threads=0)
    us_build = time.perf_counter() - t
    t = time.perf_counter()
    us_found = [index.search(q, 10).keys.tolist() for q in Q]
    us_ms = (time.perf_counter() - t) / len(Q) * 1000

    db = new_database(pg_admin, "vectors")
    with open_store(db) as store, psycopg.connect(db, autocommit=True) as raw:  # the bulk load bypasses facelake
        raw.execute(f"DROP INDEX {_hnsw_name(DLIB_RESNET)}")  # bulk load first, then build: as after `facelake copy`
        t = time.perf_counter()
        with raw.cursor().copy("COPY sightings (sighting_id, image_id, face_index, box, landmarks, det_score, quality, "
                               "embedding, model) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((i + 1, f"img{i}", 0, "{0,0,1,1}", "{{0,0},{0,0},{0,0},{0,0},{0,0}}", 1.0, 1.0,
                                "[" + ",".join(f"{v:.6g}" for v in X[i]) + "]", DLIB_RESNET))
        load_s = time.perf_counter() - t
        raw.execute("SET maintenance_work_mem = '4GB'")
        raw.execute("SET max_parallel_maintenance_workers = 2")
        t = time.perf_counter()
        raw.execute(_hnsw_ddl(DLIB_RESNET, 128))
        pg_build = time.perf_counter() - t
        size = raw.execute(f"SELECT pg_relation_size('{_hnsw_name(DLIB_RESNET)}')").fetchone()[0] / 1e6
        store.nearest(DLIB_RESNET, 128, Q[0], 10)
        t = time.perf_counter()
        pg_found = [[h.sighting_id - 1 for h in store.nearest(DLIB_RESNET, 128, q, 10) or []] for q in Q]
        pg_ms = (time.perf_counter() - t) / len(Q) * 1000
    print(f"{n} vectors (128-D), {len(Q)} queries, top 10; PostgreSQL rows loaded by COPY in {load_s:.0f} s")
    print(f"{'index':36} {'build s':>8} {'ms/query':>9} {'recall@10':>10} {'index MB':>9}")
    print(f"{'usearch HNSW, i8 (baseline)':36} {us_build:8.1f} {us_ms:9.2f} {recall(us_found):10.3f} "
          f"{index.memory_usage / 1e6:9.0f}")
    print(f"{'pgvector 0.6 HNSW, SQL round trip':36} {pg_build:8.1f} {pg_ms:9.2f} {recall(pg_found):10.3f} {size:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="engines,writers,vectors")
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "facedata")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="facelake-scale-"))
    if parts & {"engines", "writers"}:
        make_corpus(args.photos, work / "corpus", args.frames, args.seed)
        print(f"corpus: {args.frames} frames of 1920x1080 (seed {args.seed})\n")
    if "engines" in parts:
        engines(work / "corpus")
        print()
    if parts & {"writers", "vectors"}:
        from contextlib import ExitStack

        from tests.servers import postgres, postgres_bins

        with ExitStack() as stack:
            admin = stack.enter_context(postgres(postgres_bins()["pgvector"]))
            if "writers" in parts:
                writers(work / "corpus", admin)
                print()
            if "vectors" in parts:
                vectors(args.vectors, args.queries, args.seed, admin)
            from facelake.store.pg import close_pools

            close_pools()


if __name__ == "__main__":
    main()
