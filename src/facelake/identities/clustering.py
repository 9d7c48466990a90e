"""Grouping unknown faces into candidate identities.

The default is :class:`CentroidClustering`. Chinese whispers (dlib's choice, kept for
comparison in ``bench/baselines.py``) links faces through single edges over a fixed
threshold, so on a busy street camera stranger A resembles B, B resembles C, and hundreds
of different people end up in one group. Here a face joins a group only if it is close to the group's *centre* (the mean
of all its faces), never through one look-alike member; two faces of one image never share
a group (they are two people); faces are taken best quality first, so centres are founded
on the clearest faces. New faces join existing groups or start their own, and existing
groups keep their ids, so names the owner gave stay attached.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class CentroidClustering:
    """Online centroid clustering with cannot-link groups, in scikit-learn's style.

    ``fit(X, fixed_labels=None, groups=None, quality=None)``: ``X`` holds unit-length
    embeddings; rows whose ``fixed_labels`` is not ``-1`` keep their label and found their
    group's centre; ``groups`` (e.g. image ids) marks rows that must not share a label;
    ``quality`` orders the free rows (best first). ``labels_`` numbers the groups; new groups
    get labels above the fixed ones.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def fit(self, X: NDArray[np.float32], fixed_labels: NDArray[np.int64] | None = None,
            groups: list[str] | None = None, quality: NDArray[np.float32] | None = None) -> CentroidClustering:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        fixed = np.full(n, -1, dtype=np.int64) if fixed_labels is None else np.asarray(fixed_labels, np.int64)
        labels = fixed.copy()
        if n == 0:
            self.labels_ = labels
            return self
        group_of = list(groups) if groups is not None else [str(i) for i in range(n)]
        next_label = int(fixed.max()) + 1 if fixed.max() >= 0 else 0
        ids: list[int] = []
        sums: list[NDArray[np.float32]] = []
        members: list[set[str]] = []
        index: dict[int, int] = {}
        for i in np.nonzero(fixed >= 0)[0]:
            label = int(fixed[i])
            if label not in index:
                index[label] = len(ids)
                ids.append(label)
                sums.append(np.zeros(X.shape[1], np.float32))
                members.append(set())
            k = index[label]
            sums[k] = sums[k] + X[i]
            members[k].add(group_of[i])
        free = np.nonzero(fixed < 0)[0]
        if quality is not None:
            free = free[np.argsort(-np.asarray(quality)[free], kind="stable")]
        centres = np.zeros((max(len(ids), 1) + len(free), X.shape[1]), np.float32)
        for k, total in enumerate(sums):
            centres[k] = total / max(float(np.linalg.norm(total)), 1e-12)
        for i in free:
            chosen = -1
            if ids:
                sims = centres[: len(ids)] @ X[i]
                for k in np.argsort(-sims):
                    if sims[k] < self.threshold:
                        break
                    if group_of[i] not in members[k]:
                        chosen = int(k)
                        break
            if chosen < 0:
                chosen = len(ids)
                ids.append(next_label)
                next_label += 1
                sums.append(np.zeros(X.shape[1], np.float32))
                members.append(set())
            sums[chosen] = sums[chosen] + X[i]
            members[chosen].add(group_of[i])
            centres[chosen] = sums[chosen] / max(float(np.linalg.norm(sums[chosen])), 1e-12)
            labels[i] = ids[chosen]
        self.labels_ = labels
        return self


def bcubed(truth: list[str], predicted: list[int]) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 of a clustering against true identities."""
    truth_a, pred_a = np.asarray(truth), np.asarray(predicted)
    precision = recall = 0.0
    for i in range(len(truth_a)):
        same_cluster = pred_a == pred_a[i]
        same_person = truth_a == truth_a[i]
        both = float(np.sum(same_cluster & same_person))
        precision += both / float(np.sum(same_cluster))
        recall += both / float(np.sum(same_person))
    n = max(len(truth_a), 1)
    p, r = precision / n, recall / n
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)
