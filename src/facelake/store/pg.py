"""PostgreSQL storage: many writing processes, one database (the ``postgres`` extra).

Why a server: DuckDB admits one writing process, and a fleet of watchers, functions and Ray
workers must write to one place while people query it. facelake's SQL is written once for
both engines; this module adapts the small differences:

- placeholders: facelake writes ``?``; psycopg wants ``%s`` (and ``%`` doubled).
- many writers: an advisory lock per image serialises writers of the same image (so it is
  stored once), a row lock on a person makes an erasure and an ingest naming a face as them
  wait for each other, and an advisory lock keeps clustering to one process at a time.
- vectors: with pgvector the embedding is a ``vector`` column (any dimension; each row names
  its model) with one partial HNSW index per model, and search is SQL; without it,
  ``real[]`` and the project's own usearch index, rebuilt from the table.

Connections come from one psycopg pool per database URL and process, in autocommit mode:
a transaction is an explicit ``BEGIN`` … ``COMMIT``, as on DuckDB. Parameters are bound on
the client (``ClientCursor``) so that ``? IS NULL`` works without type annotations.

A server restart (or a network cut) breaks every connection. A statement outside a
transaction, or the ``BEGIN`` of one, then takes a new connection, waiting with backoff for
the server to come back for up to ``RECONNECT_S``; a transaction cut short raises
:class:`ConnectionLost`, which ``write_images`` answers by writing its batch again once
reconnected. Past the budget the error is one line (``StoreError``: exit 4), never a
traceback from inside the driver.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, ConnectionLost, ReadOnlyViolation, StoreError
from .base import Store, VectorHit, describe_target
from .clusters import ClusterRow, Clusters
from .connection import Sql, marks, vector_columns
from .copy import copy_tables
from .duck import DuckStore
from .people import People
from .reports import Reports
from .schema import PG_MIGRATIONS, SEQUENCES
from .sql import SqlStore

try:
    import psycopg
    from psycopg.adapt import Loader
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ConfigError("a postgresql:// database needs the 'postgres' extra: pip install 'facelake[postgres]'") from exc

log = logging.getLogger(__name__)

POOL_MAX = 8
RECONNECT_S = float(os.environ.get("FACELAKE_PG_RECONNECT_S", "60"))
"""How long a broken connection waits for the server to come back (a restart takes seconds)
before the command gives up with one line; ``FACELAKE_PG_RECONNECT_S`` changes it."""
"""Connections per process and database: serve's request threads and the watcher share them."""

_MIGRATE_LOCK = 0x46414345  # "FACE": one process migrates a fresh database, the others wait
_CLUSTER_LOCK = 0x434C5553  # "CLUS"
_READ_KEYWORDS = {"SELECT", "WITH", "EXPLAIN", "SHOW", "VALUES", "TABLE"}
_OTHER_KEYWORDS = {
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "COPY",
    "SET", "RESET", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE",
    "EXECUTE", "DEALLOCATE", "DO", "CALL", "LOCK", "VACUUM", "ANALYZE", "ANALYSE", "CLUSTER", "REINDEX",
    "CHECKPOINT", "LOAD", "LISTEN", "NOTIFY", "UNLISTEN", "DISCARD", "COMMENT", "SECURITY", "REFRESH", "IMPORT",
    "DECLARE", "FETCH", "MOVE", "CLOSE", "REASSIGN", "ATTACH", "DETACH", "INSTALL", "PRAGMA", "USE",
}
"""Statements `facelake sql` refuses by name (anything else not a query is left to the parser's error)."""
ERASED_TABLES = ("sightings", "face_contexts", "tracks", "images", "people", "enrollments", "rejections", "audit")
"""What ``forget`` and ``purge`` change: faces, crops, contexts, templates, names and their audit links."""
_EF_SEARCH = int(os.environ.get("FACELAKE_PG_EF_SEARCH", "400"))
"""HNSW candidates per query (pgvector's ``hnsw.ef_search``; its default, 40, trades recall for
speed). 400: recall@10 on stored faces as queries, 100,000 and 1,000,000 sightings, in
docs/scale.md; ``FACELAKE_PG_EF_SEARCH`` changes it (at most 1000)."""


