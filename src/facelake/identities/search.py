"""Search: "where else was this face seen", over the database's vectors or the face index beside it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..store import Store, VectorHit
from .index import LIVE_TAIL, LiveIndex, sync_index
from .matching import dim_of, model_of


@dataclass(frozen=True)
class SearchHit:
    sighting_id: int
    score: float
    uri: str
    camera: str | None
    taken_at: object
    person: str | None
    track_id: int | None = None
    """A clip's track: its best-matching face stands for it, once."""


@dataclass(frozen=True)
class Searched:
    hits: list[SearchHit]
    pending: int = 0
    """Newest faces not searched yet: the index is catching up with them in the background."""
    behind: int = 0
    """Newest faces the index has not taken in yet: searched one by one when few (then not ``pending``)."""
    seconds: float = 0.0
    """How long the search itself took (the index, the rows of the hits, the audit), the photo's
    analysis apart: the API sends it as ``Server-Timing`` (bench/million.py reads it)."""


def search_face(store: Store, settings: Settings, embedding: NDArray[np.float32], photo_id: str, top: int = 10,
                actor: str = "cli") -> list[SearchHit]:
    """Past sightings of the face ``embedding`` (from the photo ``photo_id``), most similar first.

    An audited query: every search says who asked, and which photo (by its hash) was searched.
    The database answers where it searches vectors itself (pgvector); elsewhere the usearch
    index does, brought up to date first.
    """
    # A clip's track keeps up to track_top_k faces, all alike: ask for enough to fill ``top`` with
    # one hit per track (a person walking past is one result, not three).
    wanted = top * settings.track_top_k
    found = store.nearest(model_of(settings), dim_of(settings), embedding, wanted)
    if found is None:
        index = sync_index(store, settings).index
        assert index is not None
        found = index.search(embedding, wanted)
    store.audit(actor, "search", f"photo:{photo_id[:16]} top:{top}")
    return _hits(store, found, top)


def search_live(store: Store, settings: Settings, embedding: NDArray[np.float32], photo_id: str, top: int = 10,
                actor: str = "api") -> Searched:
    """:func:`search_face` for a server: the index is never synced in the request (see ``LiveIndex``).

    The faces the index lacks are compared one by one when they are few, else left for the
    background sync and counted in ``pending`` (the API says "index catching up").
    """
    started = time.perf_counter()
    wanted = top * settings.track_top_k
    model = model_of(settings)
    found = store.nearest(model, dim_of(settings), embedding, wanted)
    pending = behind = 0
    if found is None:
        live = LiveIndex.of(settings)
        found, synced_to = live.search(embedding, wanted)
        behind = store.sightings.count_embedded_after(model, synced_to)
        if behind:
            live.catch_up()
        if 0 < behind <= LIVE_TAIL:
            ids, vectors = store.sightings.embeddings_after(model, synced_to, LIVE_TAIL)
            scores = vectors @ np.asarray(embedding, dtype=np.float32)
            found = sorted([*found, *(VectorHit(int(i), float(v)) for i, v in zip(ids, scores))],
                           key=lambda h: -h.score)[:wanted]
        else:
            pending = behind
    store.audit(actor, "search", f"photo:{photo_id[:16]} top:{top}")
    hits = _hits(store, found, top)
    return Searched(hits, pending, behind, time.perf_counter() - started)


def _hits(store: Store, found: list[VectorHit], top: int) -> list[SearchHit]:
    """One hit per track, most similar first, of faces that still exist."""
    if not found:
        return []
    seen = store.sightings.seen([h.sighting_id for h in found])
    hits: list[SearchHit] = []
    tracks: set[int] = set()
    for h in found:  # most similar first
        s = seen.get(h.sighting_id)
        if s is None or (s.track_id is not None and s.track_id in tracks):
            continue
        if s.track_id is not None:
            tracks.add(s.track_id)
        hits.append(SearchHit(h.sighting_id, h.score, s.uri, s.camera, s.taken_at, s.person, s.track_id))
    return hits[:top]
