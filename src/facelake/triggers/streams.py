"""Live cameras for ``facelake watch``: one reader and one tracker per stream, tracks out as segments.

Why it is built this way:
- **One reader thread per stream** (``sources.video.StreamReader``: RTSP over TCP, HTTP MJPEG
  or MPEG-TS, a webcam) with a bounded queue that drops the oldest frame when the models fall
  behind, and reconnects with backoff when the camera drops; a follower thread per stream
  takes its frames, runs the models (sessions are shared by the process) and the tracker.
- **A stream is stored as segments.** Each time tracks end, they are handed to the watcher as
  one segment: a row of ``images`` (its id derived from the camera and the segment's start,
  so a segment is stored once) holding those tracks and their best faces. Every sighting of
  a stream thus still comes from one row of ``images``, through the same image line as a file.
- **The watcher's thread writes.** Followers never touch the database: segments go on a queue
  that the watcher's loop writes with the ingestor's store, one connection for everything.
- **Stopping closes the open tracks.** On SIGTERM every follower ends its tracks and hands them
  over as a last segment, which the watcher writes before it exits.
- **Credentials stay out of everything stored or logged.** A URL may hold ``${VAR}``
  placeholders filled from the environment at open time; what is logged, stored as the
  segment's uri or shown is the URL with its password masked.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..errors import ConfigError
from ..pipeline.records import ImageResult, Job, VideoOptions
from ..pipeline.video import Stills, make_tracker, track_faces
from ..pipeline.worker import analyzer_options
from ..redact import mask_url
from ..sources.decode import ImageMeta
from ..sources.video import StreamFrame, StreamReader, expand_url, grey_small, moved
from ..vision.analyzer import FaceAnalyzer
from ..vision.track import Track
from ..vision.types import Face

log = logging.getLogger(__name__)

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "/dev/video")


def is_stream(source: str) -> bool:
    """Whether a ``watch`` argument names a live stream (else a folder or a bucket)."""
    return source.startswith(STREAM_PREFIXES)


@dataclass(frozen=True)
class StreamSpec:
    """A camera to follow: its name and URL (placeholders not yet filled), and its analysis rate."""

    camera: str
    url: str
    fps: float | None = None


def camera_of(url: str) -> str:
    """A camera name for a stream given without one: its host (and port), or the device's name."""
    if url.startswith("/dev/"):
        return url.rsplit("/", 1)[-1]
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    return rest.rsplit("@", 1)[-1].replace(":", "-") or "stream"


def plan_streams(sources: list[str], camera: str | None, settings: Settings) -> tuple[list[StreamSpec], list[str]]:
    """``watch``'s (or ``capture``'s) arguments split into live cameras (URLs, or names of [cameras.NAME]) and places to follow."""
    configured = settings.cameras
    if not sources:
        if not configured:
            raise ConfigError("watch needs something to follow: folders, buckets, stream URLs, "
                                     "or cameras in the settings file ([cameras.NAME] with a url)")
        sources = list(configured)
    streams: list[StreamSpec] = []
    places: list[str] = []
    for source in sources:
        if source in configured:
            streams.append(StreamSpec(source, configured[source].url, configured[source].fps))
        elif is_stream(source):
            name = camera or next((n for n, c in configured.items() if c.url == source), None) or camera_of(source)
            streams.append(StreamSpec(name, source, configured[name].fps if name in configured else None))
        else:
            places.append(source)
    for spec in streams:
        expand_url(spec.url)  # a ${VAR} missing from the environment is a usage error now, not a dead camera later
    if camera and sum(is_stream(s) for s in sources) > 1:
        raise ConfigError("--camera names one stream; name several with [cameras.NAME] tables in the settings")
    return streams, places


@dataclass
class Step:
    """One step of a live stream through the models: an analysed frame, or an idle tick (no frame)."""

    ended: list[Track]
    """Tracks that ended at this step."""
    frame: StreamFrame | None = None
    """The analysed frame (None: a tick in which no frame arrived, or the stream's end)."""
    faces: list[Face] = field(default_factory=list)


class LiveTracker:
    """A live stream's frames through motion gating, the models and the tracker.

    What ``watch`` (writing tracks) and ``capture`` (uploading frames) share: models loaded
    before the first frame (a live stream does not wait for them), motion gating as for clips,
    tracks aged by time even when no frame arrives, and every open track closed at the end.
    """

    def __init__(self, reader: StreamReader, settings: Settings, stop: threading.Event) -> None:
        self.reader, self.settings, self._halt = reader, settings, stop
        self.video = VideoOptions.from_settings(settings)
        self.analyzer = FaceAnalyzer(analyzer_options(settings))
        self.tracker = make_tracker(self.video)
        self.origin: datetime | None = None
        """Wall-clock time of the first frame: track times are seconds from it."""
        self.size = (0, 0)
        self.analysed = 0
        self.skipped_motion = 0
        self._last_analysed: tuple[NDArray[np.float32], float] | None = None

    def steps(self) -> Iterator[Step]:
        """Steps until the stop event or the reader's end; the last one ends every open track."""
        try:
            self.analyzer.load()
            self.reader.start()
            while not self._halt.is_set():
                frame = self.reader.get(timeout=0.25)
                if frame is None:
                    if not self.reader.running:
                        break
                    if self.origin is not None and self.tracker.open:
                        # No frame (the camera dropped, or the queue ran dry): time still passes,
                        # so a face gone for track_max_age_s ends its track now, not at the next frame.
                        ended = self.tracker.update((datetime.now(UTC) - self.origin).total_seconds(), [])
                        if ended:
                            yield Step(ended)
                    continue
                self.origin = self.origin or frame.captured_at
                self.size = (frame.pixels.shape[1], frame.pixels.shape[0])
                t = (frame.captured_at - self.origin).total_seconds()
                if self._still(grey_small(frame.pixels), t):
                    self.skipped_motion += 1
                    continue
                faces = self.analyzer.analyze(frame.pixels)
                self.analysed += 1
                yield Step(self.tracker.update(t, faces, frame_index=frame.index), frame, faces)
        finally:
            self.reader.stop()
        yield Step(self.tracker.close())

    def _still(self, grey: NDArray[np.float32], t: float) -> bool:
        """Motion gating, as for clips: skip a frame in which nothing moved since the last analysed
        one, but analyse one every ``motion_refresh_s`` so a person standing still stays tracked."""
        last = self._last_analysed
        if (self.video.motion_threshold > 0 and last is not None and t - last[1] < self.video.motion_refresh_s
                and moved(grey, last[0]) < self.video.motion_threshold):
            return True
        self._last_analysed = (grey, t)
        return False


