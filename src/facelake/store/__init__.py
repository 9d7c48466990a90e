"""The database: one :class:`Store` interface over DuckDB (default) and PostgreSQL; only here is SQL run.

``open_store`` lives here, above the engines, so that ``base`` (the interface) never imports
its implementations: ``base`` ← ``sql`` ← ``duck`` / ``pg``, and nothing points back.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import (
    ImageRecord,
    SightingRecord,
    Store,
    Target,
    VectorHit,
    as_target,
    describe_target,
    is_postgres,
    target_key,
    utcnow,
)


def open_store(target: Target, read_only: bool = False) -> Store:
    """Open the database at ``target``: a file path (DuckDB) or a ``postgresql://`` URL.

    The engines are imported only when asked for: PostgreSQL's needs the ``postgres`` extra.
    """
    if is_postgres(target):
        from .pg import PgStore

        return PgStore(str(target), read_only=read_only)
    if isinstance(target, str) and "://" in target:
        raise ConfigError(f"--db {describe_target(target)!r}: give a DuckDB file path or a postgresql:// URL")
    from .duck import DuckStore

    return DuckStore(Path(target), read_only=read_only)


__all__ = [
    "ImageRecord", "SightingRecord", "Store", "Target", "VectorHit", "as_target", "describe_target", "is_postgres",
    "open_store", "target_key", "utcnow",
]
