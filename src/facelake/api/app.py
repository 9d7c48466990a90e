"""The HTTP API (FastAPI; OpenAPI at /docs) over the same service functions as the CLI.

This module builds the app (error mapping, the guard of ``guard`` that checks callers and
body sizes before any body is read, the host check, the routers of ``routes/`` and the
dashboard); the routes themselves live one router per area in ``routes/``, sharing
what ``deps`` provides (models, settings, callers, uploads).

Bad input is handled as at ingest: the upload's size is checked before it is read whole and
its pixel count before it is decoded; a truncated file, a decompression bomb, text named
.jpg or a 50 MB upload get a clear 4xx and nothing is stored. facelake's own errors map to
status codes in one place (``STATUS``).
"""

from __future__ import annotations

import duckdb
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import errors
from ..config import Settings
from .auth import Sessions
from .deps import Engine
from .guard import Guard
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


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facelake API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script></body></html>"""
"""The OpenAPI page, with Swagger UI served from this process (the swagger-ui-bundle-v2 package),
so it works offline and under a CSP that allows no inline script."""


def add_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the locally installed bundle (no CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(title="facelake", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Faces seen by your cameras: sightings, people, clusters, search. "
                              "Send `Authorization: Bearer TOKEN` (`facelake tokens create`).")
    app.state.settings = settings
    app.state.sessions = Sessions(settings.session_hours * 3600)
    app.state.engine = engine or Engine(settings)

    from .dashboard import add_dashboard, error_page, wants_html

    @app.exception_handler(errors.FacelakeError)
    def facelake_error(request: Request, exc: errors.FacelakeError) -> Response:
        if wants_html(request):
            return error_page(status_of(exc), str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser asking for a page gets a page (a 404 with the way back), a client JSON."""
        if wants_html(request):
            return error_page(exc.status_code, str(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """A page asked for with a bad parameter (``/clusters?page=abc``) is a page saying which
        one, as a 404 is; a client gets FastAPI's 422 detail."""
        if wants_html(request):
            wrong = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                              for e in exc.errors())
            return error_page(422, f"This page cannot show that ({wrong}).")
        return await request_validation_exception_handler(request, exc)

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

    for router in ROUTERS:
        app.include_router(router)

    add_docs(app)
    add_dashboard(app, settings)
    # The guard answers before any body is read; the host check comes before it (outermost is added last).
    app.add_middleware(Guard, settings=settings, sessions=app.state.sessions)
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    return app
