"""Image → faces → sightings: one ingest, whatever the source, with its stages plugged in.

The main process lists the sources and reads each entry's bytes (threads overlap the
downloads of bucket objects); the bytes' hash *is* the image id, so an image already stored
is skipped before any decoding, and an object version already stored is skipped before it
is even downloaded. Worker processes decode and run the models; each loads them once. The
main process owns the only database connection and writes every image in its own
transaction as its result arrives, so a crash loses at most the images in flight, never
half an image.

What happens around each write (naming, alerts, purging expired faces) is not this
module's business: those are :class:`Stage` objects the caller plugs in, so ``ingest``,
``watch`` and the Cloud Function run the same line of stages.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from .config import Settings
from .errors import FacelakeError
from .sources import Entry, Source, open_source
from .sources.decode import DecodedImage, ImageMeta, decode_image
from .store import ImageRecord, SightingRecord, Store, open_store
from .vision.analyzer import AnalyzerOptions, FaceAnalyzer
from .vision.types import Face


@dataclass(frozen=True)
class Job:
    """One image to process, read and hashed by the main process."""

    image_id: str
    uri: str
    camera: str
    data: bytes | None
    mtime: float | None
    error: str | None = None
    size: int | None = None
    version: str | None = None


@dataclass(frozen=True)
class ImageResult:
    """What a worker made of one image."""

    job: Job
    meta: ImageMeta | None
    faces: list[Face]
    error: str | None


@dataclass
class IngestSummary:
    new: int = 0
    skipped: int = 0
    failed: int = 0
    faces: int = 0
    named: int = 0
    purged: int = 0
    alerts: int = 0
    alerts_undelivered: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        done = self.new + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0


class Stage:
    """A step plugged into ingest around each image's write; every hook does nothing by default.

    ``annotate`` may change the sightings before they are written (naming); ``stored`` sees
    each committed image (alerts); ``after_run`` runs once a batch of entries is done, with
    the store (purging expired faces); ``close`` runs when the ingestor shuts down.
    """

    def start(self, store: Store) -> None:
        """Called once, before the first image, with the open store."""

    def annotate(self, image: ImageRecord, sightings: list[SightingRecord]) -> list[SightingRecord]:
        return sightings

    def stored(self, image: ImageRecord, sightings: list[SightingRecord], ids: list[int]) -> None:
        """Called after the image's transaction committed (``ids`` are the new sighting ids)."""

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        """Called after each :meth:`Ingestor.run`, with that run's summary."""

    def close(self, summary: IngestSummary) -> None:
        """Called once when the ingestor closes, with the last run's summary."""


def analyzer_options(settings: Settings) -> AnalyzerOptions:
    return AnalyzerOptions(
        detector=settings.detector,
        det_threshold=settings.det_threshold,
        nms_iou=settings.nms_iou,
        detect_min_side=settings.detect_min_side,
        detect_max_side=settings.detect_max_side,
        detect_refine_below_px=settings.detect_refine_below_px,
        detect_candidate_threshold=settings.detect_candidate_threshold,
        max_upscale=settings.max_upscale,
        min_face_px=settings.min_face_px,
        embedder=settings.embedder,
        embed_backend=settings.embed_backend,
        embed_flip=settings.embed_flip,
        embed_lowres_px=settings.embed_lowres_px,
        thumb_px=settings.thumb_px,
        thumb_quality=settings.thumb_quality,
        keep_context=settings.keep_face_context,
    )


def image_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_job(entry: Entry, source: Source, max_bytes: int) -> Job:
    """Read and hash one listed entry; unreadable places become jobs that carry their error.

    A place whose bytes cannot be read gets an id derived from its uri, so re-running on
    the same broken input updates one error row instead of adding another.
    """
    error = entry.error
    if error is None:
        try:
            data = source.read(entry, max_bytes)
            return Job(image_id_of(data), entry.uri, entry.camera, data, entry.mtime, size=len(data),
                       version=entry.version)
        except FacelakeError as exc:
            error = str(exc)
    return Job(image_id_of(b"unreadable:" + entry.uri.encode()), entry.uri, entry.camera, None, None, error,
               size=entry.size)


# --- worker side -------------------------------------------------------------------------

