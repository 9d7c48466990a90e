"""Matching: one open-set rule, from the calibrated thresholds to the name a face gets.

The rule, in the order it is applied (each part answers a way strangers got named):

1. **Thresholds are the model's.** Cosine similarities of two models live on different
   scales: dlib's 128-D embeddings share a large common component (different people still
   score 0.8-0.92), MobileFaceNet's 192-D ones spread over the whole sphere (different
   people score around 0). A threshold is therefore a property of the model, calibrated for
   it (docs/accuracy.md, bench/identify.py); a value set in the settings overrides it for
   whatever model is in use (:func:`thresholds`).
2. **The gallery scores and ranks** (:class:`Gallery`): each person's score is the
   similarity of their closest enrolled face (1-NN per person), so several enrollment photos
   — front, profile, glasses — each help without being averaged into a face nobody has;
   :meth:`Gallery.match` gives each face its best person, that score and the margin over the
   second best.
3. **The namer decides, image by image** (:class:`Namer`), on the gallery's match: a face
   is named only when its best person scores at least the ``identify`` threshold, raised for
   faces of low quality (a tiny or blurred face's embedding is noisier: ``low_quality_extra``
   at quality 0, nothing from ``quality_full`` up) and for sharp ones (``sharp_extra`` from
   ``quality_full`` up to ``quality_sharp``: two sharp photos of one person score far above the
   threshold, so a sharp face just over it is a look-alike); when it beats the second best by
   ``margin`` (a face like two people stays unknown); when its quality is at least
   ``min_quality`` and its recognisability at least ``min_recognisability`` (a masked, helmeted
   or profile face embeds near every other such face, whoever it is: ``vision.recognisability``);
   when the owner has not said "not this person" for it or a near-duplicate;
   and when no other face of the same image got that person (the better-scoring one keeps it).
   Every bar rises with the number of people enrolled beyond the size the thresholds were checked
   at (``gallery_extra`` per tenfold): a stranger meets every enrolled person, so a larger gallery
   needs a smaller false-accept rate per person to name strangers as rarely.
4. **The gallery as a file** (:class:`GalleryFile`): what a Cloud Function needs to name
   faces without a database.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..errors import ConfigError
from ..sources.buckets import open_object
from ..store import Store
from ..vision.models import DLIB_RESNET, EMBEDDER_MODELS, EMBEDDING_DIMS, FUSION, MOBILEFACENET
from ..vision.recognisability import GATE, recognisable


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
    cluster_pair: float | None = None
    """Two clearly recognisable unknown faces this similar start a cluster of two (None: only three do).

    Far above ``cluster``: the even half of wider_dev's highest score of two faces of different
    photos, rounded up to the hundredth, plus 0.01 (bench/recognisability.py clusters).
    """
    sharp_extra: float = 0.0
    """Added to ``identify`` for a sharp face (linearly from quality_full to quality_sharp).

    Different people's scores do not depend on quality, the same person's do: on the development
    photos sharp faces (quality 0.6 and up) of the same person scored 0.915 or more, blurred and
    tiny ones down to 0.83. A sharp face scoring just over ``identify`` is therefore far likelier
    a look-alike than the person, and for it the threshold can sit at a ten times smaller
    false-accept rate at no cost in right names (docs/accuracy.md, "Sharp look-alikes").
    """
    gallery_extra: float = 0.0
    """Added to every required score per tenfold of enrolled people beyond ``gallery_reference``.

    A stranger is compared with every enrolled person, so the chance that one of N people scores
    over a fixed threshold grows about N-fold. Keeping it what it was at ``gallery_reference``
    people needs, per person, an N / ``gallery_reference`` times smaller false-accept rate: the
    threshold moves up the different-person score distribution's tail, which on the development
    crowds rises by this much per tenfold smaller false-accept rate (docs/accuracy.md, "Larger galleries").
    """
    gallery_reference: int = 20
    """The most people the thresholds were checked with end to end and named no stranger
    (``bench/identify.py --wider 20``); galleries up to this size keep the calibrated rule."""


CALIBRATED: dict[str, Thresholds] = {
    # bench/identify.py (identify: FAR 0.1 % per pair; match: FAR 1 %; margin: a fifth of the
    # different-person spread), bench/clustering.py (cluster) on the development photos; the
    # score distributions behind each value are in docs/accuracy.md.
    DLIB_RESNET: Thresholds(match=0.935, identify=0.958, cluster=0.96, low_quality_extra=0.002, duplicate=0.975,
                            margin=0.005, cluster_pair=0.99),
    MOBILEFACENET: Thresholds(match=0.6, identify=0.66, cluster=0.65, low_quality_extra=0.01, duplicate=0.85,
                              margin=0.032, cluster_pair=0.74),
    # low_quality_extra 0.004 (was 0): two crowd strangers of quality 0.20 and 0.39 scored 0.8790-0.8793
    # against enrolled faces on wider_dev; every right name of the identify bench still clears it.
    # sharp_extra 0.017: identify + 0.017 = 0.896 is the FAR 0.01 % per pair point of different people
    # in the even half of wider_dev (bench/recognisability.py sharp); a sharp stranger of the odd half scored 0.8811.
    # gallery_extra 0.018: the even half of wider_dev's different-person scores rise 0.0181 per tenfold smaller
    # FAR per pair from 10^-3 (0.8786, the identify bar) to 10^-4 (bench/recognisability.py gallery; odd half 0.0209).
    FUSION: Thresholds(match=0.858, identify=0.879, cluster=0.88, low_quality_extra=0.004, duplicate=0.956,
                       margin=0.0083, cluster_pair=0.94, sharp_extra=0.017, gallery_extra=0.018),
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
        gallery_extra=base.gallery_extra if settings.identify_gallery_extra is None else settings.identify_gallery_extra,
    )


@dataclass(frozen=True)
class Match:
    """The outcome for one face: ``person`` is ``None`` when the face stays unknown."""

    person: int | None
    score: float
    """Similarity to the best person (also reported when the face stays unknown)."""
    margin: float
    """Best person's score minus the second best's (1.0 with a single enrolled person)."""
    candidate: int | None = None
    """The best person, named or not (``None`` only with nobody enrolled): what the namer judges."""


MATCH_ROWS = 1024
"""Faces matched at once: the similarities to every enrolled face and the per-person scores of a
block are held together, so a large gallery (10,000 people) at ``identify``'s 20,000-face batches
would hold gigabytes; 1,024 rows keep that to a few hundred megabytes at most."""


class Gallery:
    """Enrolled embeddings and the open-set decision rule, in scikit-learn's style.

    ``fit(X, y)`` stores unit-length embeddings ``X`` with person ids ``y``; ``match(X)``
    names each row of ``X`` or leaves it unknown. Learned attributes end in ``_``.
    """

    def __init__(self, threshold: float, margin: float) -> None:
        self.threshold = threshold
        self.margin = margin

    def fit(self, X: NDArray[np.float32], y: NDArray[np.int64]) -> Gallery:
        X = np.asarray(X, dtype=np.float32).reshape(len(y), -1) if len(y) else np.zeros((0, 1), np.float32)
        self.embeddings_ = X
        self.labels_ = np.asarray(y, dtype=np.int64)
        self.people_ = np.unique(self.labels_)
        return self

    def scores(self, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(n, people)`` similarity of each face to each person's closest enrolled face."""
        sims = np.asarray(X, dtype=np.float32) @ self.embeddings_.T
        out = np.full((len(sims), len(self.people_)), -1.0, dtype=np.float32)
        for j, person in enumerate(self.people_):
            out[:, j] = sims[:, self.labels_ == person].max(axis=1)
        return out

    def match(self, X: NDArray[np.float32]) -> list[Match]:
        """Each face's best person, its score and its margin over the second best; named
        (``person``) when the score reaches ``threshold`` and the margin ``margin``."""
        if len(X) == 0:
            return []
        if len(self.people_) == 0:
            return [Match(None, -1.0, 0.0) for _ in range(len(X))]
        out: list[Match] = []
        for start in range(0, len(X), MATCH_ROWS):
            per_person = self.scores(X[start:start + MATCH_ROWS])
            order = np.argsort(-per_person, axis=1)  # row by row, as one call: the same order each row had alone
            rows = np.arange(len(per_person))
            best = per_person[rows, order[:, 0]].astype(np.float64)
            margins = best - per_person[rows, order[:, 1]] if len(self.people_) > 1 else np.ones(len(best))
            for b, margin, candidate in zip(best.tolist(), margins.tolist(), self.people_[order[:, 0]].tolist()):
                named = b >= self.threshold and margin >= self.margin
                out.append(Match(candidate if named else None, b, margin, candidate))
        return out


