"""Clusters of unknown faces in SQL (``store.clusters``): the faces to group, the groups, their edits.

The grouping itself (``identities.clustering``) is pure arithmetic over the rows read here;
what it decides comes back as ``(sighting_id, cluster_id)`` pairs, written in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import NotFound
from .connection import Sql, marks, utcnow, value_rows
from .erasures import Erasures
from .people import People


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: int
    faces: int
    first_seen: object
    last_seen: object
    cameras: str


@dataclass(frozen=True)
class FaceBlock:
    """Unknown faces as clustering sees them, a block of rows as arrays (one row per face)."""

    sighting_ids: NDArray[np.int64]
    embeddings: NDArray[np.float32]
    """``(rows, dim)``: a clip's track is its template."""
    cluster_ids: NDArray[np.int64]
    """``-1``: no group yet."""
    keys: list[str]
    """What "two faces of one image never share a cluster" is judged on: a photo's image id, or
    for a clip's track its own key (two tracks of one clip may be one person coming back)."""
    quality: NDArray[np.float32]


@dataclass(frozen=True)
class ClusterFace:
    """An unknown face as clustering sees it: ``cluster_id`` is ``None`` until it is grouped."""

    sighting_id: int
    embedding: list[float]
    cluster_id: int | None
    image_id: str
    """What "two faces of one image never share a cluster" is judged on: a photo's image id, or
    for a clip's track its own key (two tracks of one clip may be one person coming back)."""
    quality: float


_UNKNOWN = """WITH f AS (
    SELECT s.sighting_id, s.embedding, t.template, s.cluster_id, s.image_id, s.track_id, s.quality, {stored}
    FROM sightings s {images} LEFT JOIN tracks t ON t.track_id = s.track_id
    WHERE s.person_id IS NULL AND s.embedding IS NOT NULL AND s.quality >= ? AND s.model = ?
      AND (s.recognisability IS NULL OR s.recognisability >= ?)
      AND s.sighting_id NOT IN (SELECT sighting_id FROM enrollments)
      AND (s.track_id IS NULL OR t.best_sighting_id = s.sighting_id))"""
"""The faces clustering may group (``Clusters.unknown_faces``), as a CTE ``f``; see :func:`_unknown`."""

_PARTS = {
    "all": "",
    "free": "WHERE cluster_id IS NULL OR cluster_id IN (SELECT cluster_id FROM f GROUP BY 1 HAVING count(*) < 2)",
    "grouped": "WHERE cluster_id IN (SELECT cluster_id FROM f GROUP BY 1 HAVING count(*) >= 2)",
    "new": "WHERE (cluster_id IS NULL AND stored_at > ?) "
           "OR cluster_id IN (SELECT cluster_id FROM f GROUP BY 1 HAVING count(*) < 2)",
    "alone": "WHERE cluster_id IS NULL AND stored_at <= ?",
}
_UNGROUPING = ("unname", "remove_person", "reembed")
"""Audited edits that can leave a face stored before a clustering run unknown and ungrouped."""


def _unknown(part: str) -> str:
    """``_UNKNOWN`` for ``part``: with when each face was stored only where the part needs it (the
    join to ``images`` cost DuckDB 300 MB at a million faces)."""
    if part in ("new", "alone"):
        return _UNKNOWN.format(stored="i.ingested_at AS stored_at", images="JOIN images i ON i.image_id = s.image_id")
    return _UNKNOWN.format(stored="NULL AS stored_at", images="")


def _params(min_quality: float, model: str, min_recognisability: float, part: str,
            since: datetime | None) -> list[object]:
    if part in ("new", "alone") and since is None:
        raise ValueError(f"part {part!r} needs since")
    return [min_quality, model, min_recognisability, *([since] if part in ("new", "alone") else [])]


