"""API tokens in SQL (``store.tokens``): created and revoked from the command line, checked by the server.

Only the token's SHA-256 is stored, so a copy of the database gives no access. A token has
one scope: ``read`` sees everything and changes nothing, ``admin`` may also enroll, rename,
name clusters and erase.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..errors import NotFound, StoreError
from .connection import Sql, utcnow

SCOPES = ("read", "admin")

_COLUMNS = "token_id, name, scope, created_at, revoked_at"


@dataclass(frozen=True)
class Token:
    token_id: int
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """The ``tokens`` table."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def create(self, scope: str, name: str | None, actor: str) -> tuple[Token, str]:
        """A new token of ``scope``; returns its record and the token itself (shown only now)."""
        token = "fl_" + secrets.token_urlsafe(32)
        label = name or f"{scope}-{secrets.token_hex(3)}"
        if self._sql.one("SELECT 1 FROM tokens WHERE name = ?", [label]):
            raise StoreError(f"a token called {label!r} exists; pick another --name or revoke it")
        row = self._sql.one(f"INSERT INTO tokens (name, scope, token_hash, created_at) VALUES (?, ?, ?, ?) "
                            f"RETURNING {_COLUMNS}", [label, scope, token_hash(token), utcnow()])
        assert row is not None
        self._sql.audit(actor, "create_token", f"token:{label} scope:{scope}")
        return Token(*row), token

    def listing(self) -> list[Token]:
        return [Token(*r) for r in self._sql.all(f"SELECT {_COLUMNS} FROM tokens ORDER BY token_id")]

    def revoke(self, who: str | int, actor: str) -> Token:
        """Revoke the token named ``who`` (or whose id is ``who``; an int is an id only, as the API
        addresses it: a token named "5" must not shadow token 5); revoking twice keeps the first time."""
        if isinstance(who, int):
            row = self._sql.one("SELECT token_id, name FROM tokens WHERE token_id = ?", [who])
        else:
            row = self._sql.one("SELECT token_id, name FROM tokens WHERE name = ? OR CAST(token_id AS VARCHAR) = ?",
                                [who, who])
        if row is None:
            raise NotFound(f"no token called {who!r} (listed by `facelake tokens list` and GET /api/tokens)")
        self._sql.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?",
                          [utcnow(), row[0]])
        self._sql.audit(actor, "revoke_token", f"token:{row[1]}")
        out = self._sql.one(f"SELECT {_COLUMNS} FROM tokens WHERE token_id = ?", [row[0]])
        assert out is not None
        return Token(*out)

    def by_hash(self, digest: str) -> Token | None:
        """The live token whose hash is ``digest``, or ``None`` (unknown or revoked)."""
        row = self._sql.one(f"SELECT {_COLUMNS} FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", [digest])
        return Token(*row) if row else None

    def check(self, token: str) -> Token | None:
        """The live token matching ``token``, or ``None`` (unknown or revoked)."""
        return self.by_hash(token_hash(token))
