"""Grouping unknown faces into candidate identities.

The default is :class:`CentroidClustering`. Chinese whispers (dlib's choice, kept for
comparison in ``bench/baselines.py``) links faces through single edges over a fixed
threshold, so on a busy street camera stranger A resembles B, B resembles C, and hundreds
of different people end up in one group. Here a face joins a group only if it is close to the group's faces on
average, never through one look-alike member; a group starts only from several
mutually close faces (a density rule: one look-alike pair is no evidence); two faces of one
image never share a group (they are two people); faces are taken best quality first, so
centres are founded on the clearest faces. New faces join existing groups or start their own, and existing
groups keep their ids, so names the owner gave stay attached.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class CentroidClustering:
    """Online centroid clustering with cannot-link groups and a density rule, in scikit-learn's style.

    ``fit(X, fixed_labels=None, groups=None, quality=None)``: ``X`` holds unit-length
    embeddings; rows whose ``fixed_labels`` is not ``-1`` keep their label and found their
    group's centre; ``groups`` (e.g. image ids) marks rows that must not share a label;
    ``quality`` orders the free rows (best first). ``labels_`` numbers the groups; new groups
    get labels above the fixed ones; ``-1`` is a face left alone (no group yet).

    The density rule (``min_samples``, HDBSCAN's word): a free face joins an existing group
    it is close to (see ``linkage``), as before; but a *new* group starts only from ``min_samples``
    faces of different images that are all pairwise at least ``threshold`` alike. Why: among
    strangers every face has a nearest look-alike, and with ``min_samples=1`` one such pair
    opened a group that the next look-alike's look-alike joined (a crowd of 900 people grew a
    cluster of 81 strangers); three mutually close faces are rare unless they are one person.
    A face that neither joins nor founds stays ``-1``, and is looked at again next run, when
    more faces may give it company. A fixed group of one face is no evidence either: it is
    taken as free. ``min_samples=1`` is the previous rule (every face founds its own group).

    One exception (``pair_threshold``): two faces of different images, both ``clear`` (clearly
    recognisable), that are at least ``pair_threshold`` alike start a group of two. A repeat
    visitor seen twice is otherwise never grouped (a crowd of passers-by, most seen once or twice,
    lost BCubed 0.971 -> 0.862 to the three-face rule); the bar is far above ``threshold``, where
    no two different people of the development crowds scored (bench/recognisability.py clusters).

    Joining (``linkage``): with ``"average"`` (the default) a face joins when its mean similarity
    to the group's faces reaches ``threshold`` — the dot product with the *unnormalised* mean of
    their embeddings. With ``"centroid"`` (the previous rule) it is compared with the normalised
    mean, and that is a trap in a crowd: the mean of many strangers is the "average face", which
    every face is close to, so a group of strangers only pairwise 0.81 alike kept accepting faces
    at 0.88 to its centre and grew to 65 faces on the WIDER crowds. The unnormalised mean is
    shorter the looser its group, so a loose group stops growing while a tight one (one person,
    pairwise ≥ 0.9) is hardly affected (docs/accuracy.md).

    Cost: founding needs the free faces' close neighbours among each other, found by blocked
    matrix products (O(free² · dim) time, in BLAS; memory for the close pairs only).
    """

    def __init__(self, threshold: float, min_samples: int = 3, linkage: str = "average",
                 pair_threshold: float | None = None) -> None:
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        if linkage not in ("average", "centroid"):
            raise ValueError(f"linkage must be 'average' or 'centroid', got {linkage!r}")
        self.threshold = threshold
        self.min_samples = min_samples
        self.linkage = linkage
        self.pair_threshold = pair_threshold

    def fit(self, X: NDArray[np.float32], fixed_labels: NDArray[np.int64] | None = None,
            groups: list[str] | None = None, quality: NDArray[np.float32] | None = None,
            clear: NDArray[np.bool_] | None = None) -> CentroidClustering:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        fixed = np.full(n, -1, dtype=np.int64) if fixed_labels is None else np.asarray(fixed_labels, np.int64).copy()
        if n == 0:
            self.labels_ = fixed
            return self
        next_label = int(fixed.max()) + 1 if fixed.max() >= 0 else 0
        if self.min_samples > 1:
            values, sizes = np.unique(fixed[fixed >= 0], return_counts=True)
            fixed[np.isin(fixed, values[sizes < 2])] = -1
        labels = fixed.copy()
        group_of = list(groups) if groups is not None else [str(i) for i in range(n)]
        ids: list[int] = []
        sums: list[NDArray[np.float32]] = []
        counts: list[int] = []
        members: list[set[str]] = []
        index: dict[int, int] = {}
        for row in np.nonzero(fixed >= 0)[0].tolist():
            label = int(fixed[row])
            if label not in index:
                index[label] = len(ids)
                ids.append(label)
                sums.append(np.zeros(X.shape[1], np.float32))
                counts.append(0)
                members.append(set())
            k = index[label]
            sums[k] = sums[k] + X[row]
            counts[k] += 1
            members[k].add(group_of[row])
        free = np.nonzero(fixed < 0)[0]
        if quality is not None:
            free = free[np.argsort(-np.asarray(quality)[free], kind="stable")]
        centres = np.zeros((len(ids) + len(free) + 1, X.shape[1]), np.float32)
        for k, total in enumerate(sums):
            centres[k] = self._centre(total, counts[k])

        def add(i: int, k: int) -> None:
            sums[k] = sums[k] + X[i]
            if k == len(counts):
                counts.append(0)
            counts[k] += 1
            members[k].add(group_of[i])
            centres[k] = self._centre(sums[k], counts[k])
            labels[i] = ids[k]

        def join(i: int) -> bool:
            """Put face ``i`` in the group it is closest to (by ``linkage``), if close enough."""
            if not ids:
                return False
            sims = centres[: len(ids)] @ X[i]
            for k in np.argsort(-sims):
                if sims[k] < self.threshold:
                    return False
                if group_of[i] not in members[k]:
                    add(i, int(k))
                    return True
            return False

        near = self._neighbours(X, free) if self.min_samples > 1 else {}
        alone: list[int] = []
        for i in free.tolist():
            if labels[i] >= 0 or join(i):  # grouped already (a founder's company), or joins a group
                continue
            candidates = [j for j in near.get(i, []) if labels[j] < 0]
            core = self._core(X, i, candidates, group_of)
            if core is None:
                core = self._pair(X, i, candidates, group_of, clear)
            if core is None:
                alone.append(i)
                continue
            ids.append(next_label)
            next_label += 1
            sums.append(np.zeros(X.shape[1], np.float32))
            members.append(set())
            for j in [i, *core]:
                add(j, len(ids) - 1)
        for i in alone:  # a face passed over before a group near it was founded may join it now
            if labels[i] < 0:
                join(i)
        self.labels_ = labels
        return self

    def _centre(self, total: NDArray[np.float32], count: int) -> NDArray[np.float32]:
        """What a face's similarity to a group is measured against (see ``linkage``)."""
        scale = max(count, 1) if self.linkage == "average" else max(float(np.linalg.norm(total)), 1e-12)
        return (total / scale).astype(np.float32)

    def _neighbours(self, X: NDArray[np.float32], free: NDArray[np.int64], block: int = 1024) -> dict[int, list[int]]:
        """Each free face's other free faces at least ``threshold`` alike, most alike first.

        In blocks of rows (matrix products, not one product per face), keeping only the pairs
        over the threshold: among strangers they are few, so memory stays near O(free).
        """
        F = X[free]
        out: dict[int, list[int]] = {}
        for start in range(0, len(free), block):
            sims = F[start : start + block] @ F.T
            for r, row in enumerate(sims):
                hits = np.nonzero(row >= self.threshold)[0]
                hits = hits[np.argsort(-row[hits], kind="stable")]
                i = int(free[start + r])
                out[i] = [int(free[h]) for h in hits if int(free[h]) != i]
        return out

    def _core(self, X: NDArray[np.float32], i: int, candidates: list[int], group_of: list[str]) -> list[int] | None:
        """``min_samples - 1`` faces of ``candidates`` (``i``'s close neighbours, most alike first) that
        with ``i`` are pairwise close and of different images, or None."""
        need = self.min_samples - 1
        if need == 0:
            return []
        if len(candidates) < need:
            return None
        chosen: list[int] = []
        used = {group_of[i]}
        for j in candidates:
            if group_of[j] in used or any(float(X[j] @ X[c]) < self.threshold for c in chosen):
                continue
            chosen.append(int(j))
            used.add(group_of[j])
            if len(chosen) == need:
                return chosen
        return None

    def _pair(self, X: NDArray[np.float32], i: int, candidates: list[int], group_of: list[str],
              clear: NDArray[np.bool_] | None) -> list[int] | None:
        """The one face ``i`` may start a group with although no ``min_samples`` are close: its most alike
        candidate, when both are ``clear``, of different images and ``pair_threshold`` alike (else None)."""
        if self.pair_threshold is None or clear is None or not clear[i]:
            return None
        for j in candidates:  # most alike first
            if float(X[i] @ X[j]) < self.pair_threshold:
                return None
            if clear[j] and group_of[j] != group_of[i]:
                return [int(j)]
        return None


def bcubed(truth: list[str], predicted: list[int]) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 of a clustering against true identities.

    A negative label (a face left alone) is a cluster of its own, not one group of all such faces.
    """
    pred_a = np.asarray(predicted, dtype=np.int64).copy()
    alone = pred_a < 0
    pred_a[alone] = (pred_a.max(initial=0) + 1) + np.arange(int(alone.sum()))
    truth_a = np.asarray(truth)
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
