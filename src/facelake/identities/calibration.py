"""Each embedder's decision thresholds, and the settings that override them.

Cosine similarities of two models live on different scales: dlib's 128-D embeddings share a
large common component (different people still score 0.8-0.92), MobileFaceNet's 192-D ones
spread over the whole sphere (different people score around 0). A threshold is therefore a
property of the model, calibrated for it (docs/accuracy.md, bench/identify.py); a value set
in the settings overrides it for whatever model is in use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Settings
from ..vision.models import DLIB_RESNET, EMBEDDER_MODELS, EMBEDDING_DIMS, FUSION, MOBILEFACENET


@dataclass(frozen=True)
class Thresholds:
    match: float
    """Two faces this similar are the same person (alert debounce, search "same person")."""
    identify: float
    """A face this similar to an enrolled person's closest face may be named."""
    cluster: float
    """Two unknown faces this similar are linked in clustering."""
    low_quality_extra: float
    """Added to ``identify`` for a face of quality 0 (linearly less up to quality_full)."""
    duplicate: float
    """Two faces this similar are near-duplicates ("not this person" covers both)."""
    margin: float
    """A named face's best person must beat the second best by this much (0.2 impostor sd)."""


CALIBRATED: dict[str, Thresholds] = {
    # bench/identify.py (identify: FAR 0.1 % per pair; match: FAR 1 %; margin: a fifth of the
    # different-person spread), bench/clustering.py (cluster) on the development photos; the
    # score distributions behind each value are in docs/accuracy.md.
    DLIB_RESNET: Thresholds(match=0.935, identify=0.958, cluster=0.96, low_quality_extra=0.002, duplicate=0.975, margin=0.005),
    MOBILEFACENET: Thresholds(match=0.6, identify=0.66, cluster=0.65, low_quality_extra=0.01, duplicate=0.85, margin=0.032),
    FUSION: Thresholds(match=0.858, identify=0.879, cluster=0.88, low_quality_extra=0.0, duplicate=0.956, margin=0.0083),
}


def model_of(settings: Settings) -> str:
    """The model name the configured embedder stores with its embeddings."""
    return EMBEDDER_MODELS[settings.embedder]


def dim_of(settings: Settings) -> int:
    return EMBEDDING_DIMS[model_of(settings)]


def thresholds(settings: Settings) -> Thresholds:
    base = CALIBRATED[model_of(settings)]
    return replace(
        base,
        match=base.match if settings.match_threshold is None else settings.match_threshold,
        identify=base.identify if settings.identify_threshold is None else settings.identify_threshold,
        cluster=base.cluster if settings.cluster_threshold is None else settings.cluster_threshold,
        margin=base.margin if settings.match_margin is None else settings.match_margin,
    )
