"""``facelake capture``: on the camera's own small computer, upload only the frames that matter.

The original design has Raspberry Pi cameras drop images into a bucket, where a Cloud
Function per object does the recognition. Uploading every frame of a live stream would cost
a Pi's uplink and the function's bill for nothing: most frames hold no face. ``capture``
runs the detector, the embedder and the tracker on the Pi itself (one thread: onnxruntime,
PyAV and OpenCV all ship aarch64 wheels) and uploads, per track, its best few frames — the
whole frame at each best face, as a JPEG with its capture time in EXIF, under
``<to>/<camera>/<date>/``, where the bucket → function → warehouse path picks them up as
ordinary camera images.

Only the detector and embedder run here; no gallery and no database are on the Pi, so the
naming happens where the enrolled people live.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ..config import Settings
from ..redact import mask_url
from ..sources.buckets import Bucket, open_bucket
from ..sources.video import StreamReader
from ..vision.track import Track
from .streams import LiveTracker

log = logging.getLogger(__name__)

_DATETIME_ORIGINAL = 0x9003
_EXIF_IFD = 0x8769


@dataclass
class CaptureSummary:
    """What a capture run did: frames analysed, tracks ended, frames uploaded, and the reader's counters."""

    analysed: int = 0
    tracks: int = 0
    uploaded: int = 0
    bytes: int = 0
    seconds: float = 0.0
    reader: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def frame_jpeg(pixels: NDArray[np.uint8], taken: datetime, quality: int = 90) -> bytes:
    """The frame as a JPEG whose EXIF says when it was taken (what ingest reads as the capture time;
    EXIF has no time zone, so ``taken`` is written as the local wall time it is given in)."""
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


class Capture:
    """Follows one stream and uploads each track's best frames to ``to`` (folder, ``gs://`` or ``s3://``)."""

    def __init__(self, url: str, camera: str, to: str, settings: Settings, per_track: int = 1) -> None:
        # The camera names a folder under ``to``: only a plain name, never a path out of it.
        self.camera = re.sub(r"[^A-Za-z0-9._-]", "_", camera).lstrip(".") or "camera"
        self.url, self.settings = url, settings
        self.per_track = max(1, min(per_track, settings.track_top_k))
        self.bucket: Bucket
        self.bucket, self.prefix = open_bucket(to)
        self.reader = StreamReader(url, camera=camera, fps=settings.video_fps, queue_size=settings.stream_queue,
                                   first_frame_timeout_s=settings.stream_timeout_s, give_up=False,
                                   backoff_max_s=settings.stream_backoff_max_s, max_pixels=settings.video_max_pixels)
        self._stop = threading.Event()
        self._frames: dict[int, tuple[datetime, bytes]] = {}
        """JPEGs of the frames holding an open track's best faces, by frame index."""
        self.summary = CaptureSummary()

    def stop(self) -> None:
        """End the run: the open tracks are closed and their frames uploaded (safe from a signal handler)."""
        self._stop.set()

    def run(self, max_seconds: float | None = None) -> CaptureSummary:
        start = time.monotonic()
        live = LiveTracker(self.reader, self.settings, self._stop)
        if max_seconds is not None:
            threading.Timer(max_seconds, self._stop.set).start()
        for step in live.steps():
            self._upload(step.ended)  # before _keep forgets the frames that no open track wants
            if step.frame is not None and step.faces:
                self._keep(step.frame.index, step.frame.captured_at, step.frame.pixels, live.tracker.open)
        self.summary.analysed = live.analysed
        self.summary.seconds = time.monotonic() - start
        self.summary.reader = {"received": self.reader.received, "dropped": self.reader.dropped,
                               "skipped (no motion)": live.skipped_motion, "reconnects": self.reader.reconnects}
        self.summary.error = self.reader.error
        return self.summary

    def _wanted(self, tracks: list[Track]) -> set[int]:
        return {tf.frame_index for t in tracks for tf in t.best[: self.per_track]}

    def _keep(self, index: int, captured: datetime, pixels: NDArray[np.uint8], open_tracks: list[Track]) -> None:
        """Encode this frame if it now holds one of an open track's best faces; forget frames no longer wanted."""
        wanted = self._wanted(open_tracks)
        if index in wanted:
            self._frames[index] = (captured, frame_jpeg(pixels, captured.astimezone()))  # EXIF is local time
        for stale in set(self._frames) - wanted:
            del self._frames[stale]

    def _upload(self, ended: list[Track]) -> None:
        for track in ended:
            self.summary.tracks += 1
            for tf in track.best[: self.per_track]:
                kept = self._frames.pop(tf.frame_index, None)
                if kept is None:
                    continue
                captured, jpeg = kept
                stamp = captured.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                key = "/".join(p for p in (self.prefix.strip("/"), self.camera, captured.strftime("%Y-%m-%d"),
                                           f"{self.camera}-{stamp}.jpg") if p)
                try:
                    self.bucket.write(key, jpeg, "image/jpeg")
                except Exception as exc:  # noqa: BLE001 - an upload blip must not end the capture
                    log.warning("upload of %s failed: %s", key, exc)
                    continue
                self.summary.uploaded += 1
                self.summary.bytes += len(jpeg)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)
