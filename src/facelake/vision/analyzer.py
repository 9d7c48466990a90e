"""Image → faces: detection, alignment, embedding, quality and thumbnail in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from . import models
from .base import Aligner, Embedder, FaceDetector
from .options import AnalyzerOptions
from .recognisability import recognisability
from .types import AlignedFace, Detection, Face, FaceContext, RGBImage

__all__ = ["AnalyzerOptions", "FaceAnalyzer", "default_options", "face_context", "face_quality", "face_thumbnail"]

_SHARP_LAPLACIAN_VAR = 150.0
"""Laplacian variance of a crisp 150-px chip; blurrier chips score proportionally lower."""
_GOOD_FACE_PX = 80.0
"""Faces this wide or wider carry all the detail the 150-px chip can hold."""


def face_quality(det: Detection, chip: RGBImage) -> float:
    """A 0..1 score of how far an embedding of this face can be trusted.

    The product of three factors, each in 0..1: face size (tiny faces lose identity detail),
    sharpness of the aligned chip (variance of its Laplacian), and the detector's score
    (low scores mean occlusion, odd poses or non-faces). Used to keep low-quality faces out
    of automatic identification while still storing them.
    """
    size = min(1.0, det.width / _GOOD_FACE_PX)
    gray = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    sharp = min(1.0, float(cv2.Laplacian(gray, cv2.CV_64F).var()) / _SHARP_LAPLACIAN_VAR)
    return float(np.clip(size**0.5 * sharp**0.5 * det.score, 0.0, 1.0))


def face_thumbnail(image: RGBImage, det: Detection, side: int, quality: int) -> bytes:
    """A square JPEG of the face with some context, ``side`` px wide."""
    x, y, w, h = det.box
    half = max(w, h) * 0.75
    cx, cy = x + w / 2, y + h / 2
    scale = side / (2 * half)
    matrix = np.array([[scale, 0, -(cx - half) * scale], [0, scale, -(cy - half) * scale]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, matrix, (side, side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a face thumbnail failed")
    return buf.tobytes()


def face_context(image: RGBImage, det: Detection, max_side: int = 320, quality: int = 92) -> FaceContext:
    """The face with a face-width of room on every side, at most ``max_side`` px (for re-embedding)."""
    x, y, w, h = det.box
    half = max(w, h) * 1.5
    cx, cy = x + w / 2, y + h / 2
    side = int(min(max_side, round(2 * half)))
    scale = side / (2 * half)
    ox, oy = cx - half, cy - half
    matrix = np.array([[scale, 0, -ox * scale], [0, scale, -oy * scale]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, matrix, (side, side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a face context failed")
    box = ((x - ox) * scale, (y - oy) * scale, w * scale, h * scale)
    landmarks = ((np.asarray(det.landmarks, np.float64) - [ox, oy]) * scale).astype(np.float32)
    return FaceContext(buf.tobytes(), box, landmarks)


def default_options() -> AnalyzerOptions:
    """The options of ``Settings()``'s defaults, without reading the environment or a config file.

    ``FaceAnalyzer()`` runs these: the defaults live once, in ``Settings``.
    """
    return AnalyzerOptions.from_settings(Settings.model_construct())


class FaceAnalyzer:
    """Finds, aligns and embeds every face of an image; models load on first use.

    Each part is built by the registry (``models.DETECTORS``, ``models.EMBEDDERS``) from the
    names in the options; ``FaceAnalyzer()`` gives the default models. ``timings`` accumulates
    seconds spent per stage (detect, align, embed), for benchmarks.
    """

    def __init__(self, options: AnalyzerOptions | None = None) -> None:
        self.settings = options if options is not None else default_options()
        """The options the models were built from (workers compare them to decide whether to reload)."""
        models.choose("detector", self.settings.detector, models.DETECTORS)
        self._entry = models.choose("embedder", self.settings.embedder, models.EMBEDDERS)
        self.timings = {"detect": 0.0, "align": 0.0, "embed": 0.0}
        self._detector: FaceDetector | None = None
        self._aligner: Aligner | None = None
        self._embedder: Embedder | None = None

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = models.build_detector(self.settings)
        return self._detector

    @property
    def aligner(self) -> Aligner:
        """Each embedder gets the crop it was trained on: dlib's chips, or the ArcFace template."""
        if self._aligner is None:
            self._aligner = models.build_aligner(self.settings)
        return self._aligner

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = models.build_embedder(self.settings)
        return self._embedder

    def load(self) -> None:
        """Load every model now, so a broken install fails before the first image, not during it."""
        _ = (self.detector, self.aligner, self.embedder)

    @property
    def model_name(self) -> str:
        """The model name stored with this analyzer's embeddings (known before any model loads)."""
        return self._entry.model_name

    def detect(self, image: RGBImage) -> list[Detection]:
        start = time.perf_counter()
        found = self.detector.detect(image)
        self.timings["detect"] += time.perf_counter() - start
        return found

    def align(self, image: RGBImage, detections: list[Detection]) -> list[AlignedFace]:
        start = time.perf_counter()
        aligned = [self.aligner.align(image, d) for d in detections]
        self.timings["align"] += time.perf_counter() - start
        return aligned

    def embed(self, aligned: list[AlignedFace]) -> NDArray[np.float32]:
        start = time.perf_counter()
        vectors = self.embedder.embed_faces(aligned)
        self.timings["embed"] += time.perf_counter() - start
        return vectors

    def analyze(self, image: RGBImage) -> list[Face]:
        """Every face in ``image``, largest first."""
        return self.analyze_many([image])[0]

    def analyze_many(self, images: Sequence[RGBImage]) -> list[list[Face]]:
        """Every face of each image; the faces of all images go through the embedder together.

        Batching the embedder over images keeps its batches full on camera frames that hold
        one or two faces each, which is where the ONNX runtime gains over face-by-face calls.
        """
        found = [self.detect(image) for image in images]
        aligned = [self.align(image, dets) for image, dets in zip(images, found)]
        vectors = self.embed([a for per_image in aligned for a in per_image])
        s = self.settings
        qualities = [face_quality(det, al.chip) for dets, als in zip(found, aligned) for det, al in zip(dets, als)]
        scores = recognisability(self.model_name, vectors)
        out: list[list[Face]] = []
        at = 0
        for image, dets, als in zip(images, found, aligned):
            out.append([
                Face(
                    detection=det,
                    embedding=vectors[at + i],
                    quality=qualities[at + i],
                    thumb=face_thumbnail(image, det, s.thumb_px, s.thumb_quality),
                    model=self.model_name,
                    context=face_context(image, det) if s.keep_face_context else None,
                    recognisability=scores[at + i],
                )
                for i, (det, al) in enumerate(zip(dets, als))
            ])
            at += len(dets)
        return out
