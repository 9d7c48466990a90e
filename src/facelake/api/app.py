"""The HTTP API (FastAPI; OpenAPI at /docs) over the same service functions as the CLI.

Bad input is handled as at ingest: the upload's size is checked before it is read whole and
its pixel count before it is decoded; a truncated file, a decompression bomb, text named
.jpg or a 50 MB upload get a clear 4xx and nothing is stored. facelake's own errors map to
status codes in one place (``STATUS``).
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from .. import errors
from .. import identities as people
from ..config import Settings
from ..identities.stages import NamingStage
from ..pipeline import ImageLine, ImageResult, Job, StoreWriter, analyzer_options, image_id_of
from ..reports import views
from ..service import stats
from ..sources.decode import decode_image
from ..store import open_store
from ..vision.analyzer import FaceAnalyzer
from .auth import Caller, Sessions, check_csrf, require

STATUS: dict[type[errors.FacelakeError], int] = {
    errors.ImageTooLarge: 413,
    errors.ImageUnreadable: 422,
    errors.NoFaceFound: 422,
    errors.ConfigError: 400,
    errors.NotFound: 404,
    errors.ReadOnlyViolation: 403,
    errors.StoreError: 409,
    errors.SourceError: 502,
}
"""HTTP status per error class (the most specific class listed wins)."""


def status_of(exc: errors.FacelakeError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


class Engine:
    """The models of the API process, loaded once and used one request at a time."""

    def __init__(self, settings: Settings) -> None:
        self.analyzer = FaceAnalyzer(analyzer_options(settings))
        self.lock = threading.Lock()


def read_upload(upload: UploadFile, settings: Settings) -> bytes:
    """The upload's bytes, refusing it as soon as it passes the file-size limit."""
    limit = int(settings.max_file_mb * 1e6)
    chunks, total = [], 0
    while chunk := upload.file.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise errors.ImageTooLarge(f"upload is over the {limit / 1e6:.0f} MB limit")
        chunks.append(chunk)
    if not total:
        raise errors.ImageUnreadable("empty upload (0 bytes)")
    return b"".join(chunks)


def _saved(data: bytes, name: str | None, folder: Path) -> Path:
    suffix = Path(name or "upload.jpg").suffix.lower() or ".jpg"
    path = folder / f"{image_id_of(data)[:16]}{suffix if len(suffix) <= 6 else '.jpg'}"
    path.write_bytes(data)
    return path


def _needs(scope: str) -> Any:
    """A route dependency: FastAPI runs it before it validates the body, so a request without
    a valid token gets 401 (or 403), never a validation error that reveals the route's fields."""

    def check(request: Request) -> None:
        needed = scope
        if scope == "store":
            needed = "admin" if request.query_params.get("store", "").lower() in ("1", "true", "yes", "on") else "read"
        request.state.caller = require(request, needed)

    return Depends(check)


