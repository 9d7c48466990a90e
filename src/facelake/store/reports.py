"""The queries behind ``facelake stats``, the dashboard, the API's listings and the HTML report
(``store.reports``) — written once, for both engines.

Every listing of sightings leaves out the enrollment photos (camera ``enrollment``): they
are the owner's reference pictures, not something a camera saw. ``camera`` and ``since``
filter when given (``? IS NULL OR …``: one statement serves both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..vision.recognisability import GATE, recognisable
from .connection import Sql

_WINDOW = "i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?) AND (? IS NULL OR i.taken_at >= ?)"
"""The camera / start-time filter of the report queries; its parameters come from :func:`_window`."""


def _window(camera: str | None, since: datetime | None) -> list[Any]:
    return [camera, camera, since, since]


@dataclass(frozen=True)
class SightingRow:
    sighting_id: int
    image_id: str
    uri: str
    camera: str | None
    taken_at: datetime | None
    box: list[float]
    det_score: float
    quality: float
    person_id: int | None
    person: str | None
    cluster_id: int | None
    match_score: float | None
    has_crop: bool
    recognisability: float | None = None

    @property
    def unclear(self) -> bool:
        """Below the default recognisability gate: stored, but never named or grouped (shown as "unclear")."""
        return not recognisable(self.recognisability, GATE)


@dataclass(frozen=True)
class GpsPoint:
    """One GPS-tagged image with its faces: how many, and the names among them."""

    lat: float
    lon: float
    camera: str | None
    taken_at: datetime | None
    faces: int
    names: str | None


Table = tuple[list[str], list[tuple[Any, ...]]]
"""Column names and rows."""

_STATS = {
    "per_camera": """
        SELECT i.camera, count(*) FILTER (WHERE i.status = 'ok') AS images,
               count(*) FILTER (WHERE i.status = 'error') AS failed,
               coalesce(sum(f.n), 0)::BIGINT AS faces,
               min(i.taken_at) AS first_seen, max(i.taken_at) AS last_seen
        FROM images i LEFT JOIN (SELECT image_id, count(*) AS n FROM sightings GROUP BY 1) f USING (image_id)
        GROUP BY 1 ORDER BY 1""",
    "per_day": """
        SELECT CAST(i.taken_at AS DATE) AS day, i.camera,
               count(*) FILTER (WHERE i.status = 'ok') AS images,
               coalesce(sum(f.n), 0)::BIGINT AS faces
        FROM images i LEFT JOIN (SELECT image_id, count(*) AS n FROM sightings GROUP BY 1) f USING (image_id)
        WHERE i.status = 'ok'
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "per_model": """
        SELECT model, count(*) AS faces, count(embedding) AS embeddings,
               count(*) FILTER (WHERE person_id IS NOT NULL) AS named
        FROM sightings GROUP BY 1 ORDER BY 1""",
}


