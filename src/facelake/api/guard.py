"""The outermost layer of the web side, a pure ASGI middleware: what every request meets
before a route (and its body parser) sees it.

Why a middleware and not a dependency: FastAPI parses a multipart body into temporary files
*before* it runs any dependency, so a route's token check came after the upload was on disk
(an unauthenticated chunked upload of 1 GB was written whole, then answered 401). Here, in
order, before one byte of the body is read:

1. a cross-site request that changes something (a POST, PATCH, DELETE from another site's
   page: login CSRF, logout CSRF, any form) is refused by the browser's own ``Sec-Fetch-Site``
   and ``Origin`` headers (clients that are not browsers send neither);
2. a body on any path but the login form needs a caller: a valid Bearer token or session
   (the route still checks the scope);
3. a declared ``Content-Length`` over the limit is refused, and the body, chunked or not, is
   counted as the app reads it: past the limit the request is answered 413 and the rest is
   never read.

Every response also gets the security headers (:data:`HEADERS`) and, unless it says
otherwise, ``Cache-Control: no-store``: crops, names and sightings are biometric data and
must not outlive an erasure in a browser's cache.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request

from ..config import Settings
from .auth import Sessions, identify_caller

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_POSTS = ("/login", "/logout")
"""Paths that take a body without a caller (the login form; logout checks its session's CSRF token)."""
SMALL_BODY = 16_000
"""The login and logout forms carry a token at most: a larger body there is not one."""
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def csp(settings: Settings) -> str:
    """The Content-Security-Policy: scripts, images and styles from this server only (no inline
    script: an injected one does not run), nothing may frame a page (clickjacking the admin's
    buttons), forms post here only. Map tiles may come from the configured tile server alone.
    """
    tiles = ""
    if settings.map_tile_url:
        parts = urlsplit(settings.map_tile_url)
        tiles = f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:{tiles}; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def cross_site(headers: Headers) -> bool:
    """Whether a browser says the request comes from another site's page.

    ``Sec-Fetch-Site`` is sent by current browsers on every request, and decides when present
    (``Origin`` may be ``null`` even on a same-origin form post, under some referrer policies);
    older browsers send ``Origin`` on every cross-origin POST. A request with neither is not
    from a browser page (curl, scripts, the tests' clients).
    """
    site = headers.get("sec-fetch-site")
    if site is not None:  # the browser's own word, and the only one where both are sent
        return site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class Guard:
    """See the module docstring; ``sessions`` are the app's dashboard sessions."""

    def __init__(self, app: App, settings: Settings, sessions: Sessions) -> None:
        self.app = app
        self.settings = settings
        self.sessions = sessions
        self.limit = int(settings.max_file_mb * 1e6) + 64_000  # the file plus its multipart framing
        self.policy = csp(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return  # the guard answered already (413 mid-body): the app's late answer is dropped
                started = True
                out = [(k, v) for k, v in message.get("headers", [])]
                names = {k.lower() for k, _ in out}
                extra = {b"content-security-policy": self.policy, b"x-frame-options": "DENY",
                         b"x-content-type-options": "nosniff", b"referrer-policy": "same-origin",
                         b"cross-origin-opener-policy": "same-origin"}
                if not path.startswith(("/static/", "/docs/assets/")):
                    extra[b"cache-control"] = "no-store"
                out += [(k, v.encode()) for k, v in extra.items() if k not in names]
                message = {**message, "headers": out}
            elif finished:
                return
            await send(message)

        finished = False

        async def answer(status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
            nonlocal finished
            body = json.dumps({"detail": detail}).encode()
            await secured({"type": "http.response.start", "status": status,
                           "headers": [(b"content-type", b"application/json"),
                                       (b"content-length", str(len(body)).encode()),
                                       (b"connection", b"close"), *(extra or [])]})
            await secured({"type": "http.response.body", "body": body})
            finished = True

        method = scope["method"]
        if method in UNSAFE and cross_site(headers):
            await answer(403, "refused: a change asked from another site's page")
            return
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or (length is not None and length.strip() not in ("", "0"))
        limit = SMALL_BODY if path in OPEN_POSTS else self.limit
        if length is not None and (not length.isdigit() or int(length) > limit):
            await answer(413, f"the request body is over the {limit / 1e6:g} MB limit")
            return
        if has_body and path not in OPEN_POSTS:
            caller = await run_in_threadpool(identify_caller, Request(scope), self.settings, self.sessions)
            if caller is None:
                await answer(401, "a valid token is needed: send `Authorization: Bearer TOKEN` or log in",
                             [(b"www-authenticate", b"Bearer")])
                return
        read = 0

        async def counted() -> Message:
            nonlocal read
            if finished:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    await answer(413, f"the request body is over the {limit / 1e6:g} MB limit")
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted, secured)
