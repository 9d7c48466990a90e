"""How far a face can be recognised at all, from its embedding: masks, helmets, profiles, blur.

Face-recognition research found that faces nobody can identify — masked, helmeted, in strong
profile, painted, heavily blurred or tiny — embed near one point of the embedding space, the
*unrecognisable identity* (Deng et al., "Harnessing Unrecognizable Faces for Improving Face
Recognition", 2021). A face's distance from that point (their ERS) predicts recognition errors
far better than image quality: on the held-out half of the WIDER FACE development photos it tells
hard faces from clear ones with AUC 0.86-0.89 where quality alone gives 0.55 (docs/accuracy.md).
Such faces are why a crowd of strangers once grew one cluster of 85: their embeddings are close
to each other because they carry no identity.

Per embedder, ``weights/recognisability.npz`` (vendored; ``bench/recognisability.py`` remakes it from the
development data) holds the centre — the mean embedding of the heavily occluded, heavily blurred,
atypical-pose and tiny faces of half the development crowds — and a logistic fit of "clear face"
on the distance from it, shifted so that :data:`GATE` sits where 95 % of that half's clear faces
score above it. The stored ``recognisability`` is that score, 0..1; below the gate a face is
stored but never named, clustered, enrolled or used in a track's template
(``Settings.min_recognisability``).

It is combined with image quality as a second gate, not folded into one number: a logistic fit
of both measured worse on the held-out half (AUC 0.72 against 0.88 for the distance alone),
since quality mostly says "small", which the distance already knows. A face must pass both
``identify_min_quality`` and the recognisability gate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

GATE = 0.5
"""The default ``min_recognisability``: every model's score is calibrated so its gate is here."""

_CONSTANTS = Path(__file__).parent / "weights" / "recognisability.npz"


@dataclass(frozen=True)
class Calibration:
    """One model's unrecognisable-identity centre and its calibrated logistic score."""

    centre: NDArray[np.float32]
    """Unit vector: the mean embedding of the development data's unrecognisable faces."""
    logit: NDArray[np.float64]
    """Intercept and weight of the distance from the centre (shifted so the gate is at 0.5)."""

    def score(self, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
        """The 0..1 recognisability of each face (rows of ``embeddings``, unit vectors)."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        distance = 1.0 - X @ self.centre.astype(np.float64)
        z = self.logit[0] + self.logit[1] * distance
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@functools.cache
def calibrations() -> dict[str, Calibration]:
    """Model name → its calibration (models without one are not scored: their faces are never gated)."""
    with np.load(_CONSTANTS, allow_pickle=False) as z:
        models = {key.rsplit(".", 1)[0] for key in z.files}
        return {m: Calibration(z[f"{m}.centre"].astype(np.float32), z[f"{m}.logit"].astype(np.float64))
                for m in models}


def recognisability(model: str, embeddings: NDArray[np.float32]) -> list[float | None]:
    """Each face's recognisability under ``model``'s calibration, or ``None`` when it has none."""
    calibration = calibrations().get(model)
    if calibration is None or not len(embeddings):
        return [None] * len(embeddings)
    return [float(v) for v in calibration.score(embeddings)]


def clearest(scores: Iterable[float | None]) -> float | None:
    """The best of several faces' scores (a track's, over its faces); ``None`` (not scored) wins."""
    values = list(scores)
    return None if any(v is None for v in values) else max((v for v in values if v is not None), default=0.0)


def recognisable(score: float | None, gate: float) -> bool:
    """Whether a face may be named, clustered, enrolled or averaged into a template.

    ``None`` (a face stored before the score existed, or a model without a calibration) passes:
    a face is never refused for lack of a number; ``facelake reembed`` gives old faces theirs.
    """
    return score is None or score >= gate
