"""Photos sent to the API: who is in them (``recognize``), and where else they were seen (``search``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile

from ... import identities
from ...identities.stages import NamingStage
from ...pipeline import ImageLine, ImageResult, Job, StoreWriter, image_id_of
from ...sources.decode import decode_image
from ...store import open_store
from ..deps import READ, STORE_NEEDS_ADMIN, Cfg, Models, Who, plain, read_upload, saved, upload_folder

router = APIRouter()


@router.post("/api/recognize", dependencies=[STORE_NEEDS_ADMIN])
def recognize(settings: Cfg, engine: Models, caller: Who, photo: Annotated[UploadFile, File()], store: bool = False,
              camera: str = "upload") -> dict[str, Any]:
    """Faces in an uploaded photo, named where they are enrolled people; stored only with ``store=true``.

    The photo goes through the same image line as an ingested one (records, the naming stage,
    the store's one transaction), so a stored upload is named, audited and re-embeddable alike.
    """
    data = read_upload(photo, settings)
    decoded = decode_image(data, settings.max_pixels)
    with engine.lock:
        faces = engine.analyzer.analyze(decoded.pixels)
    job = Job(image_id_of(data), f"upload:{photo.filename or 'photo'}", camera, None, None, size=len(data))
    with open_store(settings.db) as db:  # writable: every recognition is audited
        naming = NamingStage(settings)
        line = ImageLine([naming], StoreWriter(db), actor=caller.actor)
        line.start(db)
        item = line.prepare(ImageResult(job, decoded.meta, faces, None))
        closest = naming.closest(item[1])
        ids = (line.commit([item])[0].ids or []) if store else []
        names = db.people.names()
        db.audit(caller.actor, "recognize", f"photo:{job.image_id[:16]} faces:{len(faces)} stored:{store}")
    sightings = item[1]
    return {
        "width": decoded.meta.width, "height": decoded.meta.height, "stored": bool(store),
        "faces": [{"box": [round(v, 2) for v in f.detection.box], "score": round(f.detection.score, 4),
                   "quality": round(f.quality, 4), "person_id": s.person_id,
                   "person": names.get(s.person_id) if s.person_id else None,
                   "match_score": None if s.match_score is None else round(s.match_score, 4),
                   "best_score": None if best is None else round(best, 4),
                   "required_score": None if needed is None else round(needed, 4),
                   "recognisability": None if s.recognisability is None else round(s.recognisability, 4),
                   "sighting_id": ids[i] if i < len(ids) else None}
                  for i, (f, s, (best, needed)) in enumerate(zip(faces, sightings, closest))],
    }


@router.post("/api/search", dependencies=[READ])
def search(settings: Cfg, engine: Models, caller: Who, response: Response, photo: Annotated[UploadFile, File()],
           top: Annotated[int, Query(ge=1, le=1000)] = 10, face: Annotated[int | None, Query(ge=0, le=10_000)] = None) -> dict[str, Any]:
    """Past sightings of the face in the photo, most similar first (audited).

    ``Server-Timing`` says how long the search took (``search``) and the whole request
    (``total``, with finding and embedding the face in the photo).
    """
    started = time.perf_counter()
    data = read_upload(photo, settings)
    decode_image(data, settings.max_pixels)
    with upload_folder() as tmp, engine.lock:
        found = identities.search_live(settings, saved(data, photo.filename, tmp), top, face,
                                       analyzer=engine.analyzer, actor=caller.actor)
    response.headers["Server-Timing"] = (f"search;dur={found.seconds * 1000:.2f}, "
                                         f"total;dur={(time.perf_counter() - started) * 1000:.2f}")
    return {"hits": [{"sighting_id": h.sighting_id, "score": round(h.score, 4), "uri": h.uri, "camera": h.camera,
                      "taken_at": plain(h.taken_at), "person": h.person,
                      "crop_url": f"/api/sightings/{h.sighting_id}/crop"} for h in found.hits],
            # The index never rebuilds inside a request: faces it has not taken in yet are counted here.
            "index": {"catching_up": found.pending > 0, "faces_not_searched": found.pending,
                      "faces_behind": found.behind}}
