"""Ingest: listed entries → the executor's results → the image line → the store, for one or many runs.

The main process lists the sources and reads each entry's bytes (see
:mod:`~facelake.pipeline.executors`); the bytes' hash *is* the image id, so an image already
stored is skipped before any decoding, and an object version already stored is skipped
before it is even downloaded. The main process owns the only database connection and
writes every image whole as its result arrives, so a crash loses at most the images in
flight, never half an image.

What happens around each write (naming, alerts, purging expired faces) is not this
module's business: those are :class:`~facelake.pipeline.line.Stage` objects on the
:class:`~facelake.pipeline.line.ImageLine`, the same line the Cloud Function and the API run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from ..config import Settings
from ..errors import StoreError
from ..sources import Source, open_source, require_present
from ..sources.base import readable
from ..store import Store, open_store
from ..vision.types import Face
from .executors import Executor, Listed, default_workers, local_executor, read_threads
from .line import ImageLine, Stage, StoreWriter, Written
from .records import ImageResult, IngestSummary, Job, OnClip, release


class _Known:
    """What the store already holds: loaded whole for a big listing, asked for the listed
    entries (objects) or per image (images) for a few.

    A batch ingest of a million files asks once; a watcher's run of three new files must
    not read a million ids each time.
    """

    BULK = 1000

    def __init__(self, store: Store, listed: Sequence[Listed], bulk: bool) -> None:
        self.store = store
        self.bulk = bulk
        self.images = store.known_ok() if self.bulk else set()
        self.objects = store.known_objects() if self.bulk else store.objects_stored(
            [e.uri for _, e in listed if e.version is not None])

    def has_image(self, image_id: str) -> bool:
        return image_id in self.images if self.bulk else self.store.image_status(image_id) == "ok"

    def has_object(self, uri: str, version: str) -> bool:
        return (readable(uri), version) in self.objects


OnImage = Callable[[str, str, int, str | None], None]
"""``on_image(uri, outcome, faces, error)`` with outcome ``new``, ``skipped``, ``failed`` or ``updated``
(a live stream's segment written again once its track ended)."""


class Ingestor:
    """Owns the store, the executor and the image line for one or many runs.

    ``ingest`` makes one and calls :meth:`run` once; ``watch`` keeps one open and calls
    :meth:`run` for every group of files that arrives, so models, workers and the gallery
    are loaded once. :meth:`stop` (from a signal handler) makes the current run take no new
    image: the images in hand are finished and written, then ``run`` returns.

    The store is opened here unless the caller hands one in (then the caller closes it):
    a command opens its database once.
    """

    def __init__(self, settings: Settings, stages: Sequence[Stage] = (), workers: int | None = None,
                 executor: Executor | None = None, store: Store | None = None) -> None:
        self.settings = settings
        self.stages = list(stages)
        self.executor: Executor = executor or local_executor(settings, workers)
        self._stop = threading.Event()
        self._given = store
        self._store: Store | None = None
        self._lent = False
        self._line: ImageLine | None = None
        self._last = IngestSummary()

    @property
    def last_summary(self) -> IngestSummary:
        """The last run's summary; once the ingestor is closed, with the alerts left undelivered."""
        return self._last

    def __enter__(self) -> Self:
        self._store = self._given or open_store(self.settings.db)
        self._line = ImageLine(self.stages, StoreWriter(self._store))
        try:
            self._line.start(self._store)
        except BaseException:
            self._close_store()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._line is not None:
                self._line.close(self._last)
        finally:
            self.executor.close()
            self._close_store()

    def _close_store(self) -> None:
        if self._store is not None and self._given is None:
            self._store.close()
            self._store = None

    def lend(self) -> None:
        """Close an embedded database file this ingestor opened, while it is idle; reopened at next use.

        DuckDB lets one process hold a file. ``watch`` is idle most of the time, and holding
        the file throughout kept ``facelake sql``, ``visits`` and ``report`` out for as long as
        it ran; lent, they open it between arrivals. A server database needs no lending.
        """
        if self._given is None and self._store is not None and self._store.engine == "duckdb":
            self._close_store()
            self._lent = True

    def _reopen(self) -> Store:
        """Open the lent file again, waiting (up to ``watch_reopen_s``) while a reader holds it."""
        deadline = time.monotonic() + self.settings.watch_reopen_s
        delay = 0.05
        while True:
            try:
                store = open_store(self.settings.db)
                break
            except StoreError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self._store, self._lent = store, False
        if self._line is not None:
            self._line.writer = StoreWriter(store)
        return store

    @property
    def store(self) -> Store:
        if self._store is None:
            if self._lent:
                return self._reopen()
            raise RuntimeError("use the Ingestor as a context manager")
        return self._store

    @property
    def line(self) -> ImageLine:
        if self._line is None:
            raise RuntimeError("use the Ingestor as a context manager")
        return self._line

    def stop(self) -> None:
        """Take no new image; the run in progress finishes the images in hand and returns. A clip
        in hand is given up (recorded as an error, read again next time): it can be an hour long."""
        self._stop.set()
        self.executor.cancel()

    def run(self, sources: Sequence[Source], on_listed: Callable[[int], None] | None = None,
            on_image: OnImage | None = None, entries: Sequence[Listed] | None = None,
            on_clip: OnClip | None = None) -> IngestSummary:
        """Ingest every entry of ``sources`` (or the given ``entries``); returns this run's summary.

        The listing is streamed: a short one (under ``_Known.BULK`` entries) is read whole first,
        so ``on_listed`` gets its length at once and the batches can be sized to it; a long one
        is ingested as it is listed, and ``on_listed`` gets the count when the listing ends.
        ``on_clip`` hears, about once a second, how far the workers are into a long clip.
        """
        start = time.perf_counter()
        self.executor.on_clip = on_clip
        summary = IngestSummary()
        store, line = self.store, self.line
        stream: Iterator[Listed] = iter(entries) if entries is not None else (
            (src, e) for src in sources for e in src.entries())
        head = list(itertools.islice(stream, _Known.BULK))
        short = len(head) < _Known.BULK
        if short and on_listed:
            on_listed(len(head))
        known = _Known(store, head, bulk=not short)
        queued: set[str] = set()

        def listing() -> Iterator[Listed]:
            yield from head
            if short:
                return
            count = len(head)
            for item in stream:
                count += 1
                yield item
            if on_listed:
                on_listed(count)

        def skip(uri: str) -> None:
            summary.skipped += 1
            if on_image:
                on_image(readable(uri), "skipped", 0, None)

        def fresh() -> Iterator[Listed]:
            for src, entry in listing():
                if self._stop.is_set():
                    return
                if entry.version is not None and known.has_object(entry.uri, entry.version):
                    skip(entry.uri)
                    continue
                yield src, entry

        spooled: list[Job] = []

        def keep(job: Job) -> bool:
            stored = known.has_image(job.image_id)
            if stored or job.image_id in queued:
                if stored:
                    store.remember_object(job.uri, job.version, job.image_id)
                release(job)
                skip(job.uri)
                return False
            queued.add(job.image_id)
            if job.spooled:
                spooled.append(job)
            return True

        threads = read_threads([*sources, *(src for src, _ in head)], self.settings)
        try:
            for batch in self.executor.results(fresh(), keep, total=len(head) if short else None,
                                               read_threads=threads):
                for written in line.put(batch):
                    _tally(summary, written, on_image)
                for result in batch:
                    release(result.job)
        finally:
            # A clip spooled but never written back (a crash, Ctrl-C, a cancelled batch) is deleted too.
            for job in spooled:
                release(job)
        line.after_run(store, summary)
        summary.seconds = time.perf_counter() - start
        self._last = summary
        return summary


    def put(self, results: Sequence[ImageResult], on_image: OnImage | None = None) -> IngestSummary:
        """Write results made elsewhere (a live stream's segments) through the same line, as one run."""
        start = time.perf_counter()
        summary = IngestSummary()
        store = self.store
        for written in self.line.put(results):
            _tally(summary, written, on_image)
        self.line.after_run(store, summary)
        summary.seconds = time.perf_counter() - start
        self._last = summary
        return summary


def _tally(summary: IngestSummary, written: Written, on_image: OnImage | None) -> None:
    image, sightings = written.image, written.sightings
    if written.ids is None:  # another writer stored the same image meanwhile (a server database)
        summary.skipped += 1
        if on_image:
            on_image(image.uri, "skipped", 0, None)
        return
    if image.revision > 0:  # a stream segment updated once its track ended: counted when first written
        if on_image:
            on_image(image.uri, "updated", len(sightings), None)
        return
    if image.status == "ok":
        summary.new += 1
        summary.faces += len(sightings)
        summary.named += sum(s.person_id is not None for s in sightings)
    else:
        summary.failed += 1
        summary.errors.append((image.uri, image.error or ""))
    if on_image:
        on_image(image.uri, "new" if image.status == "ok" else "failed", len(sightings), image.error)


def ingest(
    sources: Sequence[str | Path | Source],
    settings: Settings,
    stages: Sequence[Stage] = (),
    camera: str | None = None,
    workers: int | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_image: OnImage | None = None,
    executor: Executor | None = None,
    store: Store | None = None,
    on_clip: OnClip | None = None,
) -> IngestSummary:
    """Find every face in ``sources`` and store them as sightings in ``settings.db`` (or ``store``).

    Sources are folders, files, ``gs://`` or ``s3://`` URIs (or :class:`Source` objects).
    Images already stored are skipped by content hash (and bucket objects by version, before
    download), so ingest can run every hour on the same source; a local source that does not
    exist is a ConfigError, raised before the database is opened. ``on_listed(total)`` is
    called once the length of the listing is known (see :meth:`Ingestor.run`) and ``on_image``
    after each image; the CLI drives
    its progress bar with them. ``stages`` name, alert and purge (see :func:`facelake.ingest`);
    ``executor`` runs the models (default: local worker processes, see ``facelake.scale`` for Ray).
    """
    require_present(sources)
    opened = [s if isinstance(s, Source) else open_source(s, camera) for s in sources]
    with Ingestor(settings, stages, workers, executor, store) as ingestor:
        return ingestor.run(opened, on_listed, on_image, on_clip=on_clip)


@dataclass(frozen=True)
class EmbedOutcome:
    """``facelake embed``'s result for one input."""

    uri: str
    faces: list[Face]
    error: str | None


EMBED_POOL_FROM = 8
"""``embed`` runs worker processes from this many images: below it, starting them (imports
and models in each, ~1 s) costs more than the second core gives back."""


def embed_paths(paths: Sequence[str | Path], settings: Settings, workers: int | None = 1) -> Iterator[EmbedOutcome]:
    """Faces and embeddings of each input image, in input order, without touching a database.

    ``workers=None`` picks: one per core for ``EMBED_POOL_FROM`` images or more, else this process.
    """
    listed: list[Listed] = [(src, e) for src in map(open_source, paths) for e in src.entries()]
    if workers is None:
        workers = default_workers(settings) if len(listed) >= EMBED_POOL_FROM else 1
    executor = local_executor(settings, workers)
    try:
        for batch in executor.results(listed, lambda job: True, total=len(listed)):
            for result in batch:
                yield EmbedOutcome(result.job.uri, result.faces, result.error)
    finally:
        executor.close()
