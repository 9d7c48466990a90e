"""Scale-out: images/s of the built-in process pool against Ray Data actors on the same corpus.

The corpus is the CCTV frame corpus of ``bench/throughput.py`` (seeded). Each row ingests it
into a fresh DuckDB file, whole process, models loading included, so the Ray rows pay for
starting a local Ray instance too. (PostgreSQL writers and pgvector search are issue #9's
other rows, still to come.)

Usage: python bench/scale.py [--frames 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from throughput import make_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "facedata")
    args = parser.parse_args()
    from facelake import load_settings
    from facelake.pipeline import ingest

    corpus = Path(tempfile.mkdtemp(prefix="facelake-scale-"))
    make_corpus(args.photos, corpus / "cam", args.frames, args.seed)
    print(f"{args.frames} frames of 1920x1080 (seed {args.seed}); whole ingest, models loading included")
    print(f"{'engine':24} {'images/s':>9} {'seconds':>8} {'faces':>6}")
    for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        db = corpus / f"{engine}-{workers}.duckdb"
        start = time.perf_counter()
        summary = ingest([corpus / "cam"], load_settings(db=db), workers=workers, engine=engine)
        seconds = time.perf_counter() - start
        name = f"{'process pool' if engine == 'local' else 'Ray Data actors'}, {workers}"
        print(f"{name:24} {summary.new / seconds:9.2f} {seconds:8.1f} {summary.faces:6d}", flush=True)


if __name__ == "__main__":
    main()
