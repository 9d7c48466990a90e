"""Face embeddings from aligned chips."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from .types import RGBImage


def l2_normalize(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Rows scaled to unit length, so cosine similarity is a dot product."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


class DlibEmbedder:
    """dlib's ResNet (128-D) over 150×150 chips cut by :class:`~.align.DlibAligner`.

    With ``flip=True`` each chip and its mirror image are embedded and averaged: faces are
    nearly symmetric, so the mirror is a second, independent look at the same face that
    averages out noise and blur (measured on the CCTV copies; see docs/accuracy.md).
    """

    def __init__(self, net: Any, model_name: str, flip: bool = True) -> None:
        self.net = net
        self.model_name = model_name
        self.flip = flip
        self.dim = 128

    def embed(self, chips: Sequence[RGBImage]) -> NDArray[np.float32]:
        """Embeddings of ``chips`` as an ``(n, 128)`` array of unit vectors."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = [np.ascontiguousarray(c) for c in chips]
        if self.flip:
            batch += [np.ascontiguousarray(c[:, ::-1]) for c in chips]
        raw = np.array(self.net.compute_face_descriptor(batch), dtype=np.float32)
        if self.flip:
            raw = raw[: len(chips)] + raw[len(chips) :]
        return l2_normalize(raw)
