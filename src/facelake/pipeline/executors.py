"""Where the models run: in this process, in a pool of local worker processes, or (``scale/``) on Ray.

Every executor takes the listed entries and a ``keep(job)`` filter and yields worker
results a batch at a time; :class:`~facelake.pipeline.ingest.Ingestor` does not know which
one it drives. The local executors read and hash each entry in this process (threads
overlap the downloads of bucket objects), so an image already stored is skipped by
``keep`` before it is decoded or shipped to a worker; a remote executor reads on its
workers and applies ``keep`` to what comes back.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from queue import Empty, Full
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..sources import Entry, Source
from ..sources.base import is_video_name
from ..sources.buckets import stop_reads
from ..vision.analyzer import AnalyzerOptions
from ..vision.models import require_installed
from .records import ImageResult, Job, OnClip, VideoOptions, make_job
from .worker import Worker, analyzer_options

Listed = tuple[Source, Entry]
Keep = Callable[[Job], bool]
"""``keep(job)``: whether a read job still needs analysing (False: it is stored already, skip it)."""


class Executor(Protocol):
    """Runs the models over listed entries; see the module docstring."""

    workers: int
    on_clip: OnClip | None
    """Hears how far the workers are into long clips (set by the ingestor; None: nobody listens)."""

    def results(self, entries: Iterable[Listed], keep: Keep, total: int | None = None,
                read_threads: int = 1) -> Iterator[list[ImageResult]]:
        """Results of the kept entries, a batch at a time.

        ``total`` is how many entries there are, when known; ``read_threads`` how many reads
        may overlap (bucket sources gain from several, a folder does not).
        """
        ...

    def close(self) -> None:
        """Stop any worker processes; the executor may not be used afterwards."""
        ...

    def cancel(self) -> None:
        """Ask the workers to give up the clips in hand (SIGTERM): they are recorded as errors and retried."""
        ...


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


def job_batches(jobs: Iterable[Job], size: int) -> Iterator[list[Job]]:
    """Jobs in batches of ``size``; a clip is a batch of its own: it can be minutes of work, and
    a batch is written as one, so eight clips in one batch would show no progress and lose all
    eight to a crash in the last."""
    chunk: list[Job] = []
    for job in jobs:
        if is_video_name(job.uri):
            if chunk:
                yield chunk
                chunk = []
            yield [job]
            continue
        chunk.append(job)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prefetched(items: Iterable[T], fn: Callable[[T], R], threads: int, window: int) -> Iterator[R]:
    """``map(fn, items)`` in order, with up to ``window`` calls running on ``threads`` threads.

    Reading is I/O: for bucket objects each read is a network round trip, so a few in
    flight keep the workers fed; the window bounds how many images sit in memory.
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="facelake-read")
    done = False
    try:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        done = True
    except KeyboardInterrupt:
        stop_reads()  # reads in flight give up at their next retry: Ctrl-C ends a run on a dead bucket in seconds
        raise
    finally:
        # Stopped early (Ctrl-C, an error, a consumer that stops): the reads not started are
        # dropped instead of being waited for, each for its whole retry budget.
        pool.shutdown(wait=done, cancel_futures=not done)


def read_threads(sources: Iterable[Source], settings: Settings) -> int:
    """How many reads may overlap: as many as the most parallel source wants, within the setting."""
    return min(max((src.read_threads for src in sources), default=1), settings.bucket_read_threads)


def read_jobs(entries: Iterable[Listed], keep: Keep, settings: Settings, threads: int = 1) -> Iterator[Job]:
    """Read and hash each entry here, ``threads`` at a time, keeping what ``keep`` wants."""
    max_bytes, video_bytes = int(settings.max_file_mb * 1e6), int(settings.video_max_file_mb * 1e6)
    for job in prefetched(entries, lambda se: make_job(se[1], se[0], max_bytes, video_bytes), threads, 32):
        if keep(job):
            yield job


