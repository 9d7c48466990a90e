"""Video as people see it: visits (tracks of one person on one camera, close in time) and the tracks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from ...reports import views
from ...reports.visits import list_tracks, list_visits
from ...store import open_store
from ..deps import READ, Cfg, Int64, jpeg, person_filter

router = APIRouter()


@router.get("/api/visits", dependencies=[READ])
def get_visits(
    settings: Cfg, person: Annotated[str | None, Query(description="an enrolled person's name")] = None,
    person_id: Annotated[Int64 | None, Query(description="an enrolled person's id")] = None,
    camera: str | None = None, cluster: Int64 | None = None,
    since: Annotated[datetime | None, Query(description="only visits still going on at or after this time")] = None,
    before: Annotated[datetime | None, Query(description="next.before of the previous page")] = None,
    before_track: Annotated[Int64 | None, Query(description="next.before_track of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Visits, newest first: tracks of one person (or cluster) on one camera closer than ``visit_gap_s``.

    A page at a time: ``next`` holds the ``before`` and ``before_track`` of the page after this
    one (``null`` on the last page).
    """
    if (before is None) != (before_track is None):
        raise HTTPException(422, "give before and before_track together (both from next)")
    cursor = (before, before_track) if before is not None and before_track is not None else None
    with open_store(settings.db, read_only=True) as store:
        # One more than the page says whether a next one exists (an exactly full last page has none).
        rows = list_visits(store, settings, person_filter(store, person, person_id), camera, since, cluster,
                           limit + 1, cursor)
    more, rows = len(rows) > limit, rows[:limit]
    last = rows[-1] if more else None
    return {"gap_s": settings.visit_gap_s, "items": [views.visit_json(v) for v in rows],
            "next": {"before": last.started_at.isoformat(), "before_track": last.first_track_id} if last else None}


@router.get("/api/tracks/{track_id}/still", dependencies=[READ])
def track_still(settings: Cfg, track_id: Int64) -> Response:
    """The frame at the track's best face (a still: facelake keeps no video)."""
    with open_store(settings.db, read_only=True) as store:
        data = store.tracks.still(track_id)
    return jpeg(data, f"no still for track {track_id} (unknown id, or erased)")


@router.get("/api/tracks", dependencies=[READ])
def get_tracks(
    settings: Cfg, person: Annotated[str | None, Query(description="an enrolled person's name")] = None,
    person_id: Annotated[Int64 | None, Query(description="an enrolled person's id")] = None,
    camera: str | None = None, since: datetime | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Tracks, newest first, each with its span, who it is and the crops of its kept faces."""
    with open_store(settings.db, read_only=True) as store:
        rows = list_tracks(store, person_filter(store, person, person_id), camera, since, limit)
    return {"items": [views.track_json(t) for t in rows]}
