"""Databases for the tests: every store test runs on DuckDB and on PostgreSQL (with pgvector).

A test asks for ``db`` (one database) or ``new_db`` (a factory, for tests that need two);
``rows``/``execute`` read and change them in SQL that both engines run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from facelake.errors import StoreError
from facelake.store import Target, is_postgres, open_store

NewDb = Callable[..., Target]


class PostgresServers:
    """PostgreSQL servers for the session, each started on first use: ``pgvector`` (PyPI's
    pgserver build, PostgreSQL 16 + pgvector) and ``plain`` (Debian's package, no pgvector)."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def url(self, kind: str = "pgvector") -> str:
        import pytest

        from .servers import postgres, postgres_bins

        with self._lock:
            if kind not in self._urls:
                bins = postgres_bins()
                if kind not in bins:
                    pytest.fail(f"no {kind} PostgreSQL build here: scripts/test.sh installs both "
                                "(pgserver from PyPI, postgresql from Debian)")
                self._urls[kind] = self._stack.enter_context(postgres(bins[kind]))
            return self._urls[kind]

    def database(self, kind: str = "pgvector", name: str = "f") -> str:
        from .servers import new_database

        return new_database(self.url(kind), f"{name}_{uuid.uuid4().hex[:10]}")

    def close(self) -> None:
        self._stack.close()


def make_factory(engine: str, tmp_path: Path, servers: PostgresServers) -> NewDb:
    def make(name: str = "f") -> Target:
        if engine == "duckdb":
            return tmp_path / f"{name}.duckdb"
        return servers.database("pgvector", name)

    return make


def rows(db: Target, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (as tuples, on either engine)."""
    with open_store(db, read_only=True) as store:
        return [tuple(r) for r in store.query(sql, list(params))[1]]


def execute(db: Target, sql: str, params: Sequence[Any] = ()) -> None:
    """Change the database behind facelake's back (to age rows, break things on purpose)."""
    with open_store(db) as store:
        store.query(sql, list(params))


def missing(db: Target) -> Target:
    """A database like ``db`` that does not exist."""
    if is_postgres(db):
        return str(db).rsplit("/", 1)[0] + "/no_such_database"
    return Path(db).with_name("nope.duckdb")


def release() -> None:
    """Close this process's PostgreSQL connection pools (between tests)."""
    from facelake.store import pg

    pg.close_pools()


def empty(db: Target, table: str) -> bool:
    """Whether ``table`` holds no rows, or the database was never created (DuckDB) or migrated."""
    if not is_postgres(db) and not Path(db).exists():
        return True
    try:
        store = open_store(db, read_only=True)
    except StoreError as exc:  # PostgreSQL: a database without facelake's tables yet
        return "no facelake tables" in str(exc)
    with store:
        return store.table_counts()[table] == 0
