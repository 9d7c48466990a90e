"""Typed values passed between the vision stages (frozen: a stage never edits its input)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

RGBImage = NDArray[np.uint8]
"""An upright H×W×3 RGB image."""


@dataclass(frozen=True)
class Detection:
    """A face found by a detector, in pixels of the upright image."""

    box: tuple[float, float, float, float]
    """``(x, y, w, h)`` of the face box."""
    score: float
    landmarks: NDArray[np.float32]
    """5×2: right eye, left eye (image left to right), nose tip, mouth corners."""

    @property
    def width(self) -> float:
        return self.box[2]


@dataclass(frozen=True)
class AlignedFace:
    """A face warped to the embedder's canonical chip."""

    chip: RGBImage
    landmarks: NDArray[np.float32]
    """The landmarks the warp was computed from, in pixels of the upright image."""
    method: str
    """How the landmark box was placed: ``hog`` (dlib's own detector agreed) or ``box``."""
    second: RGBImage | None = None
    """The second network's chip when two embedders are fused (each is cut its own way)."""


@dataclass(frozen=True)
class FaceContext:
    """The face with room around it (a JPEG), and where the face is in it.

    Kept so the face can be embedded again by another model without the source image:
    every model cuts its own chip from this, by the stored box and landmarks.
    """

    jpeg: bytes
    box: tuple[float, float, float, float]
    landmarks: NDArray[np.float32]


@dataclass(frozen=True)
class Face:
    """A detected, aligned and embedded face."""

    detection: Detection
    embedding: NDArray[np.float32]
    """L2-normalised embedding."""
    quality: float
    """0..1; how trustworthy the embedding is likely to be (size, sharpness, detector score)."""
    thumb: bytes
    """A small JPEG crop of the face, for people to look at."""
    model: str
    context: FaceContext | None = None
    recognisability: float | None = None
    """0..1; how far the embedding carries an identity at all (``recognisability``), ``None``
    when the model has no calibration. Below the gate (0.5) the face is never named or grouped."""
