"""The values that travel through the pipeline: a job (one read image), a worker's result, a run's summary.

They are plain frozen dataclasses because they cross process boundaries (local workers, Ray
actors) and are the one vocabulary every front end shares: ingest, watch, the Cloud
Function, the API and video all turn their input into :class:`Job` and their output into
store records with :func:`records`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..errors import FacelakeError
from ..sources import Entry, Source
from ..sources.decode import ImageMeta
from ..store.base import ImageRecord, SightingRecord
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

    def without_data(self) -> Job:
        """The job without its bytes, so results don't carry the image back across processes."""
        return replace(self, data=None)


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
