"""The report rows (``store.reports``) as the dashboard, the API and the HTML report show them."""

from __future__ import annotations

from typing import Any

from ..store.reports import GpsPoint, SightingRow


def sighting_json(row: SightingRow) -> dict[str, Any]:
    """One sighting as the API lists it: rounded numbers, ISO times, a crop URL while the crop exists."""
    return {
        "sighting_id": row.sighting_id, "image_id": row.image_id, "uri": row.uri, "camera": row.camera,
        "taken_at": row.taken_at.isoformat() if row.taken_at else None,
        "box": [round(float(v), 2) for v in row.box], "det_score": round(float(row.det_score), 4),
        "quality": round(float(row.quality), 4), "person_id": row.person_id, "person": row.person,
        "cluster_id": row.cluster_id,
        "match_score": None if row.match_score is None else round(float(row.match_score), 4),
        "crop_url": f"/api/sightings/{row.sighting_id}/crop" if row.has_crop else None,
    }


def gps_labels(points: list[GpsPoint]) -> list[tuple[float, float, str]]:
    """``(lat, lon, label)`` per GPS-tagged image, for the maps: camera, time, faces and names."""
    return [(p.lat, p.lon, f"{p.camera} {p.taken_at or ''}: {p.faces} face(s){' — ' + p.names if p.names else ''}")
            for p in points]
