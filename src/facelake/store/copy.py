"""Moving a database between engines (``facelake copy``): DuckDB ⇄ PostgreSQL.

Every table is streamed in batches (a million sightings never sit in memory at once), ids
are kept (so names, clusters, enrollments and the audit log still point at the right rows),
the target's sequences are moved past the copied ids, and the copy is verified by row
counts and a checksum of every embedding read back from both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import StoreError
from .base import Store
from .schema import TABLES


def copy_tables(src: Store, dst: Store, tables: Sequence[str] = TABLES,
                on_rows: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy ``tables`` from ``src`` into ``dst`` in one transaction; returns rows per table."""
    counts: dict[str, int] = {}
    with dst.transaction():
        for table in tables:
            counts[table] = 0
            for columns, rows in src.stream(table):
                dst.insert_rows(table, columns, rows)
                counts[table] += len(rows)
                if on_rows:
                    on_rows(table, len(rows))
        dst.advance_sequences()
    return counts


def embedding_digest(store: Store) -> str:
    """sha256 over every embedding (id, model, float32 bytes), in id order: equal iff copied exactly."""
    digest = hashlib.sha256()
    for rows in store.embeddings():
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
    held = {t: n for t, n in dst.table_counts().items() if n}
    if held:
        raise StoreError("the target already holds data (" + ", ".join(f"{n} {t}" for t, n in held.items())
                         + "); copy into a new, empty database")
    counts = copy_tables(src, dst, TABLES, on_rows)
    result = CopyResult(counts, src.table_counts(), dst.table_counts(), embedding_digest(src), embedding_digest(dst))
    if not result.verified:
        raise StoreError(f"the copy does not match its source: counts {result.source_counts} vs "
                         f"{result.target_counts}, embeddings {result.source_digest[:12]} vs {result.target_digest[:12]}")
    return result
