"""DuckDB storage: one file, one writer, one transaction per image (the embedded default).

The store knows nothing of models: it takes plain records and writes rows. Atomicity is
DuckDB's: an image's row and all its sightings commit together or not at all, so a process
killed mid-batch leaves whole images only, and the next run picks up the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from ..errors import ReadOnlyViolation, StoreError
from .base import VectorHit
from .connection import Sql
from .schema import MIGRATIONS, SEQUENCES
from .sql import SqlStore

_READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "RELATION", "VARIABLE_SET"}


def serve_lock_path(db: Path) -> Path:
    """Where a running ``facelake serve`` says that it holds ``db`` and how to reach it."""
    return Path(f"{db}.serve.json")


def held_message(db: Path) -> str | None:
    """If ``facelake serve`` holds ``db``, a message saying so and how to reach the data over HTTP."""
    import json
    import os

    try:
        info = json.loads(serve_lock_path(db).read_text())
        if int(info["pid"]) == os.getpid():
            return None  # serve's own note: whatever holds the file, it is not this process
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (f"database {db} is held by `facelake serve` (pid {info['pid']}); reach the same data over HTTP at "
            f"{info['url']} (API under /api, OpenAPI at /docs, send `Authorization: Bearer TOKEN`), "
            f"or stop serve first")


class DuckStore(SqlStore):
    """A DuckDB file: one writing process at a time (DuckDB's lock); the embedded default."""

    engine = "duckdb"
    groups_writes = True

    shared = False
    """Set by ``facelake serve``: every Store of this process opens the file read-write.

    DuckDB lets one process hold a file; inside it, connections share one database, but a
    read-only connection cannot sit beside a read-write one. A shared store is still
    read-only where it says so: ``query`` refuses anything but reads.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.target = self.path
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"database {self.path} does not exist yet: run `facelake ingest` first")
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only and not DuckStore.shared)
        except duckdb.IOException as exc:
            raise StoreError(held_message(self.path) or f"cannot open database {self.path}: another process holds "
                             f"it (DuckDB admits one; a server database takes many): {exc}") from exc
        super().__init__(Sql(self._con))
        if not read_only:
            self._migrate()

    def _migrate(self) -> None:
        self._con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for version, ddl in enumerate(MIGRATIONS[current:], start=current + 1):
            self._con.execute("BEGIN TRANSACTION")
            try:
                self._con.execute(ddl)
                self._con.execute("INSERT INTO schema_version VALUES (?)", [version])
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise

    # --- reading ---

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` and return column names and rows.

        On a read-only store anything but a query is refused before it runs, with the
        statement type in the message (DuckDB would refuse too, but with a less clear error).
        """
        if self.read_only:
            try:
                statements = self._con.extract_statements(sql)
            except duckdb.Error as exc:
                raise StoreError(f"SQL error: {exc}") from exc
            for stmt in statements:
                kind = stmt.type.name
                if kind not in _READ_STATEMENTS:
                    raise ReadOnlyViolation(
                        f"`facelake sql` is read-only: a {kind} statement is refused. "
                        "Use the facelake commands to change data."
                    )
        try:
            cur = self._con.execute(sql, params or [])
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, cur.fetchall() if columns else []
        except duckdb.Error as exc:
            if "read-only" in str(exc):
                raise ReadOnlyViolation(f"`facelake sql` is read-only: {exc}") from exc
            raise StoreError(f"SQL error: {exc}") from exc

    def insert_rows(self, table: str, columns: list[str], rows: list[Any]) -> None:
        names = ", ".join(f'"{c}"' for c in columns)
        self._con.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})",
                             [list(r) for r in rows])

    def advance_sequences(self) -> None:
        # DuckDB cannot restart a sequence: draw values until it is past the ids in the table.
        for table, (column, sequence) in SEQUENCES.items():
            top = self._con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()
            current = self._con.execute(f"SELECT nextval('{sequence}')").fetchone()
            need, now = (int(top[0]) if top else 0), (int(current[0]) if current else 0)
            if now < need:
                self._con.execute(f"SELECT max(nextval('{sequence}')) FROM range(?)", [need - now])

    def _copy_to_parquet(self, sql: str, target: Path) -> int:
        """Write the rows of ``sql`` to a Parquet file (DuckDB writes it); returns how many."""
        path = target.as_posix().replace("'", "''")
        self._con.execute(f"COPY ({sql}) TO '{path}' (FORMAT PARQUET, COMPRESSION ZSTD)")
        row = self._con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        return int(row[0]) if row else 0

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """See PARQUET_EXPORT."""
        directory.mkdir(parents=True, exist_ok=True)
        return {name: self._copy_to_parquet(sql, directory / f"{name}.parquet")
                for name, sql in PARQUET_EXPORT.items()}

    def export_rows(self, table: str, since: str, target: Path) -> int:
        """See WAREHOUSE_ROWS."""
        return self._copy_to_parquet(WAREHOUSE_ROWS[table].replace("?", f"'{since}'"), target)

    def vectors(self) -> str:
        return "FLOAT[] column + usearch HNSW index beside the file"

    def searches_vectors(self) -> bool:
        return False

    def nearest(self, model: str, dim: int, vector: NDArray[np.float32], k: int) -> list[VectorHit] | None:
        """DuckDB has no vector index here: the usearch index beside the file answers."""
        return None


PARQUET_EXPORT = {
    "images": "SELECT * FROM images ORDER BY ingested_at, image_id",
    "sightings": """SELECT sighting_id, image_id, face_index, box::FLOAT[] AS box,
           list_transform(landmarks::FLOAT[2][], lambda p: {'x': p[1], 'y': p[2]}) AS landmarks,
           det_score, quality, embedding::FLOAT[] AS embedding, model, person_id, cluster_id,
           match_score, thumb
           FROM sightings ORDER BY sighting_id""",
}
"""What ``facelake export`` writes. Landmarks become a list of ``{x, y}`` structs because
BigQuery has no array-of-arrays type; everything else keeps its column type (docs/bigquery.md)."""

WAREHOUSE_ROWS = {
    "images": "SELECT * FROM images WHERE ingested_at >= CAST(? AS TIMESTAMP) ORDER BY ingested_at",
    "sightings": """SELECT sighting_id, image_id, face_index, box::DOUBLE[] AS box,
           list_transform(landmarks::FLOAT[2][], lambda p: {'x': p[1]::DOUBLE, 'y': p[2]::DOUBLE}) AS landmarks,
           det_score, quality, embedding::DOUBLE[] AS embedding, model, person_id, cluster_id, match_score
           FROM sightings WHERE sighting_id >= CAST(? AS BIGINT) ORDER BY sighting_id""",
    "tracks": """SELECT t.track_id, t.image_id, t.track_index, t.camera, t.started_at, t.ended_at, t.start_s, t.end_s,
           t.frames, t.person_id, t.cluster_id, t.match_score::DOUBLE AS match_score,
           t.template::DOUBLE[] AS template, t.model,
           coalesce((SELECT list(s.face_index ORDER BY s.face_index) FROM sightings s
                     WHERE s.track_id = t.track_id), []) AS face_indexes
           FROM tracks t WHERE t.track_id >= CAST(? AS BIGINT) ORDER BY t.track_id""",
}
"""What ``facelake export --bigquery`` sends, per table, in the order of ``bigquery.FIELDS``;
``?`` is the watermark (``store.exports``): no crops (see ``store.bigquery``)."""
