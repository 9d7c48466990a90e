"""Who is calling: a Bearer token, or a dashboard session cookie set by the login form.

Rules (tested as a matrix in tests/test_api.py):
- every endpoint and page needs a token, except the health check, the login page, static
  assets and the OpenAPI docs;
- no token, an unknown or a revoked token → 401; a read token on a change → 403;
- tokens are checked against the database on every request, so a revocation takes effect
  at once, sessions included;
- the session cookie is HttpOnly and SameSite=Strict (and Secure when served over TLS), lasts
  ``session_hours``, and every form post made with it, logout included, must carry the
  session's CSRF token (requests with a Bearer header carry no ambient credential and need
  none); a change asked from another site's page is refused before that (``guard``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from ..config import Settings
from ..store import open_store
from ..store.tokens import Token, token_hash

SESSION_COOKIE = "facelake_session"


@dataclass(frozen=True)
class Caller:
    token: Token
    via_session: bool
    csrf: str | None

    @property
    def actor(self) -> str:
        return f"token:{self.token.name}"


class Sessions:
    """Dashboard sessions in memory: session id → (token hash, CSRF token, expiry).

    They end with the server, or ``lifetime_s`` after the login, whichever comes first: a
    cookie copied off a shared machine stops working by itself.
    """

    def __init__(self, lifetime_s: float = 12 * 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, str, float]] = {}
        self.lifetime_s = lifetime_s
        self._clock = clock

    def open(self, token: str) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            self._by_id = {k: v for k, v in self._by_id.items() if v[2] > now}  # drop the expired ones
            self._by_id[sid] = (token_hash(token), csrf, now + self.lifetime_s)
        return sid, csrf

    def get(self, sid: str) -> tuple[str, str] | None:
        with self._lock:
            found = self._by_id.get(sid)
            if found is None:
                return None
            if found[2] <= self._clock():
                del self._by_id[sid]
                return None
            return found[0], found[1]

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


def identify_caller(request: Request, settings: Settings, sessions: Sessions) -> Caller | None:
    header = request.headers.get("authorization", "")
    with open_store(settings.db, read_only=True) as store:
        if header.lower().startswith("bearer "):
            token = store.tokens.check(header[7:].strip())
            return Caller(token, False, None) if token else None
        sid = request.cookies.get(SESSION_COOKIE)
        session = sessions.get(sid) if sid else None
        if session is None:
            return None
        token = store.tokens.by_hash(session[0])
        return Caller(token, True, session[1]) if token else None


def require(request: Request, scope: str) -> Caller:
    """The caller, if allowed ``scope``; raises 401/403 otherwise (and checks CSRF on session posts)."""
    app = request.app
    caller = identify_caller(request, app.state.settings, app.state.sessions)
    if caller is None:
        raise HTTPException(401, "a valid token is needed: send `Authorization: Bearer TOKEN` or log in",
                            headers={"WWW-Authenticate": "Bearer"})
    if scope == "admin" and caller.token.scope != "admin":
        raise HTTPException(403, f"token {caller.token.name!r} has the read scope; this needs admin")
    return caller


def check_csrf(caller: Caller, submitted: str | None) -> None:
    if caller.via_session and (not submitted or not secrets.compare_digest(submitted, caller.csrf or "")):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
