"""Face embeddings from aligned chips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .base import Embedder
from .types import AlignedFace, RGBImage


def l2_normalize(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Rows scaled to unit length, so cosine similarity is a dot product."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def low_resolution_view(chip: RGBImage, face_px: int) -> RGBImage:
    """``chip`` as it would look if the face had been ``face_px`` wide in the camera frame.

    Shrunk, enlarged back, and blurred by half a source pixel, as a camera's optics and
    compression blur a face that small.
    """
    size = chip.shape[0]
    small = cv2.resize(chip, (face_px, face_px), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.asarray(cv2.GaussianBlur(big, (0, 0), 0.5 * size / face_px), dtype=np.uint8)


Describe = Callable[[list[RGBImage]], NDArray[np.float32]]
"""Raw (unnormalised) descriptors of a list of 150×150 chips, one row each."""


def dlib_describe(net: Any) -> Describe:
    """Descriptors from dlib's own ResNet (the reference implementation; ~100 ms per chip)."""
    return lambda chips: np.array(net.compute_face_descriptor(chips), dtype=np.float32)


def onnx_describe(session: Any, batch: int = 32) -> Describe:
    """Descriptors from the ONNX port of the same ResNet (see ``dlib_onnx``; ~5 ms per chip)."""

    def describe(chips: list[RGBImage]) -> NDArray[np.float32]:
        out = [
            session.run(None, {"chips": np.stack(chips[i : i + batch]).astype(np.float32)})[0]
            for i in range(0, len(chips), batch)
        ]
        return np.concatenate(out).astype(np.float32)

    return describe


class MultiViewEmbedder(Embedder):
    """Embeds each chip from several views and averages them; subclasses say how a batch is described.

    Views: the chip; with ``lowres_px``, the chip as it would look that many pixels wide; with
    ``flip``, the mirror of each. Each view's embedding is normalised before the average, so
    no view outweighs another.
    """

    dim: int
    flip: bool
    lowres_px: int

    def describe(self, chips: list[RGBImage]) -> NDArray[np.float32]:
        raise NotImplementedError

    def views(self, chip: RGBImage) -> list[RGBImage]:
        """The images whose embeddings are averaged into the face's embedding."""
        views = [chip]
        if self.lowres_px:
            views.append(low_resolution_view(chip, self.lowres_px))
        if self.flip:
            views += [v[:, ::-1] for v in views]
        return [np.ascontiguousarray(v) for v in views]

    def embed_faces(self, aligned: Sequence[AlignedFace]) -> NDArray[np.float32]:
        """Embeddings of aligned faces (their chips) as an ``(n, dim)`` array of unit vectors."""
        return self.embed([a.chip for a in aligned])

    def embed(self, chips: Sequence[RGBImage]) -> NDArray[np.float32]:
        """Embeddings of ``chips`` as an ``(n, dim)`` array of unit vectors."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        per_chip = [self.views(c) for c in chips]
        raw = l2_normalize(self.describe([v for views in per_chip for v in views]))
        n = len(per_chip[0])
        return l2_normalize(raw.reshape(len(chips), n, -1).sum(axis=1))


class ResnetEmbedder(MultiViewEmbedder):
    """dlib's ResNet (128-D) over 150×150 chips cut by :class:`~.align.DlibAligner`.

    Each face is embedded from several views whose embeddings are averaged:

    - with ``flip``, the chip's mirror image: faces are nearly symmetric, so the mirror is
      a second look at the same face that averages out noise and alignment error;
    - with ``lowres_px``, the chip as it would look ``lowres_px`` wide. A sharp enrollment
      photo and a tiny, blurred camera face of the same person otherwise embed far apart
      (every blurred face drifts towards the same "blurred face" region); giving every
      embedding a low-resolution component puts both in the same place. Measured on CCTV
      copies with 24-px faces matched against clean photos: rank-1 identification from
      0.71 to 0.87 and balanced accuracy +2 to +6 points, clean accuracy unchanged within
      0.7 points (docs/accuracy.md).
    """

    def __init__(self, describe: Describe, model_name: str, flip: bool = True, lowres_px: int = 20) -> None:
        self._describe = describe
        self.model_name = model_name
        self.flip = flip
        self.lowres_px = lowres_px
        self.dim = 128

    def describe(self, chips: list[RGBImage]) -> NDArray[np.float32]:
        return self._describe(chips)


class ArcFaceEmbedder(MultiViewEmbedder):
    """An ArcFace-style network (112×112 RGB chips, ``(x − 127.5) / 128``) such as MobileFaceNet.

    Each face is embedded from the chip and, with ``flip``, its mirror image, averaged; with
    ``lowres_px`` also from the chip as it would look that many pixels wide (see
    :class:`ResnetEmbedder` for why a low-resolution view helps tiny camera faces).

    Chips go through in small batches: MobileFaceNet's many elementwise layers are bound by
    memory, and one core ran 7.8-8.3 ms a chip in batches of 1-4 against 15 ms in batches of
    16-32 (dlib's ResNet, bound by its convolutions, is fastest from 8 up).
    """

    def __init__(self, session: Any, model_name: str, dim: int, flip: bool = True, lowres_px: int = 0,
                 batch: int = 4) -> None:
        self.session = session
        self.model_name = model_name
        self.dim = dim
        self.flip = flip
        self.lowres_px = lowres_px
        self.batch = batch
        self.input_name = session.get_inputs()[0].name

    def describe(self, chips: list[RGBImage]) -> NDArray[np.float32]:
        out = []
        for i in range(0, len(chips), self.batch):
            x = (np.stack(chips[i : i + self.batch]).astype(np.float32) - 127.5) / 128.0
            out.append(self.session.run(None, {self.input_name: x})[0])
        return np.concatenate(out).astype(np.float32)


class FusedEmbedder(Embedder):
    """Two embedders as one model: each face's two unit vectors, weighted and concatenated.

    Why: dlib's ResNet and MobileFaceNet err on different faces (dlib is steadier on tiny
    camera faces, MobileFaceNet separates sharp faces far better), so evidence from both
    names more faces at the same false-accept rate and fewer strangers (docs/accuracy.md).
    The vector is ``[√w · a, √(1 − w) · b]``: unit length, and the cosine of two fused
    vectors is ``w · cos_a + (1 − w) · cos_b``, so search, naming and clustering use it as
    any other embedding.
    """

    def __init__(self, first: MultiViewEmbedder, second: MultiViewEmbedder, model_name: str,
                 first_weight: float) -> None:
        if not 0.0 < first_weight < 1.0:
            raise ValueError(f"first_weight must be in (0, 1), got {first_weight}")
        self.first, self.second = first, second
        self.model_name = model_name
        self.dim = first.dim + second.dim
        self.first_weight = first_weight

    def embed_faces(self, aligned: Sequence[AlignedFace]) -> NDArray[np.float32]:
        if not aligned:
            return np.zeros((0, self.dim), dtype=np.float32)
        seconds = [f.second for f in aligned if f.second is not None]
        if len(seconds) != len(aligned):
            raise ValueError("a fused embedder needs both chips of every face (FusionAligner)")
        a = self.first.embed([f.chip for f in aligned])
        b = self.second.embed(seconds)
        w = self.first_weight
        return np.hstack([np.sqrt(w) * a, np.sqrt(1.0 - w) * b]).astype(np.float32)
