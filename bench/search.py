"""Face search at scale: facelake's HNSW index (usearch) against numpy brute force.

The data is synthetic (seeded) but shaped like face embeddings: N unit vectors in 128-D
grouped into identities of 20 sightings each, all sharing a common component (dlib's
embeddings sit in a narrow cone), and for each query 10 planted near-duplicates — the
sightings a search should return. Recall@10 is measured against exact brute-force top-10.

Usage: python bench/search.py [--n 1000000] [--queries 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_data(n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dim, per = 128, 20
    common = rng.normal(size=dim).astype(np.float32) * 2.0
    X = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        centres = rng.normal(size=(m // per + 1, dim)).astype(np.float32)
        X[start : start + m] = np.repeat(centres, per, axis=0)[:m] + rng.normal(0, 0.3, (m, dim)) + common
    base = rng.normal(size=(queries, dim)).astype(np.float32) + common
    slots = rng.choice(n, size=(queries, 10), replace=False)
    for q in range(queries):
        X[slots[q]] = base[q] + rng.normal(0, 0.05, (10, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    return X, Q.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from facelake.identities.index import _new_index

    t = time.perf_counter()
    X, Q = make_data(args.n, args.queries, args.seed)
    print(f"{args.n} vectors, {args.queries} queries with 10 planted near-duplicates each "
          f"(made in {time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    exact = np.empty((len(Q), 10), dtype=np.int64)
    for i, q in enumerate(Q):
        sims = X @ q
        top = np.argpartition(-sims, 10)[:10]
        exact[i] = top[np.argsort(-sims[top])]
    brute_ms = (time.perf_counter() - t) / len(Q) * 1000
    brute_mb = X.nbytes / 1e6

    index = _new_index(128)
    t = time.perf_counter()
    index.add(np.arange(args.n, dtype=np.uint64), X, threads=0)
    build_s = time.perf_counter() - t
    index.search(Q[:5], 10)
    t = time.perf_counter()
    found = [index.search(q, 10).keys for q in Q]
    hnsw_ms = (time.perf_counter() - t) / len(Q) * 1000
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact)]))

    header = f"{'method':24} {'build s':>8} {'ms/query':>9} {'recall@10':>10} {'memory MB':>10}"
    print(header)
    print("-" * len(header))
    print(f"{'numpy brute force':24} {0.0:8.1f} {brute_ms:9.2f} {1.0:10.3f} {brute_mb:10.0f}")
    print(f"{'usearch HNSW (i8)':24} {build_s:8.1f} {hnsw_ms:9.2f} {recall:10.3f} "
          f"{index.memory_usage / 1e6:10.0f}")
    print(f"\none query at a time, one process, {args.n} vectors; memory is the float32 matrix for brute "
          f"force and what usearch reports for the index (int8 vectors + graph); process peak {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
