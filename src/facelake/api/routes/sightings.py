"""Health, counts, and the sightings: listing, crops, "not this person"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ... import identities
from ...reports import views
from ...service import stats
from ...store import open_store
from ..deps import ADMIN, READ, AdminForm, Cfg, Int64, jpeg, person_filter, plain

router = APIRouter()


@router.get("/api/health")
def health() -> dict[str, str]:
    """Liveness (no token needed)."""
    return {"status": "ok"}


@router.get("/api/stats", dependencies=[READ])
def get_stats(settings: Cfg) -> dict[str, Any]:
    result = stats(settings)
    return {k: [dict(zip(r.columns, map(plain, row))) for row in r.rows] for k, r in result.items()}


@router.get("/api/sightings", dependencies=[READ])
def list_sightings(
    settings: Cfg,
    person: Annotated[str | None, Query(description="an enrolled person's name")] = None,
    person_id: Annotated[Int64 | None, Query(description="an enrolled person's id")] = None,
    cluster: Int64 | None = None, camera: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    cursor: Annotated[Int64 | None, Query(description="next_cursor of the previous page")] = None,
    after_id: Annotated[Int64 | None, Query(description="only sightings newer than this id (live updates)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Sightings, newest first, with filters; page with ``cursor``."""
    with open_store(settings.db, read_only=True) as store:
        who = person_filter(store, person, person_id)
        rows = store.reports.sightings(who, cluster, camera, since, until, cursor, after_id, limit)
    return {"items": [views.sighting_json(r) for r in rows],
            "next_cursor": rows[-1].sighting_id if len(rows) == limit else None}


@router.get("/api/sightings/{sighting_id}/crop", dependencies=[READ])
def sighting_crop(settings: Cfg, sighting_id: Int64) -> Response:
    with open_store(settings.db, read_only=True) as store:
        data = store.sightings.crop(sighting_id)
    return jpeg(data, f"no face crop for sighting {sighting_id} (unknown id, or erased)")


@router.post("/api/sightings/{sighting_id}/unname", dependencies=[ADMIN])
def sighting_unname(settings: Cfg, caller: AdminForm, sighting_id: Int64) -> dict[str, Any]:
    """"Not this person": the name is taken back and never given to this face or its near-duplicates."""
    return {"sighting_id": sighting_id, "was": identities.unname(settings, sighting_id, actor=caller.actor)}
