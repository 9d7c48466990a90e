"""API tokens: created and revoked from the command line, checked by the server.

Only the token's SHA-256 is stored, so a copy of the database gives no access; the token is
printed once, alone on the last line of stdout, for scripts to capture. A token has one
scope: ``read`` sees everything and changes nothing, ``admin`` may also enroll, rename,
name clusters and erase. Every search, enrollment and erasure made with a token is audited
under the token's name.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..config import Settings
from ..errors import ConfigError, NotFound, StoreError
from ..store.base import Store, open_store, utcnow

Scope = Literal["read", "admin"]
SCOPES = ("read", "admin")


@dataclass(frozen=True)
class Token:
    token_id: int
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(settings: Settings, scope: str, name: str | None = None) -> tuple[Token, str]:
    """A new token of ``scope``; returns its record and the token itself (shown only now)."""
    if scope not in SCOPES:
        raise ConfigError(f"--scope must be one of {SCOPES}, got {scope!r}")
    token = "fl_" + secrets.token_urlsafe(32)
    with open_store(settings.db) as store:
        label = name or f"{scope}-{secrets.token_hex(3)}"
        if store.con.execute("SELECT 1 FROM tokens WHERE name = ?", [label]).fetchone():
            raise StoreError(f"a token called {label!r} exists; pick another --name or revoke it")
        row = store.con.execute(
            "INSERT INTO tokens (name, scope, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING *",
            [label, scope, token_hash(token), utcnow()]).fetchone()
        assert row is not None
        store.audit("cli", "create_token", f"token:{label} scope:{scope}")
    return Token(row[0], row[1], row[2], row[4], row[5]), token


def list_tokens(settings: Settings) -> list[Token]:
    with open_store(settings.db) as store:
        rows = store.con.execute(
            "SELECT token_id, name, scope, created_at, revoked_at FROM tokens ORDER BY token_id").fetchall()
    return [Token(*r) for r in rows]


def revoke_token(settings: Settings, who: str) -> Token:
    with open_store(settings.db) as store:
        row = store.con.execute(
            "SELECT token_id, name FROM tokens WHERE name = ? OR CAST(token_id AS VARCHAR) = ?", [who, who]).fetchone()
        if row is None:
            raise NotFound(f"no token called {who!r} (see `facelake tokens list`)")
        store.con.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?", [utcnow(), row[0]])
        store.audit("cli", "revoke_token", f"token:{row[1]}")
        out = store.con.execute("SELECT token_id, name, scope, created_at, revoked_at FROM tokens WHERE token_id = ?",
                                [row[0]]).fetchone()
    assert out is not None
    return Token(*out)


def token_by_hash(store: Store, digest: str) -> Token | None:
    """The live token whose hash is ``digest``, or ``None`` (unknown or revoked)."""
    row = store.con.execute(
        "SELECT token_id, name, scope, created_at, revoked_at FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
        [digest]).fetchone()
    return Token(*row) if row else None


def check_token(store: Store, token: str) -> Token | None:
    """The live token matching ``token``, or ``None`` (unknown or revoked)."""
    return token_by_hash(store, token_hash(token))
