"""DuckDB storage: one file, one writer, one transaction per image.

The store knows nothing of models: it takes plain records and writes rows. Atomicity is
DuckDB's: an image's row and all its sightings commit together or not at all, so a process
killed mid-batch leaves whole images only, and the next run picks up the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np
from numpy.typing import NDArray

from ..errors import ReadOnlyViolation, StoreError
from .schema import MIGRATIONS


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    uri: str
    camera: str | None
    status: str
    error: str | None = None
    taken_at: datetime | None = None
    taken_at_source: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class SightingRecord:
    face_index: int
    box: tuple[float, float, float, float]
    landmarks: NDArray[np.float32]
    det_score: float
    quality: float
    embedding: NDArray[np.float32]
    model: str
    thumb: bytes
    person_id: int | None = None
    match_score: float | None = None
    context: tuple[bytes, tuple[float, float, float, float], NDArray[np.float32]] | None = None
    """The face with room around it: JPEG, box and landmarks in its pixels (for re-embedding)."""


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
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (f"database {db} is held by `facelake serve` (pid {info['pid']}); reach the same data over HTTP at "
            f"{info['url']} (API under /api, OpenAPI at /docs, send `Authorization: Bearer TOKEN`), "
            f"or stop serve first")


def utcnow() -> datetime:
    """Naive UTC now: DuckDB TIMESTAMP columns hold no time zone."""
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """A facelake database. Use as a context manager; writers are exclusive (DuckDB's lock)."""

    shared = False
    """Set by ``facelake serve``: every Store of this process opens the file read-write.

    DuckDB lets one process hold a file; inside it, connections share one database, but a
    read-only connection cannot sit beside a read-write one. A shared store is still
    read-only where it says so: ``query`` refuses anything but reads.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"database {self.path} does not exist yet: run `facelake ingest` first")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only and not Store.shared)
        except duckdb.IOException as exc:
            raise StoreError(held_message(self.path) or f"cannot open database {self.path}: {exc}") from exc
        if not read_only:
            self._migrate()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def _migrate(self) -> None:
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for version, ddl in enumerate(MIGRATIONS[current:], start=current + 1):
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(ddl)
                self.con.execute("INSERT INTO schema_version VALUES (?)", [version])
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise

    # --- ingest ---

    def image_status(self, image_id: str) -> str | None:
        """``'ok'``, ``'error'``, or ``None`` when the image was never seen."""
        row = self.con.execute("SELECT status FROM images WHERE image_id = ?", [image_id]).fetchone()
        return row[0] if row else None

    def known_ok(self) -> set[str]:
        """Ids of every image already stored without error (what a re-run skips)."""
        return {r[0] for r in self.con.execute("SELECT image_id FROM images WHERE status = 'ok'").fetchall()}

    def known_objects(self) -> set[tuple[str, str]]:
        """``(uri, version)`` of every listed object whose image is stored without error."""
        rows = self.con.execute(
            """SELECT o.uri, o.version FROM source_objects o JOIN images i USING (image_id)
               WHERE i.status = 'ok'"""
        ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def object_stored(self, uri: str, version: str) -> bool:
        """Whether ``uri`` at ``version`` was stored without error (one entry of known_objects)."""
        row = self.con.execute(
            """SELECT 1 FROM source_objects o JOIN images i USING (image_id)
               WHERE o.uri = ? AND o.version = ? AND i.status = 'ok'""", [uri, version]).fetchone()
        return row is not None

    def remember_object(self, uri: str, version: str | None, image_id: str) -> None:
        """Note that ``uri`` at ``version`` holds ``image_id`` (part of the caller's transaction)."""
        if version is not None:
            self.con.execute("INSERT INTO source_objects VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                             [uri, version, image_id, utcnow()])

    def audit(self, actor: str, action: str, subject: str) -> None:
        """Append one row to the audit log (part of the caller's transaction, if one is open)."""
        self.con.execute('INSERT INTO audit ("at", actor, action, subject) VALUES (?, ?, ?, ?)',
                         [utcnow(), actor, action, subject])

    def write_image(
        self, image: ImageRecord, sightings: Sequence[SightingRecord], actor: str = "ingest",
        version: str | None = None,
    ) -> list[int]:
        """Store one image and its sightings atomically; returns the new sighting ids.

        Sightings that arrive already identified get their audit row in the same transaction.

        An image already stored ``ok`` is left untouched (returns ``[]``). An earlier
        ``error`` row for the same id is replaced: the file may have been fixed or a
        directory made readable since. ``version`` (the source's object version) is
        remembered with the image's uri in the same transaction.
        """
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            status = con.execute("SELECT status FROM images WHERE image_id = ?", [image.image_id]).fetchone()
            if status and status[0] == "ok":
                self.remember_object(image.uri, version, image.image_id)
                con.execute("COMMIT")
                return []
            if status:
                con.execute("DELETE FROM images WHERE image_id = ?", [image.image_id])
            con.execute(
                """INSERT INTO images (image_id, uri, camera, taken_at, taken_at_source, gps_lat, gps_lon,
                       camera_make, camera_model, format, width, height, bytes, ingested_at, status, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    image.image_id, image.uri, image.camera, image.taken_at, image.taken_at_source,
                    image.gps_lat, image.gps_lon, image.camera_make, image.camera_model, image.format,
                    image.width, image.height, image.bytes, utcnow(), image.status, image.error,
                ],
            )
            ids: list[int] = []
            for s in sightings:
                row = con.execute(
                    """INSERT INTO sightings (image_id, face_index, box, landmarks, det_score, quality,
                           embedding, model, thumb, person_id, match_score)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING sighting_id""",
                    [
                        image.image_id, s.face_index, [float(v) for v in s.box],
                        np.asarray(s.landmarks, dtype=np.float32).tolist(), s.det_score, s.quality,
                        np.asarray(s.embedding, dtype=np.float32).tolist(), s.model, s.thumb,
                        s.person_id, s.match_score,
                    ],
                ).fetchone()
                assert row is not None
                ids.append(int(row[0]))
                if s.context is not None:
                    jpeg, box, lm = s.context
                    con.execute("INSERT INTO face_contexts VALUES (?, ?, ?, ?)",
                                [row[0], jpeg, [float(v) for v in box], np.asarray(lm, np.float32).tolist()])
                if s.person_id is not None:
                    self.audit(actor, "identify", f"sighting:{row[0]} person:{s.person_id}")
            if image.status == "ok":
                self.remember_object(image.uri, version, image.image_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return ids

    # --- reading ---

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` and return column names and rows.

        On a read-only store anything but a query is refused before it runs, with the
        statement type in the message (DuckDB would refuse too, but with a less clear error).
        """
        if self.read_only:
            try:
                statements = self.con.extract_statements(sql)
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
            cur = self.con.execute(sql, params or [])
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, cur.fetchall() if columns else []
        except duckdb.Error as exc:
            if "read-only" in str(exc):
                raise ReadOnlyViolation(f"`facelake sql` is read-only: {exc}") from exc
            raise StoreError(f"SQL error: {exc}") from exc

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write ``images.parquet`` and ``sightings.parquet``; returns row counts.

        Landmarks are written as a list of ``{x, y}`` structs because BigQuery has no
        array-of-arrays type; everything else keeps its column type (see docs/bigquery.md).
        """
        directory.mkdir(parents=True, exist_ok=True)
        queries = {
            "images": "SELECT * FROM images ORDER BY ingested_at, image_id",
            "sightings": """SELECT sighting_id, image_id, face_index, box::FLOAT[] AS box,
                   list_transform(landmarks::FLOAT[2][], lambda p: {'x': p[1], 'y': p[2]}) AS landmarks,
                   det_score, quality, embedding::FLOAT[] AS embedding, model, person_id, cluster_id,
                   match_score, thumb
                   FROM sightings ORDER BY sighting_id""",
        }
        counts = {}
        for name, sql in queries.items():
            target = (directory / f"{name}.parquet").as_posix().replace("'", "''")
            self.con.execute(f"COPY ({sql}) TO '{target}' (FORMAT PARQUET, COMPRESSION ZSTD)")
            counts[name] = int(self.con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])  # type: ignore[index]
        return counts
