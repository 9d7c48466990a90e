"""Baselines the benchmarks compare facelake with; none of them is used by facelake itself."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class ChineseWhispers:
    """Graph clustering over a cosine-similarity threshold, in scikit-learn's style.

    ``fit(X, fixed_labels=None)``: ``X`` holds unit-length embeddings; where
    ``fixed_labels`` is not ``-1`` that row keeps its label (incremental clustering). The
    learned ``labels_`` number the groups; new groups get labels above the fixed ones.
    """

    def __init__(self, threshold: float, iterations: int = 30, seed: int = 0) -> None:
        self.threshold = threshold
        self.iterations = iterations
        self.seed = seed

    def fit(self, X: NDArray[np.float32], fixed_labels: NDArray[np.int64] | None = None) -> ChineseWhispers:
        n = len(X)
        fixed = np.full(n, -1, dtype=np.int64) if fixed_labels is None else np.asarray(fixed_labels, np.int64)
        first_new = int(fixed.max()) + 1 if n and fixed.max() >= 0 else 0
        labels = np.where(fixed >= 0, fixed, first_new + np.arange(n))
        if n == 0:
            self.labels_ = labels
            return self
        X = np.asarray(X, dtype=np.float32)
        free = np.nonzero(fixed < 0)[0]
        # Only faces that may move need their neighbours: k new faces cost k × n, not n².
        neighbours: dict[int, tuple[NDArray[np.int64], NDArray[np.float32]]] = {}
        for start in range(0, len(free), 1024):
            rows = free[start : start + 1024]
            sims = X[rows] @ X.T
            sims[np.arange(len(rows)), rows] = -np.inf
            for i, row in zip(rows, sims):
                near = np.nonzero(row >= self.threshold)[0]
                neighbours[int(i)] = (near, row[near])
        rng = np.random.default_rng(self.seed)
        for _ in range(self.iterations):
            changed = False
            for i in rng.permutation(free):
                near, weight = neighbours[int(i)]
                if not len(near):
                    continue
                votes: dict[int, float] = {}
                for j, w in zip(near, weight):
                    votes[int(labels[j])] = votes.get(int(labels[j]), 0.0) + float(w)
                best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
                if best != labels[i]:
                    labels[i], changed = best, True
            if not changed:
                break
        self.labels_ = labels
        return self
