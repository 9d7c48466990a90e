"""Clusters of unknown faces, the orchestration side: grouping, naming (enrollment), merging,
splitting, dismissing. Each function is one unit of work on the store it is handed; the
grouping arithmetic is ``clustering``, the SQL ``store.clusters`` (``store/clusters.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..errors import ConfigError, NotFound
from ..store import Store
from ..vision.recognisability import recognisability
from .clustering import CentroidClustering
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


def cluster(store: Store, settings: Settings, full: bool = False, actor: str = "cli") -> ClusterResult:
    """Group unknown faces into candidate identities.

    By default only faces without a cluster move: they join the group most of their similar
    neighbours belong to, or start new ones, and existing clusters keep their ids (names the
    owner already gave stay attached). ``full`` regroups everything from scratch.
    Low-quality and unrecognisable faces are left out: their embeddings are too unreliable to
    group. A group starts only from ``CentroidClustering.min_samples`` mutually close faces, or
    from two far closer ones that are both clearly recognisable (``Thresholds.cluster_pair``, at
    ``enroll_min_recognisability``: the level an enrolled face needs);
    a face with no group yet keeps ``cluster_id`` NULL and is looked at again next run.
    """
    with store.exclusive("cluster"):  # one clustering at a time
        rows = store.clusters.unknown_faces(settings.identify_min_quality, model_of(settings),
                                            settings.min_recognisability)
        if not rows:
            return ClusterResult(0, 0, 0)
        X = np.array([r.embedding for r in rows], dtype=np.float32)
        previous = np.array([-1 if r.cluster_id is None else r.cluster_id for r in rows], dtype=np.int64)
        base = store.clusters.top_id()
        fixed = np.full(len(rows), -1, dtype=np.int64) if full else previous
        t = thresholds(settings)
        clear_at = max(settings.enroll_min_recognisability, settings.min_recognisability)
        clear = np.array([v is not None and v >= clear_at for v in recognisability(model_of(settings), X)])
        found = CentroidClustering(t.cluster, pair_threshold=t.cluster_pair).fit(
            X, fixed, groups=[r.image_id for r in rows],
            quality=np.array([r.quality for r in rows], dtype=np.float32), clear=clear).labels_
        # Groups that did not grow out of an existing cluster get ids above every id in use.
        kept = {int(v) for v in fixed[fixed >= 0]}
        fresh: dict[int, int] = {}
        labels: list[int | None] = []
        for value in map(int, found):
            if value < 0:
                labels.append(None)
                continue
            if value not in kept and value not in fresh:
                fresh[value] = base + 1 + len(fresh)
            labels.append(value if value in kept else fresh[value])
        store.clusters.save_grouping([(r.sighting_id, new) for r, new in zip(rows, labels)
                                      if r.cluster_id != new], len(rows), actor)
        sizes = np.unique(np.array([v for v in labels if v is not None], dtype=np.int64), return_counts=True)[1]
        grouped = sum(1 for r, new in zip(rows, labels) if r.cluster_id is None and new is not None)
        return ClusterResult(len(rows), int((sizes >= 2).sum()), grouped)


def name_cluster(store: Store, settings: Settings, cluster_id: int, name: str, consent: str, max_faces: int = 5,
                 actor: str = "cli") -> Enrollment:
    """Enroll a cluster as a person: its best faces become enrollments, all its faces get the name."""
    check_enrollment(name, consent)
    members = store.clusters.members(cluster_id)
    person = store.clusters.enroll(cluster_id, name.strip(), consent.strip(), [s for s, _ in members[:max_faces]],
                                   actor)
    identify(store, settings)
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
    identify(store, settings)
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
