"""The HTTP API (FastAPI; OpenAPI at /docs) over the same service functions as the CLI.

This module builds the app (error mapping, the body-size guard, the routers of ``routes/``
and the dashboard); the routes themselves live one router per area in ``routes/``, sharing
what ``deps`` provides (models, settings, callers, uploads).

Bad input is handled as at ingest: the upload's size is checked before it is read whole and
its pixel count before it is decoded; a truncated file, a decompression bomb, text named
.jpg or a 50 MB upload get a clear 4xx and nothing is stored. facelake's own errors map to
status codes in one place (``STATUS``).
"""

from __future__ import annotations

from typing import Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .. import errors
from ..config import Settings
from .auth import Sessions
from .deps import Engine
from .routes import ROUTERS

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

    for router in ROUTERS:
        app.include_router(router)

    from .dashboard import add_dashboard

    add_dashboard(app, settings)
    return app
