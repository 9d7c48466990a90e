"""Search: "where else was this face seen", over the database's vectors or the face index beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..store import Store
from .index import sync_index
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
