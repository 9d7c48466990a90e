"""Face detection with RetinaFace (MobileNet-0.25), run through our own onnxruntime session.

Resize policy (why): RetinaFace's anchors cover faces of 16-512 px. Camera frames mix large
portraits and tiny faces far from the lens, and CCTV exports are often small, blurred
images. So an image whose long side is under ``detect_min_side`` is enlarged (up to
``max_upscale``) — a 24-px face in a 300-px image becomes a 50-px face the network sees
well — and one over ``detect_max_side`` is searched shrunk, with its small candidates
confirmed at full resolution (see :class:`RetinaFaceDetector`). The input is padded to a
multiple of 32 so the feature pyramid's levels line up exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .base import FaceDetector
from .types import Detection, RGBImage

_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE_CENTER, _VARIANCE_SIZE = 0.1, 0.2
_BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _anchors(height: int, width: int) -> NDArray[np.float32]:
    """Anchor centres and sizes in pixels, in the order the network emits its outputs."""
    rows = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centers = np.stack([(xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride], axis=1)
        for_level = np.repeat(centers, len(sizes), axis=0)
        wh = np.tile(np.array([[s, s] for s in sizes], dtype=np.float64), (len(centers), 1))
        rows.append(np.hstack([for_level, wh]))
    return np.vstack(rows).astype(np.float32)


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float) -> list[int]:
    """Greedy non-maximum suppression over ``x1, y1, x2, y2`` boxes; returns kept indices, best first.

    OpenCV's (the same greedy rule: a box goes when it overlaps a better kept one by more than
    ``iou``) rather than a numpy loop: a shrunk pass at the tiny-candidate threshold hands over
    500-5,000 boxes and keeps ~440, and the loop's numpy calls per kept box took 1.33 s of
    60 photos' 14 s of detection; OpenCV's takes 0.30 s, with the same detections on every
    photo of bench/throughput.py's corpus.
    """
    if len(boxes) == 0:
        return []
    xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
    # OpenCV's stubs ask for sequences; arrays go in without a copy to lists
    kept = cv2.dnn.NMSBoxes(xywh, np.asarray(scores, np.float64), 0.0, float(iou))  # type: ignore[arg-type]
    return np.asarray(kept, dtype=np.int64).ravel().tolist()


def detection_scale(height: int, width: int, min_side: int, max_side: int, max_upscale: float) -> float:
    """The factor an image is resized by before detection (see the module docstring)."""
    long_side = max(height, width)
    if long_side < min_side:
        return min(min_side / long_side, max_upscale)
    if long_side > max_side:
        return max_side / long_side
    return 1.0


@dataclass
class RetinaFaceDetector(FaceDetector):
    """Finds faces and their five landmarks in an RGB image.

    Large frames are searched in two steps (why: a full 1920×1080 pass costs ~135 ms on one
    core, two thirds of the whole pipeline): the frame shrunk to ``max_side`` is searched
    with a low threshold, which keeps the confident large faces and yields *candidates* for
    the small ones; every candidate under ``refine_below_px`` (in the shrunk frame) is then
    searched again in a crop of the full-resolution frame enlarged until the face is about
    48 px wide (at most ``refine_upscale`` times). Larger faces the shrunk pass is not sure of
    (score under ``confirm_above``) are re-checked the same way; a large one the crop does not
    confirm is still kept when the shrunk pass scored it above the threshold (a plain pass
    would keep it; issue #10 found such faces dropped), while a doubtful small one is not. On the benchmark corpus
    this finds nearly as many 24-47 px faces as a full-resolution pass in less than half
    the time, with far fewer false detections (docs/performance.md).
    """

    session: Any
    score_threshold: float = 0.6
    nms_iou: float = 0.4
    min_side: int = 640
    max_side: int = 1024
    max_upscale: float = 8.0
    min_face_px: float = 6.0
    refine_below_px: float = 40.0
    candidate_threshold: float = 0.02
    refine_upscale: float = 2.0
    refine_context: float = 3.0
    """A confirming crop is this many face widths wide (at least 96 px). Three widths gave the
    same recall as five on every corpus at 20-30 % less detection time (docs/performance.md)."""
    confirm_above: float = 0.95
    """Larger faces the shrunk pass scores below this are confirmed at full resolution too."""
    max_candidates: int = 24
    tiny_threshold: float = 0.005
    tiny_below_px: float = 13.0
    """Candidates narrower than ``tiny_below_px`` in the shrunk pass are confirmed from a score of
    ``tiny_threshold`` up. Why: they are under the network's smallest anchor (16 px) there, so a
    real face scores only 0.005-0.35 (a 16-20 px face of a 1080p frame is 8-11 px at 1024), while
    background that small scores 0.005 or more about once in eight frames."""
    keep_unconfirmed_large: bool = True
    zoom: float = 2.0
    """How much tiles with small candidates are enlarged (relative to the full-resolution image)."""
    zoom_below_px: float = 32.0
    """Faces narrower than this (full-resolution pixels) count as small; the enlarged tiles keep
    the faces under twice this width."""
    zoom_tile: int = 640
    crowd_score: float = 0.5
    crowd_faces: int = 6
    """This many small faces (scored at least ``crowd_score``) make a crowd: every tile is searched enlarged."""

    implausible_mouth: float = 0.86
    """A doubtful detection whose mouth corners sit lower than this share of its box's height is no face."""
    doubtful_below: float = 0.8
    plausible_from_px: float = 20.0

    def plausible(self, det: Detection) -> bool:
        """Whether a detection's landmarks could be a face's (only doubtful ones of ``plausible_from_px`` up are judged).

        Why: on composed CCTV frames two of the three false detections were textures whose five
        points the network crammed into the bottom of the box (mouth at 87-91 % of its height);
        of the 1,950 labelled faces it finds in the WIDER development crowds, those of 20 px or
        more have their mouth at 85 % of the box height at most (the even half's highest 0.838, the
        odd half's 0.850: a 151-px face scored 1.0, which is never judged). Faces under 20 px have
        landmarks too coarse to judge (one of 15 px reaches 0.879).
        """
        if det.score >= self.doubtful_below or det.width < self.plausible_from_px or det.box[3] <= 0:
            return True
        mouth = float(det.landmarks[3:5, 1].mean()) - det.box[1]
        return mouth / det.box[3] <= self.implausible_mouth

    def detect(self, image: RGBImage) -> list[Detection]:
        """Faces in ``image``, largest first, in its own pixel coordinates."""
        return [d for d in self._detect(image) if self.plausible(d)]

    def _detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        scale = detection_scale(height, width, self.min_side, self.max_side, self.max_upscale)
        if self.refine_below_px <= 0:
            return self._finish(self._run(image, scale, self.score_threshold))
        found = self._run(image, scale, min(self.candidate_threshold, self.tiny_threshold, self.score_threshold))
        found = [d for d in found if d.score >= self.candidate_threshold or d.width * scale < self.tiny_below_px]
        crowd = False
        if scale >= 1.0:
            kept = [d for d in found if d.score >= self.score_threshold]
        else:
            kept, crowd = self._confirm(image, found, scale)
        kept = self._finish(kept)  # neighbouring candidates often confirm one face: count it once
        if scale < self.zoom:
            # Many small faces (a crowd) were seen at less than the zoom's size: more of them,
            # too small for this pass, are likely around; every tile is searched enlarged. The
            # tiles give the faces under twice ``zoom_below_px``, this pass those over it (both
            # in between; the merge keeps one of each).
            small = [d for d in kept if d.width < self.zoom_below_px and d.score >= self.crowd_score]
            if crowd or len(small) >= self.crowd_faces:
                kept = [d for d in kept if d.width >= self.zoom_below_px]
                kept += [d for d in found if d.width >= self.zoom_below_px and d.score >= self.score_threshold]
                kept += self._zoom(image)
        return self._finish(kept)

    def _confirm(self, image: RGBImage, found: list[Detection], scale: float) -> tuple[list[Detection], bool]:
        """The faces of a shrunk pass: sure large ones kept, the others checked on full-resolution
        crops; and whether the crops confirmed a crowd (``crowd_faces`` or more)."""
        sure = [d for d in found if d.width * scale >= self.refine_below_px and d.score >= self.confirm_above]
        doubtful = [d for d in found if d not in sure and (d.width * scale < self.refine_below_px
                                                          or d.score > self.score_threshold)]
        kept = list(sure)
        seen: list[Detection] = []
        for cand in sorted(doubtful, key=lambda d: -d.score)[: self.max_candidates]:
            confirmed = self._refine(image, cand)
            seen += confirmed
            if not confirmed and self.keep_unconfirmed_large and cand.width * scale >= self.refine_below_px \
                    and cand.score >= self.score_threshold:
                # A large face the shrunk pass scored above the threshold stays, even if the crop
                # does not confirm it: a plain pass would have kept it (issue #10).
                confirmed = [cand]
            kept += confirmed
        # Neighbouring candidates are often the same face: count it once. Only faces small enough
        # for the zoom make a crowd: a group of six 100-px faces in a 12-MP photo sent the whole
        # photo through the network at 2x (4 s of one photo) for faces under 64 px it did not hold.
        small = [d for d in self._finish(seen) if d.width < self.zoom_below_px]
        return kept, len(small) >= self.crowd_faces

    def _zoom(self, image: RGBImage) -> list[Detection]:
        """Search the image in tiles enlarged ``zoom`` times; keep the faces small enough to need it.

        Why: RetinaFace's smallest anchors are 16 px; a face of 8-16 px is found only when the
        image is enlarged (on the crowd check, a second pass at 2x took AP on 12-20 px faces
        from 0.77 to 0.95). Tiles bound the memory of the enlarged pass; faces cut by a tile's
        edge are larger than what is kept from the tiles and come from the first pass.
        """
        height, width = image.shape[:2]
        tile, margin = self.zoom_tile, self.zoom_tile // 8
        out = []
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                x0, y0 = max(0, x - margin), max(0, y - margin)
                x1, y1 = min(width, x + tile + margin), min(height, y + tile + margin)
                offset = np.array([x0, y0], dtype=np.float32)
                out += [Detection((d.box[0] + x0, d.box[1] + y0, d.box[2], d.box[3]), d.score, d.landmarks + offset)
                        for d in self._run(image[y0:y1, x0:x1], self.zoom, self.score_threshold)
                        if d.width < 2 * self.zoom_below_px]
        return out

    def _refine(self, image: RGBImage, cand: Detection) -> list[Detection]:
        """Search a full-resolution crop around a small candidate, enlarged."""
        x, y, w, h = cand.box
        side = max(96.0, self.refine_context * max(w, h))
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(image.shape[1], cx + side / 2)), int(min(image.shape[0], cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        # Enlarge just enough for the face to be ~48 px, where RetinaFace is reliable.
        upscale = float(np.clip(48.0 / max(w, 1.0), 1.0, self.refine_upscale))
        found = self._run(image[y0:y1, x0:x1], upscale, self.score_threshold)
        offset = np.array([x0, y0], dtype=np.float32)
        # Only a face where the candidate was, of about its size, confirms it; anything else
        # in the crop (a shoulder seen up close) is not what was asked.
        return [
            Detection((d.box[0] + x0, d.box[1] + y0, d.box[2], d.box[3]), d.score, d.landmarks + offset)
            for d in found
            if 0.5 * w <= d.box[2] <= 2.0 * w
            and abs(d.box[0] + x0 + d.box[2] / 2 - cx) <= w and abs(d.box[1] + y0 + d.box[3] / 2 - cy) <= h
        ]

    def _finish(self, found: list[Detection]) -> list[Detection]:
        """Merge overlapping detections, drop tiny ones, largest first."""
        found = [d for d in found if d.width >= self.min_face_px]
        if len(found) > 1:
            boxes = np.array([[d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]] for d in found],
                             dtype=np.float32)
            found = [found[i] for i in nms(boxes, np.array([d.score for d in found], dtype=np.float32), self.nms_iou)]
        return sorted(found, key=lambda d: d.box[2] * d.box[3], reverse=True)

    def _run(self, image: RGBImage, scale: float, threshold: float) -> list[Detection]:
        """One pass of the network over ``image`` resized by ``scale``."""
        height, width = image.shape[:2]
        if scale != 1.0:
            # Bilinear reads every source pixel down to half size, and costs an eighth of
            # INTER_AREA at a 1080p frame's 1.875x (0.8 against 6.4 ms), same recall; area
            # averaging below half size, where bilinear would skip pixels.
            interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_LINEAR if scale >= 0.5 else cv2.INTER_AREA
            resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                                 interpolation=interp)
        else:
            resized = image
        rh, rw = resized.shape[:2]
        ph, pw = math.ceil(rh / 32) * 32, math.ceil(rw / 32) * 32
        if (ph, pw) != (rh, rw):
            # Pad with the mean colour, which becomes zero after mean subtraction.
            fill = tuple(float(v) for v in _BGR_MEAN[::-1])
            resized = cv2.copyMakeBorder(resized, 0, ph - rh, 0, pw - rw, cv2.BORDER_CONSTANT, value=fill)
        # blobFromImage swaps RGB to BGR first, then subtracts the mean in that (BGR) order.
        blob = cv2.dnn.blobFromImage(resized, 1.0, (pw, ph), tuple(float(v) for v in _BGR_MEAN), swapRB=True)
        loc, conf, landm = self.session.run(None, {"input": blob})
        return self._decode(loc[0], conf[0], landm[0], ph, pw, scale, threshold)

    def _decode(
        self,
        loc: NDArray[np.float32],
        conf: NDArray[np.float32],
        landm: NDArray[np.float32],
        height: int,
        width: int,
        scale: float,
        threshold: float,
    ) -> list[Detection]:
        scores = conf[:, 1]
        keep = scores > threshold
        if not keep.any():
            return []
        anchors = _anchors(height, width)[keep]
        loc, landm, scores = loc[keep], landm[keep], scores[keep]
        centers = anchors[:, :2] + loc[:, :2] * _VARIANCE_CENTER * anchors[:, 2:]
        sizes = anchors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE_SIZE)
        boxes = np.hstack([centers - sizes / 2, centers + sizes / 2])
        points = anchors[:, None, :2] + landm.reshape(-1, 5, 2) * _VARIANCE_CENTER * anchors[:, None, 2:]
        out = []
        for i in nms(boxes, scores, self.nms_iou):
            x1, y1, x2, y2 = (boxes[i] / scale).tolist()
            out.append(Detection(box=(x1, y1, x2 - x1, y2 - y1), score=float(scores[i]),
                                 landmarks=(points[i] / scale).astype(np.float32)))
        return out


