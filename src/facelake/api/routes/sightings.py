"""Health, counts, and the sightings: listing, crops, the photo behind one, "not this person",
naming one face."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query
from fastapi.responses import Response
from PIL import Image, ImageDraw

from ... import errors, identities
from ...pipeline import image_id_of
from ...reports import views
from ...service import stats
from ...sources.decode import decode_image
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
    done = identities.unname(settings, sighting_id, actor=caller.actor)
    return {"sighting_id": sighting_id, "was": done.person, "near_duplicates": list(done.near_duplicates)}


@router.post("/api/sightings/{sighting_id}/name", dependencies=[ADMIN])
def sighting_name(settings: Cfg, caller: AdminForm, sighting_id: Int64,
                  name: Annotated[str | None, Form(description="a new person's name")] = None,
                  consent: Annotated[str | None, Form()] = None,
                  person_id: Annotated[Int64 | None, Form(description="a person already enrolled")] = None,
                  ) -> dict[str, Any]:
    """Name one face, clustered or not: a new person (``name`` and ``consent``) enrolled from it,
    or one more example of the person ``person_id``; then every face is matched again."""
    if name is not None and person_id is not None:
        raise HTTPException(422, "give name (a new person, with consent) or person_id (someone enrolled), not both")
    if name is None and person_id is None:
        raise HTTPException(422, "give name (a new person, with consent) or person_id (someone enrolled), "
                                 "as form fields (application/x-www-form-urlencoded or multipart/form-data)")
    result = identities.name_face(settings, sighting_id, name, consent, person_id, actor=caller.actor)
    return {"person_id": result.person_id, "name": result.name, "sighting_id": sighting_id}


@router.get("/api/sightings/{sighting_id}/photo", dependencies=[READ])
def sighting_photo(settings: Cfg, sighting_id: Int64) -> Response:
    """The original photo behind a sighting, at most 1600 px, with the face's box drawn on it.

    Read from where it was ingested, if that is a file here and still the same file (its
    sha256 is its id): a photo edited or replaced since would put the box on someone else.
    """
    with open_store(settings.db, read_only=True) as store:
        found = store.reports.sighting(sighting_id)
        exact = store.reports.exact_uri(found[0].image_id) if found is not None else None
    if found is None:
        raise HTTPException(404, f"no sighting {sighting_id}")
    row = found[0]
    path = Path(exact or row.uri)
    if not path.is_file():
        raise HTTPException(404, f"the photo of sighting {sighting_id} is not a file on this server")
    if path.stat().st_size > settings.max_file_mb * 1e6:
        raise HTTPException(413, "the photo is over max_file_mb")
    data = path.read_bytes()
    if image_id_of(data) != row.image_id:
        raise HTTPException(404, f"the photo of sighting {sighting_id} changed since it was ingested")
    try:
        pixels = decode_image(data, settings.max_pixels).pixels
    except errors.ImageUnreadable as exc:  # a clip's frame: the track's still is its picture
        raise HTTPException(404, f"sighting {sighting_id} is not from a photo ({exc})") from exc
    image = Image.fromarray(pixels)
    x, y, w, h = row.box
    scale = min(1.0, 1600 / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    line = max(2, round(max(image.size) / 300))
    ImageDraw.Draw(image).rectangle([x * scale, y * scale, (x + w) * scale, (y + h) * scale],
                                    outline=(255, 64, 64), width=line)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return jpeg(out.getvalue(), "")
