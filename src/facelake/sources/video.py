"""Video clips and live camera streams in, sampled RGB frames out.

Decoding is PyAV's (it bundles FFmpeg in its wheel, aarch64 included). ``bench/video_decode.py``
measured it against OpenCV's FFmpeg backend on 1080p H.264: the two cost the same ~3 ms a frame
at a 5 fps analysis rate (both are libavcodec underneath), so the choice rests on what only PyAV
offers: reading a Python file object (a bucket download), dropping non-key frames inside the
decoder (the keyframes-only scan), the luma plane as a buffer (motion gating without a colour
conversion), FFmpeg options per open (RTSP over TCP, timeouts) and container metadata.

What a clip goes through, and why:

- **Limits first.** Size, pixels per frame and duration are checked from the headers before a
  frame is decoded, and again per frame (headers can lie): anything over a limit is a
  :class:`VideoTooLarge`, the same kind of recorded error as an oversized image.
- **Sampling.** Frames are taken at ``fps`` (default 5/s) by their timestamps, not by counting,
  so variable-rate phone clips are sampled evenly.
- **Motion gating.** Each sampled frame is first looked at as a ~64-px-wide grey copy cut
  straight from the decoded luma plane. If almost nothing changed against the last *analysed*
  frame it is skipped before its RGB conversion and before the face models. The first frame is
  always analysed, and one every ``motion_refresh_s`` whatever happens, so a person standing
  still is seen again before the tracker gives their track up.
- **Scene cuts.** A grey histogram far from the previous sampled frame's, or a grey copy that
  changed almost everywhere, marks the frame ``scene_cut=True``: the tracker ends every open
  track there, because the people after a cut are not the people before it.
- **Damage.** A clip truncated or corrupted mid-way gives the frames decoded before the damage,
  then stops with :attr:`VideoReader.error` set; nothing raised by FFmpeg or by hostile bytes
  escapes the iterator. Errors found before the first frame (not a video, no video stream, over a
  limit) raise :class:`VideoUnreadable` from the constructor, like an unreadable image.

Live streams (:class:`StreamReader`) follow RTSP, HTTP(S) MJPEG/MPEG-TS and V4L2 devices in a
thread each, behind a bounded queue that drops its oldest frame rather than fall behind, and
reconnect with capped exponential backoff. Passwords never leave this module unmasked: URLs may
hold ``${VAR}`` placeholders filled from the environment when the stream is opened, and every
message uses :func:`mask_url`.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Self

import av
import av.error
import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, ImageTooLarge, ImageUnreadable, SourceError
from ..redact import mask_url, split_userinfo
from .base import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

GREY_WIDTH = 64
"""Width of the grey copy motion gating and scene cuts are judged on: small enough to cost
nothing, large enough that a 60-px face moving in a 1080p frame changes a few of its cells."""

_LUMA_FORMATS = frozenset({
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
    "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray", "yuva420p",
})
"""8-bit pixel formats whose first plane is the luma, readable as a buffer with no conversion."""


class VideoUnreadable(ImageUnreadable):
    """A clip that cannot be decoded: not a video, no video stream, or damaged before its first frame."""


class VideoTooLarge(VideoUnreadable, ImageTooLarge):
    """A clip over the size, duration or pixels-per-frame limit."""


class StreamUnavailable(SourceError):
    """A live stream that never delivered a frame within its timeout, or cannot be opened at all."""


def is_video(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is taken for a video clip, by its ending (sources list names, not bytes)."""
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def sha256_stream(fileobj: BinaryIO, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file object read in ``chunk``-byte pieces: the video's id, as for an image,
    computed without ever holding a 2-GB clip in memory."""
    digest = hashlib.sha256()
    while True:
        block = fileobj.read(chunk)
        if not block:
            return digest.hexdigest()
        digest.update(block)


@dataclass(frozen=True)
class VideoInfo:
    """What the container and its video stream say about the clip."""

    duration_s: float
    """0.0 when the container does not say (a raw or broken stream)."""
    width: int
    height: int
    fps: float
    """The stream's nominal frame rate (0.0 when unknown)."""
    codec: str
    creation_time: datetime | None
    """The container's ``creation_time``, timezone-aware; None when absent (the caller uses the mtime)."""
    frames: int | None
    """The frame count the container promises, when it keeps one (MP4 does, MKV does not)."""


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One analysed frame of a clip (compared by identity: its pixels are an array)."""

    index: int
    """The frame's number in the clip at its nominal rate (estimated from the offset)."""
    offset_s: float
    """Seconds from the start of the video stream."""
    pixels: NDArray[np.uint8]
    """H×W×3 RGB."""
    keyframe: bool
    scene_cut: bool
    """The picture changed so much against the previous sampled frame that it is another scene."""


@dataclass(frozen=True, eq=False)
class StreamFrame:
    """One frame of a live stream, stamped with the wall-clock time it was decoded."""

    index: int
    """Frames delivered by this reader so far (across reconnects), from 0."""
    captured_at: datetime
    """UTC wall-clock time of decoding."""
    pixels: NDArray[np.uint8]
    keyframe: bool


def _parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 ``creation_time`` (FFmpeg writes ``2024-05-01T10:00:00.000000Z``), made UTC-aware."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.year < 1971:  # muxers write the epoch (or 1904, QuickTime's epoch) when no time was set
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _grey_small(frame: av.VideoFrame) -> NDArray[np.float32]:
    """A ~GREY_WIDTH-wide grey copy of a frame, as float32.

    Cut from the luma plane by striding at half the final cell size, then 2×2-averaged: a
    box filter of sorts that tames sensor noise and aliasing for the price of a few thousand
    reads (swscale's proper downscale of a 1080p frame costs about a millisecond)."""
    width, height = frame.width, frame.height
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:height, :width]
    else:
        luma = np.asarray(frame.reformat(format="gray").to_ndarray(), np.uint8)
    step = max(1, width // (2 * GREY_WIDTH))
    fine = luma[::step, ::step].astype(np.float32)
    h2, w2 = fine.shape[0] // 2 * 2, fine.shape[1] // 2 * 2
    if h2 == 0 or w2 == 0:
        return fine
    return fine[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean(axis=(1, 3))


def upright_rgb(frame: av.VideoFrame) -> NDArray[np.uint8]:
    """A decoded frame's RGB pixels as the clip is meant to be seen: phones record sideways and say
    so in the stream's display matrix, and a face detector and embedder want faces upright, as
    photos are after their EXIF orientation.

    PyAV's ``rotation`` is the matrix's angle as FFmpeg reads it (``av_display_rotation_get``):
    degrees to turn the frame *counter-clockwise* for display, which is what ffmpeg and players
    do (a phone's portrait clip says -90: turn it clockwise). Checked against ffmpeg's own
    rotated decode of the same files (tests/test_video_ingest.py)."""
    pixels: NDArray[np.uint8] = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def grey_small(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The same ~GREY_WIDTH-wide grey copy as a decoded frame's, from an RGB array (a live stream's
    frames arrive as RGB): the green channel, strided and 2×2-averaged."""
    step = max(1, pixels.shape[1] // (2 * GREY_WIDTH))
    fine = pixels[::step, ::step, 1].astype(np.float32)
    h2, w2 = fine.shape[0] // 2 * 2, fine.shape[1] // 2 * 2
    if h2 == 0 or w2 == 0:
        return fine
    return fine[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean(axis=(1, 3))


def moved(grey: NDArray[np.float32], before: NDArray[np.float32], pixel_delta: float = 10.0) -> float:
    """Fraction of a grey copy's cells that changed by more than ``pixel_delta`` grey levels."""
    return float(np.mean(np.abs(grey - before) > pixel_delta)) if grey.shape == before.shape else 1.0


def _histogram_distance(a: NDArray[np.float32], b: NDArray[np.float32], bins: int = 32) -> float:
    """Half the L1 distance of two normalised grey histograms: 0 the same, 1 disjoint."""
    ha, _ = np.histogram(a, bins=bins, range=(0, 256))
    hb, _ = np.histogram(b, bins=bins, range=(0, 256))
    return float(0.5 * np.abs(ha / max(ha.sum(), 1) - hb / max(hb.sum(), 1)).sum())


class VideoReader:
    """Sampled, motion-gated RGB frames of one video clip.

    Opened from a path or a binary file object; the constructor reads the headers and raises
    :class:`VideoUnreadable` (or :class:`VideoTooLarge`) for what is refused before decoding.
    :meth:`frames` never raises: it stops at damage and leaves the reason in :attr:`error`.

    Parameters
    ----------
    fps:
        Analysis rate in frames per second; None analyses every decoded frame.
    keyframes_only:
        Decode key frames only (the decoder skips the rest unread): a fast scan whose rate is
        the clip's GOP, typically one frame every 1-2 s on cameras.
    motion_threshold:
        Fraction of the grey copy's cells that must change by more than ``motion_pixel_delta``
        grey levels for a frame to count as moving; 0 turns gating off. A fraction of changed
        cells, not the mean difference over the frame, because a small face moving in a large
        still scene moves the mean by almost nothing.
    motion_refresh_s:
        A frame is analysed at least this often even when nothing moves; keep it under the
        tracker's ``max_age_s`` so a still person's track stays open.
    scene_cut_threshold:
        Histogram distance (0..1) to the previous sampled frame from which a frame is a cut.
    scene_cut_changed:
        Or: fraction of cells changed (by more than 3 × ``motion_pixel_delta``) from which it
        is a cut, for cuts between two scenes of similar brightness.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        fps: float | None = 5.0,
        keyframes_only: bool = False,
        motion_threshold: float = 0.002,
        motion_pixel_delta: float = 10.0,
        motion_refresh_s: float = 1.0,
        scene_cut_threshold: float = 0.5,
        scene_cut_changed: float = 0.75,
        max_duration_s: float | None = 4 * 3600.0,
        max_pixels: int | None = 3840 * 2160,
        max_bytes: int | None = None,
        threads: int = 1,
        name: str | None = None,
    ) -> None:
        if fps is not None and not 0 < fps <= 240:
            raise ConfigError(f"fps must be in (0, 240] or None, got {fps!r}")
        if not 0 <= motion_threshold <= 1:
            raise ConfigError(f"motion_threshold must be in [0, 1], got {motion_threshold!r}")
        self.name = name or (str(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", "<stream>"))
        self.fps = fps
        self.keyframes_only = keyframes_only
        self.motion_threshold = motion_threshold
        self.motion_pixel_delta = motion_pixel_delta
        self.motion_refresh_s = motion_refresh_s
        self.scene_cut_threshold = scene_cut_threshold
        self.scene_cut_changed = scene_cut_changed
        self.max_duration_s = max_duration_s
        self.max_pixels = max_pixels
        self.decoded = 0
        """Frames out of the decoder."""
        self.analysed = 0
        """Frames yielded."""
        self.skipped_motion = 0
        """Sampled frames skipped because nothing moved."""
        self.error: str | None = None
        """Why decoding stopped early, when it did (the frames before were yielded)."""
        self.size: tuple[int, int] | None = None
        """Width and height of the frames yielded, upright (a phone's sideways clip turned)."""
        self.timestamps_from_index = False
        """True once the clip's timestamps were found missing or going backwards: offsets after
        that point are the frame's position divided by the nominal rate."""
        self._used = False
        self._container = self._open(source, max_bytes, threads)
        self._info = self._probe()

    # --- opening ---
    def _open(self, source: str | os.PathLike[str] | BinaryIO, max_bytes: int | None, threads: int) -> Any:
        if isinstance(source, str | os.PathLike):
            try:
                size = os.stat(source).st_size
            except OSError as exc:
                raise VideoUnreadable(f"{self.name}: cannot read the file ({exc.strerror or exc})") from exc
            target: Any = os.fspath(source)
        else:
            try:
                position = source.tell()
                size = source.seek(0, io.SEEK_END) - position
                source.seek(position)
            except (OSError, AttributeError, ValueError):
                size = -1  # not seekable: FFmpeg reads it as a stream
            target = source
        if size == 0:
            raise VideoUnreadable(f"{self.name}: the file is empty (0 bytes)")
        if max_bytes is not None and size > max_bytes:
            raise VideoTooLarge(f"{self.name}: {size} bytes is over the limit of {max_bytes} bytes")
        head = _peek(source, 12)
        try:
            container = av.open(target, mode="r", metadata_errors="replace")
        except Exception as exc:  # FFmpegError for bad bytes, anything else from hostile input
            if head[4:8] == b"ftyp":
                raise VideoUnreadable(
                    f"{self.name}: an MP4/MOV without a readable index (moov atom): the recording was cut off "
                    f"before it was finalised, or the file is damaged ({_ffmpeg_message(exc)})"
                ) from exc
            raise VideoUnreadable(f"{self.name}: not a readable video ({_ffmpeg_message(exc)})") from exc
        try:
            if not container.streams.video:
                kinds = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "no streams"
                raise VideoUnreadable(f"{self.name}: no video stream in the file ({kinds})")
            stream = container.streams.video[0]
            # one thread by default: ingest already runs one worker per core, and decoder threads
            # would only compete with the models for them (0 lets FFmpeg choose)
            stream.codec_context.thread_count = threads
            if threads != 1:
                stream.thread_type = "AUTO"
            if self.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
        except VideoUnreadable:
            container.close()
            raise
        except Exception as exc:
            container.close()
            raise VideoUnreadable(f"{self.name}: cannot set up the video decoder ({_ffmpeg_message(exc)})") from exc
        return container

    def _probe(self) -> VideoInfo:
        container = self._container
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if self.max_pixels is not None and width * height > self.max_pixels:
            self.close()
            raise VideoTooLarge(
                f"{self.name}: frames of {width}x{height} ({width * height} pixels) are over the limit "
                f"of {self.max_pixels} pixels per frame"
            )
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if self.max_duration_s is not None and duration > self.max_duration_s:
            self.close()
            raise VideoTooLarge(f"{self.name}: {duration:.0f} s is over the duration limit of {self.max_duration_s:.0f} s")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        created = _parse_time(container.metadata.get("creation_time")) or _parse_time(stream.metadata.get("creation_time"))
        return VideoInfo(
            duration_s=duration,
            width=width,
            height=height,
            fps=float(rate) if rate else 0.0,
            codec=ctx.name,
            creation_time=created,
            frames=int(stream.frames) if stream.frames else None,
        )

    @property
    def info(self) -> VideoInfo:
        return self._info

    def close(self) -> None:
        """Release the decoder (also done when :meth:`frames` ends)."""
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            with contextlib.suppress(Exception):  # closing a broken container must not hide the real error
                container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- decoding ---
    def frames(self) -> Iterator[VideoFrame]:
        """The analysed frames, in order; stops early (with :attr:`error` set) at damage or a limit."""
        if self._used or self._container is None:
            raise RuntimeError("VideoReader.frames() can be iterated once")
        self._used = True
        container = self._container
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 90_000)
        start_pts = stream.start_time
        nominal = self._info.fps or 25.0
        step = 1.0 / self.fps if self.fps else 0.0
        next_sample = 0.0
        last_offset = -1.0
        last_analysed_t = -1e9
        previous_grey: NDArray[np.float32] | None = None
        analysed_grey: NDArray[np.float32] | None = None
        packets = 0
        offset = 0.0
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:
                    packets_done = True  # the flush packet: drain the decoder below
                else:
                    packets_done = False
                    packets += 1
                for frame in packet.decode():
                    self.decoded += 1
                    offset = self._offset(frame, time_base, start_pts, packets - 1, nominal, last_offset)
                    last_offset = offset
                    if self.max_duration_s is not None and offset > self.max_duration_s:
                        self.error = f"{self.name}: stopped at {offset:.1f} s, the duration limit of {self.max_duration_s:.0f} s"
                        return
                    if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
                        self.error = (
                            f"{self.name}: a frame of {frame.width}x{frame.height} at {offset:.2f} s is over the "
                            f"limit of {self.max_pixels} pixels per frame"
                        )
                        return
                    if step and offset + 1e-3 < next_sample:
                        continue
                    if step:  # the next point of the sampling grid after this frame
                        next_sample += (int((offset + 1e-3 - next_sample) / step) + 1) * step
                    grey = _grey_small(frame)
                    cut = False
                    if previous_grey is not None and previous_grey.shape == grey.shape:
                        changed = float(np.mean(np.abs(grey - previous_grey) > 3 * self.motion_pixel_delta))
                        cut = (_histogram_distance(grey, previous_grey) >= self.scene_cut_threshold
                               or changed >= self.scene_cut_changed)
                    previous_grey = grey
                    if (not cut and self.motion_threshold > 0 and analysed_grey is not None
                            and analysed_grey.shape == grey.shape
                            and offset - last_analysed_t < self.motion_refresh_s):
                        moved = float(np.mean(np.abs(grey - analysed_grey) > self.motion_pixel_delta))
                        if moved < self.motion_threshold:
                            self.skipped_motion += 1
                            continue
                    analysed_grey, last_analysed_t = grey, offset
                    pixels = upright_rgb(frame)
                    self.size = (pixels.shape[1], pixels.shape[0])
                    self.analysed += 1
                    yield VideoFrame(
                        index=round(offset * nominal),
                        offset_s=offset,
                        pixels=pixels,
                        keyframe=bool(frame.key_frame),
                        scene_cut=cut,
                    )
                if packets_done:
                    break
            promised = self._info.frames
            if self.error is None and promised and packets < promised:
                self.error = (
                    f"{self.name}: the file ends after {packets} of the {promised} frames its header promises "
                    f"(truncated at {offset:.2f} s)"
                )
        except Exception as exc:  # noqa: BLE001 - FFmpegError on damage; anything else hostile bytes provoke
            self.error = (
                f"{self.name}: damaged or truncated; decoding stopped after {self.decoded} frames at "
                f"{max(offset, 0.0):.2f} s ({_ffmpeg_message(exc)})"
            )
        finally:
            self.close()

    def _offset(
        self, frame: av.VideoFrame, time_base: Fraction, start_pts: int | None, position: int, nominal: float,
        last: float,
    ) -> float:
        """Seconds since the stream's start, from the frame's pts while those make sense.

        A missing pts, one that goes backwards, or one that jumps more than a minute ahead
        switches the rest of the clip to position / nominal rate: the frames stay usable and in
        order, only their times become estimates (``timestamps_from_index`` says so)."""
        if not self.timestamps_from_index and frame.pts is not None:
            start = start_pts if start_pts is not None else frame.pts
            offset = float((frame.pts - start) * time_base)
            if offset > last and offset >= -1e-6 and (last < 0 or offset - last <= 60.0):
                return max(offset, 0.0)
        if not self.timestamps_from_index:
            self.timestamps_from_index = True
            log.info("%s: timestamps missing or out of order near frame %d; using frame position / %.3g fps",
                     self.name, position, nominal)
        return max(position / nominal, last + 1e-6)


def _peek(source: str | os.PathLike[str] | BinaryIO, n: int) -> bytes:
    """The first ``n`` bytes, leaving a file object where it was (b"" when that is not possible)."""
    try:
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as fh:
                return fh.read(n)
        position = source.tell()
        head = source.read(n)
        source.seek(position)
        return head
    except (OSError, AttributeError, ValueError):
        return b""


def _ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without PyAV's errno prefix."""
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _refused(exc: BaseException) -> bool:
    """Whether the camera refused the credentials (HTTP or RTSP 401/403): a wrong password stays
    wrong, so retrying it only fills the log (and may lock the account on cameras that count)."""
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return True
    text = _ffmpeg_message(exc)
    return bool(re.search(r"\b40[13]\b", text)) and ("nauthori" in text or "orbidden" in text)


# --- live streams ---

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
def expand_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """Fill ``${VAR}`` placeholders from the environment, percent-encoding those in the userinfo.

    So a settings file holds ``rtsp://admin:${CAM1_PASSWORD}@10.0.0.5/stream`` and the
    password itself lives only in the process environment (or a secret manager feeding it).
    A missing variable is a :class:`ConfigError` naming it."""
    env = os.environ if environ is None else environ

    def fill(match: re.Match[str], quote: bool) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"stream URL {mask_url(url)} names ${{{name}}}, which is not set in the environment")
        value = env[name]
        return urllib.parse.quote(value, safe="") if quote else value

    prefix, userinfo, rest = split_userinfo(url)
    if userinfo is None:
        return _PLACEHOLDER.sub(lambda m: fill(m, False), url)
    userinfo = _PLACEHOLDER.sub(lambda m: fill(m, True), userinfo)
    return f"{prefix}{userinfo}@{_PLACEHOLDER.sub(lambda m: fill(m, False), rest)}"


class StreamReader:
    """Frames of one live stream (RTSP, HTTP(S) MJPEG or MPEG-TS, ``/dev/videoN``), read in a thread.

    One reader thread per stream decodes continuously (a live decoder must keep up or the
    camera's buffer overflows), samples at ``fps`` by wall clock, and puts frames in a bounded
    queue. When the consumer (the face models) falls behind, the *oldest* frame is dropped and
    counted in :attr:`dropped`: a recognition pipeline wants the present, not a growing backlog.

    When the camera drops or the server closes, the reader reconnects after a backoff that
    doubles from ``backoff_s`` up to ``backoff_max_s`` (and resets after a frame arrives),
    counting :attr:`reconnects`. If no frame at all arrives within ``first_frame_timeout_s`` of
    :meth:`start`, :attr:`error` says so (a wrong URL, a camera that accepts connections but
    sends nothing, or one still booting); with ``give_up`` the reader then ends and
    :meth:`frames` with it, else it keeps trying and clears the error at the first frame. A
    camera that refuses the credentials (401/403) is never retried: :attr:`error` says so and
    the reader ends at once.
    """

    def __init__(
        self,
        url: str,
        *,
        camera: str | None = None,
        fps: float | None = 5.0,
        queue_size: int = 8,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        first_frame_timeout_s: float = 20.0,
        give_up: bool = True,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_pixels: int | None = 3840 * 2160,
        options: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {queue_size!r}")
        if fps is not None and not 0 < fps <= 240:
            raise ConfigError(f"fps must be in (0, 240] or None, got {fps!r}")
        self.url = url
        """The URL as configured (placeholders unexpanded)."""
        self.masked_url = mask_url(url)
        self.camera = camera
        self.fps = fps
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.first_frame_timeout_s = first_frame_timeout_s
        self.give_up = give_up
        """Whether the reader ends once ``first_frame_timeout_s`` passes with no frame (a bare reader),
        or reports it in :attr:`error` and keeps reconnecting (``watch`` and ``capture``)."""
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_pixels = max_pixels
        self._extra_options = dict(options or {})
        self._environ = environ
        self._queue: collections.deque[StreamFrame] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._secrets: tuple[str, ...] = ()
        self.received = 0
        """Frames decoded from the stream."""
        self.delivered = 0
        """Frames put in the queue (after sampling)."""
        self.dropped = 0
        """Frames dropped from a full queue (the oldest first)."""
        self.reconnects = 0
        """Attempts to connect again after a connection that worked had ended (failed first opens are not
        counted here: a stream that never connected was never *re*connected)."""
        self.attempts = 0
        """Connections tried, the first one included."""
        self.connected = False
        self.last_error: str | None = None
        """The latest connection problem (masked), kept while the reader retries."""
        self.error: str | None = None
        """Why the reader gave up for good (masked); None while it runs or after a clean stop."""

    # --- the public side ---
    def start(self) -> StreamReader:
        """Open in the background; returns at once. The URL's placeholders are filled here."""
        if self._thread is not None:
            raise RuntimeError("StreamReader.start() called twice")
        expanded = expand_url(self.url, self._environ)
        _, userinfo, _ = split_userinfo(expanded)
        if userinfo and ":" in userinfo:
            password = userinfo.partition(":")[2]
            self._secrets = tuple(s for s in {password, urllib.parse.unquote(password)} if s)
        self._expanded = expanded
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"stream {self.masked_url}", daemon=True)
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> StreamFrame | None:
        """The oldest queued frame, waiting up to ``timeout`` s; None on timeout or once the reader ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if not self.running:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(0.25 if remaining is None else min(remaining, 0.25))
            return self._queue.popleft()

    def frames(self) -> Iterator[StreamFrame]:
        """Frames until :meth:`stop` or until the reader gives up (then :attr:`error` says why)."""
        while True:
            frame = self.get(timeout=0.5)
            if frame is not None:
                yield frame
            elif not self.running:
                return

    @property
    def pending(self) -> int:
        """Frames waiting in the queue."""
        with self._cond:
            return len(self._queue)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the reader thread to end and wait for it (an open or read in progress is
        interrupted by its timeout at the latest)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the reader thread ---
    def _first_frame_wait(self) -> float | None:
        """Seconds left before the first-frame deadline; None once a frame came or the error was said."""
        if self.received or self.error is not None:
            return None
        return self.first_frame_timeout_s - (time.monotonic() - self._started_at)

    def _check_first_frame(self) -> bool:
        """Say, once, that no frame came in time; True when the reader should then end (``give_up``)."""
        waiting = self._first_frame_wait()
        if waiting is None or waiting > 0:
            return False
        self.error = (
            f"no frame from {self.masked_url} within {self.first_frame_timeout_s:g} s"
            + (f" (last: {self.last_error})" if self.last_error else "")
        )
        if self.give_up:
            return True
        # A camera still booting after a power cut is a camera late, not gone: say so once, keep
        # trying with the backoff, and clear the error when it sends a frame.
        log.error("%s; still trying, every %.0f s at most", self.error, self.backoff_max_s)
        return False

    def _scrub(self, text: str) -> str:
        """A message with the expanded URL and any password in it masked (FFmpeg puts the URL it
        was given into its errors)."""
        text = text.replace(self._expanded, mask_url(self._expanded))
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _open_args(self) -> dict[str, Any]:
        url = self._expanded
        # Half a second of probing: every second spent here is a second of delay on the first
        # face after each (re)connection (the frames it reads come out late, all at once).
        options = {"analyzeduration": "500000", "probesize": "500000"}
        kwargs: dict[str, Any] = {}
        if url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"
            options["timeout"] = str(int(self.read_timeout_s * 1_000_000))
        elif url.startswith(("http://", "https://")):
            options["rw_timeout"] = str(int(self.read_timeout_s * 1_000_000))
        elif url.startswith("/dev/video"):
            kwargs["format"] = "v4l2"
        options.update(self._extra_options)
        kwargs["options"] = options
        kwargs["timeout"] = (self.open_timeout_s, self.read_timeout_s)
        return kwargs

    def _put(self, frame: StreamFrame) -> None:
        with self._cond:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            self.delivered += 1
            self._cond.notify()

    def _run(self) -> None:
        backoff = self.backoff_s
        next_sample = 0.0
        step = 1.0 / self.fps if self.fps else 0.0
        last_stamp = datetime.min.replace(tzinfo=UTC)
        was_connected = False
        while not self._stop.is_set():
            if was_connected:
                self.reconnects += 1  # only a connection that worked is *re*connected: failed opens are attempts
            self.attempts += 1
            got_frame = False
            opened_at = datetime.now(UTC)
            open_args = self._open_args()
            waiting = self._first_frame_wait()
            if waiting is not None:
                # Before the first frame, no attempt may outlast the deadline: the "no frame" error
                # comes when ``first_frame_timeout_s`` says, not one open timeout later.
                open_args["timeout"] = (max(1.0, min(self.open_timeout_s, waiting)), self.read_timeout_s)
            try:
                container = av.open(self._expanded, mode="r", **open_args)
            except Exception as exc:  # noqa: BLE001 - a camera that cannot be opened is retried, never raised
                self.last_error = self._scrub(f"cannot open {self.masked_url}: {_ffmpeg_message(exc)}")
                container = None
                if _refused(exc):
                    self.error = (f"{self.last_error}: the camera refused the credentials; not retried "
                                  "(fix the user or password, e.g. its environment variable, and restart)")
                    log.error("stream %s", self.error)
                    break
            if container is not None:
                try:
                    if not container.streams.video:
                        raise StreamUnavailable(f"{self.masked_url} has no video stream")
                    self.connected = was_connected = True
                    log.info("stream %s connected", self.masked_url)
                    clock: tuple[float, datetime] | None = None  # (a frame's pts time, the wall time it maps to)
                    for frame in container.decode(video=0):
                        if self._stop.is_set():
                            break
                        self.received += 1
                        got_frame = True
                        if self.received == 1 and self.error and self.error.startswith("no frame from"):
                            log.warning("stream %s: first frame after all", self.masked_url)
                            self.error = None
                        backoff = self.backoff_s
                        if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
                            raise StreamUnavailable(
                                f"{self.masked_url} sends {frame.width}x{frame.height} frames, over the limit of "
                                f"{self.max_pixels} pixels per frame"
                            )
                        # Stamped by the stream's own clock where it has one: frames decoded in a burst
                        # (after a stall, at connection) keep the spacing they were filmed with, which
                        # is what the tracker's motion model needs. The first frame maps to the moment
                        # the connection was opened: FFmpeg reads up to analyzeduration (2 s) of the
                        # stream before av.open returns, and those frames were filmed then, not when
                        # they come out of the decoder all at once. No stamp is ever later than now
                        # (a camera replaying a buffer moves the mapping back), so stamps only grow,
                        # across reconnections too.
                        now = datetime.now(UTC)
                        if frame.time is None:
                            wall = opened_at if clock is None else now
                        else:
                            if clock is None or frame.time < clock[0]:
                                clock = (float(frame.time), opened_at if clock is None else now)
                            wall = clock[1] + timedelta(seconds=float(frame.time) - clock[0])
                            if wall > now:
                                clock, wall = (float(frame.time), now), now
                        wall = max(wall, last_stamp)
                        last_stamp = wall
                        # Sampled by those stamps, not by when frames leave the decoder: sampling a
                        # burst by the wall clock kept its first frame and dropped the rest, a
                        # hole of seconds at every connection that ended tracks in view.
                        t = wall.timestamp()
                        if step and t < next_sample - 1e-3:
                            continue
                        next_sample = next_sample + step if t < next_sample + step else t + step
                        self._put(StreamFrame(
                            index=self.delivered,
                            captured_at=wall,
                            pixels=upright_rgb(frame),
                            keyframe=bool(frame.key_frame),
                        ))
                    else:
                        self.last_error = "the server ended the stream"
                except StreamUnavailable as exc:
                    self.error = str(exc)
                    self._stop.set()
                except Exception as exc:  # noqa: BLE001 - a stream that fails is reconnected, never raised
                    self.last_error = self._scrub(f"reading failed: {_ffmpeg_message(exc)}")
                finally:
                    self.connected = False
                    with contextlib.suppress(Exception):  # a dead connection's close may fail too
                        container.close()
            if self._stop.is_set() or self._check_first_frame():
                break
            waiting = self._first_frame_wait()
            pause = backoff if waiting is None else max(0.0, min(backoff, waiting))
            log.warning("stream %s: %s; reconnecting in %.1f s", self.masked_url, self.last_error, pause)
            if self._stop.wait(pause) or self._check_first_frame():
                break
            if not got_frame:
                backoff = min(backoff * 2, self.backoff_max_s)
        with self._cond:
            self._cond.notify_all()
