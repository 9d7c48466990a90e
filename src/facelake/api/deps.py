"""What every API route shares: the models of the process, settings, callers and upload handling.

Authentication is a route dependency, so FastAPI checks the token before it validates the
body: a request without a valid token gets 401 (or 403), never a validation error that
reveals the route's fields. A writing route takes :data:`AdminForm`, the admin caller with
the dashboard session's CSRF token checked, instead of repeating that preamble.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Interval
from fastapi import Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response

from .. import errors
from ..config import Settings
from ..pipeline import analyzer_options, image_id_of
from ..store import Store
from ..vision.analyzer import FaceAnalyzer
from .auth import Caller, check_csrf, require


class Engine:
    """The models of the API process, loaded once and used one request at a time."""

    def __init__(self, settings: Settings) -> None:
        self.analyzer = FaceAnalyzer(analyzer_options(settings))
        self.lock = threading.Lock()


def settings_of(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def engine_of(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def caller_of(request: Request) -> Caller:
    """The caller the route's scope dependency identified."""
    return request.state.caller  # type: ignore[no-any-return]


def _needs(scope: str) -> Any:
    def check(request: Request) -> None:
        needed = scope
        if scope == "store":
            needed = "admin" if request.query_params.get("store", "").lower() in ("1", "true", "yes", "on") else "read"
        request.state.caller = require(request, needed)

    return Depends(check)


READ, ADMIN, STORE_NEEDS_ADMIN = _needs("read"), _needs("admin"), _needs("store")
"""Scope dependencies: read, admin, and admin only when ``?store=true`` (recognize)."""


def admin_form(request: Request, csrf: Annotated[str | None, Form()] = None) -> Caller:
    """The admin caller of a form-posting route; a dashboard session must send its CSRF token."""
    caller = require(request, "admin")
    check_csrf(caller, csrf)
    request.state.caller = caller
    return caller


Int64 = Annotated[int, Interval(ge=-(2**63), le=2**63 - 1)]
"""An integer parameter (an id, a cursor, a count): both databases store 64-bit integers, so a
larger number is a validation error (422), never a database overflow (500)."""

Cfg = Annotated[Settings, Depends(settings_of)]
Models = Annotated[Engine, Depends(engine_of)]
Who = Annotated[Caller, Depends(caller_of)]
AdminForm = Annotated[Caller, Depends(admin_form)]


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


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A temporary folder for the uploads of one request (the service functions take photo paths).

    The folder's path is the server's business: an error about a photo in it names the file
    alone, never the server's temporary directory.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            yield Path(tmp)
        except errors.FacelakeError as exc:
            exc.args = tuple(str(a).replace(tmp + os.sep, "").replace(tmp, "upload") for a in exc.args)
            raise


def saved(data: bytes, name: str | None, folder: Path) -> Path:
    """The upload as a file in ``folder`` (the service functions take photo paths), named by its hash."""
    suffix = Path(name or "upload.jpg").suffix.lower() or ".jpg"
    path = folder / f"{image_id_of(data)[:16]}{suffix if len(suffix) <= 6 else '.jpg'}"
    path.write_bytes(data)
    return path


def jpeg(data: bytes | None, missing: str) -> Response:
    """A stored JPEG (a face crop, a track's still), or 404 with ``missing``.

    ``no-store``: a face the owner dismissed or had forgotten must not load from a browser's cache afterwards.
    """
    if data is None:
        raise HTTPException(404, missing)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def person_filter(store: Store, name: str | None, person_id: int | None) -> int | None:
    """The id a listing's person filter means: ``person`` is a name only, ``person_id`` an id only.

    One key for both let a person named "1" shadow person 1; an unknown name or id is 404,
    not an empty list (a typo must not read as "never seen").
    """
    if name is not None and person_id is not None:
        raise HTTPException(422, "give person (a name) or person_id, not both")
    if name is not None:
        found = store.people.find(name)
        if found is None:
            raise errors.NotFound(f"no enrolled person called {name!r}")
        return found
    if person_id is not None and store.people.name_of(person_id) is None:
        raise errors.NotFound(f"no enrolled person with id {person_id}")
    return person_id


def plain(value: Any) -> Any:
    """Dates and times as ISO strings, everything else as it is (for JSON)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
