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
from ..errors import ConfigError, FacelakeError
from ..pipeline import analyzer_options
from ..sources.buckets import open_object
from ..sources.decode import decode_image
from ..store import Store
from ..vision.analyzer import FaceAnalyzer
from ..vision.models import EMBEDDER_MODELS
from ..vision.recognisability import recognisability
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
    context = store.sightings.context(sighting)
    if context is None:
        return None
    try:
        pixels = decode_image(context.jpeg, max_pixels).pixels
    except FacelakeError:
        return None
    det = Detection(tuple(map(float, context.box)), float(score),  # type: ignore[arg-type]
                    np.asarray(context.landmarks, dtype=np.float32))
    return np.asarray(analyzer.embed(analyzer.align(pixels, [det]))[0])


def target_model(embedder: str) -> str:
    """The model name ``embedder`` stores; refuses an unknown embedder."""
    if embedder not in EMBEDDER_MODELS:
        raise ConfigError(f"--model must be one of {sorted(EMBEDDER_MODELS)}, got {embedder!r}")
    return EMBEDDER_MODELS[embedder]


def reembed(store: Store, settings: Settings, embedder: str, on_total: Callable[[int], None] | None = None,
            on_image: Callable[[str, int], None] | None = None) -> ReembedSummary:
    """Give every stored face an embedding of ``embedder`` ("fusion", "dlib" or "mobilefacenet")."""
    target = target_model(embedder)
    analyzer = FaceAnalyzer(replace(analyzer_options(settings), embedder=embedder))
    max_bytes = int(settings.max_file_mb * 1e6)
    summary = ReembedSummary()
    todo = store.sightings.to_reembed(target)
    if on_total:
        on_total(len(todo))
    for item in todo:
        uri, ids, scores = item.uri, item.sighting_ids, item.scores
        try:
            bucket, key = open_object(uri)
            data = bucket.read(key, max_bytes)
            if hashlib.sha256(data).hexdigest() != item.image_id:
                raise FacelakeError(f"{uri} has changed since it was stored")
            pixels = decode_image(data, settings.max_pixels).pixels
        except FacelakeError:
            pixels = None
        if pixels is not None:
            dets = [Detection(tuple(map(float, b)), float(sc), np.asarray(lm, dtype=np.float32))  # type: ignore[arg-type]
                    for b, lm, sc in zip(item.boxes, item.landmarks, scores)]
            vectors = list(analyzer.embed(analyzer.align(pixels, dets)))
        else:
            vectors = [_from_context(store, analyzer, sid, sc, settings.max_pixels) for sid, sc in zip(ids, scores)]
        found = [(sid, vec) for sid, vec in zip(ids, vectors) if vec is not None]
        clear = recognisability(target, np.stack([v for _, v in found])) if found else []
        kept = [(sid, vec, score) for (sid, vec), score in zip(found, clear)]
        summary.unavailable += len(ids) - len(kept)
        summary.from_context += len(kept) if pixels is None else 0
        if not kept:
            if on_image:
                on_image(uri, 0)
            continue
        store.sightings.set_embeddings(kept, target)
        summary.images += 1
        summary.faces += len(kept)
        if on_image:
            on_image(uri, len(kept))
    store.audit("cli", "reembed", f"model:{target} faces:{summary.faces} unavailable:{summary.unavailable}")
    summary.remaining = store.sightings.count_other_models(target)
    return summary
