"""The queries behind ``facelake stats``, the dashboard, the API's listings and the HTML report
(``store.reports``) — written once, for both engines.

Every listing of sightings leaves out the enrollment photos (camera ``enrollment``): they
are the owner's reference pictures, not something a camera saw. ``camera`` and ``since``
filter when given (``? IS NULL OR …``: one statement serves both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..vision.recognisability import GATE, recognisable
from .connection import Sql, marks

_WINDOW = "i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?) AND (? IS NULL OR i.taken_at >= ?)"
"""The camera / start-time filter of the report queries; its parameters come from :func:`_window`."""
_SEEN = "s.camera <> 'enrollment' AND (? IS NULL OR s.camera = ?) AND (? IS NULL OR s.seen_at >= ?)"
"""The same filter on the sighting's own capture time and camera: the counts need no join to images,
which cost half a second at a million sightings (bench/million.py)."""


def _window(camera: str | None, since: datetime | None) -> list[Any]:
    return [camera, camera, since, since]


def weekday_hours(hours: list[tuple[datetime, int]]) -> dict[tuple[int, int], int]:
    """:meth:`Reports.hours` folded into (weekday 0=Mon, hour) cells."""
    out: dict[tuple[int, int], int] = {}
    for at, n in hours:
        key = (at.weekday(), at.hour)
        out[key] = out.get(key, 0) + n
    return out


def days(hours: list[tuple[datetime, int]]) -> list[tuple[date, int]]:
    """:meth:`Reports.hours` folded into days, oldest first."""
    out: dict[date, int] = {}
    for at, n in hours:
        out[at.date()] = out.get(at.date(), 0) + n
    return list(out.items())


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

    def sightings(self, person: int | None = None, cluster: int | None = None, camera: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, before_id: int | None = None,
                  after_id: int | None = None, limit: int = 50) -> list[SightingRow]:
        """Newest first; ``person`` is an id, ``before_id`` pages backwards (the cursor), ``after_id`` asks
        for what is new. ``since`` and ``until`` bound the capture time (else the time it was stored)."""
        where: list[str] = ["s.camera <> 'enrollment'"]
        params: list[Any] = []
        for clause, value in (("s.person_id = ?", person), ("s.cluster_id = ?", cluster), ("s.camera = ?", camera),
                              ("s.seen_at >= ?", since), ("s.seen_at < ?", until), ("s.sighting_id < ?", before_id),
                              ("s.sighting_id > ?", after_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        ids = [int(r[0]) for r in self._sql.all(
            f"SELECT s.sighting_id FROM sightings s WHERE {' AND '.join(where)} "
            f"ORDER BY s.sighting_id DESC LIMIT ?", [*params, limit])]
        return self._rows(ids, capture_time=True)

    def timeline(self, person: int | None = None, camera: str | None = None,
                 before: tuple[datetime, int] | None = None, limit: int = 60) -> list[SightingRow]:
        """Sightings by capture time, newest first (the dashboard's timeline and person pages).

        Ids follow the order of ingest, and an old photo archive ingested today is not today's
        news: these pages sort by when the photo was taken (else when it was stored). Paged by
        keyset: ``before`` is the (time, id) of the last row shown.

        The rows carry no ``uri`` (empty): the pages link to a sighting's own page, and reading
        the images by key cost another 3-10 ms at a million sightings.
        """
        where: list[str] = ["s.camera <> 'enrollment'"]
        params: list[Any] = []
        for clause, value in (("s.person_id = ?", person), ("s.camera = ?", camera)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if before is not None:
            where.append("(s.seen_at < ? OR (s.seen_at = ? AND s.sighting_id < ?))")
            params += [before[0], before[0], before[1]]
        ids = [int(r[0]) for r in self._sql.all(
            f"SELECT s.sighting_id FROM sightings s WHERE {' AND '.join(where)} "
            f"ORDER BY s.seen_at DESC, s.sighting_id DESC LIMIT ?", [*params, limit])]
        return self._rows(ids, capture_time=False)

    def _rows(self, ids: list[int], capture_time: bool) -> list[SightingRow]:
        """The listing rows of ``ids``, in that order, in three small lookups instead of one join.

        Why: at a million sightings, the listing as one query (the page joined to images and
        people, sorted) took 370-630 ms; picking the page's ids on ``sightings`` alone, then
        reading those rows and their images by key, takes 20-25 ms (bench/million.py). The
        crop is never read, only whether there is one. ``capture_time``: the image's uri and
        ``taken_at`` as it is (the API), else no uri and the time the page sorts by (the dashboard).
        """
        if not ids:
            return []
        faces = {int(r[0]): r for r in self._sql.all(
            f"""SELECT sighting_id, image_id, camera, seen_at, box, det_score, quality, person_id, cluster_id,
                       match_score, thumb IS NOT NULL, recognisability
                FROM sightings WHERE sighting_id IN ({marks(len(ids))})""", ids)}
        images = sorted({r[1] for r in faces.values()}) if capture_time else []
        where = {str(r[0]): (r[1], r[2]) for r in self._sql.all(
            f"SELECT image_id, uri, taken_at FROM images WHERE image_id IN ({marks(len(images))})", images)} \
            if images else {}
        people = sorted({int(r[7]) for r in faces.values() if r[7] is not None})
        names = {int(r[0]): str(r[1]) for r in self._sql.all(
            f"SELECT person_id, name FROM people WHERE person_id IN ({marks(len(people))})", people)} if people else {}
        out = []
        for sid in ids:
            r = faces.get(sid)
            if r is None:  # erased between the two lookups
                continue
            uri, taken_at = where.get(str(r[1]), ("", None))
            out.append(SightingRow(sid, r[1], uri, r[2], taken_at if capture_time else r[3], list(r[4]), r[5], r[6],
                                   r[7], names.get(r[7]) if r[7] is not None else None, r[8], r[9], bool(r[10]),
                                   r[11]))
        return out

    def sighting(self, sighting_id: int) -> tuple[SightingRow, int | None, int | None] | None:
        """One sighting with its image's width and height, or ``None``."""
        r = self._sql.one(
            """SELECT s.sighting_id, s.image_id, i.uri, i.camera, i.taken_at, s.box, s.det_score, s.quality,
                      s.person_id, p.name, s.cluster_id, s.match_score, s.thumb IS NOT NULL, i.width, i.height,
                      s.recognisability
               FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p ON p.person_id = s.person_id
               WHERE s.sighting_id = ?""", [sighting_id])
        if r is None:
            return None
        row = SightingRow(r[0], r[1], r[2], r[3], r[4], list(r[5]), r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[15])
        return row, r[13], r[14]

    def exact_uri(self, image_id: str) -> str | None:
        """The image's uri exactly as the source named it (a file name that is not UTF-8 is stored
        readable, with ``\\xNN``, which opens no file); ``None`` for an unknown image."""
        row = self._sql.one("SELECT uri, uri_bytes FROM images WHERE image_id = ?", [image_id])
        if row is None:
            return None
        return os.fsdecode(bytes(row[1])) if row[1] is not None else str(row[0])

    def person_faces(self) -> dict[int, int]:
        """Per person, the sighting of one face to show them by: an enrollment face with a crop, else
        their best-quality sighting with one."""
        return {int(p): int(s) for p, s in self._sql.all(
            """SELECT DISTINCT ON (e.person_id) e.person_id, s.sighting_id
               FROM enrollments e JOIN sightings s ON s.sighting_id = e.sighting_id
               WHERE s.thumb IS NOT NULL
               ORDER BY e.person_id, s.quality DESC, s.sighting_id""")} | self._camera_faces()

    def _camera_faces(self) -> dict[int, int]:
        """For people with no enrollment face left, their best camera face with a crop (the only case
        that reads their sightings: the enrollment faces are a handful, the sightings a million)."""
        missing = [int(r[0]) for r in self._sql.all(
            """SELECT p.person_id FROM people p WHERE NOT EXISTS (SELECT 1 FROM enrollments e JOIN sightings s
               ON s.sighting_id = e.sighting_id WHERE e.person_id = p.person_id AND s.thumb IS NOT NULL)""")]
        if not missing:
            return {}
        return {int(p): int(s) for p, s in self._sql.all(
            f"""SELECT DISTINCT ON (s.person_id) s.person_id, s.sighting_id FROM sightings s
                WHERE s.person_id IN ({marks(len(missing))}) AND s.thumb IS NOT NULL
                ORDER BY s.person_id, s.quality DESC, s.sighting_id""", missing)}

    def gps_cells(self, camera: str | None = None, since: datetime | None = None,
                  digits: int = 3) -> list[tuple[float, float, int, int]]:
        """GPS-tagged sightings counted per cell of ``digits`` decimals of a degree (3: about 100 m):
        ``(lat, lon, images, faces)``, busiest first. A map of a year holds a few hundred cells,
        not a million points."""
        scale = 10 ** int(digits)
        rows = self._sql.all(
            f"""SELECT floor(i.gps_lat * {scale} + 0.5) / {scale}, floor(i.gps_lon * {scale} + 0.5) / {scale},
                       count(DISTINCT i.image_id), count(*)
                FROM images i JOIN sightings s USING (image_id)
                WHERE i.gps_lat IS NOT NULL AND {_WINDOW}
                GROUP BY 1, 2 ORDER BY 4 DESC, 1, 2""", _window(camera, since))
        return [(float(a), float(b), int(n), int(f)) for a, b, n, f in rows]

    def hours(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[datetime, int]]:
        """Sightings per hour of capture time, oldest first: the one grouped pass that the
        weekday-by-hour heat map and the per-day bars are both folded from (:func:`weekday_hours`,
        :func:`days`). A year is under 9,000 rows; grouping a million sightings twice, once per
        chart, was most of ``/activity``'s time (and ``EXTRACT`` twice a row, sorted, three times
        a ``date_trunc`` on PostgreSQL)."""
        rows = self._sql.all(
            f"""SELECT date_trunc('hour', s.seen_at), count(*) FROM sightings s
                WHERE s.seen_at IS NOT NULL AND {_SEEN} GROUP BY 1 ORDER BY 1""", _window(camera, since))
        return [(r[0], int(r[1])) for r in rows]

    def activity(self, camera: str | None = None, since: datetime | None = None) -> dict[tuple[int, int], int]:
        """Sightings per (weekday 0=Mon, hour) of capture time."""
        return weekday_hours(self.hours(camera, since))

    def per_day(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[date, int]]:
        return days(self.hours(camera, since))

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
            f"""SELECT count(*), count(DISTINCT s.person_id), count(DISTINCT s.camera) FROM sightings s
                WHERE {_SEEN}""", _window(camera, since))
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def people_seen(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """``(name, sightings, last seen, cameras)`` per named person, most seen first."""
        return self._sql.all(
            f"""SELECT p.name, count(*), max(s.seen_at), string_agg(DISTINCT s.camera, ', ')
                FROM sightings s JOIN people p ON p.person_id = s.person_id
                WHERE {_SEEN}
                GROUP BY 1 ORDER BY 2 DESC""", _window(camera, since))

    def top_people(self, camera: str | None = None, since: datetime | None = None,
                   limit: int = 8) -> list[tuple[str, int]]:
        """``(name, sightings)`` of the ``limit`` most seen people."""
        return [(str(r[0]), int(r[1])) for r in self._sql.all(
            f"""SELECT p.name, count(*) FROM sightings s JOIN people p ON p.person_id = s.person_id
                WHERE {_SEEN}
                GROUP BY 1 ORDER BY 2 DESC LIMIT ?""", [*_window(camera, since), limit])]

    def per_camera(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[Any, ...]]:
        """``(camera, sightings, named, first seen, last seen)`` per camera."""
        return self._sql.all(
            f"""SELECT s.camera, count(*), count(s.person_id), min(s.seen_at), max(s.seen_at)
                FROM sightings s WHERE {_SEEN}
                GROUP BY 1 ORDER BY 1""", _window(camera, since))

    def cameras(self) -> list[str]:
        """Every camera that stored an image (enrollment photos aside)."""
        return [r[0] for r in self._sql.all(
            "SELECT DISTINCT camera FROM images WHERE camera <> 'enrollment' AND camera IS NOT NULL ORDER BY 1")]
