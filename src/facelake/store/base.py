"""The store interface: what every facelake database does, whichever engine holds it.

Two engines sit behind it: DuckDB (one file, one writing process, the embedded default) and
PostgreSQL (a server that many watchers, functions and workers write to at once). The
rest of facelake speaks to ``Store`` only: records in, rows out, one transaction per image,
SQL that both dialects run. Where the engines differ (locks, vectors, read-only
enforcement, bulk export) the subclass answers through the hooks below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError

Target = Path | str
"""Where a database lives: a DuckDB file path, or a ``postgresql://`` URL."""


def is_postgres(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def as_target(value: str | Path) -> Target:
    """A ``--db`` value as a target: a postgresql:// URL stays a string (a Path would fold its
    '//'); anything else is a file path."""
    return value if isinstance(value, str) and is_postgres(value) else Path(value)


def describe_target(target: Target) -> str:
    """The target as it may be printed: a PostgreSQL URL without its password."""
    if not is_postgres(target):
        return str(target)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def target_key(target: Target) -> str:
    """A short stable name for the target (cache files of a server database are named by it)."""
    return hashlib.sha256(describe_target(target).encode()).hexdigest()[:16]


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


def utcnow() -> datetime:
    """Naive UTC now: the TIMESTAMP columns hold no time zone (on both engines)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class VectorHit:
    sighting_id: int
    score: float
    """Cosine similarity."""


class Store:
    """A facelake database. Use as a context manager; open one with :func:`open_store`."""

    engine = "?"
    con: Any
    """The engine's connection: ``con.execute(sql, params)`` with ``?`` placeholders, then
    ``fetchone``/``fetchall``; the SQL given to it must run on both engines."""
    target: Target
    read_only: bool

    # --- life cycle ---

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # --- engine hooks ---

    def _lock_image(self, image_id: str) -> None:
        """Inside a transaction: keep other writers of the same image waiting until it ends."""

    def lock_person(self, person: int) -> None:
        """Inside a transaction: hold the person's row against writers naming faces as them."""

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Run a whole-table job (clustering) alone among every process writing this database."""
        yield

    def _live_people(self, ids: set[int]) -> set[int]:
        """Which of ``ids`` still exist, held (on a server) until the caller's transaction ends."""
        if not ids:
            return set()
        rows = self.con.execute(
            f"SELECT person_id FROM people WHERE person_id IN ({','.join('?' * len(ids))})", sorted(ids)).fetchall()
        return {int(r[0]) for r in rows}

    def vectors(self) -> str:
        """How embeddings are stored and searched here (shown by ``facelake stats``)."""
        raise NotImplementedError

    def searches_vectors(self) -> bool:
        """Whether :meth:`nearest` answers here (else the usearch index beside the data does)."""
        return False

    def nearest(self, model: str, dim: int, vector: NDArray[np.float32], k: int) -> list[VectorHit] | None:
        """The ``k`` stored faces of ``model`` closest to ``vector`` by SQL, or None where the
        engine has no vector search (the caller then uses the usearch index)."""
        return None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def export_parquet(self, directory: Path) -> dict[str, int]:
        raise NotImplementedError

    def copy_to_parquet(self, sql: str, params: Sequence[Any], target: Path) -> int:
        """Write the rows of ``sql`` (DuckDB dialect over this store's tables) to a Parquet file."""
        raise NotImplementedError

    # --- bulk (``facelake copy``, exports) ---

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 2_000
               ) -> Iterator[tuple[list[str], list[Any]]]:
        """Rows of ``sql`` in batches, with the column names: a million rows never sit in memory at once."""
        cur = self.con.execute(sql, list(params))
        columns = [d[0] for d in cur.description or []]
        while rows := cur.fetchmany(batch):
            yield columns, rows

    def insert_rows(self, table: str, columns: list[str], rows: list[Any]) -> None:
        """Add rows as they come from another store, ids included (part of the caller's transaction)."""
        raise NotImplementedError

    def advance_sequences(self) -> None:
        """Move every id sequence past the ids in its table (after rows came in with their ids)."""
        raise NotImplementedError

    # --- ingest ---

    groups_writes = False
    """Whether ingest writes a worker's batch with one :meth:`write_images` (one transaction)
    rather than image by image. DuckDB: yes, the one writing process spent most of its ~20 ms
    of CPU an image on statements and commits. A server database keeps a transaction per
    image, so concurrent writers never hold each other's image locks for a whole batch."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

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

    def objects_stored(self, uris: Sequence[str], chunk: int = 500) -> set[tuple[str, str]]:
        """``(uri, version)`` of the given uris' objects whose image is stored without error.

        One query per ``chunk`` uris: a run of a few hundred files asked per file spent ~2 ms
        of the ingesting process's CPU on each."""
        found: set[tuple[str, str]] = set()
        unique = sorted(set(uris))
        for at in range(0, len(unique), chunk):
            part = unique[at : at + chunk]
            found |= {(r[0], r[1]) for r in self.con.execute(
                f"""SELECT o.uri, o.version FROM source_objects o JOIN images i USING (image_id)
                    WHERE i.status = 'ok' AND o.uri IN ({_marks(len(part))})""", part).fetchall()}
        return found

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
    ) -> list[int] | None:
        """Store one image and its sightings atomically; returns the new sighting ids.

        Sightings that arrive already identified get their audit row in the same transaction.

        An image already stored ``ok`` is left untouched (returns ``None``), whoever stored it:
        on a server, a second writer of the same image waits for the first and then finds it.
        An earlier ``error`` row for the same id is replaced: the file may have been fixed or
        a directory made readable since. ``version`` (the source's object version) is
        remembered with the image's uri in the same transaction.

        A face named as a person erased while it was being analysed is stored as that
        erasure would have left it: no name, no crop, no embedding.
        """
        return self.write_images([(image, sightings, version)], actor)[0]

    def write_images(
        self, items: Sequence[tuple[ImageRecord, Sequence[SightingRecord], str | None]], actor: str = "ingest",
    ) -> list[list[int] | None]:
        """:meth:`write_image` for several images ``(image, sightings, version)`` in one transaction.

        Why: each statement costs the writing process a millisecond or so whatever its size,
        and ingest writes from one process while the workers analyse on every core. Two faces
        an image, DuckDB: 7.7 ms of CPU an image written one by one, 1.6 ms in batches of 8.
        The batch commits or rolls back as one.
        """
        con = self.con
        out: list[list[int] | None] = [None] * len(items)
        with self.transaction():
            ids = [image.image_id for image, _, _ in items]
            for image_id in sorted(set(ids)):  # one order for every writer: no deadlock between them
                self._lock_image(image_id)
            status = dict(con.execute(f"SELECT image_id, status FROM images WHERE image_id IN ({_marks(len(ids))})",
                                      ids).fetchall())
            if any(v != "ok" for v in status.values()):
                stale = [k for k, v in status.items() if v != "ok"]
                con.execute(f"DELETE FROM images WHERE image_id IN ({_marks(len(stale))})", stale)
            new: list[int] = []  # the items to insert: not stored ok, and each id once
            taken = {k for k, v in status.items() if v == "ok"}
            for i, (image, _, _) in enumerate(items):
                if image.image_id not in taken:
                    taken.add(image.image_id)
                    new.append(i)
            now = utcnow()
            if new:
                con.execute(
                    f"""INSERT INTO images (image_id, uri, camera, taken_at, taken_at_source, gps_lat, gps_lon,
                            camera_make, camera_model, format, width, height, bytes, ingested_at, status, error)
                        VALUES {_rows(len(new), 16)}""",
                    [v for i in new for v in _image_row(items[i][0], now)],
                )
            named = {int(s.person_id) for i in new for s in items[i][1] if s.person_id is not None}
            alive = self._live_people(named)
            faces = [(items[i][0], s, s.person_id is not None and int(s.person_id) not in alive)
                     for i in new for s in items[i][1]]
            sighting_ids: dict[tuple[str, int], int] = {}
            if faces:
                returned = con.execute(
                    f"""INSERT INTO sightings (image_id, face_index, box, landmarks, det_score, quality,
                            embedding, model, thumb, person_id, match_score)
                        VALUES {_rows(len(faces), 11)} RETURNING image_id, face_index, sighting_id""",
                    [v for image, s, erased in faces for v in _sighting_row(image, s, erased)],
                ).fetchall()
                sighting_ids = {(r[0], int(r[1])): int(r[2]) for r in returned}
            contexts = [(sighting_ids[(image.image_id, s.face_index)], s.context)
                        for image, s, erased in faces if s.context is not None and not erased]
            if contexts:
                con.execute(f"INSERT INTO face_contexts VALUES {_rows(len(contexts), 4)}",
                            [v for sid, (jpeg, box, lm) in contexts
                             for v in (sid, jpeg, [float(x) for x in box], np.asarray(lm, np.float32).tolist())])
            audits = [(now, actor, "identify", f"sighting:{sighting_ids[(image.image_id, s.face_index)]} person:{s.person_id}")
                      for image, s, erased in faces if s.person_id is not None and not erased]
            if audits:
                con.execute(f'INSERT INTO audit ("at", actor, action, subject) VALUES {_rows(len(audits), 4)}',
                            [v for row in audits for v in row])
            objects = {(image.uri, version): image.image_id for image, _, version in items
                       if version is not None and (image.status == "ok" or status.get(image.image_id) == "ok")}
            if objects:
                con.execute(f"INSERT INTO source_objects VALUES {_rows(len(objects), 4)} ON CONFLICT DO NOTHING",
                            [v for (uri, version), image_id in objects.items() for v in (uri, version, image_id, now)])
            for i in new:
                image = items[i][0]
                out[i] = [sighting_ids[(image.image_id, s.face_index)] for s in items[i][1]]
        return out


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _rows(n: int, width: int) -> str:
    """``(?, ?, ...), (?, ?, ...)``: ``n`` rows of ``width`` placeholders, for a multi-row VALUES."""
    return ",".join([f"({_marks(width)})"] * n)