def dlib_points_to_five(points: NDArray[np.float32]) -> NDArray[np.float32]:
    """dlib's 5 points (two corners of each eye, base of the nose) → eyes, nose, mouth corners.

    dlib's predictor has no mouth points; they are placed from the eye-nose geometry with
    average face proportions, so treat them as estimates (they only seed the landmark box
    and are stored for reference).
    """
    eyes = sorted([points[0:2].mean(axis=0), points[2:4].mean(axis=0)], key=lambda p: float(p[0]))
    left, right = eyes
    nose = points[4]
    mid = (left + right) / 2
    mouth = mid + 1.45 * (nose - mid)
    half = 0.42 * (right - left)
    return np.array([left, right, nose, mouth - half, mouth + half], dtype=np.float32)


@dataclass
class HogDetector(FaceDetector):
    """dlib's HOG detector, as face_recognition uses it; finds frontal faces of 80 px and more.

    ``upsample`` doubles the image that many times first (1 finds faces down to ~40 px, at
    four times the cost). Landmarks come from dlib's 5-point predictor.
    """

    hog: Any
    predictor: Any
    upsample: int = 1
    score_threshold: float = 0.0

    def detect(self, image: RGBImage) -> list[Detection]:
        import dlib

        rects, scores, _ = self.hog.run(image, self.upsample, self.score_threshold)
        out = []
        for rect, score in zip(rects, scores):
            shape = self.predictor(image, rect)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            box = (float(rect.left()), float(rect.top()), float(rect.width()), float(rect.height()))
            # HOG scores are margins (0 = threshold, ~2-3 = clear face): squash into 0..1.
            out.append(Detection(box, float(1 / (1 + np.exp(-2 * score))), dlib_points_to_five(pts)))
        del dlib
        out.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return out