class Clusters:
    """The ``cluster_id`` column of unknown faces, and the ``not_faces`` table."""

    def __init__(self, sql: Sql, people: People) -> None:
        self._sql = sql
        self._people = people

    def unknown_faces(self, min_quality: float, model: str, min_recognisability: float = 0.0,
                      part: str = "all", size: int = 20_000, since: datetime | None = None) -> Iterator[FaceBlock]:
        """Unknown faces of ``model`` good enough to group (not enrolled, recognisable), in blocks
        of up to ``size`` rows as numpy arrays, in no particular order.

        ``part`` picks which: ``"all"``; ``"free"`` (no group yet, or alone in theirs: a group of
        one is no evidence, so it is grouped again); ``"grouped"`` (in a group of at least two:
        what an incremental run reads to know the groups, never to move them); ``"new"`` (no group
        and stored after ``since``, or alone in their group) and ``"alone"`` (no group, stored by
        ``since``): an incremental run looks at the new, and at the alone only near them.

        A clip's track takes part once, as its best sighting carrying the track's template: one
        person walking past is one face of evidence, not three, and the template is the better
        estimate of who they are. Its cluster then goes to every face of the track (:meth:`_assign`).
        Why blocks: as rows of Python floats, a million embeddings held over 10 GB.
        """
        if part not in _PARTS:
            raise ValueError(f"part must be one of {sorted(_PARTS)}, got {part!r}")
        for b in self._sql.batches(f"{_unknown(part)} SELECT * FROM f {_PARTS[part]}",
                                   _params(min_quality, model, min_recognisability, part, since), size,
                                   vectors=("embedding", "template")):
            X, T = b["embedding"], b["template"]
            if T.shape == X.shape:  # a track's template where it has one
                has = ~np.isnan(T).any(axis=1)
                X[has] = T[has]
            yield FaceBlock(np.array(b["sighting_id"], dtype=np.int64), X,
                            np.array([-1 if c is None else c for c in b["cluster_id"]], dtype=np.int64),
                            [i if t is None else f"{i}#track{t}" for i, t in zip(b["image_id"], b["track_id"])],
                            np.array(b["quality"], dtype=np.float32))

    def count_unknown(self, min_quality: float, model: str, min_recognisability: float = 0.0,
                      part: str = "all", since: datetime | None = None) -> tuple[int, int]:
        """How many faces :meth:`unknown_faces` reads for ``part``, and how many groups of at least
        two faces they make."""
        row = self._sql.one(f"{_unknown(part)}, p AS (SELECT * FROM f {_PARTS[part]}) "
                            "SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM (SELECT cluster_id FROM p "
                            "WHERE cluster_id IS NOT NULL GROUP BY 1 HAVING count(*) >= 2) g)",
                            _params(min_quality, model, min_recognisability, part, since))
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def last_run(self, rule: str) -> datetime | None:
        """When the last clustering run under ``rule`` (model, threshold, gates) began, or None when
        there was none, another rule ran last, or an edit since (``unname``, ``people remove``,
        ``reembed``) may have left older faces ungrouped: then every ungrouped face is new again."""
        row = self._sql.one("""SELECT subject FROM audit WHERE action = 'cluster' ORDER BY "at" DESC LIMIT 1""")
        if row is None or row[0] is None or not str(row[0]).endswith(f" rule:{rule}") or " started:" not in str(row[0]):
            return None
        started = datetime.fromisoformat(str(row[0]).split(" started:")[1].split()[0])
        edits = self._sql.count(f"""SELECT count(*) FROM audit WHERE action IN ({marks(len(_UNGROUPING))})
                                    AND "at" >= ?""", [*_UNGROUPING, started])
        return None if edits else started

    def faces(self, sightings: Sequence[int]) -> list[ClusterFace]:
        """The given sightings as clustering sees them."""
        return [ClusterFace(*r) for r in self._sql.all(
            f"SELECT sighting_id, embedding, cluster_id, image_id, quality FROM sightings "
            f"WHERE sighting_id IN ({marks(len(sightings))})", list(sightings))]

    def top_id(self) -> int:
        """The highest cluster id in use, or kept for a split to give back (0 when none): new groups
        are numbered above it."""
        return self._sql.count("SELECT coalesce(max(greatest(coalesce(cluster_id, 0), coalesce(merged_from, 0))), 0) "
                               "FROM sightings")

    def origins(self, sightings: Sequence[int]) -> dict[int, int]:
        """The cluster each of ``sightings`` was merged from (absent: it is in the cluster it began in)."""
        return {int(r[0]): int(r[1]) for r in self._sql.all(
            f"SELECT sighting_id, merged_from FROM sightings WHERE merged_from IS NOT NULL "
            f"AND sighting_id IN ({marks(len(sightings))})", list(sightings))}

    def in_use(self, cluster_id: int) -> bool:
        return self._sql.count("SELECT count(*) FROM sightings WHERE cluster_id = ?", [cluster_id]) > 0

    def _assign(self, labels: Sequence[tuple[int, int | None]], chunk: int = 1000) -> None:
        """Each ``(sighting_id, cluster_id)`` (None: no group); a track's best sighting takes its track and
        its other faces along. The pairs go into a temporary table, then three statements apply
        them: a first run at a million faces writes them all, and one statement per face (three
        with its track) took minutes, a few hundred per ``UPDATE ... FROM VALUES`` still 85 s."""
        if not labels:
            return
        self._sql.execute("CREATE TEMP TABLE IF NOT EXISTS new_groups (sid BIGINT, cid BIGINT)")
        self._sql.execute("DELETE FROM new_groups")
        for start in range(0, len(labels), chunk):
            part = labels[start : start + chunk]
            self._sql.execute(f"INSERT INTO new_groups VALUES {value_rows(len(part), 2)}",
                              [x for sighting, cluster in part
                               for x in (int(sighting), None if cluster is None else int(cluster))])
        self._sql.execute("UPDATE sightings SET cluster_id = g.cid FROM new_groups g WHERE sightings.sighting_id = g.sid")
        self._sql.execute("""UPDATE sightings SET cluster_id = g.cid FROM new_groups g, tracks t
                             WHERE t.best_sighting_id = g.sid AND sightings.track_id = t.track_id""")
        self._sql.execute("UPDATE tracks SET cluster_id = g.cid FROM new_groups g WHERE tracks.best_sighting_id = g.sid")
        self._sql.execute("DELETE FROM new_groups")

    def save_grouping(self, labels: Sequence[tuple[int, int | None]], faces: int, actor: str,
                      started: datetime | None = None, rule: str = "") -> None:
        """Write a clustering run's changed ``(sighting_id, cluster_id)`` pairs (None: left alone) and audit
        the run, with when it began and under which ``rule`` (what :meth:`last_run` reads)."""
        with self._sql.transaction():
            self._assign(labels)
            when = "" if started is None else f" started:{started.isoformat()} rule:{rule}"
            self._sql.audit(actor, "cluster", f"faces:{faces}{when}")

    def save_split(self, cluster_id: int, labels: Sequence[tuple[int, int | None]], groups: int, actor: str,
                   merged_from: Sequence[tuple[int, int | None]] = ()) -> None:
        """Write a split's ``(sighting_id, cluster_id)`` pairs and each face's new ``merged_from``, and audit it."""
        with self._sql.transaction():
            self._assign(labels)
            for sighting, origin in merged_from:
                self._sql.execute("UPDATE sightings SET merged_from = ? WHERE sighting_id = ?", [origin, sighting])
            self._sql.audit(actor, "split_cluster", f"cluster:{cluster_id} into {groups}")

    def listing(self, min_size: int = 2, limit: int | None = None, offset: int = 0) -> list[ClusterRow]:
        """Clusters of at least ``min_size`` unknown faces, largest first; ``limit`` of them from
        ``offset`` (a page: the counts are one grouped pass, but each listed cluster's faces are
        read by the caller, and a site with thousands of groups made that thousands of reads)."""
        return [ClusterRow(*r) for r in self._sql.all(
            """SELECT s.cluster_id, count(*), min(i.taken_at), max(i.taken_at),
                      string_agg(DISTINCT i.camera, ', ' ORDER BY i.camera)
               FROM sightings s JOIN images i USING (image_id)
               WHERE s.cluster_id IS NOT NULL AND s.person_id IS NULL
               GROUP BY 1 HAVING count(*) >= ? ORDER BY 2 DESC, 1 LIMIT ? OFFSET ?""",
            [min_size, limit, offset])]

    def members(self, cluster_id: int) -> list[tuple[int, float]]:
        """``(sighting_id, quality)`` of a cluster's unknown faces, best first; raises if there are none."""
        members = self._sql.all(
            "SELECT sighting_id, quality FROM sightings WHERE cluster_id = ? AND person_id IS NULL "
            "ORDER BY quality DESC",
            [cluster_id])
        if not members:
            raise NotFound(f"no cluster {cluster_id} (listed by `facelake clusters` and GET /api/clusters)")
        return [(int(s), float(q)) for s, q in members]

    def best_faces(self, cluster_id: int, limit: int = 12) -> list[int]:
        """Sighting ids of a cluster's best faces that still have a crop (for face grids)."""
        return self.best_faces_of([cluster_id], limit).get(cluster_id, [])

    def best_faces_of(self, cluster_ids: Sequence[int], limit: int = 12) -> dict[int, list[int]]:
        """:meth:`best_faces` of several clusters in one statement (a page of ``/clusters``).

        Why: a page read its 25 clusters' faces one statement each, and at a million sightings
        those round trips were half of the page's time on PostgreSQL.
        """
        if not cluster_ids:
            return {}
        ids = [int(c) for c in cluster_ids]
        out: dict[int, list[int]] = {c: [] for c in ids}
        for cluster, sighting in self._sql.all(*self._best_faces_query(ids, limit)):
            out[int(cluster)].append(int(sighting))
        return out

    def _best_faces_query(self, ids: list[int], limit: int) -> tuple[str, list[Any]]:
        """``(cluster_id, sighting_id)`` rows, each cluster's best first: a window over the clusters' faces."""
        return (f"""SELECT cluster_id, sighting_id FROM (
                        SELECT cluster_id, sighting_id, row_number() OVER (
                                   PARTITION BY cluster_id ORDER BY quality DESC, sighting_id) AS rank
                        FROM sightings
                        WHERE cluster_id IN ({marks(len(ids))})
                          AND person_id IS NULL AND thumb IS NOT NULL) AS ranked
                    WHERE rank <= ? ORDER BY cluster_id, rank""", [*ids, limit])

    def enroll(self, cluster_id: int, name: str, consent: str, faces: Sequence[int], actor: str) -> int:
        """Enroll a cluster as a new person in one transaction: ``faces`` become their
        enrollments, every face of the cluster gets the name; returns the person's id."""
        with self._sql.transaction():
            person = self._people.add(name, consent)
            self._sql.audit(actor, "add_person", f"person:{person} from cluster:{cluster_id}")
            for sighting in faces:
                self._people.enroll(person, sighting, actor=actor)
            self._sql.execute("UPDATE sightings SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])
            self._sql.execute("UPDATE tracks SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])
        return person

    def assign(self, cluster_id: int, person: int, faces: Sequence[int], actor: str) -> None:
        """Give a cluster to a person already enrolled, in one transaction: ``faces`` join their
        enrollments, every face of the cluster gets their name."""
        with self._sql.transaction():
            self._sql.lock_person(person)
            self._sql.audit(actor, "assign_cluster", f"cluster:{cluster_id} person:{person}")
            for sighting in faces:
                self._people.enroll(person, sighting, actor=actor)
            self._sql.execute("UPDATE sightings SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])
            self._sql.execute("UPDATE tracks SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])

    def merge(self, keep: int, other: int, actor: str) -> None:
        """Move every face of cluster ``other`` into ``keep``."""
        with self._sql.transaction():
            # Each face remembers where it came from (a face merged twice, its first cluster), so a
            # split of ``keep`` later gives ``other`` its id back instead of numbering it anew.
            self._sql.execute("UPDATE sightings SET merged_from = coalesce(merged_from, cluster_id), cluster_id = ? "
                              "WHERE cluster_id = ?", [keep, other])
            self._sql.execute("UPDATE tracks SET cluster_id = ? WHERE cluster_id = ?", [keep, other])
            self._sql.audit(actor, "merge_clusters", f"cluster:{other} into cluster:{keep}")

    def dismiss(self, cluster_id: int, members: Sequence[int], actor: str) -> None:
        """"Not a face": erase a cluster's embeddings, crops and contexts, and keep them out of every group."""
        with self._sql.transaction():
            self._sql.erasing()
            for sighting in members:
                self._sql.execute("INSERT INTO not_faces VALUES (?, ?) ON CONFLICT DO NOTHING", [sighting, utcnow()])
            Erasures(self._sql).record_faces("cluster_id = ? AND person_id IS NULL", [cluster_id])
            self._sql.execute("DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings "
                              "WHERE cluster_id = ? AND person_id IS NULL)", [cluster_id])
            self._sql.execute("UPDATE sightings SET embedding = NULL, thumb = NULL, cluster_id = NULL "
                              "WHERE cluster_id = ? AND person_id IS NULL", [cluster_id])
            self._sql.execute("UPDATE tracks SET template = NULL, still = NULL, cluster_id = NULL "
                              "WHERE cluster_id = ? AND person_id IS NULL", [cluster_id])
            self._sql.audit(actor, "dismiss_cluster", f"cluster:{cluster_id} faces:{len(members)}")
