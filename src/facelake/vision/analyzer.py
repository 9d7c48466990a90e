"""Image → faces: detection, alignment, embedding, quality and thumbnail in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from . import models
from .align import DlibAligner, FusionAligner, SimilarityAligner
from .detect import HogDetector, RetinaFaceDetector
from .embed import ArcFaceEmbedder, FusedEmbedder, ResnetEmbedder, dlib_describe, onnx_describe
from .mtcnn import MtcnnDetector, mtcnn_sessions
from .types import AlignedFace, Detection, Face, FaceContext, RGBImage

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


@dataclass(frozen=True)
class AnalyzerOptions:
    """The knobs of :class:`FaceAnalyzer` (filled from ``facelake.config.Settings``)."""

    detector: str = "retinaface"
    det_threshold: float = 0.6
    nms_iou: float = 0.4
    detect_min_side: int = 640
    detect_max_side: int = 1024
    detect_refine_below_px: int = 40
    detect_candidate_threshold: float = 0.02
    max_upscale: float = 8.0
    min_face_px: int = 6
    embedder: str = "fusion"
    embed_backend: str = "onnx-int8"
    embed_flip: bool = True
    embed_lowres_px: int = 20
    thumb_px: int = 96
    thumb_quality: int = 85
    keep_context: bool = True


Detector = RetinaFaceDetector | HogDetector | MtcnnDetector
DETECTORS = ("retinaface", "hog", "mtcnn")
EMBEDDERS = ("fusion", "dlib", "mobilefacenet")
Aligner = DlibAligner | SimilarityAligner | FusionAligner
Embedder = ResnetEmbedder | ArcFaceEmbedder | FusedEmbedder


class FaceAnalyzer:
    """Finds, aligns and embeds every face of an image; models load on first use.

    ``timings`` accumulates seconds spent per stage (detect, align, embed), for benchmarks.
    """

    def __init__(self, options: AnalyzerOptions | None = None) -> None:
        self.settings = options or AnalyzerOptions()
        if self.settings.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.settings.detector!r}")
        if self.settings.embedder not in EMBEDDERS:
            raise ValueError(f"embedder must be one of {EMBEDDERS}, got {self.settings.embedder!r}")
        self.timings = {"detect": 0.0, "align": 0.0, "embed": 0.0}
        self._detector: Detector | None = None
        self._aligner: Aligner | None = None
        self._embedder: Embedder | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            s = self.settings
            if s.detector == "hog":
                self._detector = HogDetector(models.dlib_hog_detector(), models.dlib_shape_predictor())
                return self._detector
            if s.detector == "mtcnn":
                self._detector = MtcnnDetector(mtcnn_sessions())
                return self._detector
            self._detector = RetinaFaceDetector(
                session=models.retinaface_session(),
                score_threshold=s.det_threshold,
                nms_iou=s.nms_iou,
                min_side=s.detect_min_side,
                max_side=s.detect_max_side,
                refine_below_px=s.detect_refine_below_px,
                candidate_threshold=s.detect_candidate_threshold,
                max_upscale=s.max_upscale,
                min_face_px=s.min_face_px,
            )
        return self._detector

    @property
    def aligner(self) -> Aligner:
        """Each embedder gets the crop it was trained on: dlib's chips, or the ArcFace template."""
        if self._aligner is None:
            if self.settings.embedder == "mobilefacenet":
                self._aligner = SimilarityAligner(112)
            elif self.settings.embedder == "fusion":
                self._aligner = FusionAligner(
                    DlibAligner(models.dlib_hog_detector(), models.dlib_shape_predictor()), SimilarityAligner(112))
            else:
                self._aligner = DlibAligner(models.dlib_hog_detector(), models.dlib_shape_predictor())
        return self._aligner

    def _mobilefacenet(self, lowres_px: int) -> ArcFaceEmbedder:
        return ArcFaceEmbedder(models.mobilefacenet_session(), models.MOBILEFACENET, 192,
                               flip=self.settings.embed_flip, lowres_px=lowres_px)

    def _dlib(self) -> ResnetEmbedder:
        backend = self.settings.embed_backend
        if backend == "dlib":
            describe = dlib_describe(models.dlib_resnet())
        else:
            describe = onnx_describe(models.dlib_resnet_int8() if backend == "onnx-int8" else models.dlib_resnet_onnx())
        return ResnetEmbedder(describe, models.DLIB_RESNET,
                              flip=self.settings.embed_flip, lowres_px=self.settings.embed_lowres_px)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self.settings.embedder == "mobilefacenet":
                self._embedder = self._mobilefacenet(self.settings.embed_lowres_px)
            elif self.settings.embedder == "fusion":
                self._embedder = FusedEmbedder(self._dlib(), self._mobilefacenet(0), models.FUSION,
                                               models.FUSION_DLIB_WEIGHT)
            else:
                self._embedder = self._dlib()
        return self._embedder

    def load(self) -> None:
        """Load every model now, so a broken install fails before the first image, not during it."""
        _ = (self.detector, self.aligner, self.embedder)

    @property
    def model_name(self) -> str:
        return self.embedder.model_name

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
        out: list[list[Face]] = []
        at = 0
        for image, dets, als in zip(images, found, aligned):
            out.append([
                Face(
                    detection=det,
                    embedding=vectors[at + i],
                    quality=face_quality(det, al.chip),
                    thumb=face_thumbnail(image, det, s.thumb_px, s.thumb_quality),
                    model=self.model_name,
                    context=face_context(image, det) if s.keep_context else None,
                )
                for i, (det, al) in enumerate(zip(dets, als))
            ])
            at += len(dets)
        return out