READ, ADMIN, STORE_NEEDS_ADMIN = _needs("read"), _needs("admin"), _needs("store")


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(title="facelake", version="0.1.0",
                  description="Faces seen by your cameras: sightings, people, clusters, search. "
                              "Send `Authorization: Bearer TOKEN` (`facelake tokens create`).")
    app.state.settings = settings
    app.state.sessions = Sessions()
    app.state.engine = engine or Engine(settings)

    @app.exception_handler(errors.FacelakeError)
    def facelake_error(request: Request, exc: errors.FacelakeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    def write_conflict(request: Request, exc: Exception) -> JSONResponse:
        """Another writer changed the same rows at the same moment (DuckDB's optimistic
        concurrency, or a PostgreSQL deadlock or serialization failure): the client may retry."""
        return JSONResponse({"detail": f"the database was busy with the same rows; try again ({exc})"},
                            status_code=409, headers={"Retry-After": "1"})

    app.add_exception_handler(duckdb.TransactionException, write_conflict)
    try:
        from psycopg import errors as pg_errors
    except ImportError:
        pass
    else:
        for kind in (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            app.add_exception_handler(kind, write_conflict)

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next: Any) -> Response:
        """Refuse a body over the limit by its declared length, before reading any of it."""
        length = request.headers.get("content-length")
        limit = int(settings.max_file_mb * 1e6) + 64_000
        if length and length.isdigit() and int(length) > limit:
            return JSONResponse({"detail": f"upload is over the {settings.max_file_mb:.0f} MB limit"}, status_code=413)
        return await call_next(request)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        """Liveness (no token needed)."""
        return {"status": "ok"}

    @app.get("/api/stats", dependencies=[READ])
    def get_stats(request: Request) -> dict[str, Any]:
        result = stats(settings)
        return {k: [dict(zip(r.columns, map(_plain, row))) for row in r.rows] for k, r in result.items()}

    @app.get("/api/sightings", dependencies=[READ])
    def list_sightings(
        request: Request,
        person: str | None = None, cluster: int | None = None, camera: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
        cursor: Annotated[int | None, Query(description="next_cursor of the previous page")] = None,
        after_id: Annotated[int | None, Query(description="only sightings newer than this id (live updates)")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Sightings, newest first, with filters; page with ``cursor``."""
        with open_store(settings.db, read_only=True) as store:
            rows = store.reports.sightings(person, cluster, camera, since, until, cursor, after_id, limit)
        return {"items": [views.sighting_json(r) for r in rows],
                "next_cursor": rows[-1].sighting_id if len(rows) == limit else None}

    @app.get("/api/sightings/{sighting_id}/crop", dependencies=[READ])
    def sighting_crop(request: Request, sighting_id: int) -> Response:
        with open_store(settings.db, read_only=True) as store:
            data = store.sightings.crop(sighting_id)
        if data is None:
            raise HTTPException(404, f"no face crop for sighting {sighting_id} (unknown id, or erased)")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/sightings/{sighting_id}/unname", dependencies=[ADMIN])
    def sighting_unname(request: Request, sighting_id: int, csrf: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        """"Not this person": the name is taken back and never given to this face or its near-duplicates."""
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        return {"sighting_id": sighting_id, "was": people.unname(settings, sighting_id, actor=caller.actor)}

    @app.post("/api/recognize", dependencies=[STORE_NEEDS_ADMIN])
    def recognize(request: Request, photo: Annotated[UploadFile, File()], store: bool = False,
                  camera: str = "upload") -> dict[str, Any]:
        """Faces in an uploaded photo, named where they are enrolled people; stored only with ``store=true``."""
        caller: Caller = request.state.caller
        data = read_upload(photo, settings)
        decoded = decode_image(data, settings.max_pixels)
        engine: Engine = app.state.engine
        with engine.lock:
            faces = engine.analyzer.analyze(decoded.pixels)
        job = Job(image_id_of(data), f"upload:{photo.filename or 'photo'}", camera, None, None, size=len(data))
        with open_store(settings.db) as db:  # writable: every recognition is audited
            line = ImageLine([NamingStage(settings)], StoreWriter(db), actor=caller.actor)
            line.start(db)
            item = line.prepare(ImageResult(job, decoded.meta, faces, None))
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
                       "sighting_id": ids[i] if i < len(ids) else None}
                      for i, (f, s) in enumerate(zip(faces, sightings))],
        }

    @app.post("/api/search", dependencies=[READ])
    def search(request: Request, photo: Annotated[UploadFile, File()], top: Annotated[int, Query(ge=1, le=1000)] = 10,
               face: int | None = None) -> dict[str, Any]:
        """Past sightings of the face in the photo, most similar first (audited)."""
        caller: Caller = request.state.caller
        data = read_upload(photo, settings)
        decode_image(data, settings.max_pixels)
        with tempfile.TemporaryDirectory() as tmp:
            engine: Engine = app.state.engine
            with engine.lock:
                hits = people.search(settings, _saved(data, photo.filename, Path(tmp)), top, face,
                                     analyzer=engine.analyzer, actor=caller.actor)
        return {"hits": [{"sighting_id": h.sighting_id, "score": round(h.score, 4), "uri": h.uri, "camera": h.camera,
                          "taken_at": _plain(h.taken_at), "person": h.person,
                          "crop_url": f"/api/sightings/{h.sighting_id}/crop"} for h in hits]}

    @app.get("/api/people", dependencies=[READ])
    def list_people(request: Request) -> list[dict[str, Any]]:
        return [{k: _plain(v) for k, v in vars(p).items()} for p in people.list_people(settings)]

    @app.post("/api/people", status_code=201, dependencies=[ADMIN])
    def enroll(request: Request, name: Annotated[str, Form()], consent: Annotated[str, Form()],
               photos: Annotated[list[UploadFile], File()], csrf: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        """Enroll a person from photos (one face each); the consent note is required."""
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for upload in photos:
                data = read_upload(upload, settings)
                decode_image(data, settings.max_pixels)
                paths.append(_saved(data, upload.filename, Path(tmp)))
            engine: Engine = app.state.engine
            with engine.lock:
                result = people.enroll_person(settings, name, paths, consent, analyzer=engine.analyzer,
                                              extend=True, actor=caller.actor)
        people.identify(settings)
        return {"person_id": result.person_id, "name": result.name, "enrolled_sightings": result.sightings}

    @app.patch("/api/people/{person}", dependencies=[ADMIN])
    def rename(request: Request, person: str, name: Annotated[str, Form()],
               csrf: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        return {"person_id": people.rename_person(settings, person, name, actor=caller.actor), "name": name}

    @app.delete("/api/people/{person}", dependencies=[ADMIN])
    def forget(request: Request, person: str) -> dict[str, Any]:
        """Erase a person completely (enrollments, photos, links, crops, embeddings)."""
        caller: Caller = request.state.caller
        return {"erased": people.forget(settings, person, actor=caller.actor)}

    @app.get("/api/clusters", dependencies=[READ])
    def list_clusters(request: Request, min_size: Annotated[int, Query(ge=1)] = 2) -> list[dict[str, Any]]:
        with open_store(settings.db, read_only=True) as store:
            return [{**{k: _plain(v) for k, v in vars(c).items()},
                     "crops": [f"/api/sightings/{s}/crop" for s in store.clusters.best_faces(c.cluster_id)]}
                    for c in people.list_clusters(settings, min_size)]

    @app.post("/api/clusters/refresh", dependencies=[ADMIN])
    def refresh_clusters(request: Request, csrf: Annotated[str | None, Form()] = None) -> dict[str, int]:
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        result = people.cluster(settings, actor=caller.actor)
        return {"faces": result.faces, "clusters": result.clusters, "new_faces": result.new_faces}

    @app.post("/api/clusters/{cluster_id}/name", dependencies=[ADMIN])
    def name_cluster(request: Request, cluster_id: int, name: Annotated[str, Form()],
                     consent: Annotated[str, Form()], csrf: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        """Enroll the cluster as a person: past and future sightings get the name."""
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        result = people.name_cluster(settings, cluster_id, name, consent, actor=caller.actor)
        return {"person_id": result.person_id, "name": result.name}

    @app.post("/api/clusters/{cluster_id}/merge", dependencies=[ADMIN])
    def merge(request: Request, cluster_id: int, into: Annotated[int, Form()],
              csrf: Annotated[str | None, Form()] = None) -> dict[str, int]:
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        return {"moved": people.merge_clusters(settings, into, cluster_id, actor=caller.actor), "into": into}

    @app.post("/api/clusters/{cluster_id}/split", dependencies=[ADMIN])
    def split(request: Request, cluster_id: int, csrf: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        return {"clusters": people.split_cluster(settings, cluster_id, actor=caller.actor)}

    @app.post("/api/clusters/{cluster_id}/dismiss", dependencies=[ADMIN])
    def dismiss(request: Request, cluster_id: int, csrf: Annotated[str | None, Form()] = None) -> dict[str, int]:
        """"Not a face": erase the cluster's embeddings and crops."""
        caller: Caller = request.state.caller
        check_csrf(caller, csrf)
        return {"dismissed": people.dismiss_cluster(settings, cluster_id, actor=caller.actor)}

    from .dashboard import add_dashboard

    add_dashboard(app, settings)
    return app


def _plain(value: Any) -> Any:
    """Dates and times as ISO strings, everything else as it is (for JSON)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
