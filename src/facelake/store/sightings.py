"""Stored faces in SQL (``store.sightings``): embeddings for the index and for naming, search
hits, crops, face contexts and re-embedding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .connection import Sql, marks


@dataclass(frozen=True)
class FaceToName:
    """A stored face as naming sees it: ``enrolled_as`` is set for an enrollment face."""

    sighting_id: int
    image_id: str
    embedding: NDArray[np.float32]
    quality: float
    person_id: int | None
    enrolled_as: int | None
    track_id: int | None = None
    """The clip's track the face belongs to (then it is named with its track), else None."""
    recognisability: float | None = None
    """None: stored before the score existed (never gated)."""


@dataclass(frozen=True)
class Seen:
    """Where and when a face was seen, and whose it is (for search hits)."""

    uri: str
    camera: str | None
    taken_at: datetime | None
    person: str | None
    track_id: int | None = None
    """The clip's track the face belongs to, else None."""


@dataclass(frozen=True)
class ImageFaces:
    """One image's faces still to re-embed, in face order, with their stored detections."""

    image_id: str
    uri: str
    sighting_ids: list[int]
    boxes: list[list[float]]
    landmarks: list[list[list[float]]]
    scores: list[float]


@dataclass(frozen=True)
class FaceContext:
    """The face with room around it, kept beside the embedding: JPEG, box and landmarks in its pixels."""

    jpeg: bytes
    box: list[float]
    landmarks: list[list[float]]