def _image_row(image: ImageRecord, now: datetime) -> list[Any]:
    return [image.image_id, image.uri, image.camera, image.taken_at, image.taken_at_source, image.gps_lat,
            image.gps_lon, image.camera_make, image.camera_model, image.format, image.width, image.height,
            image.bytes, now, image.status, image.error]


def _sighting_row(image: ImageRecord, s: SightingRecord, erased: bool) -> list[Any]:
    return [image.image_id, s.face_index, [float(v) for v in s.box], np.asarray(s.landmarks, dtype=np.float32).tolist(),
            float(s.det_score), float(s.quality), None if erased else np.asarray(s.embedding, dtype=np.float32).tolist(),
            s.model, None if erased else s.thumb, None if erased else s.person_id,
            None if erased else s.match_score]


def open_store(target: Target, read_only: bool = False) -> Store:
    """Open the database at ``target``: a file path (DuckDB) or a ``postgresql://`` URL."""
    if is_postgres(target):
        from .pg import PgStore

        return PgStore(str(target), read_only=read_only)
    if isinstance(target, str) and "://" in target:
        raise ConfigError(f"--db {describe_target(target)!r}: give a DuckDB file path or a postgresql:// URL")
    from .duck import DuckStore

    return DuckStore(Path(target), read_only=read_only)
