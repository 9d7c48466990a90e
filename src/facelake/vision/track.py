"""Faces followed across the analysed frames of one video or stream: the unit of recognition.

One person walking past a camera for ten seconds is fifty analysed frames; named frame by frame
that is fifty decisions, fifty alerts and a cluster of fifty. A :class:`Track` collects them: its
quality-weighted template embedding is named once, and its few best faces become its sightings.

Association (per analysed frame, between open tracks and the frame's faces):

- *where*: each track predicts its box at time ``t`` with a constant velocity (smoothed from its
  last moves); overlap is the IoU of that prediction with a face's box, and distance is the
  distance of their centres in face widths;
- *who*: cosine similarity of the face's embedding to the track (the better of its template and
  its latest face, so a slow head turn keeps matching);
- *gates*: a pair may be assigned only with (a) overlap of at least ``min_iou`` and an embedding
  that does not contradict it (similarity at least ``min_similarity``), or (b) a strong embedding
  match (at least ``strong_similarity``) within ``max_distance`` face widths of the prediction,
  which carries a track through a missed detection or an occlusion. Two people crossing stay two
  tracks because at the crossing, where boxes overlap, the other person's embedding contradicts;
- *cost*: ``1 - (iou_weight * overlap + (1 - iou_weight) * similarity)``, solved optimally over
  the allowed pairs with :func:`scipy.optimize.linear_sum_assignment` (Hungarian; a frame has a
  handful of faces, so this costs microseconds).

Similarities are on the embedder's own scale; the defaults suit facelake's default ``fusion``
embedder (on the sample photos: one person across frames 0.93-0.98, Obama against Biden
0.74-0.78, calibrated same-person threshold 0.858). For another model pass thresholds derived
from its calibration (``identities/calibration.py``): ``strong_similarity`` = its ``match``
threshold, ``min_similarity`` a little above its typical different-person score.

Kept trackers weighed (2026). ``supervision`` 0.31.2 no longer ships ByteTrack (it moved to
Roboflow's separate ``trackers`` package); 0.26.1 still does, and pulls in matplotlib, PyYAML,
requests, tqdm and pyDeprecate. ``norfair`` 2.3.0 pins ``numpy<2`` (a pip dry run downgrades
facelake's numpy 2.4 to 1.26.4) and adds filterpy, rich and matplotlib. ByteTrack associates by
IoU and detection score only, no appearance, and counts time in frames, which fits variable
sampling and motion gating poorly; norfair can take an embedding distance but brings a Kalman
filter that 5-fps face tracking does not need. ``bench/tracker_compare.py`` fed both the same
real detections (RetinaFace + fusion embedder, 5 fps, 4-s 640x360 H.264 clips of the sample
photos; a track is impure when it holds faces of two people):

==========================  ===========================  ===========================
clip                         this module                  ByteTrack (supervision 0.26.1)
==========================  ===========================  ===========================
one person passing           1 track, 0 impure            1 track, 0 impure
two crossing, same height    2 tracks, 0 impure           2 tracks, 1 impure (a swap)
two crossing, offset         2 tracks, 0 impure           2 tracks, 0 impure
two meet and turn back       2 tracks, 0 impure           2 tracks, 2 impure (swapped)
cost per update              0.02-0.05 ms                 0.26-0.30 ms
==========================  ===========================  ===========================

So the small assigner here: no new dependency, appearance in the gate, seconds not frames.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from .recognisability import GATE, recognisable
from .types import Face

Box = tuple[float, float, float, float]

_FORBIDDEN = 1e6


class TrackFace(NamedTuple):
    """One of a track's best faces, with when and where in the video it was seen."""

    face: Face
    t: float
    frame_index: int


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One person's face followed across frames (mutable while open; final once returned)."""

    track_id: int
    """Local to the :class:`Tracker` (1, 2, ...); the store gives tracks their lasting ids."""
    start_t: float
    end_t: float
    """Time the face was last seen (not when the track was closed)."""
    frames: int = 0
    """Frames the face was seen in."""
    unseen_s: float = 0.0
    """Observed time since the face was last seen: frames analysed without it, not gaps in which
    nothing was analysed (see :class:`Tracker`)."""
    best: list[TrackFace] = field(default_factory=list)
    """Up to ``top_k`` faces, best quality first."""
    area_min: float = float("inf")
    area_max: float = 0.0
    area_sum: float = 0.0
    box: Box = (0.0, 0.0, 0.0, 0.0)
    """The latest box."""
    velocity: tuple[float, float] = (0.0, 0.0)
    """Smoothed motion of the box centre, px/s."""
    _weighted: NDArray[np.float64] | None = field(default=None, repr=False)
    _weight: float = field(default=0.0, repr=False)
    _last_embedding: NDArray[np.float32] | None = field(default=None, repr=False)

    @property
    def template(self) -> NDArray[np.float32]:
        """Quality-weighted mean of the track's embeddings, L2-normalised: what the track is named
        by. Weighting by quality lets the sharp frontal frames outvote blurred or turned ones,
        which single frames cannot do."""
        if self._weighted is None:
            raise ValueError(f"track {self.track_id} has no face")
        norm = float(np.linalg.norm(self._weighted))
        return (self._weighted / (norm or 1.0)).astype(np.float32)

    @property
    def area_mean(self) -> float:
        return self.area_sum / self.frames if self.frames else 0.0

    @property
    def duration_s(self) -> float:
        return self.end_t - self.start_t

    def predict(self, t: float, horizon_s: float = 1.0) -> Box:
        """The box expected at ``t``, moving at the smoothed velocity for at most ``horizon_s``
        (beyond that a straight-line guess is worse than the last known place)."""
        dt = min(max(t - self.end_t, 0.0), horizon_s)
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)

    def similarity(self, embedding: NDArray[np.float32]) -> float:
        """Cosine similarity of a face to the track: the better of its template's and its latest face's."""
        best = float(self.template @ embedding)
        if self._last_embedding is not None:
            best = max(best, float(self._last_embedding @ embedding))
        return best

    def add(self, face: Face, t: float, frame_index: int, top_k: int, smoothing: float) -> None:
        x, y, w, h = face.detection.box
        if self.frames:
            dt = t - self.end_t
            if dt > 0:
                ox, oy, ow, oh = self.box
                vx = (x + w / 2 - ox - ow / 2) / dt
                vy = (y + h / 2 - oy - oh / 2) / dt
                a = smoothing if self.frames > 1 else 1.0
                self.velocity = (a * vx + (1 - a) * self.velocity[0], a * vy + (1 - a) * self.velocity[1])
        self.box = (float(x), float(y), float(w), float(h))
        self.end_t = t
        self.unseen_s = 0.0
        self.frames += 1
        area = float(w * h)
        self.area_min, self.area_max = min(self.area_min, area), max(self.area_max, area)
        self.area_sum += area
        # A face below the recognisability gate keeps the track going but all but drops out of its template.
        weight = max(float(face.quality), 1e-3) * (1.0 if recognisable(face.recognisability, GATE) else 1e-3)
        emb = face.embedding.astype(np.float64)
        self._weighted = emb * weight if self._weighted is None else self._weighted + emb * weight
        self._weight += weight
        self._last_embedding = face.embedding
        self.best.append(TrackFace(face, t, frame_index))
        self.best.sort(key=lambda item: -item.face.quality)
        del self.best[top_k:]


