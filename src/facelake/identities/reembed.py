"""``facelake reembed``: recompute stored faces' embeddings with another model.

Why from the source image (or, when it is gone, the face context kept beside the embedding)
and the stored detection: a new model needs its own crop
(dlib's 150-px chip, or the ArcFace 112-px template), and the stored box and landmarks say
exactly where the face was, so nothing is detected again — each sighting keeps its id, its
name, its cluster and its feedback; only ``embedding`` and ``model`` change, per image in
one transaction. Faces whose embedding was erased (forgotten people, expired unknown faces)
stay erased (their context is erased with them). A face whose source image is gone or changed
is embedded from its kept context; one with neither keeps its old embedding, which the new
model's matching never compares with its own; it is counted and reported.

Resumable by construction: only rows whose model differs from the target are selected, so a
run killed halfway continues where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..config import Settings
from ..errors import FacelakeError
from ..pipeline import analyzer_options
from ..sources.buckets import open_object
from ..sources.decode import decode_image
from ..store.base import Store, open_store
from ..vision.analyzer import FaceAnalyzer
from ..vision.models import EMBEDDER_MODELS
from ..vision.types import Detection


@dataclass
class ReembedSummary:
    images: int = 0
    faces: int = 0
    unavailable: int = 0
    """Faces with neither a readable, unchanged source image nor a kept face context."""
    from_context: int = 0
    """Faces re-embedded from the kept face context because the source image was gone or changed."""
    remaining: int = 0


def _from_context(store: Store, analyzer: FaceAnalyzer, sighting: int, score: float,
                  max_pixels: int) -> np.ndarray | None:
    """The face's new embedding from its kept context (the face with room around it), if any."""
    row = store.con.execute("SELECT jpeg, box, landmarks FROM face_contexts WHERE sighting_id = ?",
                            [sighting]).fetchone()
    if row is None:
        return None
    try:
        pixels = decode_image(bytes(row[0]), max_pixels).pixels
    except FacelakeError:
        return None
    det = Detection(tuple(map(float, row[1])), float(score), np.asarray(row[2], dtype=np.float32))  # type: ignore[arg-type]
    return np.asarray(analyzer.embed(analyzer.align(pixels, [det]))[0])


def reembed(settings: Settings, embedder: str, on_total: Callable[[int], None] | None = None,
            on_image: Callable[[str, int], None] | None = None) -> ReembedSummary:
    """Give every stored face an embedding of ``embedder`` ("fusion", "dlib" or "mobilefacenet")."""
    if embedder not in EMBEDDER_MODELS:
        raise FacelakeError(f"--model must be one of {sorted(EMBEDDER_MODELS)}, got {embedder!r}")
    target = EMBEDDER_MODELS[embedder]
    analyzer = FaceAnalyzer(replace(analyzer_options(settings), embedder=embedder))
    max_bytes = int(settings.max_file_mb * 1e6)
    summary = ReembedSummary()
    with open_store(settings.db) as store:
        todo = store.con.execute(
            """SELECT s.image_id, min(i.uri), array_agg(s.sighting_id ORDER BY s.face_index),
                      array_agg(s.box ORDER BY s.face_index), array_agg(s.landmarks ORDER BY s.face_index),
                      array_agg(s.det_score ORDER BY s.face_index)
               FROM sightings s JOIN images i USING (image_id)
               WHERE s.embedding IS NOT NULL AND s.model <> ?
               GROUP BY s.image_id ORDER BY 1""", [target]).fetchall()
        if on_total:
            on_total(len(todo))
        for image_id, uri, ids, boxes, landmarks, scores in todo:
            try:
                bucket, key = open_object(uri)
                data = bucket.read(key, max_bytes)
                if hashlib.sha256(data).hexdigest() != image_id:
                    raise FacelakeError(f"{uri} has changed since it was stored")
                pixels = decode_image(data, settings.max_pixels).pixels
            except FacelakeError:
                pixels = None
            if pixels is not None:
                dets = [Detection(tuple(map(float, b)), float(sc), np.asarray(lm, dtype=np.float32))  # type: ignore[arg-type]
                        for b, lm, sc in zip(boxes, landmarks, scores)]
                vectors = list(analyzer.embed(analyzer.align(pixels, dets)))
            else:
                vectors = [_from_context(store, analyzer, sid, sc, settings.max_pixels) for sid, sc in zip(ids, scores)]
            kept = [(sid, vec) for sid, vec in zip(ids, vectors) if vec is not None]
            summary.unavailable += len(ids) - len(kept)
            summary.from_context += len(kept) if pixels is None else 0
            if not kept:
                if on_image:
                    on_image(uri, 0)
                continue
            store.con.execute("BEGIN TRANSACTION")
            try:
                for sid, vec in kept:
                    store.con.execute("UPDATE sightings SET embedding = ?, model = ? WHERE sighting_id = ?",
                                      [vec.astype(np.float32).tolist(), target, sid])
                store.con.execute("COMMIT")
            except BaseException:
                store.con.execute("ROLLBACK")
                raise
            summary.images += 1
            summary.faces += len(kept)
            if on_image:
                on_image(uri, len(kept))
        store.audit("cli", "reembed", f"model:{target} faces:{summary.faces} unavailable:{summary.unavailable}")
        left = store.con.execute("SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model <> ?",
                                 [target]).fetchone()
        summary.remaining = int(left[0]) if left else 0
    return summary