class Sightings:
    """The ``sightings`` and ``face_contexts`` tables, face by face."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def id_of(self, image_id: str, face_index: int) -> int | None:
        row = self._sql.one("SELECT sighting_id FROM sightings WHERE image_id = ? AND face_index = ?",
                            [image_id, face_index])
        return None if row is None else int(row[0])

    def to_name(self, model: str, images: Sequence[str] | None = None,
                size: int = 20_000) -> Iterator[list[FaceToName]]:
        """Every embedded face of ``model`` (or of the images ``images`` only), image by image in
        face order, in batches of whole images of about ``size`` faces (what ``identify`` re-matches).

        Why batches: as rows of Python floats, a million embeddings held over 10 GB.
        """
        sql = """SELECT s.sighting_id, s.image_id, s.embedding, s.quality, s.person_id, e.person_id AS enrolled_as,
                        s.track_id, s.recognisability
                 FROM sightings s LEFT JOIN enrollments e USING (sighting_id)
                 WHERE s.embedding IS NOT NULL AND s.model = ? {images} ORDER BY s.image_id, s.face_index"""
        if images is None:
            yield from _whole_images(self._sql.batches(sql.format(images=""), [model], size))
            return
        chosen = sorted(set(images))
        for start in range(0, len(chosen), 1000):
            part = chosen[start : start + 1000]
            yield from _whole_images(self._sql.batches(
                sql.format(images=f"AND s.image_id IN ({marks(len(part))})"), [model, *part], size))

    def embedded(self, model: str, size: int = 20_000) -> Iterator[tuple[list[str], NDArray[np.float32]]]:
        """Every embedded face of ``model`` as ``(image ids, embeddings)`` blocks, in no order."""
        for b in self._sql.batches("SELECT image_id, embedding FROM sightings WHERE embedding IS NOT NULL "
                                   "AND model = ?", [model], size):
            yield b["image_id"], b["embedding"]

    def images_of(self, ids: Sequence[int]) -> set[str]:
        """The images the sightings ``ids`` belong to."""
        out: set[str] = set()
        chosen = sorted(set(ids))
        for start in range(0, len(chosen), 1000):
            part = chosen[start : start + 1000]
            out |= {str(r[0]) for r in self._sql.all(
                f"SELECT DISTINCT image_id FROM sightings WHERE sighting_id IN ({marks(len(part))})", part)}
        return out

    def embeddings_after(self, model: str, after: int, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Up to ``limit`` embeddings of ``model`` with ids above ``after``, by id (ids, vectors).

        In two steps, the span of ids first, then the rows in it: sorting whole rows to keep
        ``limit`` of them read every embedding after ``after``, once per chunk (a chunk of 2,000
        took 0.1-1.3 s at a million faces, the range 30-200 ms in DuckDB).
        """
        span = self._sql.one(
            """SELECT min(sighting_id), max(sighting_id) FROM (SELECT sighting_id FROM sightings
               WHERE embedding IS NOT NULL AND model = ? AND sighting_id > ? ORDER BY sighting_id LIMIT ?) page""",
            [model, after, limit])
        if span is None or span[0] is None:
            return _arrays([])
        return self._sql.vectors(
            """SELECT sighting_id, embedding FROM sightings
               WHERE embedding IS NOT NULL AND model = ? AND sighting_id BETWEEN ? AND ? ORDER BY sighting_id""",
            [model, span[0], span[1]])

    def embeddings_of(self, ids: Sequence[int]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return self._sql.vectors(
            f"SELECT sighting_id, embedding FROM sightings WHERE sighting_id IN ({marks(len(ids))})", list(ids))

    def count_embedded(self, model: str) -> int:
        return self._sql.count("SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model])

    def embedded_ids(self, model: str) -> set[int]:
        return {int(r[0]) for r in self._sql.all(
            "SELECT sighting_id FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model])}

    def seen(self, ids: Sequence[int]) -> dict[int, Seen]:
        """Where each of ``ids`` was seen (absent: no such sighting, or its embedding was erased since:
        an index a moment behind the database must not bring an erased face back)."""
        if not ids:
            return {}
        # Read by key, table by table: joined to images, DuckDB hashed the hits and read every
        # image id to probe them (tens of ms at a million images, in each search).
        faces = self._sql.all(
            f"""SELECT sighting_id, image_id, person_id, track_id FROM sightings
                WHERE sighting_id IN ({marks(len(ids))}) AND embedding IS NOT NULL""", list(ids))
        if not faces:
            return {}
        images = sorted({str(r[1]) for r in faces})
        where = {str(r[0]): (str(r[1]), r[2], r[3]) for r in self._sql.all(
            f"SELECT image_id, uri, camera, taken_at FROM images WHERE image_id IN ({marks(len(images))})", images)}
        people = sorted({int(r[2]) for r in faces if r[2] is not None})
        names = {int(r[0]): str(r[1]) for r in self._sql.all(
            f"SELECT person_id, name FROM people WHERE person_id IN ({marks(len(people))})", people)} if people else {}
        return {int(sid): Seen(*where[str(image)], names.get(int(person)) if person is not None else None, track)
                for sid, image, person, track in faces if str(image) in where}

    def count_embedded_after(self, model: str, after: int) -> int:
        """Embedded faces of ``model`` with ids above ``after``: what an index synced to ``after`` lacks."""
        return self._sql.count("SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model = ? "
                               "AND sighting_id > ?", [model, after])

    def crop(self, sighting_id: int) -> bytes | None:
        row = self._sql.one("SELECT thumb FROM sightings WHERE sighting_id = ?", [sighting_id])
        return bytes(row[0]) if row and row[0] is not None else None

    def context(self, sighting_id: int) -> FaceContext | None:
        row = self._sql.one("SELECT jpeg, box, landmarks FROM face_contexts WHERE sighting_id = ?", [sighting_id])
        return None if row is None else FaceContext(bytes(row[0]), list(row[1]), [list(p) for p in row[2]])

    def to_reembed(self, model: str) -> list[ImageFaces]:
        """Images with faces whose embedding is not of ``model`` (erased ones excluded), by image id."""
        return [ImageFaces(r[0], r[1], list(r[2]), list(r[3]), list(r[4]), list(r[5])) for r in self._sql.all(
            """SELECT s.image_id, min(i.uri), array_agg(s.sighting_id ORDER BY s.face_index),
                      array_agg(s.box ORDER BY s.face_index), array_agg(s.landmarks ORDER BY s.face_index),
                      array_agg(s.det_score ORDER BY s.face_index)
               FROM sightings s JOIN images i USING (image_id)
               WHERE s.embedding IS NOT NULL AND s.model <> ?
               GROUP BY s.image_id ORDER BY 1""", [model])]

    def set_embeddings(self, vectors: Sequence[tuple[int, NDArray[np.float32], float | None]], model: str) -> None:
        """Replace the embeddings of ``(sighting_id, vector, recognisability)`` with ``model``'s, in one
        transaction (the score is the new model's: each model has its own)."""
        with self._sql.transaction():
            for sighting, vector, score in vectors:
                self._sql.execute("UPDATE sightings SET embedding = ?, model = ?, recognisability = ? WHERE sighting_id = ?",
                                  [np.asarray(vector).astype(np.float32).tolist(), model,
                                   None if score is None else float(score), sighting])

    def count_other_models(self, model: str) -> int:
        """Embedded faces whose embedding is not of ``model``."""
        return self._sql.count("SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model <> ?", [model])


def _whole_images(batches: Iterator[dict[str, Any]]) -> Iterator[list[FaceToName]]:
    """Faces of ``batches`` (rows in image order) regrouped so that no image is split across two."""
    held: list[FaceToName] = []
    for b in batches:
        X = b["embedding"]
        faces = [FaceToName(int(sid), image, X[i], float(q), person, enrolled, track, score)
                 for i, (sid, image, q, person, enrolled, track, score) in enumerate(zip(
                     b["sighting_id"], b["image_id"], b["quality"], b["person_id"], b["enrolled_as"],
                     b["track_id"], b["recognisability"]))]
        held += faces
        last = held[-1].image_id
        cut = len(held)
        while cut > 0 and held[cut - 1].image_id == last:
            cut -= 1
        if cut:
            yield held[:cut]
            held = held[cut:]
    if held:
        yield held


def _arrays(rows: list[tuple[Any, ...]]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32)