_ANALYZER: FaceAnalyzer | None = None
_MAX_PIXELS = 0


def _init_worker(options: AnalyzerOptions, max_pixels: int, in_child: bool = False) -> None:
    global _ANALYZER, _MAX_PIXELS
    if in_child:
        # Ctrl-C reaches the whole process group: the main process decides when to stop,
        # so workers finish the images in hand instead of dying with them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # One worker per core already: OpenCV's own thread pool would only make them share.
        import cv2

        cv2.setNumThreads(1)
    _ANALYZER = FaceAnalyzer(options)
    _ANALYZER.load()
    _MAX_PIXELS = max_pixels


def _process_batch(jobs: list[Job]) -> list[ImageResult]:
    """Decode each job's image (capturing errors per image) and analyse the good ones together."""
    assert _ANALYZER is not None, "worker not initialised"
    results: list[ImageResult | None] = [None] * len(jobs)
    decoded: list[tuple[int, DecodedImage]] = []
    for i, job in enumerate(jobs):
        if job.data is None:
            results[i] = ImageResult(job, None, [], job.error or "unreadable")
            continue
        try:
            decoded.append((i, decode_image(job.data, max_pixels=_MAX_PIXELS)))
        except FacelakeError as exc:
            results[i] = ImageResult(_strip(job), None, [], str(exc))
    faces = _ANALYZER.analyze_many([d.pixels for _, d in decoded]) if decoded else []
    for (i, image), found in zip(decoded, faces):
        results[i] = ImageResult(_strip(jobs[i]), image.meta, found, None)
    return [r for r in results if r is not None]


def _strip(job: Job) -> Job:
    """The job without its bytes, so results don't carry the image back across processes."""
    return Job(job.image_id, job.uri, job.camera, None, job.mtime, job.error, job.size, job.version)


# --- main side ---------------------------------------------------------------------------


def records(
    job: Job, meta: ImageMeta | None, faces: list[Face], error: str | None = None
) -> tuple[ImageRecord, list[SightingRecord]]:
    """The rows that store one analysed image (faces not yet named)."""
    if error is not None or meta is None:
        return ImageRecord(job.image_id, job.uri, job.camera, "error", error=error, bytes=job.size), []
    taken, source = meta.taken_at, "exif"
    if taken is None and job.mtime is not None:
        taken, source = datetime.fromtimestamp(job.mtime), "mtime"
    image = ImageRecord(
        image_id=job.image_id, uri=job.uri, camera=job.camera, status="ok",
        taken_at=taken, taken_at_source=source if taken else None,
        gps_lat=meta.gps_lat, gps_lon=meta.gps_lon, camera_make=meta.make, camera_model=meta.model,
        format=meta.format, width=meta.width, height=meta.height, bytes=job.size,
    )
    sightings = [
        SightingRecord(
            face_index=i, box=f.detection.box, landmarks=f.detection.landmarks,
            det_score=f.detection.score, quality=f.quality, embedding=f.embedding,
            model=f.model, thumb=f.thumb,
            context=None if f.context is None else (f.context.jpeg, f.context.box, f.context.landmarks),
        )
        for i, f in enumerate(faces)
    ]
    return image, sightings


def default_workers(settings: Settings) -> int:
    return settings.workers or max(1, os.cpu_count() or 1)


T = TypeVar("T")
R = TypeVar("R")


BATCHES_PER_WORKER = 4
"""A known-length run is cut into at least this many batches per worker: images differ in
size and faces, and the last batches of a run decide when it ends."""


