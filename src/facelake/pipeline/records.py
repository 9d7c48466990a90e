"""The values that travel through the pipeline: a job (one read image), a worker's result, a run's summary.

They are plain frozen dataclasses because they cross process boundaries (local workers, Ray
actors) and are the one vocabulary every front end shares: ingest, watch, the Cloud
Function, the API and video all turn their input into :class:`Job` and their output into
store records with :func:`records`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..errors import FacelakeError, ImageTooLarge, ImageUnreadable, SourceUnavailable
from ..sources import Entry, Source
from ..sources.base import is_video_name, raw_name, readable
from ..sources.decode import ImageMeta
from ..store.base import ImageRecord, SightingRecord, TrackRecord, error_id
from ..vision.types import Face


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
    path: str | None = None
    """A local file to decode in place of ``data`` (a video, which is never read whole into memory)."""
    spooled: bool = False
    """``path`` is a temporary copy of a bucket's clip, which :func:`release` deletes once written."""

    def without_data(self) -> Job:
        """The job without its bytes, so results don't carry the image back across processes."""
        return replace(self, data=None)


OnClip = Callable[[str, float, float | None], None]
"""``on_clip(uri, seconds_read, duration_s)``: how far into a long clip a worker is (duration None: unknown)."""


@dataclass(frozen=True)
class VideoOptions:
    """How clips are sampled and tracked (from :class:`Settings`; picklable for worker processes)."""

    fps: float = 5.0
    keyframes_only: bool = False
    motion_threshold: float = 0.002
    motion_refresh_s: float = 1.0
    scene_cut: float = 0.5
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 3840 * 2160
    track_max_age_s: float = 2.0
    track_top_k: int = 3
    track_min_similarity: float | None = None
    track_strong_similarity: float | None = None
    """None: the tracker's own defaults, measured on the fused embedder (vision/track.py)."""
    progress_every_s: float = 1.0
    """How often (wall time) a long clip reports how far it got: enough for a progress bar."""

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoOptions:
        return cls(fps=settings.video_fps, keyframes_only=settings.video_keyframes_only,
                   motion_threshold=settings.video_motion_threshold,
                   motion_refresh_s=settings.video_motion_refresh_s, scene_cut=settings.video_scene_cut,
                   max_duration_s=settings.video_max_duration_s, max_pixels=settings.video_max_pixels,
                   track_max_age_s=settings.track_max_age_s, track_top_k=settings.track_top_k,
                   track_min_similarity=settings.track_min_similarity,
                   track_strong_similarity=settings.track_strong_similarity)


@dataclass(frozen=True)
class TrackResult:
    """One track of a clip: when it was seen, how often, its template, and which faces are its best."""

    start_s: float
    end_s: float
    frames: int
    template: NDArray[np.float32]
    model: str
    faces: tuple[int, ...]
    """Indices into the result's ``faces``, best quality first."""
    offsets_s: tuple[float, ...]
    """Seconds from the start of the clip at which each of those faces was seen."""
    still: bytes | None = None
    """The frame at the best face, as a JPEG (see ``TrackRecord.still``)."""


@dataclass(frozen=True)
class ImageResult:
    """What a worker made of one image, or of one video clip (then its ``faces`` are its tracks' best)."""

    job: Job
    meta: ImageMeta | None
    faces: list[Face]
    error: str | None
    tracks: tuple[TrackResult, ...] = ()
    warning: str | None = None
    """Kept with a stored result: why a clip's decoding stopped early (what came before is kept)."""
    revision: int = 0
    """A live stream's segment written again (see ``ImageRecord.revision``)."""
    duration_s: float | None = None
    """A clip's length: with no capture time in the container, its start is its mtime less this."""


@dataclass
class IngestSummary:
    """What one ingest run did: images new, skipped (stored already) and failed, faces, names, alerts."""

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


def image_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path, max_bytes: int) -> tuple[str, int]:
    """SHA-256 and size of a file read in 1-MiB chunks: a 2-GB clip is never in memory whole."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        if not path.is_file():
            raise ImageUnreadable("not a regular file")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest(), size
    except OSError as exc:
        raise ImageUnreadable(f"cannot read file: {exc.strerror or exc}") from exc


class _HashingFile:
    """A temporary file that hashes what is written to it, so a spooled clip is read once."""

    def __init__(self, suffix: str) -> None:
        self.file = tempfile.NamedTemporaryFile(prefix="facelake-clip-", suffix=suffix, delete=False)  # noqa: SIM115 - closed by _spool
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        self.file.flush()


def _spool(entry: Entry, source: Source, max_bytes: int) -> tuple[str, int, str]:
    """Download a bucket's clip to a temporary file, hashing it on the way: (sha256, size, path).

    A recorder's export can be gigabytes; held in memory it would cost that much in the
    ingest, in each Ray task and in the Cloud Function. On disk it costs one chunk.
    """
    out = _HashingFile(PurePosixPath(entry.uri).suffix.lower())
    try:
        with out.file:
            source.download(entry, out, max_bytes)
            size = out.tell()
        return out.digest.hexdigest(), size, out.file.name
    except BaseException:
        Path(out.file.name).unlink(missing_ok=True)
        raise


def release(job: Job) -> None:
    """Delete a job's spooled clip (nothing for any other job); safe to call more than once."""
    if job.spooled and job.path:
        Path(job.path).unlink(missing_ok=True)


