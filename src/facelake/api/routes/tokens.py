"""API tokens, for an admin: which exist, and revoking one while ``serve`` owns the database.

A DuckDB file admits one process, so ``facelake tokens revoke`` is refused while ``serve``
holds it; a leaked token must not wait for the server to stop. Creating tokens stays on the
command line: a new admin token is shown once, and a page is the wrong place to show it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...store import open_store
from ..deps import ADMIN, AdminForm, Cfg, Int64, plain

router = APIRouter()


@router.get("/api/tokens", dependencies=[ADMIN])
def list_tokens(settings: Cfg) -> list[dict[str, Any]]:
    """Every token's id, name, scope and times (never the token or its hash)."""
    with open_store(settings.db, read_only=True) as store:
        return [{k: plain(v) for k, v in vars(t).items()} for t in store.tokens.listing()]


@router.delete("/api/tokens/{token_id}", dependencies=[ADMIN])
def revoke_token(settings: Cfg, caller: AdminForm, token_id: Int64) -> dict[str, Any]:
    """Revoke a token, addressed by id: its requests (and sessions) get 401 from the next one on."""
    with open_store(settings.db) as store:
        token = store.tokens.revoke(int(token_id), actor=caller.actor)
    return {k: plain(v) for k, v in vars(token).items()}