class InProcessExecutor:
    """The models in this process: for one worker, and for short runs where starting processes costs more."""

    workers = 1

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.on_clip: OnClip | None = None
        self._worker: Worker | None = None
        self._cancel = threading.Event()

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = Worker.from_settings(self.settings).load()
            self._worker.cancel = self._cancel
            self._worker.progress = self._progress
        return self._worker

    def _progress(self, uri: str, seconds: float, duration: float | None) -> None:
        if self.on_clip is not None:
            self.on_clip(uri, seconds, duration)

    def cancel(self) -> None:
        self._cancel.set()

    def results(self, entries: Iterable[Listed], keep: Keep, total: int | None = None,
                read_threads: int = 1) -> Iterator[list[ImageResult]]:
        for batch in job_batches(read_jobs(entries, keep, self.settings, read_threads), self.settings.batch_images):
            yield self.worker.process(batch)

    def close(self) -> None:
        self._worker = None


@functools.cache
def _process_worker(options: AnalyzerOptions, max_pixels: int, video: VideoOptions) -> Worker:
    """The one :class:`Worker` of a pool process, made by the pool's initializer and kept for its tasks."""
    return Worker(options, max_pixels, video).load()


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the process that started it dies (``kill -9`` of an
    ingest left its workers waiting on their queue forever, models loaded). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _report_to(queue: Any) -> OnClip:
    """A pool worker's clip progress, sent to the main process; dropped when nobody drains it."""

    def report(uri: str, seconds: float, duration: float | None) -> None:
        with contextlib.suppress(Full):
            queue.put_nowait((uri, seconds, duration))

    return report


def _start_pool_process(options: AnalyzerOptions, max_pixels: int, video: VideoOptions, cancel: Any,
                        progress: Any) -> None:
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the main process decides when to stop,
    # so workers finish the images in hand instead of dying with them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker per core already: OpenCV's own thread pool would only make them share.
    import cv2

    cv2.setNumThreads(1)
    worker = _process_worker(options, max_pixels, video)
    worker.cancel, worker.progress = cancel, _report_to(progress)


def _run_batch(options: AnalyzerOptions, max_pixels: int, video: VideoOptions, jobs: list[Job]) -> list[ImageResult]:
    return _process_worker(options, max_pixels, video).process(jobs)


class PoolExecutor:
    """Local worker processes (spawned), each loading the models once.

    At most ``2 × workers`` batches are in flight, which bounds memory on huge folders while
    keeping every worker busy. ``total`` shrinks the batches of a short run so each worker
    gets several: 24 photos in batches of 8 gave one of two workers twice the other's work.
    """

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings, self.workers = settings, workers
        self.options = analyzer_options(settings)
        self.video = VideoOptions.from_settings(settings)
        self._context = multiprocessing.get_context("spawn")
        self._cancel = self._context.Event()
        self._progress = self._context.Queue(64)
        self.on_clip: OnClip | None = None
        self._pool: ProcessPoolExecutor | None = None

    def _wait(self, future: Future[list[ImageResult]]) -> list[ImageResult]:
        """The batch's results; meanwhile the workers' clip progress goes to ``on_clip``."""
        while True:
            try:
                return future.result(timeout=PROGRESS_POLL_S)
            except TimeoutError:
                pass
            finally:
                self._drain()

    def _drain(self) -> None:
        while True:
            try:
                uri, seconds, duration = self._progress.get_nowait()
            except Empty:
                return
            if self.on_clip is not None:
                self.on_clip(uri, seconds, duration)

    def results(self, entries: Iterable[Listed], keep: Keep, total: int | None = None,
                read_threads: int = 1) -> Iterator[list[ImageResult]]:
        size = batch_size(self.settings.batch_images, self.workers, total)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=self._context,
                                             initializer=_start_pool_process,
                                             initargs=(self.options, self.settings.max_pixels, self.video,
                                                       self._cancel, self._progress))
        pending: deque[Future[list[ImageResult]]] = deque()
        for batch in job_batches(read_jobs(entries, keep, self.settings, read_threads), size):
            pending.append(self._pool.submit(_run_batch, self.options, self.settings.max_pixels, self.video, batch))
            if len(pending) >= 2 * self.workers:
                yield self._wait(pending.popleft())
        while pending:
            yield self._wait(pending.popleft())

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


PROGRESS_POLL_S = 0.5
"""How often the main process looks at the workers' clip progress while it waits for a batch."""


def local_executor(settings: Settings, workers: int | None = None) -> InProcessExecutor | PoolExecutor:
    """One worker process per core (or ``workers``); with one, the models run in this process.

    A detector whose extra is missing is refused here, before any worker starts.
    """
    require_installed(settings.detector)
    n = workers or default_workers(settings)
    return InProcessExecutor(settings) if n <= 1 else PoolExecutor(settings, n)