Decision = tuple[int | None, float | None]


@dataclass
class Namer:
    """The naming decision over a gallery's matches (rule 3 in this module's docstring).

    The namer judges :meth:`Gallery.match`'s best person, score and margin against its own
    ``thresholds`` (the calibrated ones, raised for low quality), not the gallery's: a
    gallery read from a file keeps the thresholds it was exported with, the namer uses the
    settings of the process naming.
    """

    gallery: Gallery
    thresholds: Thresholds
    min_quality: float
    quality_full: float = 0.5
    quality_sharp: float = 0.8
    rejected: NDArray[np.float32] | None = None
    """Embeddings of faces the owner said were *not* ``rejected_people[i]``."""
    rejected_people: NDArray[np.int64] | None = None
    min_recognisability: float = GATE

    def gallery_extra(self) -> float:
        """What this gallery's size adds to every required score (0 up to ``gallery_reference`` people)."""
        people, reference = len(self.gallery.people_), self.thresholds.gallery_reference
        if people <= reference or reference < 1:
            return 0.0
        return self.thresholds.gallery_extra * math.log10(people / reference)

    def required(self, quality: float) -> float:
        """The score a face of this quality needs in this gallery: raised below ``quality_full`` and
        above it, and for a gallery of more people than the thresholds were checked with."""
        shortfall = max(0.0, 1.0 - quality / self.quality_full) if self.quality_full > 0 else 0.0
        span = self.quality_sharp - self.quality_full
        sharpness = min(1.0, max(0.0, (quality - self.quality_full) / span)) if span > 0 else 0.0
        return (self.thresholds.identify + self.thresholds.low_quality_extra * shortfall
                + self.thresholds.sharp_extra * sharpness + self.gallery_extra())

    def _vetoed(self, embedding: NDArray[np.float32], person: int) -> bool:
        if self.rejected is None or self.rejected_people is None or not len(self.rejected):
            return False
        mine = self.rejected[self.rejected_people == person]
        return bool(len(mine)) and float((mine @ embedding).max()) >= self.thresholds.duplicate

    def name_image(self, embeddings: NDArray[np.float32], qualities: Sequence[float],
                   taken: set[int] | None = None,
                   recognisability: Sequence[float | None] | None = None,
                   matches: Sequence[Match] | None = None) -> list[Decision]:
        """Decisions for the faces of one image; ``taken`` are people already in it (enrollment faces).

        ``recognisability`` (one per face, ``None`` where not scored) keeps faces below the gate unknown.
        ``matches``: the gallery's matches of ``embeddings``, when the caller matched many images'
        faces at once (a face's match depends on nothing else; one call per image was most of
        ``identify``'s time at a million sightings).
        """
        n = len(embeddings)
        if n == 0 or len(self.gallery.people_) == 0:
            return [(None, None)] * n
        if matches is None:
            matches = self.gallery.match(np.asarray(embeddings, dtype=np.float32))
        candidates: list[tuple[float, int, int]] = []
        for i, match in enumerate(matches):
            person = match.candidate
            assert person is not None  # someone is enrolled
            if qualities[i] < self.min_quality or match.score < self.required(qualities[i]):
                continue
            if recognisability is not None and not recognisable(recognisability[i], self.min_recognisability):
                continue
            if match.margin < self.thresholds.margin:
                continue
            if self._vetoed(embeddings[i], person):
                continue
            candidates.append((match.score, i, person))
        used = set(taken or ())
        out: list[Decision] = [(None, None)] * n
        for best, i, person in sorted(candidates, reverse=True):
            if person in used:
                continue
            used.add(person)
            out[i] = (person, best)
        return out


