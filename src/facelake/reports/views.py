"""The report rows (``store.reports``) as the dashboard, the API and the HTML report show them."""

from __future__ import annotations

from typing import Any

from ..store.reports import GpsPoint, SightingRow
from ..store.visits import TrackRow, VisitRow, VisitTotal


def sighting_json(row: SightingRow) -> dict[str, Any]:
    """One sighting as the API lists it: rounded numbers, ISO times, a crop URL while the crop exists."""
    return {
        "sighting_id": row.sighting_id, "image_id": row.image_id, "uri": row.uri, "camera": row.camera,
        "taken_at": row.taken_at.isoformat() if row.taken_at else None,
        "box": [round(float(v), 2) for v in row.box], "det_score": round(float(row.det_score), 4),
        "quality": round(float(row.quality), 4), "person_id": row.person_id, "person": row.person,
        "cluster_id": row.cluster_id,
        "match_score": None if row.match_score is None else round(float(row.match_score), 4),
        "recognisability": None if row.recognisability is None else round(float(row.recognisability), 4),
        "unclear": row.unclear,
        "crop_url": f"/api/sightings/{row.sighting_id}/crop" if row.has_crop else None,
    }


def gps_labels(points: list[GpsPoint]) -> list[tuple[float, float, str]]:
    """``(lat, lon, label)`` per GPS-tagged image, for the maps: camera, time, faces and names."""
    return [(p.lat, p.lon, f"{p.camera} {p.taken_at or ''}: {p.faces} face(s){' — ' + p.names if p.names else ''}")
            for p in points]


def who(person: str | None, cluster_id: int | None) -> str:
    """How a face, track or visit is labelled: the name, else its group of unknown faces, else unknown."""
    return person or (f"unknown #{cluster_id}" if cluster_id is not None else "unknown")


def duration_text(seconds: float) -> str:
    """``45 s``, ``14 min``, ``2 h 05 min``: how long a visit (or all of them) lasted, for people to read."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def visits_text(total: VisitTotal) -> str:
    """``Alice: 3 visits, 14 min in all``."""
    return (f"{total.person}: {total.visits} visit{'' if total.visits == 1 else 's'}, "
            f"{duration_text(total.seconds)} in all")


def visit_json(row: VisitRow) -> dict[str, Any]:
    """One visit as the API lists it: ISO times, its length in seconds, the crop of its best face."""
    return {
        "person_id": row.person_id, "person": row.person, "cluster_id": row.cluster_id, "who": who(row.person, row.cluster_id),
        "camera": row.camera, "started_at": row.started_at.isoformat(), "ended_at": row.ended_at.isoformat(),
        "seconds": round(row.seconds, 3), "tracks": row.tracks, "frames": row.frames,
        "best_sighting_id": row.best_sighting_id,
        "crop_url": f"/api/sightings/{row.best_sighting_id}/crop" if row.best_sighting_id is not None else None,
    }


def track_json(row: TrackRow) -> dict[str, Any]:
    """One track: its span (capture time and seconds into the clip), who, and its kept faces' crops."""
    return {
        "track_id": row.track_id, "image_id": row.image_id, "uri": row.uri, "camera": row.camera,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "start_s": round(row.start_s, 3), "end_s": round(row.end_s, 3), "frames": row.frames,
        "person_id": row.person_id, "person": row.person, "cluster_id": row.cluster_id,
        "match_score": None if row.match_score is None else round(row.match_score, 4),
        "best_sighting_id": row.best_sighting_id,
        "crops": [f"/api/sightings/{s}/crop" for s in row.faces],
        "still_url": f"/api/tracks/{row.track_id}/still" if row.has_still else None,
    }
