"""Clusters of unknown faces: grouping, listing, naming (enrollment), merging, splitting, dismissing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..errors import ConfigError, NotFound
from ..store import people as sql
from ..store.base import Store, open_store, utcnow
from .calibration import model_of, thresholds
from .cluster import CentroidClustering
from .people import Enrollment, identify
from .search import sync_index


@dataclass(frozen=True)
class ClusterResult:
    faces: int
    """Unknown faces of good enough quality that were clustered."""
    clusters: int
    """Clusters with at least two faces."""
    new_faces: int


def _eligible(store: Store, settings: Settings) -> list[tuple[int, list[float], int | None, str, float]]:
    return store.con.execute(
        """SELECT sighting_id, embedding, cluster_id, image_id, quality FROM sightings
           WHERE person_id IS NULL AND embedding IS NOT NULL AND quality >= ? AND model = ?
             AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)
           ORDER BY sighting_id""",
        [settings.identify_min_quality, model_of(settings)],
    ).fetchall()


def cluster(settings: Settings, full: bool = False, actor: str = "cli") -> ClusterResult:
    """Group unknown faces into candidate identities.

    By default only faces without a cluster move: they join the group most of their similar
    neighbours belong to, or start new ones, and existing clusters keep their ids (names the
    owner already gave stay attached). ``full`` regroups everything from scratch.
    Low-quality faces are left out: their embeddings are too unreliable to group.
    """
    with open_store(settings.db) as store, store.exclusive("cluster"):  # one clustering at a time
        rows = _eligible(store, settings)
        if not rows:
            return ClusterResult(0, 0, 0)
        X = np.array([r[1] for r in rows], dtype=np.float32)
        previous = np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64)
        top = store.con.execute("SELECT coalesce(max(cluster_id), 0) FROM sightings").fetchone()
        base = int(top[0]) if top else 0
        fixed = np.full(len(rows), -1, dtype=np.int64) if full else previous
        found = CentroidClustering(thresholds(settings).cluster).fit(
            X, fixed, groups=[r[3] for r in rows], quality=np.array([r[4] for r in rows], dtype=np.float32)).labels_
        # Groups that did not grow out of an existing cluster get ids above every id in use.
        kept = {int(v) for v in fixed[fixed >= 0]}
        fresh: dict[int, int] = {}
        labels = []
        for value in map(int, found):
            if value not in kept and value not in fresh:
                fresh[value] = base + 1 + len(fresh)
            labels.append(value if value in kept else fresh[value])
        with store.transaction():
            for (sid, _, old, _, _), new in zip(rows, labels):
                if old != int(new):
                    store.con.execute("UPDATE sightings SET cluster_id = ? WHERE sighting_id = ?", [int(new), sid])
            store.audit(actor, "cluster", f"faces:{len(rows)}")
        sizes = np.unique(np.array(labels), return_counts=True)[1]
        return ClusterResult(len(rows), int((sizes >= 2).sum()), int((previous < 0).sum()))


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: int
    faces: int
    first_seen: object
    last_seen: object
    cameras: str


def list_clusters(settings: Settings, min_size: int = 2) -> list[ClusterRow]:
    with open_store(settings.db, read_only=True) as store:
        rows = store.con.execute(
            """SELECT s.cluster_id, count(*), min(i.taken_at), max(i.taken_at),
                      string_agg(DISTINCT i.camera, ', ' ORDER BY i.camera)
               FROM sightings s JOIN images i USING (image_id)
               WHERE s.cluster_id IS NOT NULL AND s.person_id IS NULL
               GROUP BY 1 HAVING count(*) >= ? ORDER BY 2 DESC, 1""",
            [min_size],
        ).fetchall()
    return [ClusterRow(*r) for r in rows]


def _cluster_members(store: Store, cluster_id: int) -> list[tuple[int, float]]:
    members = store.con.execute(
        "SELECT sighting_id, quality FROM sightings WHERE cluster_id = ? AND person_id IS NULL ORDER BY quality DESC",
        [cluster_id],
    ).fetchall()
    if not members:
        raise NotFound(f"no cluster {cluster_id} (see `facelake clusters`)")
    return [(int(s), float(q)) for s, q in members]


def name_cluster(settings: Settings, cluster_id: int, name: str, consent: str, max_faces: int = 5,
                 actor: str = "cli") -> Enrollment:
    """Enroll a cluster as a person: its best faces become enrollments, all its faces get the name."""
    if not consent.strip():
        raise ConfigError("--consent is required: note how and when this person agreed to be recognised")
    with open_store(settings.db) as store:
        members = _cluster_members(store, cluster_id)
        with store.transaction():
            person = sql.add_person(store, name.strip(), consent.strip())
            store.audit(actor, "add_person", f"person:{person} from cluster:{cluster_id}")
            for sid, _ in members[:max_faces]:
                sql.enroll(store, person, sid, actor=actor)
            store.con.execute("UPDATE sightings SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])
    identify(settings)
    return Enrollment(person, name.strip(), [s for s, _ in members[:max_faces]])


def merge_clusters(settings: Settings, keep: int, other: int, actor: str = "cli") -> int:
    """Move every face of cluster ``other`` into ``keep``; returns how many moved."""
    with open_store(settings.db) as store:
        _cluster_members(store, keep)
        moved = len(_cluster_members(store, other))
        with store.transaction():
            store.con.execute("UPDATE sightings SET cluster_id = ? WHERE cluster_id = ?", [keep, other])
            store.audit(actor, "merge_clusters", f"cluster:{other} into cluster:{keep}")
    return moved


def dismiss_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> int:
    """"Not a face": erase the embeddings and crops of a cluster's detections and keep them out of every group."""
    with open_store(settings.db) as store:
        members = [m[0] for m in _cluster_members(store, cluster_id)]
        with store.transaction():
            for sid in members:
                store.con.execute("INSERT INTO not_faces VALUES (?, ?) ON CONFLICT DO NOTHING", [sid, utcnow()])
            store.con.execute("DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings "
                              "WHERE cluster_id = ? AND person_id IS NULL)", [cluster_id])
            store.con.execute("UPDATE sightings SET embedding = NULL, thumb = NULL, cluster_id = NULL "
                              "WHERE cluster_id = ? AND person_id IS NULL", [cluster_id])
            store.audit(actor, "dismiss_cluster", f"cluster:{cluster_id} faces:{len(members)}")
        sync_index(store, settings)
    return len(members)


