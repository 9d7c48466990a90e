"""The store interface: what every facelake database does, whichever engine holds it.

Two engines sit behind it: DuckDB (one file, one writing process, the embedded default) and
PostgreSQL (a server that many watchers, functions and workers write to at once). The
rest of facelake speaks to :class:`Store` only: records in, rows out, one transaction per
image. No SQL crosses this interface (``query`` runs the owner's own, for ``facelake sql``):
the statements live in ``store/``, in :class:`~.sql.SqlStore` (ingest, bulk) and in one query
module per job, each hung on the store:

    store.people     people, enrollments, naming links, erasure, retention   (people.py)
    store.clusters   groups of unknown faces and their edits                 (clusters.py)
    store.sightings  faces: embeddings, crops, contexts, search hits         (sightings.py)
    store.tokens     API tokens                                              (tokens.py)
    store.reports    stats, dashboard, API listings, HTML report             (reports.py)
    store.visits     tracks and the visits they make, for reports            (visits.py)
    store.exports    warehouse export watermarks                             (exports.py)

Open one with :func:`facelake.store.open_store`. The records written (``ImageRecord``,
``SightingRecord``) and the target helpers live here too.
"""

from __future__ import annotations

import builtins
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from ..redact import mask_url
from .clusters import Clusters
from .connection import utcnow
from .erasures import Erasures
from .exports import Exports
from .people import People
from .reports import Reports
from .sightings import Sightings
from .tokens import Tokens
from .tracks import Tracks
from .visits import Visits

__all__ = ["ImageRecord", "SightingRecord", "Store", "Target", "VectorHit", "as_target", "describe_target",
           "is_postgres", "target_key", "utcnow"]

Target = Path | str
"""Where a database lives: a DuckDB file path, or a ``postgresql://`` URL."""