def batch_size(configured: int, workers: int, total: int | None) -> int:
    """Images per worker task: ``configured``, or fewer when a short run would leave workers idle."""
    if total is None or workers <= 1:
        return configured
    return max(1, min(configured, math.ceil(total / (BATCHES_PER_WORKER * workers))))


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prefetched(items: Iterable[T], fn: Callable[[T], R], threads: int, window: int) -> Iterator[R]:
    """``map(fn, items)`` in order, with up to ``window`` calls running on ``threads`` threads.

    Reading is I/O: for bucket objects each read is a network round trip, so a few in
    flight keep the workers fed; the window bounds how many images sit in memory.
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="facelake-read") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Known:
    """What the store already holds: loaded whole for a big listing, asked for the listed
    entries (objects) or per image (images) for a few.

    A batch ingest of a million files asks once; a watcher's run of three new files must
    not read a million ids each time.
    """

    BULK = 1000

    def __init__(self, store: Store, listed: Sequence[tuple[Source, Entry]]) -> None:
        self.store = store
        self.bulk = len(listed) >= self.BULK
        self.images = store.known_ok() if self.bulk else set()
        self.objects = store.known_objects() if self.bulk else store.objects_stored(
            [e.uri for _, e in listed if e.version is not None])

    def has_image(self, image_id: str) -> bool:
        return image_id in self.images if self.bulk else self.store.image_status(image_id) == "ok"

    def has_object(self, uri: str, version: str) -> bool:
        return (uri, version) in self.objects


OnImage = Callable[[str, str, int, str | None], None]
"""``on_image(uri, outcome, faces, error)`` with outcome ``new``, ``skipped`` or ``failed``."""


class Ingestor:
    """Owns the database connection, the worker processes and the stages for one or many runs.

    ``ingest`` makes one and calls :meth:`run` once; ``watch`` keeps one open and calls
    :meth:`run` for every group of files that arrives, so models, workers and the gallery
    are loaded once. :meth:`stop` (from a signal handler) makes the current run take no new
    image: the images in hand are finished and written, then ``run`` returns.
    """

    def __init__(self, settings: Settings, stages: Sequence[Stage] = (), workers: int | None = None,
                 engine: str = "local", ray_address: str | None = None) -> None:
        if engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
        self.settings = settings
        self.engine, self.ray_address = engine, ray_address
        self.stages = list(stages)
        self.workers = workers or default_workers(settings)
        self.max_bytes = int(settings.max_file_mb * 1e6)
        self._stop = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._store: Store | None = None
        self._last = IngestSummary()

    def __enter__(self) -> Self:
        self._store = open_store(self.settings.db)
        try:
            for stage in self.stages:
                stage.start(self._store)
        except BaseException:
            self._store.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            for stage in self.stages:
                stage.close(self._last)
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            if self._store is not None:
                self._store.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("use the Ingestor as a context manager")
        return self._store

    def stop(self) -> None:
        """Take no new image; the run in progress finishes the ones in hand and returns."""
        self._stop.set()

    def _results(self, jobs: Iterable[Job], total: int | None = None) -> Iterator[ImageResult]:
        """Results in job order (see :meth:`_batches`)."""
        for batch in self._batches(jobs, total):
            yield from batch

    def _batches(self, jobs: Iterable[Job], total: int | None = None) -> Iterator[list[ImageResult]]:
        """Results in job order, a worker's batch at a time; with one worker the models run in this process.

        At most ``2 × workers`` batches are in flight, which bounds memory on huge folders
        while keeping every worker busy. ``total`` (the number of jobs, when known) shrinks
        the batches of a short run so each worker gets several: 24 photos in batches of 8
        gave one of two workers twice the other's work.
        """
        batches = _chunks(jobs, batch_size(self.settings.batch_images, self.workers, total))
        options = analyzer_options(self.settings)
        if self.workers <= 1:
            if _ANALYZER is None or _ANALYZER.settings != options:
                _init_worker(options, self.settings.max_pixels)
            for batch in batches:
                yield _process_batch(batch)
            return
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(options, self.settings.max_pixels, True))
        pending: deque[Future[list[ImageResult]]] = deque()
        for batch in batches:
            pending.append(self._pool.submit(_process_batch, batch))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    @staticmethod
    def _fresh_results(results: Iterator[ImageResult], known: _Known, queued: set[str],
                       skip: Callable[[str], None]) -> Iterator[list[ImageResult]]:
        """Results from a remote engine, less the images already stored (they were hashed remotely)."""
        for result in results:
            if known.has_image(result.job.image_id) or result.job.image_id in queued:
                skip(result.job.uri)
                continue
            queued.add(result.job.image_id)
            yield [result]

    def run(self, sources: Sequence[Source], on_listed: Callable[[int], None] | None = None,
            on_image: OnImage | None = None, entries: Sequence[tuple[Source, Entry]] | None = None,
            ) -> IngestSummary:
        """Ingest every entry of ``sources`` (or the given ``entries``); returns this run's summary."""
        start = time.perf_counter()
        summary = IngestSummary()
        store = self.store
        listed = list(entries) if entries is not None else [(src, e) for src in sources for e in src.entries()]
        if on_listed:
            on_listed(len(listed))
        known = _Known(store, listed)
        queued: set[str] = set()

        def skip(uri: str) -> None:
            summary.skipped += 1
            if on_image:
                on_image(uri, "skipped", 0, None)

        def fresh() -> Iterator[tuple[Source, Entry]]:
            for src, entry in listed:
                if self._stop.is_set():
                    return
                if entry.version is not None and known.has_object(entry.uri, entry.version):
                    skip(entry.uri)
                    continue
                yield src, entry

        def jobs() -> Iterator[Job]:
            wanted = max((src.read_threads for src, _ in listed), default=1)
            threads = min(wanted, self.settings.bucket_read_threads)
            for job in _prefetched(fresh(), lambda se: make_job(se[1], se[0], self.max_bytes), threads, 32):
                if self._stop.is_set():
                    return
                stored = known.has_image(job.image_id)
                if stored or job.image_id in queued:
                    if stored:
                        store.remember_object(job.uri, job.version, job.image_id)
                    skip(job.uri)
                    continue
                queued.add(job.image_id)
                yield job

        if self.engine == "ray":
            from .scale.raydata import ray_results

            batches: Iterator[list[ImageResult]] = self._fresh_results(
                ray_results(list(fresh()), self.settings, self.ray_address, self.workers), known, queued, skip)
        else:
            batches = self._batches(jobs(), total=len(listed))
        for batch in batches:
            self._write(batch, summary, on_image)
        for stage in self.stages:
            stage.after_run(store, summary)
        summary.seconds = time.perf_counter() - start
        self._last = summary
        return summary

    def _write(self, batch: list[ImageResult], summary: IngestSummary, on_image: OnImage | None) -> None:
        """Name and store a worker's batch (in one transaction where the store gains from it),
        then let the stages see each committed image."""
        store = self.store
        items = []
        for result in batch:
            image, sightings = records(result.job, result.meta, result.faces, result.error)
            for stage in self.stages:
                sightings = stage.annotate(image, sightings)
            items.append((image, sightings, result.job.version))
        if store.groups_writes:
            written = store.write_images(items)
        else:
            written = [store.write_image(image, sightings, version=version) for image, sightings, version in items]
        for (image, sightings, _), ids in zip(items, written):
            if ids is None:  # another writer stored the same image meanwhile (a server database)
                summary.skipped += 1
                if on_image:
                    on_image(image.uri, "skipped", 0, None)
                continue
            if ids:
                for stage in self.stages:
                    stage.stored(image, sightings, ids)
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
    engine: str = "local",
    ray_address: str | None = None,
) -> IngestSummary:
    """Find every face in ``sources`` and store them as sightings in ``settings.db``.

    Sources are folders, files, ``gs://`` or ``s3://`` URIs (or :class:`Source` objects).
    Images already stored are skipped by content hash (and bucket objects by version, before
    download), so ingest can run every hour on the same source. ``on_listed(total)`` is
    called once the sources are listed and ``on_image`` after each image; the CLI drives
    its progress bar with them. ``stages`` name, alert and purge (see :func:`facelake.ingest`).
    """
    opened = [s if isinstance(s, Source) else open_source(s, camera) for s in sources]
    with Ingestor(settings, stages, workers, engine, ray_address) as ingestor:
        return ingestor.run(opened, on_listed, on_image)


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
    max_bytes = int(settings.max_file_mb * 1e6)
    listed = [(src, e) for src in map(open_source, paths) for e in src.entries()]
    if workers is None:
        workers = default_workers(settings) if len(listed) >= EMBED_POOL_FROM else 1
    jobs = (make_job(e, src, max_bytes) for src, e in listed)
    ingestor = Ingestor(settings, workers=workers)
    try:
        for result in ingestor._results(jobs, total=len(listed)):
            yield EmbedOutcome(result.job.uri, result.faces, result.error)
    finally:
        if ingestor._pool is not None:
            ingestor._pool.shutdown(cancel_futures=True)
