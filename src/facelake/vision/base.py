"""The three jobs a model does in facelake, as three small protocols.

Why protocols: a detector, an aligner and an embedder are each one method over numpy arrays,
and the analyzer needs nothing else from them. Every implementation names its protocol as a
base (so a reader sees the contract and a checker holds it to the signature); anything else
with the same method works too, e.g. a test's fake. The registry (``models.DETECTORS``,
``models.EMBEDDERS``) says which implementation a setting picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .types import AlignedFace, Detection, RGBImage


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces and their five landmarks."""

    def detect(self, image: RGBImage) -> list[Detection]:
        """Faces in ``image``, largest first, in its own pixel coordinates."""
        ...


@runtime_checkable
class Aligner(Protocol):
    """Cuts the chip an embedder was trained on from a detected face."""

    def align(self, image: RGBImage, det: Detection) -> AlignedFace:
        """``det``'s face in ``image``, warped to the embedder's canonical chip."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns aligned faces into unit vectors of one model.

    ``model_name`` is stored with every embedding and ``dim`` is its length: vectors of two
    models are never compared, so every row must say which model made it.
    """

    model_name: str
    dim: int

    def embed_faces(self, aligned: Sequence[AlignedFace]) -> NDArray[np.float32]:
        """An ``(n, dim)`` array of unit vectors, one row per face, in order."""
        ...