def is_postgres(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def as_target(value: str | Path) -> Target:
    """A ``--db`` value as a target: a postgresql:// URL stays a string (a Path would fold its
    '//'); anything else is a file path."""
    return value if isinstance(value, str) and is_postgres(value) else Path(value)


def describe_target(target: Target) -> str:
    """The target as it may be printed: a PostgreSQL URL without its password (``redact.mask_url``:
    the rule camera URLs follow, query values such as ``password=`` included)."""
    return mask_url(str(target)) if is_postgres(target) else str(target)


def target_key(target: Target) -> str:
    """A short stable name for the target (cache files of a server database are named by it)."""
    return hashlib.sha256(describe_target(target).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrackRecord:
    """One face followed across a clip's frames (a row of ``tracks``); its best faces are sightings.

    Its name is not stored here: the track is named once, by its template, and that name is
    what its sightings carry, so the row takes its person and score from them as it is written.
    """

    start_s: float
    end_s: float
    frames: int
    template: NDArray[np.float32]
    model: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    still: bytes | None = None
    """The frame at the track's best face, as a JPEG: what the dashboard shows (no video player)."""


def error_id(uri: str) -> str:
    """The id of the error row of a place whose bytes could not be read (or that a sink keeps
    as its one error row, whatever the failing bytes were): from its uri, so that the next
    failure overwrites it and the good row, keyed by its bytes, can find and replace it."""
    return hashlib.sha256(b"unreadable:" + uri.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class ImageRecord:
    """A row of ``images``: one image, or one video clip (then with its ``tracks``), by content hash."""

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
    tracks: tuple[TrackRecord, ...] = ()
    """A clip's tracks, written with it in one transaction (``SightingRecord.track`` points here)."""
    revision: int = 0
    """0: a first write, skipped when the image is stored already. Above 0: a live stream's segment
    written again once its open track ended; it replaces the rows its earlier revision wrote."""
    uri_bytes: builtins.bytes | None = None  # builtins: the field ``bytes`` above shadows the type
    """The exact bytes of a file name that is not UTF-8 (``uri`` then shows them as ``\\xNN``; see
    ``sources.base.readable``); None for every other name."""


@dataclass(frozen=True)
class SightingRecord:
    """A row of ``sightings``: one face, with its embedding, crop and (once named) person."""

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
    track: int | None = None
    """Index into the image's ``tracks`` (a clip's face), else None (a photo's)."""
    offset_s: float | None = None
    """Seconds from the start of the clip at which the face was seen."""
    recognisability: float | None = None
    """0..1, how far the embedding carries an identity (``vision.recognisability``); None: not scored."""


@dataclass(frozen=True)
class VectorHit:
    sighting_id: int
    score: float
    """Cosine similarity."""




class Store(ABC):
    """A facelake database, whichever engine holds it. Use as a context manager.

    One open store is one connection: a service function is handed one and does its work
    through it (one unit of work); only the thin facades open and close stores.
    """

    engine: str
    """``duckdb`` or ``postgresql``."""
    target: Target
    read_only: bool

    people: People
    clusters: Clusters
    sightings: Sightings
    tokens: Tokens
    reports: Reports
    visits: Visits
    exports: Exports
    erasures: Erasures
    tracks: Tracks

    groups_writes: bool = False
    """Whether ingest writes a worker's batch with one :meth:`write_images` (one transaction)
    rather than image by image. DuckDB: yes, the one writing process spent most of its ~20 ms
    of CPU an image on statements and commits. A server database keeps a transaction per
    image, so concurrent writers never hold each other's image locks for a whole batch."""

    # --- life cycle ---

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One transaction around the caller's writes (``audit``, ``remember_object``, …)."""

    @abstractmethod
    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Run a whole-table job (clustering) alone among every process writing this database."""

    @abstractmethod
    def compact(self, wait_s: float = 0.0) -> bool:
        """Rewrite what held erased rows, so that their bytes are gone from the database's files
        (after ``forget``, ``purge``, a dismissed cluster); returns whether it was done now.

        DuckDB: a fresh copy of the file takes its place (``DuckStore.compact``), at once or,
        while other connections of the process hold the file, when the last one closes.
        PostgreSQL: ``VACUUM FULL`` of the tables that hold faces (``PgStore.compact``).
        """

    def erasure_pending(self) -> bool:
        """Whether an erasure is waiting for :meth:`compact` (DuckDB, while another connection held the file)."""
        return False

    # --- ingest ---

    @abstractmethod
    def image_status(self, image_id: str) -> str | None:
        """``'ok'``, ``'error'``, or ``None`` when the image was never seen."""

    @abstractmethod
    def known_ok(self) -> set[str]:
        """Ids of every image already stored without error (what a re-run skips)."""

    @abstractmethod
    def image_ids(self) -> set[str]:
        """Ids of every image stored, with or without error."""

    @abstractmethod
    def known_objects(self) -> set[tuple[str, str]]:
        """``(uri, version)`` of every listed object whose image is stored without error (each uri as
        stored: ``sources.base.readable``)."""

    @abstractmethod
    def objects_stored(self, uris: Sequence[str], chunk: int = 500) -> set[tuple[str, str]]:
        """``(uri, version)`` of the given uris' objects whose image is stored without error (each uri
        as stored: ``sources.base.readable``)."""

    @abstractmethod
    def remember_object(self, uri: str, version: str | None, image_id: str) -> None:
        """Note that ``uri`` at ``version`` holds ``image_id`` (part of the caller's transaction)."""

    @abstractmethod
    def audit(self, actor: str, action: str, subject: str) -> None:
        """Append one row to the audit log (part of the caller's transaction, if one is open)."""

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

    @abstractmethod
    def write_images(
        self, items: Sequence[tuple[ImageRecord, Sequence[SightingRecord], str | None]], actor: str = "ingest",
    ) -> list[list[int] | None]:
        """:meth:`write_image` for several images ``(image, sightings, version)`` in one transaction."""

    # --- vectors ---

    @abstractmethod
    def vectors(self) -> str:
        """How embeddings are stored and searched here (shown by ``facelake stats``)."""

    @abstractmethod
    def searches_vectors(self) -> bool:
        """Whether :meth:`nearest` answers here (else the usearch index beside the data does)."""

    @abstractmethod
    def nearest(self, model: str, dim: int, vector: NDArray[np.float32], k: int) -> list[VectorHit] | None:
        """The ``k`` stored faces of ``model`` closest to ``vector`` by SQL, or None where the
        engine has no vector search (the caller then uses the usearch index)."""

    # --- the owner's SQL, bulk copies and exports ---

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run the owner's ``sql`` (``facelake sql``); a read-only store refuses anything but reads."""

    @abstractmethod
    def table_counts(self) -> dict[str, int]:
        """Rows per facelake table (what ``facelake copy`` compares)."""

    @abstractmethod
    def stream(self, table: str, batch: int = 2_000) -> Iterator[tuple[list[str], list[Any]]]:
        """Every row of ``table`` in batches, with the column names: a million rows never sit in memory at once."""

    @abstractmethod
    def embeddings(self, batch: int = 2_000) -> Iterator[list[tuple[int, str, Any]]]:
        """``(sighting_id, model, embedding)`` of every embedded face in id order, in batches."""

    @abstractmethod
    def insert_rows(self, table: str, columns: list[str], rows: list[Any]) -> None:
        """Add rows as they come from another store, ids included (part of the caller's transaction)."""

    @abstractmethod
    def advance_sequences(self) -> None:
        """Move every id sequence past the ids in its table (after rows came in with their ids)."""

    @abstractmethod
    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write ``images.parquet`` and ``sightings.parquet``; returns row counts."""

    @abstractmethod
    def export_rows(self, table: str, since: str, target: Path) -> int:
        """Write ``table``'s rows from the watermark ``since`` on to a Parquet file, in the
        warehouse's types (``store.bigquery``); returns how many."""
