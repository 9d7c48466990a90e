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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from usearch.index import BatchMatches


@dataclass(frozen=True)
class KnownGroups:
    """Groups a run starts from whose faces are not handed to ``fit`` (an incremental run).

    What joining needs of a group is its sum of embeddings, its size, and which images it already
    holds; ``members`` may be limited to the images of the faces being grouped (no other image can
    meet the "two faces of one image" rule), so a run over a few new faces never holds a million keys.
    """

    ids: NDArray[np.int64]
    sums: NDArray[np.float32]
    """``(groups, dim)``: each group's sum of its faces' embeddings."""
    counts: NDArray[np.int64]
    members: list[set[str]]


EXACT_UP_TO = 100_000
"""Free faces up to this many get exact neighbour lists; more, lists from a graph. At 60,000
random strangers the exact lists took 47 s and the graph 26 s to build plus 48 s of searches;
exact grows with the square, the graph a little faster than the count."""


class CentroidClustering:
    """Online centroid clustering with cannot-link groups and a density rule, in scikit-learn's style.

    ``fit(X, fixed_labels=None, groups=None, quality=None, known=None)``: ``X`` holds unit-length
    embeddings; rows whose ``fixed_labels`` is not ``-1`` keep their label and found their
    group's centre; ``groups`` (e.g. image ids) marks rows that must not share a label;
    ``quality`` orders the free rows (best first); ``known`` are groups whose faces are not in
    ``X`` (:class:`KnownGroups`, an incremental run); ``ties`` orders faces of equal quality
    (default: row order; the store's rows come in no order, so their ids). ``labels_`` numbers the groups; new groups
    get labels above the fixed and known ones; ``-1`` is a face left alone (no group yet);
    ``sizes_`` is every group's size after the run (known groups included).

    The density rule (``min_samples``, HDBSCAN's word): a free face joins an existing group
    it is close to (see ``linkage``), as before; but a *new* group starts only from ``min_samples``
    faces of different images that are all pairwise at least ``threshold`` alike. Why: among
    strangers every face has a nearest look-alike, and with ``min_samples=1`` one such pair
    opened a group that the next look-alike's look-alike joined (a crowd of 900 people grew a
    cluster of 81 strangers); three mutually close faces are rare unless they are one person.
    A face that neither joins nor founds stays ``-1``, and is looked at again in a later run
    when new faces come close to it and may give it company. A fixed group of one face is no evidence either: it is
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

    Cost: founding needs a free face's close neighbours among the free faces still alone. They
    are found only for faces that join no group, a block of the next such faces at a time (one
    matrix product of at most ``block_floats`` similarities, in BLAS), keeping only the pairs over
    the threshold. Memory is the embeddings, the groups' centres and one block, never all pairs:
    at 166,000 faces of one person, all pairs over the threshold were 27 billion.
    The decisions are those of computing every neighbour list up front (the lists are filtered
    to faces still alone when used, and faces only ever leave "alone").

    Past ``exact_up_to`` free faces (None: ``EXACT_UP_TO``) the lists come from an HNSW graph of them instead
    (:class:`_GraphNeighbours`): the exact blocks cost every lonely face a pass over all faces,
    and in a first run over a year of strangers nearly every face is lonely (n² similarities:
    47 s at 60,000 faces, hours at a million).
    """

    def __init__(self, threshold: float, min_samples: int = 3, linkage: str = "average",
                 block_floats: int = 1 << 24, pair_threshold: float | None = None,
                 exact_up_to: int | None = None) -> None:
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        if linkage not in ("average", "centroid"):
            raise ValueError(f"linkage must be 'average' or 'centroid', got {linkage!r}")
        self.threshold = threshold
        self.min_samples = min_samples
        self.linkage = linkage
        self.block_floats = block_floats
        self.pair_threshold = pair_threshold
        self.exact_up_to = exact_up_to

    def fit(self, X: NDArray[np.float32], fixed_labels: NDArray[np.int64] | None = None,
            groups: Sequence[str] | None = None, quality: NDArray[np.float32] | None = None,
            known: KnownGroups | None = None, ties: NDArray[np.int64] | None = None,
            clear: NDArray[np.bool_] | None = None) -> CentroidClustering:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        fixed = np.full(n, -1, dtype=np.int64) if fixed_labels is None else np.asarray(fixed_labels, np.int64).copy()
        dim = X.shape[1] if X.ndim == 2 else (known.sums.shape[1] if known is not None else 0)
        top = max(int(fixed.max(initial=-1)), int(np.max(known.ids, initial=-1)) if known is not None else -1)
        if n == 0:
            self.labels_ = fixed
            self.sizes_ = np.asarray(known.counts if known is not None else [], np.int64)
            return self
        next_label = top + 1
        if self.min_samples > 1:
            values, sizes = np.unique(fixed[fixed >= 0], return_counts=True)
            fixed[np.isin(fixed, values[sizes < 2])] = -1
        labels = fixed.copy()
        group_of = list(groups) if groups is not None else [str(i) for i in range(n)]
        state = _Groups(dim, self._centre)
        if known is not None:
            for g in range(len(known.ids)):
                state.new(int(known.ids[g]), known.sums[g], int(known.counts[g]), set(known.members[g]))
        for row in np.nonzero(fixed >= 0)[0].tolist():
            label = int(fixed[row])
            if label not in state.index:
                state.new(label, np.zeros(dim, np.float32), 0, set())
            state.add(state.index[label], X[row], group_of[row], refresh=False)
        state.refresh()
        free = np.nonzero(fixed < 0)[0]
        if quality is not None:
            after = np.arange(n) if ties is None else np.asarray(ties)
            free = free[np.lexsort((after[free], -np.asarray(quality)[free]))]

        def add(i: int, k: int) -> None:
            state.add(k, X[i], group_of[i])
            labels[i] = state.ids[k]

        def join(i: int) -> bool:
            """Put face ``i`` in the group it is closest to (by ``linkage``), if close enough."""
            if not state.ids:
                return False
            sims = state.centres[: len(state.ids)] @ X[i]
            close = np.nonzero(sims >= self.threshold)[0]
            for k in close[np.argsort(-sims[close], kind="stable")].tolist():
                if group_of[i] not in state.members[k]:
                    add(i, k)
                    return True
            return False

        near: _Neighbours | None = None
        if self.min_samples > 1:
            limit = EXACT_UP_TO if self.exact_up_to is None else self.exact_up_to
            kind = _Neighbours if len(free) <= limit else _GraphNeighbours
            near = kind(X, free, labels, self.threshold, self.block_floats)
        alone: list[int] = []
        for i in free.tolist():
            if labels[i] >= 0 or join(i):  # grouped already (a founder's company), or joins a group
                continue
            candidates = near.of(i) if near is not None else []
            core = self._core(X, i, candidates, group_of)
            if core is None:
                core = self._pair(X, i, candidates, group_of, clear)
            if core is None:
                alone.append(i)
                continue
            k = state.new(next_label, np.zeros(dim, np.float32), 0, set())
            next_label += 1
            for j in [i, *core]:
                add(j, k)
        for i in alone:  # a face passed over before a group near it was founded may join it now
            if labels[i] < 0:
                join(i)
        self.labels_ = labels
        self.sizes_ = np.asarray(state.counts, np.int64)
        return self

    def _centre(self, total: NDArray[np.float32], count: int) -> NDArray[np.float32]:
        """What a face's similarity to a group is measured against (see ``linkage``)."""
        scale = max(count, 1) if self.linkage == "average" else max(float(np.linalg.norm(total)), 1e-12)
        return (total / scale).astype(np.float32)

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

    def _pair(self, X: NDArray[np.float32], i: int, candidates: list[int], group_of: Sequence[str],
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


class _Groups:
    """The groups of a run: ids, sums, sizes, images held, and centres in arrays that grow by
    doubling (room for one group per free face was a second copy of every embedding)."""

    def __init__(self, dim: int, centre: Callable[[NDArray[np.float32], int], NDArray[np.float32]]) -> None:
        self.ids: list[int] = []
        self.counts: list[int] = []
        self.members: list[set[str]] = []
        self.index: dict[int, int] = {}
        self.sums = np.zeros((16, dim), np.float32)
        self.centres = np.zeros((16, dim), np.float32)
        self._centre = centre

    def new(self, label: int, total: NDArray[np.float32], count: int, members: set[str]) -> int:
        k = len(self.ids)
        if k == len(self.sums):
            self.sums = np.concatenate([self.sums, np.zeros_like(self.sums)])
            self.centres = np.concatenate([self.centres, np.zeros_like(self.centres)])
        self.index[label] = k
        self.ids.append(label)
        self.counts.append(count)
        self.members.append(members)
        self.sums[k] = total
        self.centres[k] = self._centre(self.sums[k], count)
        return k

    def add(self, k: int, x: NDArray[np.float32], group: str, refresh: bool = True) -> None:
        self.sums[k] += x
        self.counts[k] += 1
        self.members[k].add(group)
        if refresh:
            self.centres[k] = self._centre(self.sums[k], self.counts[k])

    def refresh(self) -> None:
        for k in range(len(self.ids)):
            self.centres[k] = self._centre(self.sums[k], self.counts[k])


class _Neighbours:
    """Each free face's free faces at least ``threshold`` alike, most alike first (ties: the
    earlier in the free order first), computed when asked, for a block of faces at a time.

    A block is the asked face and the next faces in the free order still alone (those most
    likely to be asked next), as many as ``block_floats`` similarities allow; a list is kept
    until asked for. Faces already grouped when a block is computed are left out of its lists:
    a list is only ever used filtered to faces still alone, and a grouped face never returns.
    """

    def __init__(self, X: NDArray[np.float32], free: NDArray[np.int64], labels: NDArray[np.int64],
                 threshold: float, block_floats: int, max_hits: int = 1 << 23) -> None:
        self.X, self.free, self.labels, self.threshold = X, free, labels, threshold
        self.rank = np.full(len(X), len(X), dtype=np.int64)
        self.rank[free] = np.arange(len(free))
        self.is_free = np.zeros(len(X), dtype=bool)
        self.is_free[free] = True
        self.block = int(max(1, min(1024, block_floats // max(len(X), 1))))
        self.max_hits = max_hits
        self.kept: dict[int, NDArray[np.int64]] = {}
        self.listed = np.zeros(len(X), dtype=bool)

    def of(self, i: int) -> list[int]:
        """``i``'s list, filtered to the faces still alone."""
        if i not in self.kept:
            self._compute(i)
        self.listed[i] = False
        close = self.kept.pop(i)
        return close[self.labels[close] < 0].tolist()

    def _rows(self, i: int) -> list[int]:
        """``i`` and the next faces in the free order still alone and not listed, up to a block."""
        rows, start = [i], int(self.rank[i]) + 1
        while len(rows) < self.block and start < len(self.free):
            seg = self.free[start : start + 4 * self.block]
            rows += seg[(self.labels[seg] < 0) & ~self.listed[seg]][: self.block - len(rows)].tolist()
            start += len(seg)
        return rows

    def _keep(self, row: int, close: NDArray[np.int64], sims: NDArray[np.float32]) -> int:
        """Store ``row``'s list: ``close`` (faces still open, ``sims`` alike) most alike first."""
        close = close[np.lexsort((self.rank[close], -sims))]
        self.kept[row] = close
        self.listed[row] = True
        return len(close)

    def _compute(self, i: int) -> None:
        rows = self._rows(i)
        sims = self.X[rows] @ self.X.T
        open_ = self.is_free & (self.labels < 0)
        hits = 0
        for r, row in enumerate(rows):
            close = np.nonzero((sims[r] >= self.threshold) & open_)[0]
            close = close[close != row]
            hits += self._keep(row, close, sims[r, close])
            if hits > self.max_hits:  # the rest of the block is computed again when asked
                break


class _GraphNeighbours(_Neighbours):
    """The same lists from an HNSW graph (usearch) of the free faces: each face's ``k`` nearest,
    scored again exactly, those at least ``threshold`` alike and still alone kept.

    Why: a lonely face costs a search of the graph (well under a millisecond) instead of a pass
    over every face. What it gives up: a face with more than ``k`` open faces over the threshold
    sees only the ``k`` most alike (founding a group needs ``min_samples - 1`` of them), and the
    graph can miss a close face (on random strangers with planted groups of 5, ~0.94 alike
    within a group, none of the groupmates was missed at these settings; with 8 links instead of
    16, 5 in 1,000). The graph is built in one thread, so two runs over the same faces build the
    same graph and decide the same; searches run on every core. Vectors are stored in int8 (the
    exact scores come from ``X``): at a million 320-D faces, 320 MB next to ``X``'s 1.3 GB.
    """

    def __init__(self, X: NDArray[np.float32], free: NDArray[np.int64], labels: NDArray[np.int64],
                 threshold: float, block_floats: int, k: int = 32) -> None:
        from usearch.index import Index

        super().__init__(X, free, labels, threshold, block_floats)
        self.block, self.k = 1024, k
        self.graph = Index(ndim=X.shape[1], metric="ip", dtype="i8", connectivity=16, expansion_add=40,
                           expansion_search=64)
        self.graph.add(free, X[free], threads=1)

    def _compute(self, i: int) -> None:
        rows = self._rows(i)
        found = cast("BatchMatches", self.graph.search(self.X[rows], self.k, threads=0))  # rows: a batch
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(rows), -1)
        counts = np.asarray(found.counts, dtype=np.int64).reshape(len(rows))
        for r, row in enumerate(rows):
            close = keys[r, : counts[r]]
            close = close[(close != row) & (self.labels[close] < 0)]
            sims = self.X[close] @ self.X[row]
            keep = sims >= self.threshold
            self._keep(row, close[keep], sims[keep])


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
