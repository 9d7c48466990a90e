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


def search_face(store: Store, settings: Settings, embedding: NDArray[np.float32], photo_id: str, top: int = 10,
                actor: str = "cli") -> list[SearchHit]:
    """Past sightings of the face ``embedding`` (from the photo ``photo_id``), most similar first.

    An audited query: every search says who asked, and which photo (by its hash) was searched.
    The database answers where it searches vectors itself (pgvector); elsewhere the usearch
    index does, brought up to date first.
    """
    found = store.nearest(model_of(settings), dim_of(settings), embedding, top)
    if found is None:
        index = sync_index(store, settings).index
        assert index is not None
        found = index.search(embedding, top)
    store.audit(actor, "search", f"photo:{photo_id[:16]} top:{top}")
    if not found:
        return []
    seen = store.sightings.seen([h.sighting_id for h in found])
    return [SearchHit(h.sighting_id, h.score, s.uri, s.camera, s.taken_at, s.person)
            for h in found if (s := seen.get(h.sighting_id)) is not None]
