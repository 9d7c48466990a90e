"""Open-set matching of faces against the people the owner enrolled.

A face is named only when its best-matching person scores at least ``threshold`` *and*
beats every other person by ``margin``: a face that looks a bit like two enrolled people, or
like nobody, stays unknown. Each person's score is the similarity of their closest enrolled
face (1-NN per person), so several enrollment photos — front, profile, glasses — each help
without being averaged into a face nobody has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Match:
    """The outcome for one face: ``person`` is ``None`` when the face stays unknown."""

    person: int | None
    score: float
    """Similarity to the best person (also reported when the face stays unknown)."""
    margin: float
    """Best person's score minus the second best's (1.0 with a single enrolled person)."""


class Gallery:
    """Enrolled embeddings and the open-set decision rule, in scikit-learn's style.

    ``fit(X, y)`` stores unit-length embeddings ``X`` with person ids ``y``; ``match(X)``
    names each row of ``X`` or leaves it unknown. Learned attributes end in ``_``.
    """

    def __init__(self, threshold: float, margin: float) -> None:
        self.threshold = threshold
        self.margin = margin

    def fit(self, X: NDArray[np.float32], y: NDArray[np.int64]) -> Gallery:
        X = np.asarray(X, dtype=np.float32).reshape(len(y), -1) if len(y) else np.zeros((0, 1), np.float32)
        self.embeddings_ = X
        self.labels_ = np.asarray(y, dtype=np.int64)
        self.people_ = np.unique(self.labels_)
        return self

    def scores(self, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(n, people)`` similarity of each face to each person's closest enrolled face."""
        sims = np.asarray(X, dtype=np.float32) @ self.embeddings_.T
        out = np.full((len(sims), len(self.people_)), -1.0, dtype=np.float32)
        for j, person in enumerate(self.people_):
            out[:, j] = sims[:, self.labels_ == person].max(axis=1)
        return out

    def match(self, X: NDArray[np.float32]) -> list[Match]:
        if len(X) == 0:
            return []
        if len(self.people_) == 0:
            return [Match(None, -1.0, 0.0) for _ in range(len(X))]
        per_person = self.scores(X)
        order = np.argsort(-per_person, axis=1)
        best = per_person[np.arange(len(X)), order[:, 0]]
        second = per_person[np.arange(len(X)), order[:, 1]] if len(self.people_) > 1 else np.full(len(X), -1.0)
        out = []
        for i in range(len(X)):
            margin = float(best[i] - second[i]) if len(self.people_) > 1 else 1.0
            named = best[i] >= self.threshold and margin >= self.margin
            out.append(Match(int(self.people_[order[i, 0]]) if named else None, float(best[i]), margin))
        return out
