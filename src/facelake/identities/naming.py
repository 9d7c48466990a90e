"""The open-set naming decision, image by image.

A face is named only when all of these hold (each rule answers a way strangers got named):
- its best enrolled person scores at least the model's ``identify`` threshold, raised for
  faces of low quality — a tiny or blurred face's embedding is noisier, so it must be more
  similar before anyone is named by it (``low_quality_extra`` at quality 0, nothing from
  ``quality_full`` up);
- it beats the second-best person by the model's ``margin`` (a face like two people stays unknown);
- its quality is at least ``min_quality`` (below that, never named automatically);
- the owner has not said "not this person" for this face or a near-duplicate of it;
- no other face of the same image got that person: two faces in one image are never the
  same person, so when two faces pick one person, the better-scoring one keeps the name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .calibration import Thresholds
from .gallery import Gallery

Decision = tuple[int | None, float | None]


@dataclass
class Namer:
    gallery: Gallery
    thresholds: Thresholds
    min_quality: float
    quality_full: float = 0.5
    rejected: NDArray[np.float32] | None = None
    """Embeddings of faces the owner said were *not* ``rejected_people[i]``."""
    rejected_people: NDArray[np.int64] | None = None

    def required(self, quality: float) -> float:
        shortfall = max(0.0, 1.0 - quality / self.quality_full) if self.quality_full > 0 else 0.0
        return self.thresholds.identify + self.thresholds.low_quality_extra * shortfall

    def _vetoed(self, embedding: NDArray[np.float32], person: int) -> bool:
        if self.rejected is None or self.rejected_people is None or not len(self.rejected):
            return False
        mine = self.rejected[self.rejected_people == person]
        return bool(len(mine)) and float((mine @ embedding).max()) >= self.thresholds.duplicate

    def name_image(self, embeddings: NDArray[np.float32], qualities: Sequence[float],
                   taken: set[int] | None = None) -> list[Decision]:
        """Decisions for the faces of one image; ``taken`` are people already in it (enrollment faces)."""
        n = len(embeddings)
        if n == 0 or len(self.gallery.people_) == 0:
            return [(None, None)] * n
        scores = self.gallery.scores(np.asarray(embeddings, dtype=np.float32))
        people = self.gallery.people_
        candidates: list[tuple[float, int, int]] = []
        for i in range(n):
            order = np.argsort(-scores[i])
            best = float(scores[i, order[0]])
            second = float(scores[i, order[1]]) if len(people) > 1 else -1.0
            person = int(people[order[0]])
            if qualities[i] < self.min_quality or best < self.required(qualities[i]):
                continue
            if len(people) > 1 and best - second < self.thresholds.margin:
                continue
            if self._vetoed(embeddings[i], person):
                continue
            candidates.append((best, i, person))
        used = set(taken or ())
        out: list[Decision] = [(None, None)] * n
        for best, i, person in sorted(candidates, reverse=True):
            if person in used:
                continue
            used.add(person)
            out[i] = (person, best)
        return out
