"""Clustering of unknown faces: a crowd check (many people, few repeats) and a few-identities check.

- **crowd**: every face of the group photos in the development set (PASCAL VOC scenes, the
  insightface and facenet group photos, ...; each face its own person) plus 2 photos each
  of 40 ORL subjects. A clustering that chains strangers shows up as one big cluster.
- **few**: 5 photos each of 14 ORL subjects and the labelled public-figure photos — the
  groups an owner should get.
- **wider**: the 323 WIDER FACE crowd photos of ``wider_dev`` (almost every face a different
  person, many masked, helmeted, in profile or blurred), with a breakdown of the faces by
  WIDER's labels (detections matched to the labelled boxes, IoU ≥ 0.4): how many are in a
  cluster of 2+, and the largest cluster holding one.

For each embedder and cluster threshold: faces clustered, clusters of 2+, the largest
cluster, and BCubed precision / recall / F against the true identities — for facelake's
centroid clustering and, on the next line, for Chinese whispers (the previous rule).

Usage: python bench/clustering.py [--facedata ../shared/facedata] [--embedders fusion dlib mobilefacenet]
                                  [--thresholds 0.93 0.95 0.97] [--sets crowd few wider] [--no-whispers]
"""

from __future__ import annotations

import argparse
import json
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


def score(db: Path, labels: dict[str, str], min_quality: float) -> tuple[int, int, int, float, float, float]:
    """Faces of clustering quality (a face left out or alone is a cluster of its own), groups of 2+,
    the largest, BCubed."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""SELECT regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), s.face_index,
                                     coalesce(s.cluster_id, -1), s.sighting_id FROM sightings s JOIN images i USING (image_id)
                              WHERE s.embedding IS NOT NULL AND s.quality >= ?""", [min_quality]).fetchall()
    truth = [f"{key}:{index}" if labels.get(key, "*") == "*" else labels[key] for key, index, _, _ in rows]
    predicted = [c for _, _, c, _ in rows]
    sizes = Counter(c for c in predicted if c >= 0)
    p, r, f = bcubed(truth, predicted)
    return len(rows), sum(1 for v in sizes.values() if v > 1), max(sizes.values(), default=0), p, r, f


def wider_set(facedata: Path, out: Path) -> dict[str, str]:
    """The wider_dev photos, every face its own person."""
    out.mkdir(parents=True)
    truth = json.loads((facedata / "wider_dev" / "truth.json").read_text())
    for name in truth:
        shutil.copy(facedata / "wider_dev" / "images" / name, out / name)
    return {Path(name).stem: "*" for name in truth}


def wider_breakdown(db: Path, facedata: Path) -> None:
    """Clustered faces by WIDER's labels: a heavily occluded or blurred face should join no cluster."""
    from recognisability import match_truth

    truth = json.loads((facedata / "wider_dev" / "truth.json").read_text())
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""SELECT regexp_extract(i.uri, '([^/]+)$', 1), s.box, s.cluster_id
                              FROM sightings s JOIN images i USING (image_id) ORDER BY s.image_id, s.face_index""").fetchall()
    sizes = Counter(c for _, _, c in rows if c is not None)
    by_image: dict[str, list] = {}
    for name, box, c in rows:
        by_image.setdefault(name, []).append((tuple(box), c))
    kinds: dict[str, list[int]] = {}
    for name, faces in by_image.items():
        labels = truth.get(name, [])
        for (box, c), j in zip(faces, match_truth([b for b, _ in faces], labels)):
            t = labels[j] if j >= 0 else None
            size = sizes[c] if c is not None else 0
            keys = ["all"]
            if t is None:
                keys.append("no labelled face")
            else:
                if t["occlusion"] == 2:
                    keys.append("heavy occlusion")
                if t["blur"] == 2:
                    keys.append("heavy blur")
                if t["pose"] == 1:
                    keys.append("atypical pose")
                if t["occlusion"] == 0 and t["blur"] == 0 and t["pose"] == 0:
                    keys.append("clear")
            for k in keys:
                kinds.setdefault(k, []).append(size)
    print(f"  {'wider faces':18} {'faces':>6} {'in 2+':>6} {'largest':>7}")
    for k, v in kinds.items():
        print(f"  {k:18} {len(v):6d} {sum(1 for x in v if x >= 2):6d} {max(v, default=0):7d}")


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
    truth = [f"{key}:{index}" if labels.get(key, "*") == "*" else labels[key] for key, index, _ in rows]
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
    parser.add_argument("--sets", nargs="+", default=["crowd", "few", "wider"])
    parser.add_argument("--no-whispers", action="store_true", help="skip the Chinese whispers comparison")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="facelake-cluster-"))
    crowd_labels = crowd_set(args.facedata, work / "crowd" / "cam")
    wider_labels = wider_set(args.facedata, work / "wider" / "cam") if "wider" in args.sets else {}
    sets = build_set(args.facedata, work / "few", orl_subjects=14)
    few_labels = {key: person for rows in sets.values() for key, person in rows}
    (work / "few" / "cam").mkdir()
    for p in (work / "few" / "clean").iterdir():
        shutil.move(str(p), work / "few" / "cam" / p.name)
    print(f"{'embedder':14} {'set':6} {'threshold':>9} {'faces':>6} {'clusters':>8} {'largest':>7} "
          f"{'BCubed P':>9} {'R':>6} {'F':>6}")
    for embedder in args.embedders:
        from facelake.identities.matching import thresholds

        for name, labels in (("crowd", crowd_labels), ("few", few_labels), ("wider", wider_labels)):
            if name not in args.sets:
                continue
            db = work / f"{embedder}-{name}.duckdb"
            base = load_settings(db=db, embedder=embedder)
            ingest([work / name / "cam"], base, workers=2)
            for t in args.thresholds or [thresholds(base).cluster]:
                cluster(load_settings(db=db, embedder=embedder, cluster_threshold=t), full=True)
                faces, clusters, largest, p, r, f = score(db, labels, base.identify_min_quality)
                print(f"{embedder:14} {name:6} {t:9.3f} {faces:6d} {clusters:8d} {largest:7d} {p:9.3f} {r:6.3f} {f:6.3f}",
                      flush=True)
                if name == "wider":
                    wider_breakdown(db, args.facedata)
                if args.no_whispers:
                    continue
                faces, clusters, largest, p, r, f = chinese_whispers(db, labels, t, embedder)
                print(f"{'  (whispers)':14} {name:6} {t:9.3f} {faces:6d} {clusters:8d} {largest:7d} {p:9.3f} "
                      f"{r:6.3f} {f:6.3f}", flush=True)


if __name__ == "__main__":
    main()