class Reports:
    """Read-only summaries over images, sightings and people."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def _table(self, sql: str) -> Table:
        cur = self._sql.execute(sql)
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def stats(self) -> dict[str, Table]:
        """``facelake stats``: images and faces per camera and per day, faces per embedding model."""
        return {name: self._table(sql) for name, sql in _STATS.items()}

    def sightings(self, person: str | None = None, cluster: int | None = None, camera: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, before_id: int | None = None,
                  after_id: int | None = None, limit: int = 50) -> list[SightingRow]:
        """Newest first; ``before_id`` pages backwards (the cursor), ``after_id`` asks for what is new."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if person is not None:
            where.append("(p.name = ? OR CAST(s.person_id AS VARCHAR) = ?)")
            params += [person, person]
        for clause, value in (("s.cluster_id = ?", cluster), ("i.camera = ?", camera), ("i.taken_at >= ?", since),
                              ("i.taken_at < ?", until), ("s.sighting_id < ?", before_id),
                              ("s.sighting_id > ?", after_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._sql.all(
            f"""SELECT s.sighting_id, s.image_id, i.uri, i.camera, i.taken_at, s.box, s.det_score, s.quality,
                       s.person_id, p.name, s.cluster_id, s.match_score, s.thumb IS NOT NULL, s.recognisability
                FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p ON p.person_id = s.person_id
                WHERE {' AND '.join(where)} AND i.camera <> 'enrollment'
                ORDER BY s.sighting_id DESC LIMIT ?""", [*params, limit])
        return [SightingRow(r[0], r[1], r[2], r[3], r[4], list(r[5]), r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                            r[13]) for r in rows]

    def activity(self, camera: str | None = None, since: datetime | None = None) -> dict[tuple[int, int], int]:
        """Sightings per (weekday 0=Mon, hour) of capture time."""
        rows = self._sql.all(
            f"""SELECT EXTRACT(ISODOW FROM i.taken_at) - 1, EXTRACT(HOUR FROM i.taken_at), count(*)
                FROM sightings s JOIN images i USING (image_id)
                WHERE i.taken_at IS NOT NULL AND {_WINDOW}
                GROUP BY 1, 2""", _window(camera, since))
        return {(int(d), int(h)): int(n) for d, h, n in rows}

    def per_day(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[date, int]]:
        rows = self._sql.all(
            f"""SELECT CAST(i.taken_at AS DATE), count(*) FROM sightings s JOIN images i USING (image_id)
                WHERE i.taken_at IS NOT NULL AND {_WINDOW}
                GROUP BY 1 ORDER BY 1""", _window(camera, since))
        return [(r[0], int(r[1])) for r in rows]

    def gps_points(self, camera: str | None = None, since: datetime | None = None) -> list[GpsPoint]:
        """GPS-tagged images with faces, oldest first."""
        rows = self._sql.all(
            f"""SELECT i.gps_lat, i.gps_lon, i.camera, i.taken_at, count(s.sighting_id),
                       string_agg(DISTINCT p.name, ', ')
                FROM images i JOIN sightings s USING (image_id) LEFT JOIN people p ON p.person_id = s.person_id
                WHERE i.gps_lat IS NOT NULL AND {_WINDOW}
                GROUP BY i.image_id, 1, 2, 3, 4 ORDER BY 4""", _window(camera, since))
        return [GpsPoint(float(r[0]), float(r[1]), r[2], r[3], int(r[4]), r[5]) for r in rows]

    def totals(self, camera: str | None = None, since: datetime | None = None) -> tuple[int, int, int]:
        """Sightings, distinct people named, distinct cameras."""
        row = self._sql.one(
            f"""SELECT count(*), count(DISTINCT s.person_id), count(DISTINCT i.camera) FROM sightings s
                JOIN images i USING (image_id) WHERE {_WINDOW}""", _window(camera, since))
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def people_seen(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """``(name, sightings, last seen, cameras)`` per named person, most seen first."""
        return self._sql.all(
            f"""SELECT p.name, count(*), max(i.taken_at), string_agg(DISTINCT i.camera, ', ')
                FROM sightings s JOIN images i USING (image_id) JOIN people p ON p.person_id = s.person_id
                WHERE {_WINDOW}
                GROUP BY 1 ORDER BY 2 DESC""", _window(camera, since))

    def top_people(self, camera: str | None = None, since: datetime | None = None,
                   limit: int = 8) -> list[tuple[str, int]]:
        """``(name, sightings)`` of the ``limit`` most seen people."""
        return [(str(r[0]), int(r[1])) for r in self._sql.all(
            f"""SELECT p.name, count(*) FROM sightings s JOIN images i USING (image_id)
                JOIN people p ON p.person_id = s.person_id
                WHERE {_WINDOW}
                GROUP BY 1 ORDER BY 2 DESC LIMIT ?""", [*_window(camera, since), limit])]

    def per_camera(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """``(camera, sightings, named, first seen, last seen)`` per camera."""
        return self._sql.all(
            f"""SELECT i.camera, count(*), count(s.person_id), min(i.taken_at), max(i.taken_at)
                FROM sightings s JOIN images i USING (image_id)
                WHERE {_WINDOW}
                GROUP BY 1 ORDER BY 1""", _window(camera, since))

    def cameras(self) -> list[str]:
        """Every camera that stored an image (enrollment photos aside)."""
        return [r[0] for r in self._sql.all(
            "SELECT DISTINCT camera FROM images WHERE camera <> 'enrollment' AND camera IS NOT NULL ORDER BY 1")]

    def cameras_of(self, person: int) -> list[str]:
        """The cameras that saw ``person``."""
        return [r[0] for r in self._sql.all(
            """SELECT DISTINCT i.camera FROM sightings s JOIN images i USING (image_id)
               WHERE s.person_id = ? AND i.camera <> 'enrollment' ORDER BY 1""", [person])]
