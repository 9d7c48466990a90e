"""The engine's connection as the query modules inside ``store/`` see it: the one door to SQL.

Why a handle and not the raw connection: the query modules (people, clusters, sightings,
tokens, reports, exports) write SQL once for both engines, but a few statements must take a
lock that only a server needs (many writers). Those locks are the handle's hooks: DuckDB
(one writing process) takes none, PostgreSQL's handle (``pg.PgSql``) overrides them. Nothing
outside ``store/`` holds a handle: callers reach SQL only through :class:`~.base.Store`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray


class Cursor(Protocol):
    """What ``execute`` returns on both engines (DuckDB's connection, psycopg's cursor)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class Connection(Protocol):
    """An engine connection that takes facelake's SQL: ``?`` placeholders, both dialects."""

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor: ...

    def close(self) -> None: ...


def utcnow() -> datetime:
    """Naive UTC now: the TIMESTAMP columns hold no time zone (on both engines)."""
    return datetime.now(UTC).replace(tzinfo=None)


def marks(n: int) -> str:
    """``?, ?, ?``: ``n`` placeholders, for an ``IN (...)`` list."""
    return ",".join("?" * n)


def value_rows(n: int, width: int) -> str:
    """``(?, ?, ...), (?, ?, ...)``: ``n`` rows of ``width`` placeholders, for a multi-row VALUES."""
    return ",".join([f"({marks(width)})"] * n)


class Sql:
    """A connection with the statements every query module needs, and the engines' lock hooks."""

    def __init__(self, con: Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.con.execute(sql, list(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of ``sql``, or ``None``."""
        row = self.con.execute(sql, list(params)).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.con.execute(sql, list(params)).fetchall()]

    def vectors(self, sql: str, params: Sequence[Any] = ()) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``(id, embedding)`` rows of ``sql`` as arrays (DuckDB's handle skips the Python floats)."""
        rows = self.all(sql, params)
        return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32)

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The single number ``sql`` selects (0 when it selects no row or NULL)."""
        row = self.con.execute(sql, list(params)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (an explicit ``BEGIN``: the PostgreSQL pool runs in autocommit)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def audit(self, actor: str, action: str, subject: str) -> None:
        """Append one row to the audit log (part of the caller's transaction, if one is open)."""
        self.con.execute('INSERT INTO audit ("at", actor, action, subject) VALUES (?, ?, ?, ?)',
                         [utcnow(), actor, action, subject])

    # --- engine hooks: a single writing process (DuckDB) needs no lock ---

    def lock_image(self, image_id: str) -> None:
        """Inside a transaction: keep other writers of the same image waiting until it ends."""

    def lock_person(self, person: int) -> None:
        """Inside a transaction: hold the person's row against writers naming faces as them."""

    def erasing(self) -> None:
        """Before an erasure's statements: note that erased bytes may linger until ``Store.compact``
        (DuckDB keeps a note next to the file, so a crash before the compaction is finished later)."""

    def live_people(self, ids: set[int]) -> set[int]:
        """Which of ``ids`` still exist, held (on a server) until the caller's transaction ends."""
        if not ids:
            return set()
        return {int(r[0]) for r in self.all(f"SELECT person_id FROM people WHERE person_id IN ({marks(len(ids))})",
                                             sorted(ids))}
