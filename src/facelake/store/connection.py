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

    def batches(self, sql: str, params: Sequence[Any] = (), size: int = 20_000,
                vectors: Sequence[str] = ("embedding",)) -> Iterator[dict[str, Any]]:
        """The rows of ``sql`` in batches of up to ``size``, column by column: each column in
        ``vectors`` as one ``(rows, dim)`` float32 matrix, every other as a list of values.

        Why: a million embeddings fetched as rows are 320 million Python floats (over 10 GB);
        a batch at a time, as numpy, they are the matrix and nothing else. The caller must read
        the batches to the end before the next statement on this handle. The engines override
        this (DuckDB through Arrow, PostgreSQL through a server-side cursor).
        """
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description or []]
        while rows := cur.fetchmany(size):
            yield vector_columns(names, list(zip(*rows)), vectors)

    def vectors(self, sql: str, params: Sequence[Any] = ()) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``(id, embedding)`` rows of ``sql`` as two arrays, read through :meth:`batches` (so
        no Python float is made per value: as lists, 2,000 faces were 640,000 float objects made
        while holding the interpreter, and every request of ``serve`` waited behind its index sync)."""
        ids: list[Any] = []
        blocks: list[NDArray[np.float32]] = []
        for batch in self.batches(sql, params, size=100_000, vectors=("embedding",)):
            ids.extend(batch[next(iter(batch))])
            blocks.append(batch["embedding"])
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.asarray(ids, dtype=np.int64), np.concatenate(blocks).astype(np.float32, copy=False)

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


def vector_columns(names: Sequence[str], columns: Sequence[Sequence[Any]], vectors: Sequence[str]) -> dict[str, Any]:
    """One batch's columns by name, ``vectors`` as float32 matrices (a NULL vector is a row of NaN)."""
    out: dict[str, Any] = {}
    for name, values in zip(names, columns):
        if name in vectors:
            dim = next((len(v) for v in values if v is not None), 0)
            if dim == 0:
                out[name] = np.zeros((len(values), 0), np.float32)
                continue
            out[name] = np.array([np.full(dim, np.nan) if v is None else v for v in values],
                                 dtype=np.float32).reshape(len(values), dim)
        else:
            out[name] = list(values)
    return out