def _segments(sql: str) -> Iterator[tuple[str, str]]:
    """``sql`` cut into ``("text", …)``, ``("quoted", …)`` and ``("comment", …)`` pieces, in order.

    Quoted strings and identifiers (a doubled quote inside stays inside) and comments are
    where a ``?``, ``%`` or ``;`` is not SQL: both :func:`to_pg` and :func:`statements` need
    to know where they are.
    """
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n and not (sql[j] == c and (j + 1 >= n or sql[j + 1] != c)):
                j += 2 if sql[j] == c else 1
            end, kind = min(j + 1, n), "quoted"
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            end, kind = (n if j < 0 else j), "comment"
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            end, kind = (n if j < 0 else j + 2), "comment"
        else:
            i += 1
            continue
        if start < i:
            yield "text", sql[start:i]
        yield kind, sql[i:end]
        i = start = end
    if start < n:
        yield "text", sql[start:]


def to_pg(sql: str) -> str:
    """facelake's ``?`` placeholders as psycopg's ``%s``; ``%`` doubled; quotes and comments kept."""
    return "".join(piece.replace("%", "%%").replace("?", "%s") if kind == "text" else piece.replace("%", "%%")
                   for kind, piece in _segments(sql))


def statements(sql: str) -> list[str]:
    """``sql`` split at the semicolons that end statements (not those in quotes or comments),
    comments dropped; empty statements left out."""
    parts = [""]
    for kind, piece in _segments(sql):
        if kind == "comment":
            continue
        if kind == "quoted":
            parts[-1] += piece
            continue
        first, *rest = piece.split(";")
        parts[-1] += first
        parts += rest
    return [p for p in parts if p.strip()]


class _VectorLoader(Loader):
    """pgvector's text form ``[1,2,3]`` as a list of floats (what DuckDB returns for FLOAT[])."""

    def load(self, data: Any) -> list[float]:
        text = bytes(data)[1:-1]
        return np.array(text.split(b","), dtype=np.float32).tolist() if text else []


