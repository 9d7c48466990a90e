"""A vector index of every stored face embedding, kept beside the database.

Why an index: searching a face among a year of camera sightings by brute force reads every
embedding per query (a million faces: half a gigabyte); an HNSW graph (usearch) answers in
well under a millisecond. The database stays the source of truth: the index is a cache that
``sync`` brings up to date (new sightings added, erased ones removed) and that is rebuilt
from the database whenever it is missing, unreadable or built for another embedder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..store import Store, VectorHit, is_postgres, target_key
from ..store.files import recover, replace_wiping
from ..vision.models import cache_dir
from .matching import dim_of, model_of

_VERSION = 1

log = logging.getLogger(__name__)


Hit = VectorHit


def index_paths(db: Path) -> tuple[Path, Path]:
    """The index file and its small JSON state file, next to the database."""
    return db.with_name(db.name + ".faces.usearch"), db.with_name(db.name + ".faces.json")


def _new_index(dim: int) -> Any:
    from usearch.index import Index

    # i8 keeps a million faces in ~250 MB; the expansions favour recall (benchmarked in bench/search.py).
    return Index(ndim=dim, metric="cos", dtype="i8", connectivity=16, expansion_add=128, expansion_search=128)


class FaceIndex:
    """HNSW index of sighting embeddings, keyed by ``sighting_id``."""

    def __init__(self, db: Path, model: str, dim: int = 128, view: bool = False) -> None:
        """``view``: map the file instead of reading it (usearch's ``view``): the pages a search
        touches come from the page cache, and a million faces no longer sit in the process's own
        memory (~470 MB at 320 dimensions). A viewed index is read-only."""
        self.path, self.state_path = index_paths(db)
        self.model, self.dim = model, dim
        self.index = _new_index(dim)
        self.synced_to = 0
        self.rebuilt = False
        self.viewed = view
        self._open()

    def _open(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
            if state.get("version") != _VERSION or state.get("model") != self.model or state.get("dim") != self.dim:
                raise ValueError("index built for another embedder")
            if self.viewed:
                self.index.view(str(self.path))
            else:
                self.index.load(str(self.path))
            self.synced_to = int(state["synced_to"])
        except (OSError, ValueError, KeyError, RuntimeError):
            self.index = _new_index(self.dim)
            self.synced_to = 0
            self.rebuilt = True

    def __len__(self) -> int:
        return len(self.index)

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> int:
        """Add the embeddings whose ids the index does not hold yet; returns how many."""
        keys = np.asarray(ids, dtype=np.uint64)
        if not len(keys):
            return 0
        fresh = ~np.asarray(self.index.contains(keys), dtype=bool)
        if fresh.any():
            # One thread: usearch's concurrent inserts leave a few nodes unreachable (2-5 of 3,000
            # faces were never returned, even for their own vector); one thread missed none and
            # was no slower on two cores (50,000 320-d faces: 92 s, against 113 s with all threads).
            self.index.add(keys[fresh], np.asarray(vectors, dtype=np.float32)[fresh], threads=1)
        return int(fresh.sum())

    def keys(self) -> NDArray[np.int64]:
        return np.asarray(self.index.keys, dtype=np.int64) if len(self.index) else np.zeros(0, np.int64)

    def search(self, vector: NDArray[np.float32], k: int) -> list[Hit]:
        if len(self.index) == 0:
            return []
        found = self.index.search(np.asarray(vector, dtype=np.float32), min(k, len(self.index)))
        return [Hit(int(key), float(1.0 - dist)) for key, dist in zip(found.keys, found.distances)]

    def clear(self) -> None:
        """Start afresh, empty: what erased faces leave behind is rebuilt, never patched."""
        self.index = _new_index(self.dim)

    def save(self, wipe_old: bool = False) -> None:
        """Write the index and then its state, each atomically (a crash leaves the old pair).

        With ``wipe_old`` (after an erasure) the file replaced is overwritten before it goes:
        it still holds the erased vectors (``store.files.replace_wiping``).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recover(self.path)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".part")
        os.close(fd)
        self.index.save(tmp)
        # A server of this process maps the new file next (and forgets the faces it kept beside the
        # old one: the new file holds them, or they were erased). The old file is overwritten in
        # place after an erasure: no server may still be reading it through a view.
        with LiveIndex.letting_go(self.path):
            if wipe_old:
                replace_wiping(Path(tmp), self.path)
            else:
                os.replace(tmp, self.path)
            state = {"version": _VERSION, "model": self.model, "dim": self.dim, "synced_to": self.synced_to}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".part")
            with os.fdopen(fd, "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.state_path)


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
    return cache_dir() / "index" / f"postgres-{target_key(settings.db)}"


_SYNCING = threading.Lock()
"""One sync at a time in a process: ``serve``'s watcher and its background index thread share the file."""


def sync_index(store: Store, settings: Settings, chunk: int = 10_000, pause_s: float = 0.0) -> IndexSync:
    """Bring the face index up to date with the database (or rebuild it if it was lost), ``chunk``
    faces at a time: the rows arrive as Python lists, about 11 kB a face, so a chunk of 50,000
    held half a gigabyte while it was added. ``pause_s`` between chunks lets a server's requests
    run (converting the rows holds the interpreter)."""
    if store.searches_vectors():
        return IndexSync(None, 0, 0)
    with _SYNCING:
        return _sync(store, settings, chunk, pause_s)


def _sync(store: Store, settings: Settings, chunk: int, pause_s: float = 0.0) -> IndexSync:
    model = model_of(settings)
    index = FaceIndex(index_base(settings), model, dim_of(settings))
    added = removed = 0
    last = index.synced_to
    while True:
        ids, vectors = store.sightings.embeddings_after(model, last, chunk)
        if not len(ids):
            break
        added += index.add(ids, vectors)
        last = int(ids[-1])
        if pause_s:
            time.sleep(pause_s)
    if len(index) != store.sightings.count_embedded(model):
        # Embeddings erased by forget/purge leave keys behind; a crash between saving the
        # index and its state can leave the opposite. Either way the database decides.
        live = store.sightings.embedded_ids(model)
        keys = set(index.keys().tolist())
        removed = len(keys - live)
        if removed:
            # usearch's remove drops a key, not its vector: the saved file would still hold every
            # erased face (90 of 90 after a forget). Rebuilt from the rows that remain instead.
            index.clear()
            added = 0
            keys = set()
        missing = sorted(live - keys)
        for start in range(0, len(missing), chunk):
            added += index.add(*store.sightings.embeddings_of(missing[start : start + chunk]))
            if pause_s:
                time.sleep(pause_s)
    if added or removed or index.rebuilt or last != index.synced_to:
        index.synced_to = last
        index.save(wipe_old=removed > 0)
    return IndexSync(index, added, removed)


LIVE_TAIL = 5000
"""Faces a live search compares one by one when the index has not taken them in yet: a few
milliseconds of work; more waits for the background sync (the answer says how many)."""


SYNC_CHUNK = 2_000
"""Faces a server's background sync reads at a time: small slices, so that the rows in hand (Python
lists, ~11 kB a face) stay small and the requests between two slices wait little."""

SYNC_PAUSE_S = 0.02
"""The background sync's pause between two slices: converting a slice's rows holds the interpreter,
and 4 clients asking for the first page waited up to 835 ms behind it at a million faces."""

MERGE_AT = 50_000
"""New faces a server keeps beside its mapped index, in memory, before it writes them into the
index file (the one step that reads the whole index into memory: ~470 MB at a million faces)."""


class LiveIndex:
    """The index of one database as a long-running server reads it: mapped from its file, never
    rebuilt in a request, kept current by a background thread.

    A request searches the mapped index and the newest faces it lacks (up to :data:`LIVE_TAIL`)
    by brute force; when it finds the index behind, it wakes the background thread, which syncs
    the file (:func:`sync_index`, with its own store, in slices) and maps the new file. At a million
    faces a rebuild takes minutes: inside a request, it was a 208-s search.

    The index is mapped (``FaceIndex(view=True)``), not read: read, it held ~470 MB of the
    server's memory at a million faces, twice over while a sync built the next one. The faces
    added since the file was written are kept beside it, in memory (``_fresh``: ids and vectors,
    compared by one matrix product), up to :data:`MERGE_AT`; only then does the background thread
    write them into the file (:func:`sync_index`, which reads the whole index), so a day of new
    faces never makes the server hold a second copy of the index. A file about to be overwritten
    in place (an erasure wipes the old index: ``FaceIndex.save``) is first let go of
    (:meth:`letting_go`): the searches reading it finish, none starts until it is replaced, and
    the faces kept in memory go too (they may be the erased ones).
    """

    _all: ClassVar[dict[str, LiveIndex]] = {}
    _made = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index: FaceIndex | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._readers = 0
        self._held = 0
        self._fresh: tuple[NDArray[np.int64], NDArray[np.float32]] = (np.zeros(0, np.int64),
                                                                      np.zeros((0, dim_of(settings)), np.float32))
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, settings: Settings) -> LiveIndex:
        key = str(settings.db)
        with cls._made:
            if key not in cls._all:
                cls._all[key] = cls(settings)
            return cls._all[key]

    def _path(self) -> Path:
        return index_paths(index_base(self.settings))[0]

    def current(self) -> FaceIndex | None:
        """The mapped index (mapped on first use; None while there is no file yet, or it is being replaced)."""
        with self._lock:
            return self._current()

    def _current(self) -> FaceIndex | None:
        if self.index is None and not self._held and self._path().exists():
            self.index = FaceIndex(index_base(self.settings), model_of(self.settings), dim_of(self.settings),
                                   view=True)
        return self.index

    def search(self, vector: NDArray[np.float32], k: int) -> tuple[list[Hit], int]:
        """The ``k`` nearest faces in the index and among the new faces kept beside it, and the
        sighting id both cover up to (0: no index yet)."""
        with self._lock:
            index = self._current()
            if index is None:
                return [], 0
            self._readers += 1
            ids, vectors = self._fresh
        try:
            hits = index.search(vector, k)
        finally:
            with self._lock:
                self._readers -= 1
                self._idle.notify_all()
        if not len(ids):
            return hits, index.synced_to
        scores = vectors @ np.asarray(vector, dtype=np.float32)
        best = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        mapped = {h.sighting_id for h in hits}
        merged = sorted([*hits, *(Hit(int(ids[i]), float(scores[i])) for i in best if int(ids[i]) not in mapped)],
                        key=lambda h: -h.score)
        return merged[:k], int(ids[-1])

    def _covered(self) -> int:
        """The newest sighting id the mapped index and the faces beside it cover (0: no index)."""
        with self._lock:
            index = self._current()
            ids = self._fresh[0]
        if index is None:
            return 0
        return int(ids[-1]) if len(ids) else index.synced_to

    @classmethod
    @contextlib.contextmanager
    def letting_go(cls, path: Path) -> Iterator[None]:
        """While the block runs, no server of this process reads the index file ``path``: the
        searches in flight finish first, and the next search maps the file that replaced it."""
        with cls._made:
            mine = [live for live in cls._all.values() if live._path().resolve() == path.resolve()]
        for live in mine:
            with live._lock:
                live._held += 1
                live.index = None
                live._fresh = (live._fresh[0][:0], live._fresh[1][:0])
                while live._readers:
                    live._idle.wait()
        try:
            yield
        finally:
            for live in mine:
                with live._lock:
                    live._held -= 1

    def catch_up(self) -> None:
        """Wake the background sync (started on first use); returns at once."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="facelake-index", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        from ..store import open_store

        while self._wake.wait(timeout=60.0):
            self._wake.clear()
            try:
                with open_store(self.settings.db, read_only=True) as store:
                    if self._current() is None or len(self._fresh[0]) >= MERGE_AT:
                        sync_index(store, self.settings, SYNC_CHUNK, SYNC_PAUSE_S)
                        with self._lock:
                            self.index = None  # the next search maps the file just written
                            self._fresh = (self._fresh[0][:0], self._fresh[1][:0])
                    else:
                        self._take_in(store)
            except Exception:
                log.exception("background index sync failed")

    def _take_in(self, store: Store) -> None:
        """Keep the faces the mapped index lacks in memory, a slice at a time, up to :data:`MERGE_AT`
        (then the loop above writes them into the file)."""
        model = model_of(self.settings)
        while len(self._fresh[0]) < MERGE_AT:
            ids, vectors = store.sightings.embeddings_after(model, self._covered(), SYNC_CHUNK)
            if not len(ids):
                return
            with self._lock:
                kept, held = self._fresh
                self._fresh = (np.concatenate([kept, ids]), np.concatenate([held, vectors.reshape(len(ids), -1)]))
            time.sleep(SYNC_PAUSE_S)
        self._wake.set()  # full: merge into the file on the next turn
