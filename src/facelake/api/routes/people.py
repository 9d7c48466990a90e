"""Enrolled people: list, enroll (with a consent note), rename, forget."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from ... import identities
from ...sources.decode import decode_image
from ..deps import ADMIN, READ, AdminForm, Cfg, Int64, Models, plain, read_upload, saved, upload_folder

router = APIRouter()


@router.get("/api/people", dependencies=[READ])
def list_people(settings: Cfg) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in vars(p).items()} for p in identities.list_people(settings)]


@router.post("/api/people", status_code=201, dependencies=[ADMIN])
def enroll(settings: Cfg, engine: Models, caller: AdminForm, name: Annotated[str, Form()],
           consent: Annotated[str, Form()], photos: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
    """Enroll a person from photos (one face each); the consent note is required."""
    with upload_folder() as tmp:
        paths = []
        for upload in photos:
            data = read_upload(upload, settings)
            decode_image(data, settings.max_pixels)
            paths.append(saved(data, upload.filename, tmp))
        with engine.lock:
            result = identities.enroll_person(settings, name, paths, consent, analyzer=engine.analyzer,
                                              extend=True, actor=caller.actor)
    identities.identify(settings)
    return {"person_id": result.person_id, "name": result.name, "enrolled_sightings": result.sightings}


@router.patch("/api/people/{person_id}", dependencies=[ADMIN])
def rename(settings: Cfg, caller: AdminForm, person_id: Int64, name: Annotated[str, Form()]) -> dict[str, Any]:
    """Rename a person, addressed by id (a name is only ever a field: a person may be called "1")."""
    return {"person_id": identities.rename_person(settings, person_id, name, actor=caller.actor),
            "name": name.strip()}


@router.delete("/api/people/{person_id}", dependencies=[ADMIN])
def forget(settings: Cfg, caller: AdminForm, person_id: Int64) -> dict[str, Any]:
    """Erase a person completely (enrollments, photos, links, crops, embeddings), addressed by id."""
    return {"erased": identities.forget(settings, person_id, actor=caller.actor)}