class _Connection:
    """A pooled psycopg connection that speaks facelake's SQL (``con.execute(sql, params)``) and
    takes a new one when the server dropped it (see the module's docstring)."""

    def __init__(self, pool: ConnectionPool, raw: psycopg.Connection[Any], url: str) -> None:
        self.pool, self.raw, self.url = pool, raw, url
        self.session: list[str] = []
        """Session settings, set again on every new connection."""
        self.in_transaction = False

    def setup(self, sql: str) -> None:
        self.session.append(sql)
        self.execute(sql)

    def _broken(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)

    def _reconnect(self, cause: BaseException) -> None:
        """A new connection from the pool, waiting with backoff for the server up to RECONNECT_S."""
        where = describe_target(self.url)
        if self.raw is not None:
            self.pool.putconn(self.raw)  # the pool drops a broken connection
        self.raw = None  # type: ignore[assignment]
        deadline, wait = time.monotonic() + RECONNECT_S, 0.5
        log.warning("lost the connection to %s (%s); reconnecting for up to %.0f s",
                    where, _first_line(cause), RECONNECT_S)
        while True:
            try:
                raw = self.pool.getconn(timeout=max(1.0, min(wait, deadline - time.monotonic())))
                for sql in self.session:
                    raw.execute(sql)
                self.raw = raw
                return
            except Exception as exc:  # the pool's and the driver's errors alike
                if time.monotonic() >= deadline:
                    raise StoreError(f"lost the connection to {where} and it did not come back within "
                                     f"{RECONNECT_S:.0f} s: {_first_line(cause)}") from exc
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                wait = min(wait * 2, 8.0)

    def live(self) -> psycopg.Connection[Any]:
        """The connection, replaced first if it broke while idle (outside a transaction nothing is lost)."""
        if self.raw is None or (not self.in_transaction and self._broken()):
            self._reconnect(psycopg.OperationalError("connection closed"))
        return self.raw

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        word = sql.lstrip()[:8].upper()
        if word.startswith("ROLLBACK") and (self.raw is None or self._broken()):
            self.in_transaction = False  # the server rolled back when the connection went
            return None
        self.live()
        try:
            cur = self.raw.cursor()
            cur.execute(to_pg(sql), list(params) if params is not None else [])
        except psycopg.OperationalError as exc:
            if not self._broken():
                raise
            if self.in_transaction:
                if word.startswith("ROLLBACK"):  # the server rolled it back when the connection went
                    self.in_transaction = False
                    return None
                self.in_transaction = False
                raise ConnectionLost(f"the connection to {describe_target(self.url)} was lost mid-transaction: "
                                     f"{_first_line(exc)}") from exc
            self._reconnect(exc)  # nothing of a transaction ran yet: the statement is safe to send again
            cur = self.raw.cursor()
            cur.execute(to_pg(sql), list(params) if params is not None else [])
        if word.startswith("BEGIN"):
            self.in_transaction = True
        elif word.startswith(("COMMIT", "ROLLBACK")):
            self.in_transaction = False
        return cur

    def close(self) -> None:
        if self.raw is not None:
            self.pool.putconn(self.raw)
            self.raw = None  # type: ignore[assignment]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Database:
    """What this process knows of one database: its pool and how it stores vectors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.vector_version: str | None = None
        self.pool: ConnectionPool | None = None
        self.migrated = False
        self.indexed: set[tuple[str, int]] = set()
        """The (model, dimension) pairs whose HNSW index is known to exist: checked once a process."""

    def open(self, migrate: bool) -> None:
        """Check the database (migrating it first if asked), then open the pool if not yet open."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                if migrate:
                    _migrate(conn)
                    self.migrated = True
                elif conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,):
                    raise StoreError(f"database {describe_target(self.url)} has no facelake tables yet: "
                                     "run `facelake ingest` first")
                kind = conn.execute(
                    """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                       WHERE attrelid = 'sightings'::regclass AND attname = 'embedding'""").fetchone()
                if kind and kind[0] == "vector":
                    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                    self.vector_version = row[0] if row else "?"
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to {describe_target(self.url)}: {str(exc).strip()}") from exc
        if self.pool is not None:
            return
        # The pool logs every failed attempt while a server restarts; _Connection says it once.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self.pool = ConnectionPool(self.url, min_size=1, max_size=POOL_MAX, open=True, name="facelake",
                                   kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor},
                                   configure=self._configure, reset=_reset, check=ConnectionPool.check_connection)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self.vector_version is not None:
            info = psycopg.types.TypeInfo.fetch(conn, "vector")
            if info is not None:
                conn.adapters.register_loader(info.oid, _VectorLoader)


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute("RESET ALL")


def _migrate(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_lock(%s)", [_MIGRATE_LOCK])
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current >= len(PG_MIGRATIONS):
            return
        vector = _has_vector(conn)
        for version, ddl in enumerate(PG_MIGRATIONS[current:], start=current + 1):
            with conn.transaction():
                conn.execute(ddl.format(embedding="vector" if vector else "REAL[]"))
                if version == 1 and vector:
                    from ..vision.models import EMBEDDING_DIMS

                    for model, dim in EMBEDDING_DIMS.items():
                        conn.execute(_hnsw_ddl(model, dim))
                conn.execute("INSERT INTO schema_version VALUES (%s)", [version])
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATE_LOCK])


def _has_vector(conn: psycopg.Connection[Any]) -> bool:
    """Whether pgvector can be used here: installed on the server and creatable by this role."""
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is None:
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error:
        return False
    return True


def _hnsw_name(model: str) -> str:
    return ("sightings_hnsw_" + re.sub(r"[^a-z0-9]+", "_", model.lower()))[:63]


def _hnsw_ddl(model: str, dim: int) -> str:
    literal = model.replace("'", "''")
    # The graph's parameters are the usearch index's (connectivity 16, 128 candidates while
    # building): pgvector's default of 64 gave recall@10 0.90 at a million faces (bench/scale.py).
    return (f"CREATE INDEX IF NOT EXISTS {_hnsw_name(model)} ON sightings USING hnsw "
            f"((embedding::vector({int(dim)})) vector_cosine_ops) WITH (m = 16, ef_construction = 128) "
            f"WHERE model = '{literal}'")


