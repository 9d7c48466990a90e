"""Clusters of unknown faces, the orchestration side: grouping, naming (enrollment), merging,
splitting, dismissing. Each function is one unit of work on the store it is handed; the
grouping arithmetic is ``clustering``, the SQL ``store.clusters`` (``store/clusters.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..errors import ConfigError, NotFound
from ..store import Store
from ..store.clusters import FaceBlock
from ..vision.recognisability import recognisability
from .clustering import CentroidClustering, KnownGroups
from .index import sync_index
from .matching import model_of, thresholds
from .people import Enrollment, check_enrollment, identify


@dataclass(frozen=True)
class ClusterResult:
    faces: int
    """Unknown faces of good enough quality and recognisability that were clustered."""
    clusters: int
    """Clusters with at least two faces."""
    new_faces: int
    """Faces that had no group before this run and have one now (a face left alone is not new again)."""
    looked_at: int = 0
    """Faces this run could move: every face of a full run; else the new ones, faces alone in
    their group, and faces left alone before that are close to them."""


def cluster(store: Store, settings: Settings, full: bool = False, actor: str = "cli") -> ClusterResult:
    """Group unknown faces into candidate identities.

    By default (incremental) only faces without a group move: they join the group they are
    closest to on average, or start new ones with their neighbours, and existing clusters keep
    their ids and their faces (names the owner already gave stay attached). The existing groups
    are read a block at a time into their sums and sizes, never as faces to regroup, so one new
    photo costs a read of the grouped faces, not a clustering of them. ``full`` regroups
    everything from scratch. Low-quality and unrecognisable faces are left out: their embeddings
    are too unreliable to group. A group starts only from ``CentroidClustering.min_samples``
    mutually close faces, or from two far closer ones that are both clearly recognisable
    (``Thresholds.cluster_pair``, at ``enroll_min_recognisability``: the level an enrolled face
    needs); a face with no group yet keeps ``cluster_id`` NULL and is looked at
    again when a new face comes close to it (:func:`_with_company`): not at every run, which in
    a crowd of strangers was a full run each time. After an edit that can leave older faces
    ungrouped (``unname``, ``people remove``, ``reembed``) or a change of threshold, model or
    gates, every ungrouped face counts as new once more (``Clusters.last_run``).
    """
    with store.exclusive("cluster"):  # one clustering at a time
        started = datetime.now(UTC).replace(tzinfo=None)
        t = thresholds(settings)
        threshold = t.cluster
        clear_at = max(settings.enroll_min_recognisability, settings.min_recognisability)
        args = (settings.identify_min_quality, model_of(settings), settings.min_recognisability)
        rule = f"{args[1]}/{threshold}/{args[0]}/{args[2]}/{t.cluster_pair}/{clear_at}"
        last = None if full else store.clusters.last_run(rule)
        since = None if last is None else last - OVERLAP
        part = "all" if full else ("free" if since is None else "new")
        faces, groups = store.clusters.count_unknown(*args)
        expected, _ = store.clusters.count_unknown(*args, part=part, since=since)
        free = _read(store.clusters.unknown_faces(*args, part=part, since=since), expected)
        if free is None:
            return ClusterResult(faces, groups, 0, 0)
        if since is not None:
            free = _with_company(store, args, since, free, threshold)
        known = None if full else _groups(store.clusters.unknown_faces(*args, part="grouped"), set(free.keys),
                                          free.embeddings.shape[1])
        base = store.clusters.top_id()
        clear = np.array([v is not None and v >= clear_at
                          for v in recognisability(model_of(settings), free.embeddings)], dtype=bool)
        clusterer = CentroidClustering(t.cluster, pair_threshold=t.cluster_pair).fit(
            free.embeddings, groups=free.keys, quality=free.quality, known=known, ties=free.sighting_ids,
            clear=clear)
        # Groups that did not grow out of an existing cluster get ids above every id in use.
        kept = set() if known is None else {int(v) for v in known.ids}
        fresh: dict[int, int] = {}
        labels: list[int | None] = []
        for value in clusterer.labels_.tolist():
            if value < 0:
                labels.append(None)
                continue
            if value not in kept and value not in fresh:
                fresh[value] = base + 1 + len(fresh)
            labels.append(value if value in kept else fresh[value])
        previous = [None if c < 0 else c for c in free.cluster_ids.tolist()]
        store.clusters.save_grouping([(s, new) for s, was, new in zip(free.sighting_ids.tolist(), previous, labels)
                                      if was != new], faces, actor, started, rule)
        grouped = sum(1 for was, new in zip(previous, labels) if was is None and new is not None)
        return ClusterResult(faces, int((clusterer.sizes_ >= 2).sum()), grouped, len(free.sighting_ids))


OVERLAP = timedelta(minutes=10)
"""Faces stored up to this long before the last run began count as new again: an image being
written on a server as that run read the faces is stored (and visible) only after it."""


def _with_company(store: Store, args: tuple[float, str, float], since: datetime, new: FaceBlock,
                  threshold: float, rounds: int = 4) -> FaceBlock:
    """``new`` and the faces left alone by earlier runs that are close to them, or close to those
    (a few rounds): the only alone faces the new ones can give a group. The rest are read a block
    at a time and left: were they looked at again every run, a crowd of strangers made every
    run a full one."""
    blocks, frontier, seen = [new], new.embeddings, set(new.sighting_ids.tolist())
    for _ in range(rounds):
        found = []
        for block in store.clusters.unknown_faces(*args, part="alone", since=since):
            near = (block.embeddings @ frontier.T).max(axis=1) >= threshold if len(frontier) else []
            rows = [r for r in np.nonzero(near)[0].tolist() if int(block.sighting_ids[r]) not in seen]
            if rows:
                found.append(FaceBlock(block.sighting_ids[rows], block.embeddings[rows], block.cluster_ids[rows],
                                       [block.keys[r] for r in rows], block.quality[rows]))
                seen |= {int(block.sighting_ids[r]) for r in rows}
        if not found:
            break
        blocks += found
        frontier = np.concatenate([b.embeddings for b in found])
    if len(blocks) == 1:
        return new
    return FaceBlock(np.concatenate([b.sighting_ids for b in blocks]), np.concatenate([b.embeddings for b in blocks]),
                     np.concatenate([b.cluster_ids for b in blocks]), [k for b in blocks for k in b.keys],
                     np.concatenate([b.quality for b in blocks]))


def _read(blocks: Iterator[FaceBlock], expected: int) -> FaceBlock | None:
    """The blocks as one, or None when there are none; filled into arrays of the ``expected`` size
    (a list of blocks joined at the end held every embedding twice)."""
    keys: list[str] = []
    X: NDArray[np.float32] | None = None
    n = 0
    for block in blocks:
        m = len(block.sighting_ids)
        if X is None:  # every array of one size: the first block may already outgrow the count
            size = max(expected, m)
            X = np.zeros((size, block.embeddings.shape[1]), np.float32)
            ids, clusters, quality = np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.float32)
        if n + m > len(X):  # faces stored since the count (a server's other writers)
            grow = n + m - len(X)
            X = np.concatenate([X, np.zeros((grow, X.shape[1]), np.float32)])
            ids, clusters, quality = (np.concatenate([a, np.zeros(grow, a.dtype)]) for a in (ids, clusters, quality))
        X[n : n + m], ids[n : n + m] = block.embeddings, block.sighting_ids
        clusters[n : n + m], quality[n : n + m] = block.cluster_ids, block.quality
        keys += block.keys
        n += m
    if X is None or n == 0:
        return None
    return FaceBlock(ids[:n], X[:n], clusters[:n], keys, quality[:n])


def _groups(blocks: Iterator[FaceBlock], keys: set[str], dim: int) -> KnownGroups:
    """The existing groups as sums, sizes and the images among ``keys`` they hold, a block at a time."""
    index: dict[int, int] = {}
    sums = np.zeros((16, dim), np.float32)
    counts = np.zeros(16, np.int64)
    members: list[set[str]] = []
    for block in blocks:
        values, inverse = np.unique(block.cluster_ids, return_inverse=True)
        for v in values.tolist():
            if v not in index:
                index[v] = len(index)
                members.append(set())
        if len(index) > len(sums):
            size = max(len(index), 2 * len(sums))
            sums = np.concatenate([sums, np.zeros((size - len(sums), dim), np.float32)])
            counts = np.concatenate([counts, np.zeros(size - len(counts), np.int64)])
        rows = np.array([index[v] for v in values.tolist()], dtype=np.int64)[inverse]
        np.add.at(sums, rows, block.embeddings)
        np.add.at(counts, rows, 1)
        for row, key in zip(rows.tolist(), block.keys):
            if key in keys:
                members[row].add(key)
    n = len(index)
    return KnownGroups(np.array(list(index), dtype=np.int64), sums[:n], counts[:n], members)


def name_cluster(store: Store, settings: Settings, cluster_id: int, name: str, consent: str, max_faces: int = 5,
                 actor: str = "cli") -> Enrollment:
    """Enroll a cluster as a person: its best faces become enrollments, all its faces get the name."""
    check_enrollment(name, consent)
    members = store.clusters.members(cluster_id)
    person = store.clusters.enroll(cluster_id, name.strip(), consent.strip(), [s for s, _ in members[:max_faces]],
                                   actor)
    identify(store, settings, enrolled=[s for s, _ in members[:max_faces]], renamed=[s for s, _ in members])
    return Enrollment(person, name.strip(), [s for s, _ in members[:max_faces]])


def assign_cluster(store: Store, settings: Settings, cluster_id: int, person: int, max_faces: int = 5,
                   actor: str = "cli") -> Enrollment:
    """Give a cluster to a person already enrolled (naming it with their name was refused as
    "already enrolled"): its best faces join their enrollments, all its faces get their name."""
    name = store.people.name_of(person)
    if name is None:
        raise NotFound(f"no enrolled person with id {person}")
    members = store.clusters.members(cluster_id)
    chosen = [s for s, _ in members[:max_faces]]
    store.clusters.assign(cluster_id, person, chosen, actor)
    identify(store, settings, enrolled=chosen, renamed=[s for s, _ in members])
    return Enrollment(person, name, chosen)


def merge_clusters(store: Store, keep: int, other: int, actor: str = "cli") -> int:
    """Move every face of cluster ``other`` into ``keep``; returns how many moved."""
    if keep == other:
        raise ConfigError(f"cannot merge cluster {keep} into itself: name two different clusters")
    store.clusters.members(keep)
    moved = len(store.clusters.members(other))
    store.clusters.merge(keep, other, actor)
    return moved


def dismiss_cluster(store: Store, settings: Settings, cluster_id: int, actor: str = "cli") -> int:
    """"Not a face": erase the embeddings and crops of a cluster's detections and keep them out of every group."""
    members = [m[0] for m in store.clusters.members(cluster_id)]
    store.clusters.dismiss(cluster_id, members, actor)
    sync_index(store, settings)
    store.compact()
    return len(members)


