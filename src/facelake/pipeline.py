"""Image → faces → sightings: batching, worker processes, idempotency and error capture.

The main process lists the sources, hashes each file (the hash *is* the image id, so a
file already stored is skipped before any decoding) and owns the only database
connection. Worker processes decode and run the models; each loads them once. Every image
is written in its own transaction as its result arrives, so a crash loses at most the
images in flight, never half an image.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .config import Settings
from .errors import FacelakeError, ImageTooLarge, ImageUnreadable
from .sources.decode import DecodedImage, ImageMeta, decode_image
from .sources.folder import Entry, list_sources
from .store.duck import ImageRecord, SightingRecord, Store
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


@dataclass(frozen=True)
class ImageResult:
    """What a worker made of one image."""

    job: Job
    meta: ImageMeta | None
    faces: list[Face]
    error: str | None


Namer = Callable[[list[Face]], list[tuple[int | None, float | None]]]
"""Names faces: ``(person_id, match_score)`` per face, ``(None, None)`` for unknown ones."""


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
        embed_backend=settings.embed_backend,
        embed_flip=settings.embed_flip,
        embed_lowres_px=settings.embed_lowres_px,
        thumb_px=settings.thumb_px,
        thumb_quality=settings.thumb_quality,
    )


def image_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_job(entry: Entry, max_bytes: int) -> Job:
    """Read and hash one listed entry; unreadable places become jobs that carry their error.

    A place whose bytes cannot be read gets an id derived from its path, so re-running on
    the same broken input updates one error row instead of adding another.
    """
    uri = str(entry.path)
    if entry.error is None:
        try:
            size = entry.path.stat().st_size
            if size > max_bytes:
                raise ImageTooLarge(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
            if not entry.path.is_file():
                raise ImageUnreadable("not a regular file")
            data = entry.path.read_bytes()
            return Job(image_id_of(data), uri, entry.camera, data, entry.path.stat().st_mtime, size=len(data))
        except OSError as exc:
            error = f"cannot read file: {exc.strerror or exc}"
        except ImageUnreadable as exc:
            error = str(exc)
    else:
        error = entry.error
    return Job(image_id_of(b"unreadable:" + uri.encode()), uri, entry.camera, None, None, error)


# --- worker side -------------------------------------------------------------------------

_ANALYZER: FaceAnalyzer | None = None
_MAX_PIXELS = 0


def _init_worker(options: AnalyzerOptions, max_pixels: int) -> None:
    global _ANALYZER, _MAX_PIXELS
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
    return Job(job.image_id, job.uri, job.camera, None, job.mtime, job.error, job.size)


# --- main side ---------------------------------------------------------------------------


def records(
    job: Job, meta: ImageMeta | None, faces: list[Face], names: Namer | None, error: str | None = None
) -> tuple[ImageRecord, list[SightingRecord]]:
    """The rows that store one analysed image (and its named faces)."""
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
    named = names(faces) if names is not None else [(None, None)] * len(faces)
    sightings = [
        SightingRecord(
            face_index=i, box=f.detection.box, landmarks=f.detection.landmarks,
            det_score=f.detection.score, quality=f.quality, embedding=f.embedding,
            model=f.model, thumb=f.thumb, person_id=person, match_score=score,
        )
        for i, (f, (person, score)) in enumerate(zip(faces, named))
    ]
    return image, sightings


def default_workers(settings: Settings) -> int:
    return settings.workers or max(1, os.cpu_count() or 1)


def _chunks(jobs: Iterable[Job], size: int) -> Iterator[list[Job]]:
    chunk: list[Job] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(jobs: Iterable[Job], settings: Settings, workers: int) -> Iterator[ImageResult]:
    """Results in job order; with one worker the models run in this process.

    At most ``2 × workers`` batches are in flight, which bounds memory on huge folders while
    keeping every worker busy.
    """
    options = analyzer_options(settings)
    batches = _chunks(jobs, settings.batch_images)
    if workers <= 1:
        _init_worker(options, settings.max_pixels)
        for batch in batches:
            yield from _process_batch(batch)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(options, settings.max_pixels)) as pool:
        pending: deque[Future[list[ImageResult]]] = deque()
        for batch in batches:
            pending.append(pool.submit(_process_batch, batch))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def ingest(
    sources: list[Path],
    settings: Settings,
    camera: str | None = None,
    workers: int | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_image: Callable[[str, str, int, str | None], None] | None = None,
    namer: Namer | None = None,
    on_stored: Callable[[ImageRecord, list[SightingRecord], list[int]], None] | None = None,
) -> IngestSummary:
    """Find every face in ``sources`` and store them as sightings in ``settings.db``.

    Images already stored are skipped by content hash, so ingest can run every hour on the
    same folder. ``on_listed(total)`` is called once the sources are listed and
    ``on_image(uri, outcome, faces, error)`` after each image (outcome ``new``, ``skipped``
    or ``failed``); the CLI drives its progress bar with them. ``namer`` names faces as
    they are stored (the identities module passes one built from the enrolled people), and
    ``on_stored(image, sightings, ids)`` sees every committed image (the alerts hook).
    """
    start = time.perf_counter()
    summary = IngestSummary()
    entries = list(list_sources(sources, camera))
    if on_listed:
        on_listed(len(entries))
    max_bytes = int(settings.max_file_mb * 1e6)
    with Store(settings.db) as store:
        done = store.known_ok()
        queued: set[str] = set()

        def jobs() -> Iterator[Job]:
            for entry in entries:
                job = make_job(entry, max_bytes)
                if job.image_id in done or job.image_id in queued:
                    summary.skipped += 1
                    if on_image:
                        on_image(job.uri, "skipped", 0, None)
                    continue
                queued.add(job.image_id)
                yield job

        for result in _results(jobs(), settings, workers or default_workers(settings)):
            image, sightings = records(result.job, result.meta, result.faces, namer, result.error)
            ids = store.write_image(image, sightings)
            if on_stored is not None and ids:
                on_stored(image, sightings, ids)
            if image.status == "ok":
                summary.new += 1
                summary.faces += len(sightings)
                summary.named += sum(s.person_id is not None for s in sightings)
            else:
                summary.failed += 1
                summary.errors.append((image.uri, image.error or ""))
            if on_image:
                on_image(image.uri, "new" if image.status == "ok" else "failed", len(sightings), image.error)
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass(frozen=True)
class EmbedOutcome:
    """``facelake embed``'s result for one input."""

    uri: str
    faces: list[Face]
    error: str | None


def embed_paths(paths: list[Path], settings: Settings, workers: int = 1) -> Iterator[EmbedOutcome]:
    """Faces and embeddings of each input image, in input order, without touching a database."""
    entries = list(list_sources(paths))
    max_bytes = int(settings.max_file_mb * 1e6)
    jobs = (make_job(e, max_bytes) for e in entries)
    for result in _results(jobs, settings, workers):
        yield EmbedOutcome(result.job.uri, result.faces, result.error)