def split_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> list[int]:
    """Re-cluster one cluster with ever stricter thresholds until it falls apart; returns the ids."""
    with open_store(settings.db) as store:
        members = [m[0] for m in _cluster_members(store, cluster_id)]
        rows = store.con.execute(
            f"SELECT sighting_id, embedding, image_id, quality FROM sightings "
            f"WHERE sighting_id IN ({','.join('?' * len(members))})",
            members,
        ).fetchall()
        X = np.array([r[1] for r in rows], dtype=np.float32)
        threshold = thresholds(settings).cluster
        labels = np.zeros(len(rows), dtype=np.int64)
        while threshold < 0.999 and len(np.unique(labels)) < 2:
            threshold += 0.005
            labels = CentroidClustering(threshold).fit(
                X, groups=[r[2] for r in rows], quality=np.array([r[3] for r in rows], dtype=np.float32)).labels_
        groups = np.unique(labels)
        if len(groups) < 2:
            return [cluster_id]
        top = store.con.execute("SELECT coalesce(max(cluster_id), 0) FROM sightings").fetchone()
        next_id = (int(top[0]) if top else 0) + 1
        ids = {int(groups[0]): cluster_id}
        for g in groups[1:]:
            ids[int(g)], next_id = next_id, next_id + 1
        with store.transaction():
            for (sid, *_), label in zip(rows, labels):
                store.con.execute("UPDATE sightings SET cluster_id = ? WHERE sighting_id = ?", [ids[int(label)], sid])
            store.audit(actor, "split_cluster", f"cluster:{cluster_id} into {len(groups)}")
    return sorted(ids.values())
