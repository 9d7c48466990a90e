"""Search: the face index kept beside the database, and "where else was this face seen"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..pipeline import analyzer_options
from ..store.base import Store, is_postgres, open_store, target_key
from ..vision.analyzer import FaceAnalyzer
from .calibration import dim_of, model_of
from .index import FaceIndex
from .photos import photo_faces


@dataclass(frozen=True)
class IndexSync:
    index: FaceIndex | None
    """None where the database searches vectors itself (pgvector): there is no index to keep."""
    added: int
    removed: int


def index_base(settings: Settings) -> Path:
    """Where the usearch index lives: beside a DuckDB file; for a server database, in the cache."""
    if not is_postgres(settings.db):
        return Path(settings.db)
    from ..vision.models import cache_dir

    return cache_dir() / "index" / f"postgres-{target_key(settings.db)}"


def sync_index(store: Store, settings: Settings, chunk: int = 50_000) -> IndexSync:
    """Bring the face index up to date with the database (or rebuild it if it was lost)."""
    if store.searches_vectors():
        return IndexSync(None, 0, 0)
    model = model_of(settings)
    index = FaceIndex(index_base(settings), model, dim_of(settings))
    added = removed = 0
    last = index.synced_to
    while True:
        rows = store.con.execute(
            """SELECT sighting_id, embedding FROM sightings
               WHERE embedding IS NOT NULL AND model = ? AND sighting_id > ? ORDER BY sighting_id LIMIT ?""",
            [model, last, chunk],
        ).fetchall()
        if not rows:
            break
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        added += index.add(ids, np.array([r[1] for r in rows], dtype=np.float32))
        last = int(ids[-1])
    counted = store.con.execute(
        "SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model]).fetchone()
    if counted is not None and len(index) != int(counted[0]):
        # Embeddings erased by forget/purge leave keys behind; a crash between saving the
        # index and its state can leave the opposite. Either way the database decides.
        live = {r[0] for r in store.con.execute(
            "SELECT sighting_id FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model]).fetchall()}
        keys = set(index.keys().tolist())
        removed = index.remove(np.array(sorted(keys - live), dtype=np.int64))
        missing = sorted(live - keys)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            rows = store.con.execute(
                f"SELECT sighting_id, embedding FROM sightings WHERE sighting_id IN ({','.join('?' * len(part))})",
                part).fetchall()
            added += index.add(np.array([r[0] for r in rows], dtype=np.int64),
                               np.array([r[1] for r in rows], dtype=np.float32))
    if added or removed or index.rebuilt or last != index.synced_to:
        index.synced_to = last
        index.save()
    return IndexSync(index, added, removed)


@dataclass(frozen=True)
class SearchHit:
    sighting_id: int
    score: float
    uri: str
    camera: str | None
    taken_at: object
    person: str | None


def search(settings: Settings, photo: Path, top: int = 10, face: int | None = None,
           analyzer: FaceAnalyzer | None = None, actor: str = "cli") -> list[SearchHit]:
    """Past sightings of the face in ``photo``, most similar first (an audited query)."""
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    job, _, faces, chosen_index = photo_faces(photo, "search", face, settings, analyzer)
    chosen = faces[chosen_index]
    with open_store(settings.db) as store:
        found = store.nearest(model_of(settings), dim_of(settings), chosen.embedding, top)
        if found is None:
            index = sync_index(store, settings).index
            assert index is not None
            found = index.search(chosen.embedding, top)
        hits = found
        store.audit(actor, "search", f"photo:{job.image_id[:16]} top:{top}")
        if not hits:
            return []
        info = {r[0]: r[1:] for r in store.con.execute(
            f"""SELECT s.sighting_id, i.uri, i.camera, i.taken_at, p.name FROM sightings s
                JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
                WHERE s.sighting_id IN ({",".join("?" * len(hits))})""",
            [h.sighting_id for h in hits]).fetchall()}
    return [SearchHit(h.sighting_id, h.score, *info[h.sighting_id]) for h in hits if h.sighting_id in info]