def split_cluster(store: Store, settings: Settings, cluster_id: int, actor: str = "cli") -> list[int]:
    """Re-cluster one cluster with ever stricter thresholds until it falls apart; returns the ids."""
    members = [m[0] for m in store.clusters.members(cluster_id)]
    rows = store.clusters.faces(members)
    X = np.array([r.embedding for r in rows], dtype=np.float32)
    threshold = thresholds(settings).cluster
    labels = np.zeros(len(rows), dtype=np.int64)
    while threshold < 0.999 and len(np.unique(labels)) < 2:
        threshold += 0.005
        labels = CentroidClustering(threshold, min_samples=1).fit(
            X, groups=[r.image_id for r in rows], quality=np.array([r.quality for r in rows], dtype=np.float32)).labels_
    groups = np.unique(labels)
    if len(groups) < 2:
        return [cluster_id]
    origins = store.clusters.origins([r.sighting_id for r in rows])
    homes = np.array([origins.get(r.sighting_id, cluster_id) for r in rows], dtype=np.int64)
    ids = _ids_after_split(store, cluster_id, labels, homes)
    new_of = [ids[int(label)] for label in labels]
    # A face back in its first cluster, or in a new one, has nowhere else to return to.
    fresh = set(ids.values()) - {cluster_id, *homes.tolist()}
    merged_from = [(r.sighting_id, None if home == new or new in fresh else int(home))
                   for r, home, new in zip(rows, homes.tolist(), new_of)]
    store.clusters.save_split(cluster_id, [(r.sighting_id, new) for r, new in zip(rows, new_of)],
                              len(groups), actor, merged_from)
    return sorted(ids.values())


def _ids_after_split(store: Store, cluster_id: int, labels: np.ndarray, homes: np.ndarray) -> dict[int, int]:
    """Which id each group of a split takes: ids of what stays are kept.

    The group with most faces that began in ``cluster_id`` keeps it; a group most of whose
    faces were merged in from another cluster gets that cluster's id back (unless it is in
    use again); the rest are numbered anew. Before, the first group kept the id whatever it
    held, so a merge then a split could swap the two groups' ids.
    """
    groups = sorted((int(g) for g in np.unique(labels)), key=lambda g: -int((labels == g).sum()))
    keeper = max(groups, key=lambda g: (int(((labels == g) & (homes == cluster_id)).sum()), int((labels == g).sum())))
    ids, taken = {keeper: cluster_id}, {cluster_id}
    next_id = store.clusters.top_id() + 1
    for g in groups:
        if g == keeper:
            continue
        values, counts = np.unique(homes[labels == g], return_counts=True)
        home = int(values[np.argmax(counts)])
        if home not in taken and not store.clusters.in_use(home):
            ids[g] = home
        else:
            ids[g], next_id = next_id, next_id + 1
        taken.add(ids[g])
    return ids
