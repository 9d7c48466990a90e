"""Open-set identification end to end: enroll one photo per person, ingest the rest, count names.

With the labelled photos of ``bench/accuracy.py``: every person but ``--unenrolled`` of them is
enrolled from their first photo; every other photo is ingested twice, as it is and as a
CCTV-quality copy (``shared/eval/degrade.py``, largest face ``--face-px`` wide). Reports, for
clean and CCTV faces, the share named right, named wrong and left unknown; how often the
never-enrolled people get a name; and the BCubed precision/recall of clustering their faces.

Usage: python bench/identify.py [--facedata ../shared/facedata] [--face-px 40] [--unenrolled 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import build_set

from facelake import cluster, enroll_person, ingest, load_settings
from facelake.identities.cluster import bcubed


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facedata", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--eval", type=Path, default=here.parent / "shared" / "eval")
    parser.add_argument("--face-px", type=int, default=40)
    parser.add_argument("--unenrolled", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="facelake-identify-"))
    sets = build_set(args.facedata, work, orl_subjects=14)
    labels = {key: person for rows in sets.values() for key, person in rows}
    photos = {p.stem: p for p in (work / "clean").iterdir()}
    cctv = work / "cctv"
    subprocess.run([sys.executable, str(args.eval / "degrade.py"), str(work / "clean"), str(cctv),
                    str(args.face_px), str(args.seed)], check=True)
    people = sorted({labels[k] for k in photos})
    # Never enrolled: one public figure and ORL subjects, spread through the list.
    unenrolled = set(people[:: max(1, len(people) // args.unenrolled)][: args.unenrolled])
    settings = load_settings(None, db=work / "facelake.duckdb")
    enrolled_keys = set()
    for person in people:
        if person in unenrolled:
            continue
        first = min(k for k in photos if labels[k] == person)
        enroll_person(settings, person, [photos[first]], consent="benchmark: public dev photos")
        enrolled_keys.add(first)
    cams = work / "cams"
    for key, path in photos.items():
        if key in enrolled_keys:
            continue
        for kind, src in (("clean", path), ("cctv", cctv / f"{key}.jpg")):
            (cams / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, cams / kind / f"{key}{src.suffix}")
    ingest([cams], settings, workers=2)
    cluster(settings)
    with duckdb.connect(str(settings.db), read_only=True) as con:
        rows = con.execute(
            """SELECT i.camera, regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), p.name, s.cluster_id
               FROM images i LEFT JOIN sightings s ON s.image_id = i.image_id AND s.face_index = 0
               LEFT JOIN people p USING (person_id) WHERE i.camera IN ('clean', 'cctv')"""
        ).fetchall()
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
    print(f"{len(people)} people ({len(people) - len(unenrolled)} enrolled from one photo each; never enrolled: "
          f"{', '.join(sorted(unenrolled))}); CCTV copies with {args.face_px}-px faces")
    header = f"{'faces':8} {'right':>7} {'wrong':>7} {'unknown':>8} {'never-enrolled named':>21}"
    print(header)
    print("-" * len(header))
    for camera in ("clean", "cctv"):
        total = counts[(camera, "right")] + counts[(camera, "wrong")] + counts[(camera, "unknown")]
        stranger = counts[(camera, "unenrolled named")] + counts[(camera, "unenrolled unknown")]
        print(f"{camera:8} {counts[(camera, 'right')] / total:7.1%} {counts[(camera, 'wrong')] / total:7.1%} "
              f"{counts[(camera, 'unknown')] / total:8.1%} "
              f"{counts[(camera, 'unenrolled named')]:>9}/{stranger:<3} ({counts[(camera, 'unenrolled named')] / max(stranger, 1):.1%})")
    p, r, f = bcubed(truth, predicted)
    print(f"\nclustering the never-enrolled people's {len(truth)} faces (clean and CCTV): "
          f"BCubed precision {p:.3f}, recall {r:.3f}, F {f:.3f}")
    print(f"files in {work}")


if __name__ == "__main__":
    main()
