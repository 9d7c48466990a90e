"""The queries behind the dashboard, the API's listings and the HTML report — written once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..store.base import Store


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

    def as_json(self) -> dict[str, Any]:
        return {
            "sighting_id": self.sighting_id, "image_id": self.image_id, "uri": self.uri, "camera": self.camera,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "box": [round(float(v), 2) for v in self.box], "det_score": round(float(self.det_score), 4),
            "quality": round(float(self.quality), 4), "person_id": self.person_id, "person": self.person,
            "cluster_id": self.cluster_id,
            "match_score": None if self.match_score is None else round(float(self.match_score), 4),
            "crop_url": f"/api/sightings/{self.sighting_id}/crop" if self.has_crop else None,
        }


def sightings(store: Store, person: str | None = None, cluster: int | None = None, camera: str | None = None,
              since: datetime | None = None, until: datetime | None = None, before_id: int | None = None,
              after_id: int | None = None, limit: int = 50) -> list[SightingRow]:
    """Newest first; ``before_id`` pages backwards (the cursor), ``after_id`` asks for what is new."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if person is not None:
        where.append("(p.name = ? OR CAST(s.person_id AS VARCHAR) = ?)")
        params += [person, person]
    if cluster is not None:
        where.append("s.cluster_id = ?")
        params.append(cluster)
    if camera is not None:
        where.append("i.camera = ?")
        params.append(camera)
    if since is not None:
        where.append("i.taken_at >= ?")
        params.append(since)
    if until is not None:
        where.append("i.taken_at < ?")
        params.append(until)
    if before_id is not None:
        where.append("s.sighting_id < ?")
        params.append(before_id)
    if after_id is not None:
        where.append("s.sighting_id > ?")
        params.append(after_id)
    rows = store.con.execute(
        f"""SELECT s.sighting_id, s.image_id, i.uri, i.camera, i.taken_at, s.box, s.det_score, s.quality,
                   s.person_id, p.name, s.cluster_id, s.match_score, s.thumb IS NOT NULL
            FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p ON p.person_id = s.person_id
            WHERE {' AND '.join(where)} AND i.camera <> 'enrollment'
            ORDER BY s.sighting_id DESC LIMIT ?""", [*params, limit]).fetchall()
    return [SightingRow(r[0], r[1], r[2], r[3], r[4], list(r[5]), r[6], r[7], r[8], r[9], r[10], r[11], r[12])
            for r in rows]


def activity(store: Store, camera: str | None = None, since: datetime | None = None) -> dict[tuple[int, int], int]:
    """Sightings per (weekday 0=Mon, hour) of capture time."""
    rows = store.con.execute(
        """SELECT EXTRACT(ISODOW FROM i.taken_at) - 1, EXTRACT(HOUR FROM i.taken_at), count(*) FROM sightings s JOIN images i USING (image_id)
           WHERE i.taken_at IS NOT NULL AND i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?)
             AND (? IS NULL OR i.taken_at >= ?)
           GROUP BY 1, 2""", [camera, camera, since, since]).fetchall()
    return {(int(d), int(h)): int(n) for d, h, n in rows}


def per_day(store: Store, camera: str | None = None, since: datetime | None = None) -> list[tuple[date, int]]:
    rows = store.con.execute(
        """SELECT CAST(i.taken_at AS DATE), count(*) FROM sightings s JOIN images i USING (image_id)
           WHERE i.taken_at IS NOT NULL AND i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?)
             AND (? IS NULL OR i.taken_at >= ?)
           GROUP BY 1 ORDER BY 1""", [camera, camera, since, since]).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def gps_points(store: Store, camera: str | None = None, since: datetime | None = None) -> list[tuple[float, float, str]]:
    rows = store.con.execute(
        """SELECT i.gps_lat, i.gps_lon, i.camera, i.taken_at, count(s.sighting_id),
                  string_agg(DISTINCT p.name, ', ')
           FROM images i JOIN sightings s USING (image_id) LEFT JOIN people p ON p.person_id = s.person_id
           WHERE i.gps_lat IS NOT NULL AND i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?)
             AND (? IS NULL OR i.taken_at >= ?)
           GROUP BY i.image_id, 1, 2, 3, 4 ORDER BY 4""", [camera, camera, since, since]).fetchall()
    return [(float(r[0]), float(r[1]), f"{r[2]} {r[3] or ''}: {r[4]} face(s){' — ' + r[5] if r[5] else ''}")
            for r in rows]


def cluster_faces(store: Store, cluster_id: int, limit: int = 12) -> list[int]:
    """Sighting ids of a cluster's best faces (for face grids)."""
    rows = store.con.execute(
        """SELECT sighting_id FROM sightings WHERE cluster_id = ? AND person_id IS NULL AND thumb IS NOT NULL
           ORDER BY quality DESC LIMIT ?""", [cluster_id, limit]).fetchall()
    return [int(r[0]) for r in rows]


def crop(store: Store, sighting_id: int) -> bytes | None:
    row = store.con.execute("SELECT thumb FROM sightings WHERE sighting_id = ?", [sighting_id]).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None