class StreamFollower(threading.Thread):
    """Reads one stream, analyses its frames, tracks the faces, hands ended tracks on as segments."""

    def __init__(self, spec: StreamSpec, settings: Settings, out: queue.Queue[ImageResult],
                 stop: threading.Event) -> None:
        super().__init__(name=f"follow {spec.camera}", daemon=True)
        self.spec, self.settings, self.out = spec, settings, out
        self.reader = StreamReader(spec.url, camera=spec.camera, fps=spec.fps or settings.video_fps,
                                   queue_size=settings.stream_queue, first_frame_timeout_s=settings.stream_timeout_s, give_up=False,
                                   backoff_max_s=settings.stream_backoff_max_s, max_pixels=settings.video_max_pixels)
        self.live = LiveTracker(self.reader, settings, stop)
        self.masked = mask_url(spec.url)
        self.segments = 0
        self._early: set[int] = set()
        """Local ids of open tracks already written (early); their end writes their final revision."""
        self._stills = Stills()
        self.error: str | None = None

    def run(self) -> None:
        live = self.live
        try:
            for step in live.steps():
                if live.origin is None:
                    continue
                if step.frame is not None and step.faces:
                    self._stills.seen(step.frame.pixels, step.frame.index, live.tracker.open)
                if step.ended:
                    self._hand_over(step.ended, live.origin, live.size, live.analyzer.model_name)
                for track in live.tracker.open:
                    if track.track_id not in self._early and track.frames >= self.settings.track_early_frames:
                        self._early.add(track.track_id)
                        self._segment([track], live.origin, live.size, live.analyzer.model_name, revision=0)
        except Exception as exc:  # noqa: BLE001 - one broken camera must not end the watch
            self.error = f"{self.masked}: {exc}"
            log.error("stream %s stopped: %s", self.masked, exc)
            ended = live.tracker.close()
            if ended and live.origin is not None:
                self._hand_over(ended, live.origin, live.size, live.analyzer.model_name)
        finally:
            self.error = self.error or self.reader.error
            if self.error:
                log.warning("stream %s: %s", self.masked, self.error)

    def _hand_over(self, ended: list[Track], origin: datetime, size: tuple[int, int], model: str) -> None:
        """Ended tracks: one written early gets its final revision (its own segment, same id); the
        rest, too short to have been written, go as one segment together."""
        written = {t.track_id for t in ended} & self._early
        self._early -= written
        stills = self._stills.take(ended)
        for track in ended:
            if track.track_id in written:
                self._segment([track], origin, size, model, revision=1, stills=stills)
        rest = [t for t in ended if t.track_id not in written]
        if rest:
            self._segment(rest, origin, size, model, revision=0, stills=stills)

    def _segment(self, tracks: list[Track], origin: datetime, size: tuple[int, int], model: str,
                 revision: int, stills: dict[int, bytes] | None = None) -> None:
        """Tracks as one segment, from the first one's start, its id derived from the camera, that
        start and the tracks (so a track's early and final revisions are one row of ``images``)."""
        first = min(t.start_t for t in tracks)
        # Local wall time, as photos' EXIF and clips' times are stored: one camera's rows line up.
        start = (origin + timedelta(seconds=first)).astimezone().replace(tzinfo=None)
        faces, results = track_faces(tracks, model, origin_t=first,
                                     stills=self._stills.by_track if stills is None else stills)
        key = f"stream:{self.spec.camera}:{start.isoformat()}:{'-'.join(str(t.track_id) for t in tracks)}"
        job = Job(hashlib.sha256(key.encode()).hexdigest(), f"{self.masked}#t={start.isoformat()}",
                  self.spec.camera, None, None)
        meta = ImageMeta(size[0], size[1], "stream", start, None, None, None, None)
        self.out.put(ImageResult(job, meta, faces, None, tracks=results, revision=revision))
        self.segments += revision == 0

    @property
    def counters(self) -> dict[str, int]:
        """What the reader counted: frames received and dropped, reconnections."""
        r = self.reader
        return {"received": r.received, "dropped": r.dropped, "skipped (no motion)": self.live.skipped_motion,
                "reconnects": r.reconnects, "segments": self.segments}