def make_job(entry: Entry, source: Source, max_bytes: int, video_max_bytes: int | None = None,
             raise_unavailable: bool = False) -> Job:
    """Read and hash one listed entry; unreadable places become jobs that carry their error.

    A place whose bytes cannot be read gets an id derived from its uri (:func:`error_id`), so
    re-running on the same broken input updates one error row instead of adding another, and
    the stores replace it by the good row once a later run reads the bytes. A video clip on
    this machine is hashed from disk and decoded there (``Job.path``); one in a bucket is
    spooled to a temporary file within ``video_max_bytes`` and decoded from there
    (``Job.spooled``: whoever writes the result calls :func:`release`).
    ``raise_unavailable``: a read that failed
    for the moment (:class:`SourceUnavailable`) raises instead of becoming an error job, for a
    caller that can have the read repeated (the Cloud Function, by failing the delivery).
    """
    error = entry.error
    if error is None:
        try:
            if is_video_name(entry.uri):
                limit = video_max_bytes or max_bytes
                local = source.local_path(entry)
                if local is not None:
                    image_id, size = _hash_file(local, limit)
                    if size:
                        return Job(image_id, entry.uri, entry.camera, None, entry.mtime, size=size,
                                   version=entry.version, path=str(local))
                else:
                    image_id, size, spooled = _spool(entry, source, limit)
                    if size:
                        return Job(image_id, entry.uri, entry.camera, None, entry.mtime, size=size,
                                   version=entry.version, path=spooled, spooled=True)
                    Path(spooled).unlink(missing_ok=True)
            else:
                data = source.read(entry, max_bytes)
                if data:
                    return Job(image_id_of(data), entry.uri, entry.camera, data, entry.mtime, size=len(data),
                               version=entry.version)
            # Every empty file has the same sha256: as an id, the second would pass for a copy of the
            # first and never get its own error row.
            error = "empty file (0 bytes)"
        except SourceUnavailable as exc:
            if raise_unavailable:
                raise
            error = str(exc)
        except FacelakeError as exc:
            error = str(exc)
    return Job(error_id(entry.uri), entry.uri, entry.camera, None, None, error, size=entry.size)


_TIME_SOURCES = {"video": "container", "stream": "clock"}
"""Where the capture time of a row comes from, by the format's kind (photos: EXIF)."""


def records(
    job: Job, meta: ImageMeta | None, faces: list[Face], error: str | None = None,
    tracks: Sequence[TrackResult] = (), warning: str | None = None, revision: int = 0,
    duration_s: float | None = None,
) -> tuple[ImageRecord, list[SightingRecord]]:
    """The rows that store one analysed image or clip (faces not yet named).

    A clip's capture time is its container's, else the file's mtime less the clip's length;
    each track's start and end are that plus its offsets. ``warning`` (a clip damaged part-way)
    is kept in the row's ``error`` while its status stays ``ok``: what was decoded is stored,
    and a re-run skips it.
    """
    # A file name that is not UTF-8 is stored readable, with its exact bytes beside it; the
    # camera (a folder's name) and an error naming the path are text like it.
    uri, uri_bytes, camera = readable(job.uri), raw_name(job.uri), None if job.camera is None else readable(job.camera)
    if error is not None or meta is None:
        return ImageRecord(job.image_id, uri, camera, "error", error=None if error is None else readable(error),
                           bytes=job.size,
                           uri_bytes=uri_bytes), []
    taken, source = meta.taken_at, _TIME_SOURCES.get(meta.format.split("/")[0], "exif")
    if taken is None and job.mtime is not None:
        # A recorder writes a clip as it films, so the file's mtime is when it *ended*.
        taken, source = datetime.fromtimestamp(job.mtime) - timedelta(seconds=duration_s or 0.0), "mtime"
    track_of: dict[int, tuple[int, float]] = {}
    track_rows = []
    for n, t in enumerate(tracks):
        for face, offset in zip(t.faces, t.offsets_s):
            track_of[face] = (n, offset)
        track_rows.append(TrackRecord(
            t.start_s, t.end_s, t.frames, t.template, t.model,
            None if taken is None else taken + timedelta(seconds=t.start_s),
            None if taken is None else taken + timedelta(seconds=t.end_s), t.still))
    image = ImageRecord(
        image_id=job.image_id, uri=uri, camera=camera, status="ok", error=None if warning is None else readable(warning),
        taken_at=taken, taken_at_source=source if taken else None,
        gps_lat=meta.gps_lat, gps_lon=meta.gps_lon, camera_make=meta.make, camera_model=meta.model,
        format=meta.format, width=meta.width, height=meta.height, bytes=job.size, tracks=tuple(track_rows),
        revision=revision, uri_bytes=uri_bytes,
    )
    sightings = [
        SightingRecord(
            face_index=i, box=f.detection.box, landmarks=f.detection.landmarks,
            det_score=f.detection.score, quality=f.quality, embedding=f.embedding,
            model=f.model, thumb=f.thumb, recognisability=f.recognisability,
            context=None if f.context is None else (f.context.jpeg, f.context.box, f.context.landmarks),
            track=track_of[i][0] if i in track_of else None, offset_s=track_of[i][1] if i in track_of else None,
        )
        for i, f in enumerate(faces)
    ]
    return image, sightings