class Tracker:
    """Associates each analysed frame's faces with open tracks; returns tracks as they end.

    A track ends when its face has not been seen for more than ``max_age_s`` seconds of
    observation (checked at each update, so time is the video's, not the wall clock's; a gap
    between two analysed frames counts at most ``max_step_s``, so frames a live stream dropped
    while the models caught up do not end a track), or at a scene cut, where every open track
    ends before the new frame's faces start tracks of their own.
    """

    def __init__(
        self,
        max_age_s: float = 2.0,
        *,
        max_step_s: float = 1.0,
        iou_weight: float = 0.5,
        min_iou: float = 0.2,
        min_similarity: float = 0.8,
        strong_similarity: float = 0.86,
        max_distance: float = 2.5,
        max_area_ratio: float = 4.0,
        top_k: int = 3,
        velocity_smoothing: float = 0.5,
    ) -> None:
        for name, value, lo, hi in (
            ("max_age_s", max_age_s, 0.0, 3600.0), ("max_step_s", max_step_s, 0.0, 3600.0),
            ("iou_weight", iou_weight, 0.0, 1.0),
            ("min_iou", min_iou, 0.0, 1.0), ("min_similarity", min_similarity, -1.0, 1.0),
            ("strong_similarity", strong_similarity, -1.0, 1.0), ("max_distance", max_distance, 0.0, 100.0),
            ("velocity_smoothing", velocity_smoothing, 0.0, 1.0),
        ):
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k!r}")
        if max_area_ratio < 1:
            raise ValueError(f"max_area_ratio must be at least 1, got {max_area_ratio!r}")
        self.max_age_s = max_age_s
        self.max_step_s = max_step_s
        self._last_t: float | None = None
        self.iou_weight = iou_weight
        self.min_iou = min_iou
        self.min_similarity = min_similarity
        self.strong_similarity = strong_similarity
        self.max_distance = max_distance
        self.max_area_ratio = max_area_ratio
        self.top_k = top_k
        self.velocity_smoothing = velocity_smoothing
        self.open: list[Track] = []
        """Tracks still being followed."""
        self._ids = itertools.count(1)
        self._frame = 0

    def cost_matrix(self, t: float, faces: Sequence[Face]) -> NDArray[np.float64]:
        """Tracks × faces association cost; ``_FORBIDDEN`` (1e6) where the gates refuse the pair."""
        cost = np.full((len(self.open), len(faces)), _FORBIDDEN)
        for i, track in enumerate(self.open):
            predicted = track.predict(t)
            pcx, pcy = predicted[0] + predicted[2] / 2, predicted[1] + predicted[3] / 2
            size = max(np.sqrt(predicted[2] * predicted[3]), 1.0)
            for j, face in enumerate(faces):
                x, y, w, h = face.detection.box
                ratio = max(w * h, 1.0) / max(predicted[2] * predicted[3], 1.0)
                if not 1 / self.max_area_ratio <= ratio <= self.max_area_ratio:
                    continue
                overlap = iou(predicted, (x, y, w, h))
                distance = float(np.hypot(x + w / 2 - pcx, y + h / 2 - pcy)) / max(size, np.sqrt(w * h))
                sim = track.similarity(face.embedding)
                near = overlap >= self.min_iou and sim >= self.min_similarity
                strong = sim >= self.strong_similarity and distance <= self.max_distance
                if near or strong:
                    cost[i, j] = 1.0 - (self.iou_weight * overlap + (1 - self.iou_weight) * sim)
        return cost

    def update(
        self, t: float, faces: Sequence[Face], scene_cut: bool = False, frame_index: int | None = None,
    ) -> list[Track]:
        """Add one analysed frame at time ``t`` (seconds); returns the tracks that ended."""
        index = self._frame if frame_index is None else frame_index
        self._frame += 1
        # Time since the previous analysed frame, capped: a live stream that fell behind (frames
        # dropped while the models caught up, a stall) did not look for the face meanwhile, so
        # that gap must not count as the face being gone.
        step = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), self.max_step_s)
        self._last_t = t
        ended: list[Track] = []
        if scene_cut:
            ended, self.open = self.open, []
        else:
            keep: list[Track] = []
            for track in self.open:
                (ended if track.unseen_s + step > self.max_age_s else keep).append(track)
            self.open = keep
        for track in self.open:
            track.unseen_s += step
        assigned: set[int] = set()
        if self.open and faces:
            cost = self.cost_matrix(t, faces)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < _FORBIDDEN:
                    self.open[i].add(faces[j], t, index, self.top_k, self.velocity_smoothing)
                    assigned.add(int(j))
        for j, face in enumerate(faces):
            if j not in assigned:
                track = Track(track_id=next(self._ids), start_t=t, end_t=t)
                track.add(face, t, index, self.top_k, self.velocity_smoothing)
                self.open.append(track)
        return sorted(ended, key=lambda tr: tr.track_id)

    def close(self) -> list[Track]:
        """End every open track (end of the clip, or the stream is stopped)."""
        ended, self.open = self.open, []
        return sorted(ended, key=lambda tr: tr.track_id)