_databases: dict[str, _Database] = {}
_databases_lock = threading.Lock()


def _database(url: str, migrate: bool) -> _Database:
    with _databases_lock:
        db = _databases.get(url)
        if db is None or (migrate and not db.migrated):
            db = db or _Database(url)
            db.open(migrate)
            _databases[url] = db
        return db


@atexit.register
def close_pools() -> None:
    """Close every pool (at exit, and in tests that stop their server)."""
    with _databases_lock:
        for db in _databases.values():
            if db.pool is not None:
                db.pool.close()
        _databases.clear()


class PgSql(Sql):
    """The handle's lock hooks on a server, where many processes write at once."""

    con: _Connection

    def batches(self, sql: str, params: Sequence[Any] = (), size: int = 20_000,
                vectors: Sequence[str] = ("embedding",)) -> Iterator[dict[str, Any]]:
        """Through a server-side cursor: psycopg's client cursor would fetch every row at once.

        A connection lost before the first block is replaced and the read starts again, as
        :meth:`_Connection.execute` sends a statement again (a restarted server cut off ``watch``
        here, where it holds no connection between images); one lost after blocks were handed
        out cannot resume, and is :class:`ConnectionLost`.
        """
        handed = False
        for attempt in range(2):
            raw = self.con.live()
            try:
                with raw.transaction(), raw.cursor(name="facelake_batches") as cur:
                    cur.itersize = size
                    cur.execute(to_pg(sql), list(params))
                    names = [d.name for d in cur.description or []]
                    while rows := cur.fetchmany(size):
                        handed = True
                        yield vector_columns(names, list(zip(*rows)), vectors)
                return
            except psycopg.OperationalError as exc:
                if not self.con._broken():
                    raise
                if handed or attempt or self.con.in_transaction:
                    raise ConnectionLost(f"the connection to {describe_target(self.con.url)} was lost while "
                                         f"reading: {_first_line(exc)}") from exc
                self.con._reconnect(exc)

    def lock_image(self, image_id: str) -> None:
        self.con.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [image_id])

    def lock_person(self, person: int) -> None:
        self.con.execute("SELECT 1 FROM people WHERE person_id = ? FOR UPDATE", [person])

    def live_people(self, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        return {int(r[0]) for r in self.all(
            f"SELECT person_id FROM people WHERE person_id IN ({marks(len(ids))}) FOR SHARE", sorted(ids))}


class PgReports(Reports):
    """The reports where a row store wants other SQL than DuckDB's (plans in docs/scale.md).

    At a million sightings PostgreSQL reads a whole table row by row, vectors and all: the
    distinct cameras are found by skipping through an index, one probe per camera, rather than
    by reading every row to find eight values. (The counts per hour, ``Reports.hours``, are one
    ``date_trunc`` pass on both engines, read from ``sightings_camera_seen`` alone here.)
    """

    def hours(self, camera: str | None = None, since: datetime | None = None) -> list[tuple[datetime, int]]:
        """Summed from ``sighting_hours``, which triggers keep (PostgreSQL migration 9): grouping
        a million sightings took 0.55 s a call, the log of a year's changes a few milliseconds.
        An hour ``since`` cuts in two is counted from the sightings themselves (an index range)."""
        start = since
        partial: list[tuple[datetime, int]] = []
        if since is not None and since != since.replace(minute=0, second=0, microsecond=0):
            hour = since.replace(minute=0, second=0, microsecond=0)
            start = hour + timedelta(hours=1)
            n = self._sql.count(
                """SELECT count(*) FROM sightings s WHERE s.camera <> 'enrollment' AND (? IS NULL OR s.camera = ?)
                   AND s.seen_at >= ? AND s.seen_at < ?""", [camera, camera, since, start])
            partial = [(hour, n)] if n else []
        rows = self._sql.all(
            """SELECT hour, sum(n) FROM sighting_hours WHERE (? IS NULL OR camera = ?) AND (? IS NULL OR hour >= ?)
               GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1""", [camera, camera, start, start])
        return partial + [(r[0], int(r[1])) for r in rows]

    def cameras(self) -> list[str]:
        return [r[0] for r in self._sql.all(
            """WITH RECURSIVE c AS (
                   SELECT min(camera) AS camera FROM images WHERE camera IS NOT NULL
                   UNION ALL
                   SELECT (SELECT min(camera) FROM images WHERE camera > c.camera) FROM c WHERE c.camera IS NOT NULL)
               SELECT camera FROM c WHERE camera IS NOT NULL AND camera <> 'enrollment' ORDER BY 1""")]


class PgPeople(People):
    """The people's counts from the log its triggers keep and from the indexes, person by person.

    DuckDB groups every named sighting by person and camera in one pass (5-10 ms at a million);
    PostgreSQL does that pass row by row through the heap (115 ms p50 at 100,000 sightings), and
    even an index-only count of one person's 833,331 faces took 129 ms at a million. Here each
    person costs a sum over ``person_sightings`` (migration 9's triggers), the last time from
    ``sightings_person_seen`` and a skip scan for the cameras (``sightings_person_camera``, one
    probe per camera).
    """

    def _seen(self) -> dict[int, tuple[int, datetime | None, list[str]]]:
        seen: dict[int, tuple[int, datetime | None, list[str]]] = {}
        counts = {int(r[0]): int(r[1]) for r in self._sql.all(
            "SELECT person_id, sum(n) FROM person_sightings GROUP BY 1 HAVING sum(n) <> 0")}
        for (person,) in self._sql.all("SELECT person_id FROM people"):
            n = counts.get(int(person), 0)
            if not n:
                continue
            last = self._sql.one("SELECT max(seen_at) FROM sightings WHERE person_id = ?", [person])
            cameras = [r[0] for r in self._sql.all(
                """WITH RECURSIVE c AS (
                       SELECT min(camera) AS camera FROM sightings WHERE person_id = ? AND camera IS NOT NULL
                       UNION ALL
                       SELECT (SELECT min(camera) FROM sightings WHERE person_id = ? AND camera > c.camera)
                       FROM c WHERE c.camera IS NOT NULL)
                   SELECT camera FROM c WHERE camera IS NOT NULL AND camera <> 'enrollment' ORDER BY 1""",
                [person, person])]
            seen[int(person)] = (n, None if last is None else last[0], cameras)
        return seen

    def _erased(self, person_id: int) -> None:
        """Their rows of the count log go too: once none of their faces is linked they sum to 0,
        and the id of someone erased is not kept beside the counts. The table is locked against
        writers first (a few milliseconds, until the erasure commits): a compaction committing
        meanwhile would otherwise put back the sum it read before the faces were unlinked."""
        self._sql.execute("LOCK TABLE person_sightings IN SHARE ROW EXCLUSIVE MODE")
        self._sql.execute("DELETE FROM person_sightings WHERE person_id = ?", [person_id])


class PgClusters(Clusters):
    """The clusters' listing on the sightings' own time and camera, from the ``sightings_cluster``
    index alone (its INCLUDE columns): the join to images read every clustered face's image."""

    def listing(self, min_size: int = 2, limit: int | None = None, offset: int = 0) -> list[ClusterRow]:
        """Counted first, then the times and cameras of the page's clusters only.

        Why two steps: grouped in one pass, every clustered face went through a sort by camera
        for the cameras' ``DISTINCT`` and through ``min``/``max`` (63 ms at 166,665 clustered
        faces in 2,000 clusters, 80 ms for a page of ``/clusters``); the 25 clusters of a page are
        read by key in one statement. The counts are sums over ``cluster_sightings``, which
        triggers keep (migration 10): counting the clustered faces themselves read all 166,665 of
        them from the index, 26-34 ms a page.
        """
        counts = self._sql.all(
            """SELECT cluster_id, sum(n) FROM cluster_sightings GROUP BY 1 HAVING sum(n) >= greatest(?, 1)
               ORDER BY 2 DESC, 1 LIMIT ? OFFSET ?""", [min_size, limit, offset])
        if not counts:
            return []
        ids = [int(c) for c, _ in counts]
        details = {int(r[0]): r[1:] for r in self._sql.all(
            """SELECT c.id, d.first_seen, d.last_seen, d.cameras FROM unnest(?::bigint[]) AS c(id)
               CROSS JOIN LATERAL (SELECT min(s.seen_at) AS first_seen, max(s.seen_at) AS last_seen,
                                          string_agg(DISTINCT s.camera, ', ' ORDER BY s.camera) AS cameras
                                   FROM sightings s WHERE s.cluster_id = c.id AND s.person_id IS NULL) AS d""",
            [ids])}
        return [ClusterRow(c, int(n), *details[c]) for c, n in zip(ids, (n for _, n in counts)) if c in details]

    def _best_faces_query(self, ids: list[int], limit: int) -> tuple[str, list[Any]]:
        """Each cluster's best faces by key (``sightings_cluster``): a top-N per cluster, not a window
        over every face of the page's clusters."""
        return ("""SELECT c.id, b.sighting_id FROM unnest(?::bigint[]) AS c(id)
                   CROSS JOIN LATERAL (SELECT s.sighting_id FROM sightings s
                                       WHERE s.cluster_id = c.id AND s.person_id IS NULL AND s.thumb IS NOT NULL
                                       ORDER BY s.quality DESC, s.sighting_id LIMIT ?) AS b""", [ids, limit])


class PgStore(SqlStore):
    """A PostgreSQL database (``postgresql://user:password@host:port/dbname``)."""

    engine = "postgresql"

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.target = self.url = url
        self.read_only = read_only
        self.db = _database(url, migrate=not read_only)
        assert self.db.pool is not None
        try:
            raw = self.db.pool.getconn(timeout=30)
        except Exception as exc:
            raise StoreError(f"no connection to {describe_target(url)}: {exc}") from exc
        self._con = _Connection(self.db.pool, raw, url)
        super().__init__(PgSql(self._con))
        self.reports = PgReports(self._sql)
        self.people = PgPeople(self._sql)
        self.clusters = PgClusters(self._sql, self.people)
        if read_only:
            self._con.setup("SET default_transaction_read_only = on")

    def compact(self, wait_s: float = 0.0) -> bool:
        """``VACUUM FULL`` of every table that held an erased face, so its bytes leave the table files.

        Why: PostgreSQL's ``UPDATE`` and ``DELETE`` leave the old row versions in the pages, and a
        plain ``VACUUM`` only marks their space reusable (after it, 56 of 90 erased crops were
        still in the files). ``VACUUM FULL`` writes the live rows (TOAST and indexes, pgvector's
        HNSW included) into new files and drops the old ones. It holds each table's ACCESS
        EXCLUSIVE lock while it copies, so writers wait that long (docs/privacy.md gives the
        cost and what stays: WAL segments until recycled, replicas, backups). Per-person keys
        (crypto-shredding) would also reach those, but put a key store in every reader's path.
        """
        if self.read_only:
            raise ReadOnlyViolation("a read-only store cannot compact the database")
        self._con.execute(f"VACUUM (FULL) {', '.join(ERASED_TABLES)}")
        return True

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        self._con.execute("SELECT pg_advisory_lock(?)", [_CLUSTER_LOCK])
        try:
            yield
        finally:
            self._con.execute("SELECT pg_advisory_unlock(?)", [_CLUSTER_LOCK])

    def _batches(self, sql: str, batch: int) -> Iterator[tuple[list[str], list[Any]]]:
        """Through a server-side cursor: psycopg's client cursor would fetch every row at once."""
        raw = self._con.raw
        with raw.transaction(), raw.cursor(name="facelake_stream") as cur:
            cur.itersize = batch
            cur.execute(to_pg(sql), [])
            columns = [d.name for d in cur.description or []]
            while rows := cur.fetchmany(batch):
                yield columns, rows

    def insert_rows(self, table: str, columns: list[str], rows: list[Any]) -> None:
        """By ``COPY FROM STDIN``. DuckDB's fixed-size arrays arrive as tuples, which psycopg would
        send as records, and pgvector reads ``[1,2,3]``, not an array literal."""
        def plain(value: Any) -> Any:
            return [plain(v) for v in value] if isinstance(value, tuple | list) else value

        vector = columns.index("embedding") if "embedding" in columns and self.db.vector_version else -1
        names = ", ".join(f'"{c}"' for c in columns)
        with self._con.raw.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                out = [plain(v) for v in row]
                if vector >= 0 and out[vector] is not None:
                    out[vector] = "[" + ",".join(map(repr, map(float, out[vector]))) + "]"
                copy.write_row(out)

    def advance_sequences(self) -> None:
        for table, (column, _) in SEQUENCES.items():
            self._con.execute(f"""SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       greatest(coalesce(max({column}), 0), 1), max({column}) IS NOT NULL)
                                 FROM {table}""")

    def vectors(self) -> str:
        if self.db.vector_version is not None:
            return f"pgvector {self.db.vector_version}: vector column + HNSW index per model (SQL search)"
        return "real[] column (no pgvector on this server) + usearch HNSW index rebuilt from the table"

    def searches_vectors(self) -> bool:
        return self.db.vector_version is not None

    def nearest(self, model: str, dim: int, vector: NDArray[np.float32], k: int) -> list[VectorHit] | None:
        if self.db.vector_version is None:
            return None
        if (model, dim) not in self.db.indexed:
            # Every model's index is made on its first search: a bring-your-own embedder's, or a
            # model added after the database was created (the fused one). Looked up first and
            # once a process: `CREATE INDEX IF NOT EXISTS` takes a lock that waits for every
            # writer, and a read-only store cannot run it (it searches without the index then).
            found = self._con.execute("SELECT to_regclass(?) IS NOT NULL", [_hnsw_name(model)]).fetchone()[0]
            if not found and not self.read_only:
                self._con.execute(_hnsw_ddl(model, dim))
                found = True
            if found:
                self.db.indexed.add((model, dim))
        literal = "[" + ",".join(f"{float(v):.8g}" for v in np.asarray(vector, np.float32).ravel()) + "]"
        self._con.execute(f"SET hnsw.ef_search = {_EF_SEARCH}")
        rows = self._con.execute(
            f"""SELECT sighting_id, 1 - (embedding::vector({int(dim)}) <=> ?::vector({int(dim)})) FROM sightings
                WHERE model = ? AND embedding IS NOT NULL
                ORDER BY embedding::vector({int(dim)}) <=> ?::vector({int(dim)}) LIMIT ?""",
            [literal, model, literal, int(k)]).fetchall()
        return [VectorHit(int(r[0]), float(r[1])) for r in rows]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql``; on a read-only store only queries, inside a read-only transaction."""
        if self.read_only:
            for stmt in statements(sql):
                word = stmt.split(None, 1)[0].upper().strip("(")
                if word in _OTHER_KEYWORDS:
                    raise ReadOnlyViolation(f"`facelake sql` is read-only: a {word} statement is refused. "
                                            "Use the facelake commands to change data.")
        try:
            if self.read_only:
                self._con.execute("BEGIN READ ONLY")
            try:
                cur = self._con.execute(sql, params or [])
                columns = [d[0] for d in cur.description] if cur.description else []
                rows = cur.fetchall() if columns else []
            finally:
                if self.read_only:
                    self._con.execute("ROLLBACK")
            return columns, rows
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise ReadOnlyViolation(f"`facelake sql` is read-only: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"SQL error: {exc}") from exc

    @contextmanager
    def _in_duckdb(self, tables: Sequence[str]) -> Iterator[Store]:
        """An in-memory DuckDB holding ``tables``: DuckDB writes the Parquet files exports need."""
        with DuckStore(Path(":memory:")) as mem:
            copy_tables(self, mem, tables)
            yield mem

    def export_rows(self, table: str, since: str, target: Path) -> int:
        with self._in_duckdb([table] + (["sightings"] if table == "tracks" else [])) as mem:
            return mem.export_rows(table, since, target)

    def export_parquet(self, directory: Path) -> dict[str, int]:
        with self._in_duckdb(["images", "sightings"]) as mem:
            return mem.export_parquet(directory)
