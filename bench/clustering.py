"""Clustering of unknown faces: a crowd check (many people, few repeats) and a few-identities check.

- **crowd**: every face of the group photos in the development set (PASCAL VOC scenes, the
  insightface and facenet group photos, ...; each face its own person) plus 2 photos each
  of 40 ORL subjects. A clustering that chains strangers shows up as one big cluster.
- **few**: 5 photos each of 14 ORL subjects and the labelled public-figure photos — the
  groups an owner should get.

For each embedder and cluster threshold: faces clustered, clusters of 2+, the largest
cluster, and BCubed precision / recall / F against the true identities — for facelake's
centroid clustering and, on the next line, for Chinese whispers (the previous rule).

Usage: python bench/clustering.py [--facedata ../shared/facedata] [--embedders fusion dlib mobilefacenet]
                                  [--thresholds 0.93 0.95 0.97]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import duckdb
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import build_set

from facelake import cluster, ingest, load_settings
from facelake.identities.clustering import bcubed

GROUPS = ["dlib_faces", "insightface_samples", "facenet_pytorch/multiface.jpg", "face_recognition_examples/two_people.jpg"]


def group_photos(facedata: Path) -> list[Path]:
    """The development set's group photos (dlib's ``dogs.jpg`` left out: its faces are dogs')."""
    paths: list[Path] = []
    for rel in GROUPS:
        src = facedata / rel
        paths += [p for p in ([src] if src.is_file() else sorted(src.glob("*.jpg"))) if p.name != "dogs.jpg"]
    return paths


def crowd_set(facedata: Path, out: Path) -> dict[str, str]:
    """Files → identity label ('*' for group photos: every face is its own person)."""
    out.mkdir(parents=True)
    labels: dict[str, str] = {}
    for path in group_photos(facedata):
        shutil.copy(path, out / f"g_{path.name}")
        labels[f"g_{path.stem}"] = "*"
    for subject in sorted((facedata / "att_orl").glob("s*")):
        for shot in (2, 8):
            key = f"orl_{subject.name}_{shot}"
            Image.open(subject / f"{shot}.pgm").convert("RGB").save(out / f"{key}.png")
            labels[key] = subject.name
    return labels


def score(db: Path, labels: dict[str, str]) -> tuple[int, int, int, float, float, float]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""SELECT regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), s.face_index, s.cluster_id,
                                     s.sighting_id FROM sightings s JOIN images i USING (image_id)
                              WHERE s.cluster_id IS NOT NULL""").fetchall()
    truth = [f"{key}:{index}" if labels[key] == "*" else labels[key] for key, index, _, _ in rows]
    predicted = [c for _, _, c, _ in rows]
    sizes = Counter(predicted)
    p, r, f = bcubed(truth, predicted)
    return len(rows), sum(1 for v in sizes.values() if v > 1), max(sizes.values(), default=0), p, r, f


def chinese_whispers(db: Path, labels: dict[str, str], threshold: float, embedder: str) -> tuple:
    """The previous rule (single links over a threshold) on the same faces, for comparison."""
    import numpy as np
    from baselines import ChineseWhispers

    from facelake.identities.matching import model_of

    settings = load_settings(db=db, embedder=embedder)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""SELECT regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), s.face_index, s.embedding
                              FROM sightings s JOIN images i USING (image_id)
                              WHERE s.embedding IS NOT NULL AND s.quality >= ? AND s.model = ?""",
                           [settings.identify_min_quality, model_of(settings)]).fetchall()
    found = ChineseWhispers(threshold).fit(np.array([r[2] for r in rows], dtype=np.float32)).labels_
    truth = [f"{key}:{index}" if labels[key] == "*" else labels[key] for key, index, _ in rows]
    sizes = Counter(found.tolist())
    p, r, f = bcubed(truth, list(found))
    return len(rows), sum(1 for v in sizes.values() if v > 1), max(sizes.values(), default=0), p, r, f


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facedata", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--embedders", nargs="+", default=["fusion", "dlib", "mobilefacenet"])
    parser.add_argument("--thresholds", type=float, nargs="*", default=None,
                        help="cluster thresholds to try (default: each embedder's calibrated one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="facelake-cluster-"))
    crowd_labels = crowd_set(args.facedata, work / "crowd" / "cam")
    sets = build_set(args.facedata, work / "few", orl_subjects=14)
    few_labels = {key: person for rows in sets.values() for key, person in rows}
    (work / "few" / "cam").mkdir()
    for p in (work / "few" / "clean").iterdir():
        shutil.move(str(p), work / "few" / "cam" / p.name)
    print(f"{'embedder':14} {'set':6} {'threshold':>9} {'faces':>6} {'clusters':>8} {'largest':>7} "
          f"{'BCubed P':>9} {'R':>6} {'F':>6}")
    for embedder in args.embedders:
        from facelake.identities.matching import thresholds

        for name, labels in (("crowd", crowd_labels), ("few", few_labels)):
            db = work / f"{embedder}-{name}.duckdb"
            base = load_settings(db=db, embedder=embedder)
            ingest([work / name / "cam"], base, workers=2)
            for t in args.thresholds or [thresholds(base).cluster]:
                cluster(load_settings(db=db, embedder=embedder, cluster_threshold=t), full=True)
                faces, clusters, largest, p, r, f = score(db, labels)
                print(f"{embedder:14} {name:6} {t:9.3f} {faces:6d} {clusters:8d} {largest:7d} {p:9.3f} {r:6.3f} {f:6.3f}",
                      flush=True)
                faces, clusters, largest, p, r, f = chinese_whispers(db, labels, t, embedder)
                print(f"{'  (whispers)':14} {name:6} {t:9.3f} {faces:6d} {clusters:8d} {largest:7d} {p:9.3f} "
                      f"{r:6.3f} {f:6.3f}", flush=True)


if __name__ == "__main__":
    main()
