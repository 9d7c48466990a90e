"""``facelake eval DIR``: how well naming and clustering work on the owner's own labelled photos.

DIR holds a folder per person (``DIR/<name>/*.jpg``). Every photo's largest face is embedded
with the configured embedder (nothing is stored), then:
- **verification**: every pair of photos; TAR at FAR 0.1 % and 1 % (the threshold set at
  that share of different-person pairs), and TAR/FAR at the model's own naming threshold;
- **rank-1**: each photo's most similar other photo shows the same person;
- **open set**, each person held out in turn: everyone else is enrolled from their first
  photo, and the held-out person's photos are the strangers; counts named right / wrong /
  unknown for enrolled people's other photos and strangers named, with facelake's own
  naming rule (thresholds, margin, quality, recognisability);
- **unclear**: photos whose face is below the recognisability gate (covered, turned away, heavily
  blurred): they are never named or clustered, and are left out of the two measures above and below;
- **clustering**: all faces clustered with the configured threshold, BCubed against the folders
  (a face left alone by the density rule counts as a cluster of its own).
Owners can run it on photos from their own cameras to see the numbers that matter to them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ConfigError
from ..pipeline import analyzer_options
from ..sources.base import IMAGE_SUFFIXES
from ..sources.decode import decode_image
from ..sources.folder import read_file
from ..vision.analyzer import FaceAnalyzer
from ..vision.recognisability import recognisable
from .clustering import CentroidClustering, bcubed
from .matching import Gallery, Namer, model_of, thresholds


@dataclass(frozen=True)
class EvalReport:
    model: str
    people: int
    photos: int
    no_face: int
    unclear: int
    """Photos whose face is below the recognisability gate (never named or clustered)."""
    tar_at_far_0_1: float
    tar_at_far_1: float
    threshold: float
    tar_at_threshold: float
    far_at_threshold: float
    rank1: float
    named_right: float
    named_wrong: float
    strangers_named: float
    cluster_precision: float
    cluster_recall: float
    cluster_f: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    if not len(genuine) or not len(impostor):
        return float("nan")
    cut = float(np.quantile(impostor, 1.0 - far, method="higher"))
    return float(np.mean(genuine > cut))


def evaluate(settings: Settings, folder: Path) -> EvalReport:
    people = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    if len(people) < 2:
        raise ConfigError(f"{folder}: expected a folder per person, at least two people")
    analyzer = FaceAnalyzer(analyzer_options(settings))
    labels: list[str] = []
    vectors: list[np.ndarray] = []
    qualities: list[float] = []
    clear: list[bool] = []
    photos = no_face = 0
    for person in people:
        for path in sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            photos += 1
            try:
                faces = analyzer.analyze(decode_image(read_file(path, int(settings.max_file_mb * 1e6)),
                                                      settings.max_pixels).pixels)
            except Exception:  # noqa: BLE001 - an unreadable photo counts as no face, like at ingest
                faces = []
            if not faces:
                no_face += 1
                continue
            labels.append(person.name)
            vectors.append(faces[0].embedding)
            qualities.append(faces[0].quality)
            clear.append(recognisable(faces[0].recognisability, settings.min_recognisability))
    X = np.array(vectors, dtype=np.float32)
    y = np.array(labels)
    sims = X @ X.T
    iu = np.triu_indices(len(X), 1)
    same = (y[:, None] == y[None, :])[iu]
    genuine, impostor = sims[iu][same], sims[iu][~same]
    t = thresholds(settings)
    masked = sims - 2 * np.eye(len(X))
    rank1 = float(np.mean(y[np.argmax(masked, axis=1)] == y)) if len(X) > 1 else float("nan")

    right = wrong = unknown = strangers = strangers_named = 0
    names = sorted(set(labels))
    for held_out in names:
        enrolled_idx = [int(np.nonzero(y == n)[0][0]) for n in names if n != held_out]
        ids = {n: i for i, n in enumerate(names)}
        gallery = Gallery(t.identify, t.margin).fit(
            X[enrolled_idx], np.array([ids[str(y[i])] for i in enrolled_idx], dtype=np.int64))
        namer = Namer(gallery, t, settings.identify_min_quality, min_recognisability=settings.min_recognisability)
        for i in range(len(X)):
            if i in enrolled_idx or not clear[i]:
                continue
            named_as, _ = namer.name_image(X[i : i + 1], [qualities[i]])[0]
            if y[i] == held_out:
                strangers += 1
                strangers_named += named_as is not None
            elif named_as is None:
                unknown += 1
            elif names[named_as] == y[i]:
                right += 1
            else:
                wrong += 1
    known = max(right + wrong + unknown, 1)
    keep = np.array(clear, dtype=bool)
    clusters = CentroidClustering(t.cluster).fit(X[keep], groups=[str(i) for i in range(int(keep.sum()))],
                                                 quality=np.array(qualities, dtype=np.float32)[keep]).labels_
    p, r, f = bcubed(list(y[keep]), list(clusters)) if keep.any() else (float("nan"),) * 3
    return EvalReport(
        model=model_of(settings), people=len(people), photos=photos, no_face=no_face, unclear=int((~keep).sum()),
        tar_at_far_0_1=_tar_at_far(genuine, impostor, 0.001), tar_at_far_1=_tar_at_far(genuine, impostor, 0.01),
        threshold=t.identify, tar_at_threshold=float(np.mean(genuine >= t.identify)) if len(genuine) else float("nan"),
        far_at_threshold=float(np.mean(impostor >= t.identify)) if len(impostor) else float("nan"),
        rank1=rank1, named_right=right / known, named_wrong=wrong / known,
        strangers_named=strangers_named / max(strangers, 1),
        cluster_precision=p, cluster_recall=r, cluster_f=f,
    )
