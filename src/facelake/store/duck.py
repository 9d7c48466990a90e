"""DuckDB storage: one file, one writer, one transaction per image (the embedded default).

The store knows nothing of models: it takes plain records and writes rows. Atomicity is
DuckDB's: an image's row and all its sightings commit together or not at all, so a process
killed mid-batch leaves whole images only, and the next run picks up the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from ..errors import ReadOnlyViolation, StoreError
from .base import VectorHit
from .connection import Sql, vector_columns
from .files import recover, replace_wiping, wipe
from .schema import MIGRATIONS, SEQUENCES
from .sql import SqlStore

_READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "RELATION", "VARIABLE_SET"}


def serve_lock_path(db: Path) -> Path:
    """Where a running ``facelake serve`` says that it holds ``db`` and how to reach it."""
    return Path(f"{db}.serve.json")


def held_message(db: Path) -> str | None:
    """If ``facelake serve`` holds ``db``, a message saying so and how to reach the data over HTTP."""
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


def watch_lock_path(db: Path) -> Path:
    """Where a running ``facelake watch`` says that it uses ``db`` (and lends it when idle)."""
    return Path(f"{db}.watch.json")


@contextlib.contextmanager
def watching(db: Path) -> Iterator[None]:
    """Say, for as long as the block runs, that this process's ``watch`` uses ``db``."""
    path = watch_lock_path(db)
    path.write_text(json.dumps({"pid": os.getpid()}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _watcher_of(db: Path) -> int | None:
    """The pid of a live ``facelake watch`` using ``db``, if there is one."""
    try:
        pid = int(json.loads(watch_lock_path(db).read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


MEMORY_LIMIT = os.environ.get("FACELAKE_DUCKDB_MEMORY", "1GB")
"""DuckDB's own memory (its buffers; it spills to disk past it). Its default, 80 % of the machine,
let one listing of a million sightings hold 3 GB in ``serve``."""

SERVE_MEMORY_LIMIT = os.environ.get("FACELAKE_SERVE_DUCKDB_MEMORY", "256MB")
"""The same for ``facelake serve``, which answers small pages for as long as it runs: DuckDB keeps
every column it read cached up to its limit, so 1 GB of cache (the embeddings its index sync read,
1.3 GB at a million faces) was most of serve's 1.5 GB. The pages' columns fit in a quarter of that."""

WATCH_WAIT_S = 15.0
"""How long a command waits for a file a busy ``watch`` holds: watch lets go once idle for
``watch_lend_s``, so this covers a batch of photos; an hour-long clip holds it longer."""

def pending_path(db: Path) -> Path:
    """Present while erased rows may still sit in the file's free or dead blocks (see :meth:`DuckStore.compact`)."""
    return Path(f"{db}.erase-pending")


def compact_path(db: Path) -> Path:
    """Where the fresh copy of the database is built before it takes the file's place."""
    return Path(f"{db}.compact")


_GATE = threading.Condition()
_OPEN: dict[Path, int] = {}
"""DuckStores open in this process, per file: a copy-and-swap may only replace a file that no
other connection of the process holds (``serve``'s request threads and its watcher share one)."""
_SWAPPING: set[Path] = set()
"""Files being compacted: opening one waits until its new file is in place."""


def wait_for_others(path: Path, timeout_s: float) -> int:
    """Wait up to ``timeout_s`` until this process holds ``path`` through one store only; returns
    how many others are still open then.

    Why: when serve stops, uvicorn cancels a request still running after its grace, but the
    thread doing the request's work goes on (Python cannot stop a thread), and the process
    would exit under it: a naming or an erasure the owner asked for was dropped as a kill
    drops it. Every such request holds a store until its transaction is done, so serve waits
    for those to close before it lets go of the file.
    """
    with _GATE:
        return _others_after(Path(path).resolve(), time.monotonic() + timeout_s)


def _others_after(key: Path, deadline: float) -> int:
    """With ``_GATE`` held: wait until ``deadline`` for the other stores of ``key`` to close;
    how many are still open."""
    while _OPEN.get(key, 0) > 1 and time.monotonic() < deadline:
        _GATE.wait(max(0.0, deadline - time.monotonic()))
    return max(0, _OPEN.get(key, 0) - 1)


class _DuckSql(Sql):
    """DuckDB's handle: an erasure marks the file as holding erased bytes until it is compacted."""

    def __init__(self, con: Any, path: Path) -> None:
        super().__init__(con)
        self._pending = pending_path(path)

    def erasing(self) -> None:
        self._pending.touch()

    def batches(self, sql: str, params: Sequence[Any] = (), size: int = 20_000,
                vectors: Sequence[str] = ("embedding",)) -> Iterator[dict[str, Any]]:
        """Through Arrow, streamed: the vectors arrive as one float buffer per batch (no Python
        float per value), and DuckDB holds no more of the result than a batch (``execute``
        would materialise all of it first)."""
        con: Any = self.con
        con.complete()  # a result that ``one`` read a row of would keep the connection busy
        reader = con.sql(sql, params=list(params)).to_arrow_reader(size)
        try:
            for batch in reader:
                out: dict[str, Any] = {}
                for name, column in zip(batch.schema.names, batch.columns):
                    if name in vectors and column.null_count == len(column):  # e.g. no face of a track
                        out[name] = np.zeros((len(column), 0), np.float32)
                    elif name in vectors and column.null_count == 0:
                        flat = np.array(column.flatten().to_numpy(zero_copy_only=False), np.float32)  # writable
                        out[name] = flat.reshape(len(column), -1 if len(column) else 0)
                    elif name in vectors:
                        out[name] = vector_columns([name], [column.to_pylist()], vectors)[name]
                    else:
                        out[name] = column.to_pylist()
                yield out
        finally:
            reader.close()  # a reader left open keeps the connection from its next statement


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

    memory_limit = MEMORY_LIMIT
    """DuckDB's memory in this process (``facelake serve`` sets :data:`SERVE_MEMORY_LIMIT`). One
    process has one database per file, so the first connection's setting holds for all."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.target = self.path
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"database {self.path} does not exist yet: run `facelake ingest` first")
        self._key = self.path.resolve()
        with _GATE:
            while self._key in _SWAPPING:
                _GATE.wait()
            _OPEN[self._key] = _OPEN.get(self._key, 0) + 1
        self._closed = False
        try:
            self._con = self._connect()
        except BaseException:
            self._leave()
            raise
        super().__init__(_DuckSql(self._con, self.path))
        if not read_only:
            self._migrate()
            if pending_path(self.path).exists():  # an erasure not yet compacted (or a crash mid-way)
                self.compact()

    def _leave(self) -> None:
        with _GATE:
            _OPEN[self._key] -= 1
            if not _OPEN[self._key]:
                del _OPEN[self._key]
            _GATE.notify_all()

    def close(self) -> None:
        """Close the connection; the last writable store of the process compacts a pending erasure first."""
        if self._closed:
            return
        try:
            if not self.read_only and pending_path(self.path).exists():
                self.compact()
        finally:
            self._closed = True
            self._con.close()
            self._leave()

    def compact(self, wait_s: float = 0.0) -> bool:
        """Rewrite the file so that erased rows are gone from the disk; returns whether it was done now.

        Why a copy: DuckDB's ``DELETE`` and ``UPDATE`` leave the old values in the file. A
        checkpoint writes changed columns to new blocks, but the freed blocks keep their bytes,
        and rows deleted from a row group stay in it, only marked deleted: after ``forget`` every
        erased face crop could be carved back from the file. ``COPY FROM DATABASE`` writes the
        live rows (and the schema, with the sequences where they stand) into a fresh file, which
        takes the old file's place by an atomic rename (:func:`~.files.replace_wiping`: the old
        file's bytes are then overwritten). A kill at any point leaves the old file or the new
        one, both complete; the ``.erase-pending`` note then makes the next writable open finish.

        Only a file no other connection of this process holds can be swapped (DuckDB admits a
        single process, so that is every connection there is). Otherwise this waits up to
        ``wait_s`` for the others to close, holding back new ones, and if they do not, leaves
        the note: the last writable store to close (or the next to open) compacts.
        """
        if self.read_only:
            raise ReadOnlyViolation("a read-only store cannot compact the database")
        pending_path(self.path).touch()
        deadline = time.monotonic() + wait_s
        with _GATE:
            if self._key in _SWAPPING:
                return False
            _SWAPPING.add(self._key)
            if _others_after(self._key, deadline):
                _SWAPPING.discard(self._key)
                _GATE.notify_all()
                return False
        try:
            self._swap()
        finally:
            with _GATE:
                _SWAPPING.discard(self._key)
                _GATE.notify_all()
        return True

    def erasure_pending(self) -> bool:
        return pending_path(self.path).exists()

    def _swap(self) -> None:
        con = self._con
        fresh = compact_path(self.path)
        for leftover in (fresh, Path(f"{fresh}.wal")):
            wipe(leftover)  # a copy a crash left behind may hold rows erased since
        recover(self.path)
        con.execute("CHECKPOINT")
        row = con.execute("SELECT current_database()").fetchone()
        assert row is not None
        name = str(row[0]).replace('"', '""')
        sequences = con.execute("SELECT sequence_name, last_value FROM duckdb_sequences() "
                                "WHERE database_name = current_database()").fetchall()
        con.execute(f"ATTACH '{fresh.as_posix().replace(chr(39), chr(39) * 2)}' AS facelake_compact")
        try:
            con.execute(f'COPY FROM DATABASE "{name}" TO facelake_compact')
            copied = dict(con.execute("SELECT sequence_name, last_value FROM duckdb_sequences() "
                                      "WHERE database_name = 'facelake_compact'").fetchall())
            for sequence, last in sequences:  # ids of erased rows are never given out again
                behind = int(last or 0) - int(copied.get(sequence) or 0)
                if behind > 0:
                    con.execute(f"SELECT max(nextval('facelake_compact.{sequence}')) FROM range(?)", [behind])
            con.execute("CHECKPOINT facelake_compact")
        finally:
            con.execute("DETACH DATABASE IF EXISTS facelake_compact")
        con.close()
        try:
            replace_wiping(fresh, self.path)
            pending_path(self.path).unlink(missing_ok=True)
        finally:
            self._con = self._connect()
            self._sql.con = self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file; while a ``watch`` holds it for a batch, wait for it to let go."""
        deadline = time.monotonic() + WATCH_WAIT_S
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only and not DuckStore.shared,
                                      config={"memory_limit": DuckStore.memory_limit})
            except duckdb.IOException as exc:
                if "not a valid DuckDB database" in str(exc):  # no lock involved: saying "held" misleads
                    raise StoreError(f"{self.path} is not a DuckDB database (is --db pointing at another kind of "
                                     "file?); give a new file name, or the .duckdb file facelake wrote") from exc
                if (held := held_message(self.path)) is not None:  # serve lends the file to nobody
                    raise StoreError(held) from exc
                pid = _watcher_of(self.path)
                if pid is not None and pid != os.getpid() and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                if pid is not None and pid != os.getpid():
                    raise StoreError(f"database {self.path} is held by `facelake watch` (pid {pid}), busy for "
                                     f"more than {WATCH_WAIT_S:.0f} s (a long clip?); it lets go when idle, so "
                                     "try again shortly") from exc
                raise StoreError(held_message(self.path) or f"cannot open database {self.path}: another process holds "
                                 f"it (DuckDB admits one; a server database takes many): {exc}") from exc

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
    "images": """SELECT * EXCLUDE (uri_bytes) FROM images WHERE ingested_at >= CAST(? AS TIMESTAMP)
           ORDER BY ingested_at""",
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
