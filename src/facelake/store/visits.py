"""Visits and tracks as the reports see them (``store.visits``) — one SQL for both engines.

A *visit* is a run of tracks of one identity on one camera, each starting no more than
``gap_s`` seconds after the tracks before it ended. It is computed when asked, never stored:
naming a group of faces, merging clusters or changing the gap setting redraws every visit at
once, with nothing to keep in step.

Who a track is, for grouping:

- the person of the track (named once, by its template), else the person of its best
  sighting (faces named after the clip was stored, by ``identify`` once someone is
  enrolled); a person erased since counts as no person;
- otherwise the track's cluster, else its best sighting's (clustering groups sightings);
- otherwise nobody: such a track is a visit of its own. Two unknown, ungrouped faces have
  nothing known in common, and joining them would make one "visit" out of strangers.

The SQL is the classic gaps-and-islands: per (identity, camera), in start order, the
furthest end reached by the earlier tracks (a running ``max`` over the preceding rows, so a
long track swallowing short ones keeps the visit open); a track starting more than the gap
after that opens a new visit; a running sum of those openings numbers the visits. Times are
compared as epoch seconds (``EXTRACT(EPOCH …)``, which both engines have) so the gap is a
plain number of seconds. Tracks without a capture time (none today: a clip's time falls back
to its file's mtime) cannot be placed in time and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .connection import Sql, marks


@dataclass(frozen=True)
class VisitRow:
    """One visit: an identity's run of tracks on one camera."""

    person_id: int | None
    person: str | None
    cluster_id: int | None
    camera: str | None
    started_at: datetime
    ended_at: datetime
    tracks: int
    frames: int
    best_sighting_id: int | None
    """The best face of the visit (the highest-quality best face of its tracks)."""
    first_track_id: int

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class VisitTotal:
    """A named person's visits in a window: how many, and their time in all."""

    person_id: int
    person: str
    visits: int
    seconds: float
    tracks: int


@dataclass(frozen=True)
class TrackRow:
    """One track as the dashboard's timeline shows it, with its kept faces (best first)."""

    track_id: int
    image_id: str
    uri: str
    camera: str | None
    started_at: datetime | None
    ended_at: datetime | None
    start_s: float
    end_s: float
    frames: int
    person_id: int | None
    person: str | None
    cluster_id: int | None
    match_score: float | None
    best_sighting_id: int | None
    faces: tuple[int, ...]
    """Sighting ids of the track's faces that still have a crop, best quality first."""
    has_still: bool = False
    """Whether the frame at its best face is kept (``/api/tracks/{id}/still``)."""


_IDENTIFIED = """
    SELECT t.track_id, t.image_id, t.camera, t.started_at, coalesce(t.ended_at, t.started_at) AS ended_at,
           t.start_s, t.end_s, t.frames, t.match_score, t.best_sighting_id, b.quality, t.still IS NOT NULL AS has_still,
           p.person_id, p.name AS person,
           CASE WHEN p.person_id IS NULL THEN coalesce(t.cluster_id, b.cluster_id) END AS cluster_id
    FROM tracks t
    LEFT JOIN sightings b ON b.sighting_id = t.best_sighting_id
    LEFT JOIN people p ON p.person_id = coalesce(t.person_id, b.person_id)
"""
"""Every track with who it is (see the module docstring): the person, else the cluster."""

_FILTER = """(? IS NULL OR t.camera = ?)
      AND (? IS NULL OR p.person_id = ?)"""
"""Camera and person filters (``? IS NULL OR …``: one statement serves every combination)."""

_VISITS = f"""
    WITH k AS (
        SELECT w.*, CASE WHEN w.person_id IS NULL AND w.cluster_id IS NULL THEN w.track_id END AS lone
        FROM ({_IDENTIFIED} WHERE t.started_at IS NOT NULL AND {_FILTER}) w
        WHERE (? IS NULL OR w.cluster_id = ?)
    ), reach AS (
        SELECT k.*, max(ended_at) OVER (PARTITION BY person_id, cluster_id, lone, camera
                                        ORDER BY started_at, track_id
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reached
        FROM k
    ), numbered AS (
        SELECT reach.*, sum(CASE WHEN reached IS NULL
                                   OR EXTRACT(EPOCH FROM started_at) - EXTRACT(EPOCH FROM reached) > ?
                                 THEN 1 ELSE 0 END)
                            OVER (PARTITION BY person_id, cluster_id, lone, camera ORDER BY started_at, track_id
                                  ROWS UNBOUNDED PRECEDING) AS visit
        FROM reach
    ), ranked AS (
        SELECT numbered.*, row_number() OVER (PARTITION BY person_id, cluster_id, lone, camera, visit
                                              ORDER BY quality DESC NULLS LAST, track_id) AS best
        FROM numbered
    ), v AS (
        SELECT person_id, min(person) AS person, cluster_id, camera, min(started_at) AS started_at,
               max(ended_at) AS ended_at, count(*) AS tracks, sum(frames) AS frames,
               min(CASE WHEN best = 1 THEN best_sighting_id END) AS best_sighting_id, min(track_id) AS first_track_id
        FROM ranked
        GROUP BY person_id, cluster_id, lone, camera, visit
        HAVING ? IS NULL OR max(ended_at) >= ?
    )
"""
"""The visits (``v``) of the tracks passing the filters; parameters from :func:`_visit_params`."""


