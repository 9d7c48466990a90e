"""Real video clips for the video tests, encoded with PyAV from the sample face photos.

Each clip is a textured background with face photos pasted as patches moving along straight
paths, so what the tests assert (how many people, when they cross, where the cut is) is known by
construction, while the decoder, the detector and the embedder see real encoded faces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from facelake.samples import sample_photos


def face_patch(name: str, width: int) -> NDArray[np.uint8]:
    """A head-and-shoulders patch of a sample photo, ``width`` px wide (the photo's face region
    with a margin, so the detector sees a whole face)."""
    img = Image.open(sample_photos() / name).convert("RGB")
    w, h = img.size
    crops = {  # face region (fractions of the photo) found once by eye; generous margins
        "obama.jpg": (0.25, 0.05, 0.75, 0.75),
        "biden.jpg": (0.2, 0.0, 0.8, 0.8),
        "obama2.jpg": (0.2, 0.0, 0.8, 0.9),
        "obama3.jpg": (0.15, 0.0, 0.85, 0.9),
    }
    x0, y0, x1, y1 = crops.get(name, (0.0, 0.0, 1.0, 1.0))
    img = img.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))
    height = round(width * img.size[1] / img.size[0])
    return np.asarray(img.resize((width, height), Image.LANCZOS))


def background(width: int, height: int, seed: int = 0) -> NDArray[np.uint8]:
    """A still, textured scene (smooth blobs: compressible, but not flat)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((width, height), Image.BILINEAR))


@dataclass(frozen=True)
class Actor:
    """A patch moving from ``start`` to ``end`` (top-left corner, px) between ``t0`` and ``t1`` s."""

    patch: NDArray[np.uint8]
    start: tuple[float, float]
    end: tuple[float, float]
    t0: float = 0.0
    t1: float = 1e9

    def position(self, t: float, duration: float) -> tuple[int, int] | None:
        t1 = min(self.t1, duration)
        if not self.t0 <= t <= t1:
            return None
        a = (t - self.t0) / max(t1 - self.t0, 1e-9)
        return (round(self.start[0] + a * (self.end[0] - self.start[0])),
                round(self.start[1] + a * (self.end[1] - self.start[1])))


def paste(canvas: NDArray[np.uint8], patch: NDArray[np.uint8], x: int, y: int) -> None:
    h, w = patch.shape[:2]
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def render(
    width: int, height: int, duration: float, fps: int, actors: Sequence[Actor],
    scene: Callable[[float], NDArray[np.uint8]] | None = None,
) -> list[NDArray[np.uint8]]:
    """The frames of a clip: ``scene(t)`` (default one still background) with the actors on it."""
    still = background(width, height)
    frames = []
    for i in range(round(duration * fps)):
        t = i / fps
        canvas = (scene(t) if scene else still).copy()
        for actor in actors:
            pos = actor.position(t, duration)
            if pos is not None:
                paste(canvas, actor.patch, *pos)
        frames.append(canvas)
    return frames


def encode(
    path: Path, frames: Sequence[NDArray[np.uint8]], fps: int, codec: str = "libx264",
    gop: int = 12, faststart: bool = False, creation_time: str | None = None,
) -> Path:
    """Write ``frames`` to ``path`` (container from the suffix) with PyAV."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "20", "bf": "0"}
        else:
            stream.codec_context.bit_rate = 4_000_000
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def encode_audio(path: Path, codec: str = "aac", seconds: float = 1.0, rate: int = 44100) -> Path:
    """An audio-only file (a tone), for the 'no video stream' error."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        samples_per_frame = stream.codec_context.frame_size or 1152
        fmt = stream.codec_context.format.name
        n = int(seconds * rate)
        t = np.arange(n) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, n - samples_per_frame, samples_per_frame):
            chunk = tone[i:i + samples_per_frame]
            if fmt.startswith("s16"):
                data = (chunk * 32767).astype(np.int16)[None, :]
            else:
                data = chunk[None, :]
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
