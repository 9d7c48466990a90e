"""What a :class:`~.analyzer.FaceAnalyzer` is told: the settings that choose and tune its models."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class AnalyzerOptions:
    """The fields of ``facelake.config.Settings`` that the analyzer reads, by the same names.

    Why a value of its own and not the settings: worker processes receive it (pickled) and
    compare it with the one their models were loaded for, to reload only when a model
    setting changed — a different database or alert file must not reload anything.

    No field has a default here: the defaults, bounds and reasons live once, in ``Settings``.
    Build one with :meth:`from_settings`; ``FaceAnalyzer()`` uses the settings' defaults.
    """

    detector: str
    det_threshold: float
    nms_iou: float
    detect_min_side: int
    detect_max_side: int
    detect_refine_below_px: int
    detect_candidate_threshold: float
    max_upscale: float
    min_face_px: int
    embedder: str
    embed_backend: str
    embed_flip: bool
    embed_lowres_px: int
    thumb_px: int
    thumb_quality: int
    keep_face_context: bool

    @classmethod
    def from_settings(cls, settings: object) -> AnalyzerOptions:
        """The analyzer's fields of ``settings`` (a ``Settings``, or anything with those attributes).

        Taken by name, so a field added here is filled from the setting of that name (a test
        checks that each one exists in ``Settings``).
        """
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})