def _visit_params(gap_s: float, person: int | None, camera: str | None, cluster: int | None,
                  since: datetime | None) -> list[Any]:
    return [camera, camera, person, person, cluster, cluster, float(gap_s), since, since]


class Visits:
    """Read-only: visits computed from ``tracks``, and the tracks themselves with their faces."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def listing(self, gap_s: float, person: int | None = None, camera: str | None = None,
                cluster: int | None = None, since: datetime | None = None, limit: int = 500,
                before: tuple[datetime, int] | None = None) -> list[VisitRow]:
        """Visits, newest first. ``since`` keeps the visits still going on at or after it (a
        visit is cut by nothing but the gap, so one that began before ``since`` keeps its start).

        Paged by keyset: ``before`` is the ``(started_at, first_track_id)`` of the last visit of
        the page before; a person seen every day for a year has hundreds of visits, and the
        pages showed the first 200 and stopped.
        """
        if not self.any():
            return []
        start, track = before if before is not None else (None, None)
        rows = self._sql.all(
            f"""{_VISITS}
                SELECT person_id, person, cluster_id, camera, started_at, ended_at, tracks, frames,
                       best_sighting_id, first_track_id
                FROM v WHERE CAST(? AS TIMESTAMP) IS NULL OR started_at < ? OR (started_at = ? AND first_track_id < ?)
                ORDER BY started_at DESC, first_track_id DESC LIMIT ?""",
            [*_visit_params(gap_s, person, camera, cluster, since), start, start, start, track, limit])
        return [VisitRow(_int(r[0]), r[1], _int(r[2]), r[3], r[4], r[5], int(r[6]), int(r[7]), _int(r[8]), int(r[9]))
                for r in rows]

    def totals(self, gap_s: float, camera: str | None = None, since: datetime | None = None) -> list[VisitTotal]:
        """Per named person: visits and their time in all, most visits first."""
        if not self.any():
            return []
        rows = self._sql.all(
            f"""{_VISITS}
                SELECT person_id, min(person), count(*),
                       sum(EXTRACT(EPOCH FROM ended_at) - EXTRACT(EPOCH FROM started_at)), sum(tracks)
                FROM v WHERE person_id IS NOT NULL
                GROUP BY person_id ORDER BY 3 DESC, 2""",
            _visit_params(gap_s, None, camera, None, since))
        return [VisitTotal(int(r[0]), str(r[1]), int(r[2]), float(r[3] or 0.0), int(r[4])) for r in rows]

    def tracks(self, person: int | None = None, camera: str | None = None, since: datetime | None = None,
               limit: int = 50, faces: int = 5) -> list[TrackRow]:
        """Tracks, newest first, each with up to ``faces`` of its kept faces (those with a crop)."""
        if not self.any():
            return []
        rows = self._sql.all(
            f"""SELECT w.track_id, w.image_id, i.uri, w.camera, w.started_at, w.ended_at, w.start_s, w.end_s,
                       w.frames, w.person_id, w.person, w.cluster_id, w.match_score, w.best_sighting_id, w.has_still
                FROM ({_IDENTIFIED} WHERE {_FILTER} AND (? IS NULL OR t.ended_at >= ?)) w
                JOIN images i ON i.image_id = w.image_id
                ORDER BY w.started_at DESC NULLS LAST, w.track_id DESC LIMIT ?""",
            [camera, camera, person, person, since, since, limit])
        kept = self._faces([int(r[0]) for r in rows], faces)
        return [TrackRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], float(r[6]), float(r[7]), int(r[8]), _int(r[9]),
                         r[10], _int(r[11]), None if r[12] is None else float(r[12]), _int(r[13]),
                         tuple(kept.get(int(r[0]), ())[:faces]), bool(r[14]))
                for r in rows]

    def any(self) -> bool:
        """Whether any track is stored: a site of photos only has none, and the visit queries, which
        join tracks to sightings, cost 3-9 ms at a million sightings even then."""
        return self._sql.one("SELECT 1 FROM tracks LIMIT 1") is not None

    def count(self) -> int:
        """How many tracks are stored (pages with none show photos only)."""
        return self._sql.count("SELECT count(*) FROM tracks")

    def _faces(self, track_ids: Sequence[int], most: int) -> dict[int, list[int]]:
        if not track_ids:
            return {}
        out: dict[int, list[int]] = {}
        for track, sighting in self._sql.all(
                f"""SELECT track_id, sighting_id FROM sightings
                    WHERE track_id IN ({marks(len(track_ids))}) AND thumb IS NOT NULL
                    ORDER BY track_id, quality DESC, sighting_id""", list(track_ids)):
            faces = out.setdefault(int(track), [])
            if len(faces) < most:
                faces.append(int(sighting))
        return out


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