def overlapping(spans: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Indices of ``spans`` (start, end) in groups whose spans overlap, each group in start order.

    A clip is named track by track, and tracks seen at the same time are like the faces of one
    photo (two of them are never the same person); tracks that never overlap may well be one
    person coming back, so they are named apart.
    """
    groups: list[list[int]] = []
    end = float("-inf")
    for i in sorted(range(len(spans)), key=lambda k: spans[k][0]):
        if groups and spans[i][0] <= end:
            groups[-1].append(i)
            end = max(end, spans[i][1])
        else:
            groups.append([i])
            end = spans[i][1]
    return groups


def load_gallery(store: Store, settings: Settings) -> Gallery:
    """The gallery of the configured model's enrolled faces, with its calibrated thresholds."""
    X, y = store.people.enrolled_embeddings(model_of(settings), dim_of(settings))
    t = thresholds(settings)
    return Gallery(t.identify, t.margin).fit(X, y)


def load_namer(store: Store, settings: Settings) -> Namer:
    """The naming rule with the current enrollments and the owner's "not this person" feedback."""
    rejected, rejected_people = store.people.rejected_embeddings(model_of(settings), dim_of(settings))
    return Namer(load_gallery(store, settings), thresholds(settings), settings.identify_min_quality,
                 rejected=rejected, rejected_people=rejected_people,
                 min_recognisability=settings.min_recognisability)


FORMAT_VERSION = 1


@dataclass(frozen=True)
class GalleryFile:
    """The gallery as a file (``facelake people export gs://BUCKET/gallery.npz``).

    It holds the enrolled embeddings, their person ids and names, the embedding model and
    the thresholds; the Cloud Function reads it (and re-reads it when the object changes).
    A plain ``.npz`` read with ``allow_pickle=False``: no code can ride in it. It holds only
    enrolled people — the same data the owner's database holds — and after ``facelake
    forget`` the owner re-exports it.
    """

    embeddings: NDArray[np.float32]
    person_ids: NDArray[np.int64]
    names: dict[int, str]
    model: str
    threshold: float
    margin: float

    def gallery(self) -> Gallery:
        return Gallery(self.threshold, self.margin).fit(self.embeddings, self.person_ids)

    def to_bytes(self) -> bytes:
        ids = np.array(sorted(self.names), dtype=np.int64)
        buf = io.BytesIO()
        np.savez_compressed(
            buf, format_version=np.array(FORMAT_VERSION), embeddings=self.embeddings.astype(np.float32),
            person_ids=self.person_ids.astype(np.int64), name_ids=ids,
            names=np.array([self.names[int(i)] for i in ids], dtype=np.str_), model=np.array(self.model),
            thresholds=np.array([self.threshold, self.margin], dtype=np.float64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GalleryFile:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if int(z["format_version"]) != FORMAT_VERSION:
                    raise ConfigError(f"gallery file format {int(z['format_version'])} is not {FORMAT_VERSION}")
                return cls(z["embeddings"].astype(np.float32), z["person_ids"].astype(np.int64),
                           {int(i): str(n) for i, n in zip(z["name_ids"], z["names"])}, str(z["model"]),
                           float(z["thresholds"][0]), float(z["thresholds"][1]))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"not a facelake gallery file: {exc}") from exc


def write_gallery(gallery: GalleryFile, uri: str) -> None:
    """Write to ``gs://…``, ``s3://…`` or a local path."""
    bucket, key = open_object(uri)
    bucket.write(key, gallery.to_bytes())


def read_gallery(uri: str, max_bytes: int = 512 << 20) -> GalleryFile:
    bucket, key = open_object(uri)
    return GalleryFile.from_bytes(bucket.read(key, max_bytes))
