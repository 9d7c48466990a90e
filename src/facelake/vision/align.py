"""Alignment of a detected face to the dlib ResNet's canonical 150×150 chip.

Why not warp RetinaFace's own five landmarks to a template: the dlib ResNet was trained on
chips cut by dlib's 5-point shape predictor from boxes placed by dlib's HOG detector, and it
is sensitive to that exact geometry (measured: balanced accuracy falls from 99.3 % to
95-97 % on clean photos with other alignments). So RetinaFace only *finds* the face — it
finds small, blurred and turned faces HOG misses — and the chip is cut the dlib way:

1. crop a square around the RetinaFace box with a wide margin and rescale it so the face is
   about 150 px wide, the size HOG's 80-px window handles best;
2. run HOG on that crop; when it agrees with RetinaFace, its box seeds the shape predictor
   exactly as in training;
3. otherwise (blurred, dark, tiny or turned faces) a HOG-style box is derived from
   RetinaFace's landmarks with the mapping fitted on faces where both agree;
4. the 5-point predictor places the landmarks and ``dlib.get_face_chip`` cuts the chip.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .base import Aligner
from .types import AlignedFace, Detection, RGBImage

CHIP_SIZE = 150
CHIP_PADDING = 0.25
_TARGET_FACE_PX = 150.0
_CROP_MARGIN = 0.5
"""Crop side = face width × (1 + 2 × margin): room for the chip's padding and HOG's window.

A wider margin (1.0) costs 4× the HOG time (42 vs 10 ms per face) for no measured accuracy gain.
"""

# HOG-style box from RetinaFace landmarks, relative to the inter-ocular/eye-mouth scale
# (medians over the 89 dev faces where HOG and RetinaFace agree).
_BOX_FROM_LANDMARKS = {"cx": -0.01, "cy": 0.045, "size": 1.20}


def _landmark_frame(points: NDArray[np.float32]) -> tuple[NDArray[np.float64], float]:
    """Centre and scale of a face from its 5 landmarks (robust to in-plane rotation)."""
    eyes = points[:2].mean(axis=0)
    mouth = points[3:5].mean(axis=0)
    center = (eyes + mouth) / 2.0
    scale = float(np.linalg.norm(mouth - eyes) + np.linalg.norm(points[0] - points[1])) / 2.0
    return center.astype(np.float64), max(scale, 1.0)


def hog_style_box(points: NDArray[np.float32]) -> tuple[float, float, float, float]:
    """A square ``(x, y, w, h)`` box where dlib's HOG detector would put this face."""
    center, scale = _landmark_frame(points)
    size = _BOX_FROM_LANDMARKS["size"] * scale * 2.0
    cx = center[0] + _BOX_FROM_LANDMARKS["cx"] * scale
    cy = center[1] + _BOX_FROM_LANDMARKS["cy"] * scale
    return (cx - size / 2, cy - size / 2, size, size)


def face_crop(image: RGBImage, det: Detection) -> tuple[RGBImage, float, NDArray[np.float64]]:
    """A square crop around ``det`` rescaled so the face is ~150 px wide.

    Returns the crop, the scale factor, and the crop's top-left corner in image pixels.
    Areas outside the image are filled with black, as dlib's own chip extraction does.
    """
    x, y, w, h = det.box
    face = max(w, h, 1.0)
    side = max(2, int(np.ceil(face * (1 + 2 * _CROP_MARGIN))))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    height, width = image.shape[:2]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + side, width), min(y0 + side, height)
    region: NDArray[np.uint8]
    if cx0 == x0 and cy0 == y0 and cx1 == x0 + side and cy1 == y0 + side:
        region = image[cy0:cy1, cx0:cx1]  # inside the image: resize the view, no copy of a large face
    elif cx1 > cx0 and cy1 > cy0:
        region = np.asarray(cv2.copyMakeBorder(image[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0,
                                               x0 + side - cx1, cv2.BORDER_CONSTANT, value=(0, 0, 0)), np.uint8)
    else:
        region = np.zeros((side, side, 3), dtype=np.uint8)
    out = max(2, round(side * _TARGET_FACE_PX / face))
    factor = out / side
    interp = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    crop = cv2.resize(region, (out, out), interpolation=interp)
    return np.asarray(crop, dtype=np.uint8), factor, np.array([x0, y0], dtype=np.float64)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


class DlibAligner(Aligner):
    """Cuts dlib-style chips (see the module docstring) with dlib's HOG and shape predictor."""

    def __init__(self, hog: Any, predictor: Any, min_hog_iou: float = 0.4) -> None:
        self.hog = hog
        self.predictor = predictor
        self.min_hog_iou = min_hog_iou

    def align(self, image: RGBImage, det: Detection) -> AlignedFace:
        import dlib

        crop, factor, origin = face_crop(image, det)
        local_points = (det.landmarks - origin) * factor
        guess = hog_style_box(local_points.astype(np.float32))
        method = "box"
        box = guess
        best = 0.0
        for rect in self.hog(crop, 0):
            cand = (float(rect.left()), float(rect.top()), float(rect.width()), float(rect.height()))
            overlap = _iou(cand, guess)
            if overlap > best and overlap >= self.min_hog_iou:
                best, box, method = overlap, cand, "hog"
        x, y, w, h = box
        rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = self.predictor(crop, rect)
        chip = dlib.get_face_chip(crop, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        landmarks = (pts / factor + origin).astype(np.float32)
        return AlignedFace(chip=np.ascontiguousarray(chip), landmarks=landmarks, method=method)


ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
"""Where ArcFace-style embedders expect the eyes, nose tip and mouth corners in a 112×112 chip."""


def similarity_transform(src: NDArray[np.floating[Any]], dst: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """The 2×3 rotation + uniform scale + translation that best maps ``src`` onto ``dst`` (least squares).

    Umeyama's closed form: no RANSAC, since five landmarks from one detector carry no
    outliers to reject, and every point should pull on the fit (as insightface's norm_crop).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign) / (s**2).sum(axis=1).mean())
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


class SimilarityAligner(Aligner):
    """Warps a face so its five landmarks land on the ArcFace template (112×112 chips).

    ArcFace-style networks are trained on exactly this crop; no HOG or 68-point pass is needed.
    """

    def __init__(self, size: int = 112) -> None:
        self.size = size
        self.template = ARCFACE_TEMPLATE * (size / 112.0)

    def align(self, image: RGBImage, det: Detection) -> AlignedFace:
        points = np.asarray(det.landmarks, dtype=np.float64)
        matrix = similarity_transform(points, self.template)
        scale = float(np.hypot(*matrix[:, 0]))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        chip = cv2.warpAffine(image, matrix, (self.size, self.size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
        return AlignedFace(np.ascontiguousarray(chip, dtype=np.uint8), np.asarray(det.landmarks, np.float32),
                           "similarity")


class FusionAligner(Aligner):
    """Both chips of a fused embedder: dlib's (for its ResNet and for quality) and the ArcFace one."""

    def __init__(self, first: DlibAligner, second: SimilarityAligner) -> None:
        self.first, self.second = first, second

    def align(self, image: RGBImage, det: Detection) -> AlignedFace:
        main = self.first.align(image, det)
        return replace(main, second=self.second.align(image, det).chip)
