"""Moving a database between engines (``facelake copy``): DuckDB ⇄ PostgreSQL.

Every table is streamed in batches (a million sightings never sit in memory at once), ids
are kept (so names, clusters, enrollments and the audit log still point at the right rows),
the target's sequences are moved past the copied ids, and the copy is verified by row
counts and a checksum of every embedding read back from both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import StoreError
from .base import Store
from .schema import SEQUENCES, TABLES

BATCH = 2_000


def stream(store: Store, sql: str, params: Sequence[Any] = (), batch: int = BATCH) -> Iterator[tuple[list[str], list[Any]]]:
    """Rows of ``sql`` in batches, with the column names (a server-side cursor on PostgreSQL)."""
    from .pg import PgStore, to_pg

    if isinstance(store, PgStore):
        raw = store.con.raw
        with raw.transaction(), raw.cursor(name="facelake_stream") as cur:
            cur.itersize = batch
            cur.execute(to_pg(sql), list(params))
            columns = [d.name for d in cur.description or []]
            while rows := cur.fetchmany(batch):
                yield columns, rows
        return
    cur = store.con.execute(sql, list(params))
    columns = [d[0] for d in cur.description or []]
    while rows := cur.fetchmany(batch):  # type: ignore[attr-defined]
        yield columns, rows


def _plain(value: Any) -> Any:
    """DuckDB's fixed-size arrays come back as tuples; PostgreSQL wants lists (tuples are records)."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def _write(dst: Store, table: str, columns: list[str], rows: list[Any]) -> None:
    from .pg import PgStore

    names = ", ".join(f'"{c}"' for c in columns)
    if isinstance(dst, PgStore):
        rows = [[_plain(v) for v in r] for r in rows]
        if dst.db.vector_version is not None and "embedding" in columns:
            k = columns.index("embedding")
            rows = [(*r[:k], None if r[k] is None else "[" + ",".join(map(repr, map(float, r[k]))) + "]", *r[k + 1:])
                    for r in rows]
        with dst.con.raw.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        return
    dst.con.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})",  # type: ignore[attr-defined]
                        [list(r) for r in rows])


def _advance_sequences(dst: Store) -> None:
    from .pg import PgStore

    for table, (column, duck_seq, _) in SEQUENCES.items():
        top = dst.con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()
        need = int(top[0]) if top else 0
        if isinstance(dst, PgStore):
            dst.con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), ?, ?)",
                            [max(need, 1), need > 0])
            continue
        # DuckDB cannot restart a sequence: draw values until it is past the copied ids.
        current = dst.con.execute(f"SELECT nextval('{duck_seq}')").fetchone()
        if current and int(current[0]) < need:
            dst.con.execute(f"SELECT max(nextval('{duck_seq}')) FROM range(?)", [need - int(current[0])])


def copy_tables(src: Store, dst: Store, tables: Sequence[str] = TABLES,
                on_rows: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy ``tables`` from ``src`` into ``dst`` in one transaction; returns rows per table."""
    counts: dict[str, int] = {}
    with dst.transaction():
        for table in tables:
            counts[table] = 0
            for columns, rows in stream(src, f"SELECT * FROM {table}"):
                _write(dst, table, columns, rows)
                counts[table] += len(rows)
                if on_rows:
                    on_rows(table, len(rows))
        _advance_sequences(dst)
    return counts


def table_counts(store: Store) -> dict[str, int]:
    out = {}
    for table in TABLES:
        row = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def embedding_digest(store: Store) -> str:
    """sha256 over every embedding (id, model, float32 bytes), in id order: equal iff copied exactly."""
    digest = hashlib.sha256()
    sql = "SELECT sighting_id, model, embedding FROM sightings WHERE embedding IS NOT NULL ORDER BY sighting_id"
    for _, rows in stream(store, sql):
        for sid, model, vec in rows:
            digest.update(int(sid).to_bytes(8, "little"))
            digest.update(str(model).encode())
            digest.update(np.asarray(vec, dtype=np.float32).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CopyResult:
    counts: dict[str, int]
    source_counts: dict[str, int]
    target_counts: dict[str, int]
    source_digest: str
    target_digest: str

    @property
    def verified(self) -> bool:
        return self.source_counts == self.target_counts and self.source_digest == self.target_digest


def copy_database(src: Store, dst: Store, on_rows: Callable[[str, int], None] | None = None) -> CopyResult:
    """Copy a whole database into an empty one and verify it (counts, embedding checksums)."""
    held = {t: n for t, n in table_counts(dst).items() if n}
    if held:
        raise StoreError("the target already holds data (" + ", ".join(f"{n} {t}" for t, n in held.items())
                         + "); copy into a new, empty database")
    counts = copy_tables(src, dst, TABLES, on_rows)
    result = CopyResult(counts, table_counts(src), table_counts(dst), embedding_digest(src), embedding_digest(dst))
    if not result.verified:
        raise StoreError(f"the copy does not match its source: counts {result.source_counts} vs "
                         f"{result.target_counts}, embeddings {result.source_digest[:12]} vs {result.target_digest[:12]}")
    return result
