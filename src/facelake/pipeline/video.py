"""A video clip → tracks: sampled frames through the models and the tracker, a few best faces per track.

The unit of recognition in video is the track, not the frame: one person walking past for
ten seconds is fifty analysed frames, and would otherwise be fifty sightings, fifty naming
decisions and fifty alerts. Here each track keeps only its ``top_k`` best faces (they become
its sightings) and a quality-weighted template (what the track is named by, once).

A damaged clip keeps what was decoded before the damage: the tracks seen so far are closed
and returned, and the reader's message is the result's ``warning``, so the clip is stored
(re-ingesting it adds nothing) with the reason beside it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from ..errors import FacelakeError
from ..sources.decode import ImageMeta
from ..sources.video import VideoFrame, VideoReader
from ..vision.analyzer import FaceAnalyzer
from ..vision.track import Track, Tracker
from ..vision.types import Face
from .records import ImageResult, Job, OnClip, TrackResult, VideoOptions


class Cancel(Protocol):
    """A threading or multiprocessing event: the worker only asks whether it is set."""

    def is_set(self) -> bool: ...


FRAMES_PER_BATCH = 4
"""Analysed frames whose faces go through the embedder together (its batches stay full)."""


def make_tracker(options: VideoOptions) -> Tracker:
    """The tracker ``options`` describe; unset similarity gates keep the tracker's own defaults,
    measured on the fused embedder (vision/track.py)."""
    gates = {k: v for k, v in (("min_similarity", options.track_min_similarity),
                               ("strong_similarity", options.track_strong_similarity)) if v is not None}
    return Tracker(options.track_max_age_s, top_k=options.track_top_k, **gates)


def _batches(frames: Iterator[VideoFrame], size: int) -> Iterator[list[VideoFrame]]:
    batch: list[VideoFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


STILL_WIDTH = 640
"""A track's still is at most this wide: enough to see who and where, ~30-60 kB of JPEG."""


def still_jpeg(pixels: NDArray[np.uint8]) -> bytes:
    """The frame as the track's still: shrunk to ``STILL_WIDTH``, JPEG."""
    height, width = pixels.shape[:2]
    small = pixels if width <= STILL_WIDTH else cv2.resize(
        pixels, (STILL_WIDTH, round(height * STILL_WIDTH / width)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""


class Stills:
    """Each open track's still: the frame is encoded when it holds the track's best face so far."""

    def __init__(self) -> None:
        self.by_track: dict[int, bytes] = {}

    def seen(self, pixels: NDArray[np.uint8], frame_index: int, open_tracks: list[Track]) -> None:
        for track in open_tracks:
            if track.best and track.best[0].frame_index == frame_index:
                self.by_track[track.track_id] = still_jpeg(pixels)

    def take(self, tracks: list[Track]) -> dict[int, bytes]:
        """The stills of ``tracks`` (ended ones are forgotten here)."""
        return {t.track_id: self.by_track.pop(t.track_id) for t in tracks if t.track_id in self.by_track}


def track_faces(ended: list[Track], model: str, origin_t: float = 0.0,
                stills: dict[int, bytes] | None = None) -> tuple[list[Face], tuple[TrackResult, ...]]:
    """Ended tracks as a result's faces (each track's best, in start order) and track results;
    times become seconds from ``origin_t`` (a clip's start, or a stream segment's)."""
    faces: list[Face] = []
    tracks: list[TrackResult] = []
    for track in sorted(ended, key=lambda t: (t.start_t, t.track_id)):
        at = len(faces)
        faces.extend(tf.face for tf in track.best)
        tracks.append(TrackResult(track.start_t - origin_t, track.end_t - origin_t, track.frames, track.template,
                                  model, tuple(range(at, len(faces))), tuple(tf.t - origin_t for tf in track.best),
                                  (stills or {}).get(track.track_id)))
    return faces, tuple(tracks)


def _result(job: Job, reader: VideoReader, ended: list[Track], model: str, stills: dict[int, bytes]) -> ImageResult:
    info = reader.info
    # Local wall time, as EXIF and file mtimes give it: clips, photos and streams of one camera line up.
    taken = info.creation_time.astimezone().replace(tzinfo=None) if info.creation_time else None
    width, height = reader.size or (info.width, info.height)  # boxes are in upright pixels
    meta = ImageMeta(width, height, f"video/{info.codec}", taken, None, None, None, None)
    faces, tracks = track_faces(ended, model, stills=stills)
    # The container's duration, else how far decoding got (a damaged clip, a raw stream).
    duration = info.duration_s or max((t.end_s for t in tracks), default=0.0)
    return ImageResult(job.without_data(), meta, faces, None, tracks=tracks, warning=reader.error,
                       duration_s=duration)


INTERRUPTED = "interrupted: the run stopped while this clip was read; it is read again next time"


def analyse_video(analyzer: FaceAnalyzer, job: Job, options: VideoOptions, cancel: Cancel | None = None,
                  progress: OnClip | None = None) -> ImageResult:
    """Decode ``job``'s clip (its local ``path``, else its bytes), analyse the sampled frames, track the faces.

    ``cancel`` set (SIGTERM of ``ingest`` or ``watch``) stops an hour-long clip within a batch of
    frames instead of at its end: the clip is recorded as an error, which the next run retries.
    ``progress`` hears how far the clip got, about once a second: an hour of footage is minutes
    of work, which a progress bar counting whole files would show as a stall.
    """
    try:
        source = job.path if job.path is not None else io.BytesIO(job.data or b"")
        reader = VideoReader(source, fps=options.fps, keyframes_only=options.keyframes_only,
                             motion_threshold=options.motion_threshold, motion_refresh_s=options.motion_refresh_s,
                             scene_cut_threshold=options.scene_cut, max_duration_s=options.max_duration_s,
                             max_pixels=options.max_pixels, name=job.uri)
    except FacelakeError as exc:
        return ImageResult(job.without_data(), None, [], str(exc))
    tracker = make_tracker(options)
    stills = Stills()
    ended: list[Track] = []
    duration = reader.info.duration_s or None
    reported = time.monotonic()
    with reader:
        for batch in _batches(reader.frames(), FRAMES_PER_BATCH):
            if cancel is not None and cancel.is_set():
                return ImageResult(job.without_data(), None, [], INTERRUPTED)
            if progress is not None and time.monotonic() - reported >= options.progress_every_s:
                reported = time.monotonic()
                progress(job.uri, batch[0].offset_s, duration)
            for frame, faces in zip(batch, analyzer.analyze_many([f.pixels for f in batch])):
                ended.extend(tracker.update(frame.offset_s, faces, frame.scene_cut, frame.index))
                if faces:
                    stills.seen(frame.pixels, frame.index, tracker.open)
        ended.extend(tracker.close())
        if reader.analysed == 0 and reader.error:  # nothing decoded before the damage: nothing to keep
            return ImageResult(job.without_data(), None, [], reader.error)
        return _result(job, reader, ended, analyzer.model_name, stills.take(ended))
