"""Verification and identification accuracy on labelled photos, clean and at CCTV quality.

Follows the project's evaluation protocol (``shared/eval``): ``degrade.py`` makes CCTV copies
(largest face scaled to N px, blur, underexposure, noise, JPEG 20-35), ``verify.py`` scores
``facelake embed --jsonl`` output: clean photos against each other, and CCTV copies against
the clean photos. A face_recognition-style baseline (dlib HOG with one upsample, 5-point
predictor, ResNet) is scored on the same files, side by side.

Usage:
    python bench/accuracy.py [--facedata ../shared/facedata] [--eval ../shared/eval]
                             [--face-px 24 40] [--seeds 7] [--limit-orl 14] [--work DIR]
    python bench/accuracy.py --detection    # detection AP by face size (bench/detection.py)

The labelled set is assembled from ``facedata``: public figures' photos from the
face_recognition and facenet-pytorch examples (people with two photos or more, faces cut
out of the group photos included), and AT&T/ORL subjects (grey, 92×112), reported apart.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

EXAMPLES = "face_recognition_examples"
KNN = f"{EXAMPLES}/knn_examples"
PUBLIC = {
    "obama_a": f"{EXAMPLES}/obama.jpg",
    "obama_b": f"{EXAMPLES}/obama2.jpg",
    "obama_c": f"{EXAMPLES}/obama-720p.jpg",
    "obama_d": f"{EXAMPLES}/obama_small.jpg",
    "obama_e": f"{KNN}/test/obama1.jpg",
    "biden_a": f"{EXAMPLES}/biden.jpg",
    "biden_b": f"{KNN}/train/biden/biden2.jpg",
    "alex_a": f"{EXAMPLES}/alex-lacamoire.png",
    "alex_b": f"{KNN}/train/alex_lacamoire/img1.jpg",
    "alex_c": f"{KNN}/test/alex_lacamoire1.jpg",
    "rose_a": f"{KNN}/train/rose_leslie/img1.jpg",
    "rose_b": f"{KNN}/train/rose_leslie/img2.jpg",
    "kit_a": f"{KNN}/test/johnsnow_test1.jpg",
}
# Faces cut out of group photos (box x, y, w, h as RetinaFace finds them; labels checked by eye).
GROUP_CROPS = {
    "kit_b": (f"{KNN}/test/kit_with_rose.jpg", (260, 74, 91, 129)),
    "rose_c": (f"{KNN}/test/kit_with_rose.jpg", (79, 108, 77, 105)),
    "biden_c": (f"{EXAMPLES}/two_people.jpg", (790, 44, 144, 212)),
    "obama_f": (f"{EXAMPLES}/two_people.jpg", (244, 30, 140, 192)),
    "obama_g": (f"{KNN}/test/obama_and_biden.jpg", (1140, 359, 182, 244)),
    "biden_d": (f"{KNN}/test/obama_and_biden.jpg", (766, 384, 170, 260)),
}


def build_set(facedata: Path, out: Path, orl_subjects: int) -> dict[str, list[tuple[str, str]]]:
    """Copy the labelled photos into ``out/clean``; return labels per subset."""
    clean = out / "clean"
    clean.mkdir(parents=True, exist_ok=True)
    public: list[tuple[str, str]] = []
    for key, rel in PUBLIC.items():
        src = facedata / rel
        shutil.copy(src, clean / f"{key}{src.suffix}")
        public.append((key, key.split("_")[0]))
    for key, (rel, (x, y, w, h)) in GROUP_CROPS.items():
        img = ImageOps.exif_transpose(Image.open(facedata / rel)).convert("RGB")
        m = 1.2 * w
        box = (int(max(0, x - m)), int(max(0, y - m)), int(min(img.width, x + w + m)), int(min(img.height, y + h + m)))
        img.crop(box).save(clean / f"{key}.jpg", quality=95)
        public.append((key, key.split("_")[0]))
    orl: list[tuple[str, str]] = []
    subjects = sorted((facedata / "att_orl").glob("s*"), key=lambda p: int(p.name[1:]))
    step = max(1, len(subjects) // max(orl_subjects, 1))
    for subject in subjects[::step][:orl_subjects]:
        for shot in (1, 3, 5, 7, 9):
            key = f"orl{int(subject.name[1:]):02d}_{shot}"
            Image.open(subject / f"{shot}.pgm").convert("RGB").save(clean / f"{key}.png")
            orl.append((key, f"orl{subject.name}"))
    return {"public": public, "orl": orl}


def write_labels(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows(rows)


def facelake_embed(folder: Path, out: Path) -> None:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    with out.open("w") as f:
        subprocess.run([sys.executable, "-m", "facelake.cli", "embed", *map(str, files), "--jsonl"],
                       stdout=f, check=True)


def baseline_embed(folder: Path, out: Path) -> None:
    """face_recognition's pipeline: HOG (1 upsample) → 5-point predictor → ResNet, no flip."""
    import dlib

    from facelake.vision import models

    hog, sp, net = models.dlib_hog_detector(), models.dlib_shape_predictor(), models.dlib_resnet()
    with out.open("w") as f:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
            rects = sorted(hog(rgb, 1), key=lambda r: r.width() * r.height(), reverse=True)
            dets = []
            for r in rects:
                vec = np.array(net.compute_face_descriptor(rgb, sp(rgb, r)), dtype=np.float32)
                dets.append({"box": [r.left(), r.top(), r.width(), r.height()],
                             "embedding": (vec / np.linalg.norm(vec)).tolist()})
            f.write(json.dumps({"image": str(path), "faces": len(dets), "detections": dets}) + "\n")
    del dlib


def verify(eval_dir: Path, labels: Path, gallery: Path, probe: Path | None = None) -> dict[str, float]:
    cmd = [sys.executable, str(eval_dir / "verify.py"), str(labels), str(gallery)] + ([str(probe)] if probe else [])
    line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    return {k: float(v) for k, v in (item.split("=") for item in line.split())}


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facedata", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--eval", type=Path, default=here.parent / "shared" / "eval")
    parser.add_argument("--face-px", type=int, nargs="+", default=[24, 40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--limit-orl", type=int, default=14, help="ORL subjects (5 photos each); 0 to skip")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="keep the sets and JSONL files here")
    parser.add_argument("--detection", action="store_true",
                        help="report detection AP by face size on the crowd check instead (bench/detection.py)")
    args = parser.parse_args()
    if args.detection:
        sys.argv = [str(Path(__file__).with_name("detection.py")), "--photos", str(args.facedata)]
        sys.path.insert(0, str(Path(__file__).parent))
        import detection

        detection.main()
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="facelake-acc-"))
    sets = build_set(args.facedata, work, args.limit_orl)
    for name, rows in sets.items():
        write_labels(work / f"labels_{name}.csv", rows)
    folders = {"clean": work / "clean"}
    for px in args.face_px:
        for seed in args.seeds:
            dst = work / f"cctv{px}_s{seed}"
            if not dst.exists():
                subprocess.run([sys.executable, str(args.eval / "degrade.py"), str(folders["clean"]), str(dst),
                                str(px), str(seed)], check=True)
            folders[dst.name] = dst
    pipelines = {"facelake": facelake_embed} | ({} if args.no_baseline else {"baseline": baseline_embed})
    for pipe, fn in pipelines.items():
        for name, folder in folders.items():
            fn(folder, work / f"{pipe}_{name}.jsonl")

    header = f"{'set':8} {'condition':14} {'pipeline':9} {'images':>6} {'no face':>7} {'balanced':>9} {'TAR@1%':>7} {'rank-1':>7}"
    print(header)
    print("-" * len(header))
    for subset, rows in sets.items():
        if not rows:
            continue
        labels = work / f"labels_{subset}.csv"
        for name in folders:
            for pipe in pipelines:
                gallery = work / f"{pipe}_clean.jsonl"
                probe = None if name == "clean" else work / f"{pipe}_{name}.jsonl"
                r = verify(args.eval, labels, gallery, probe)
                print(f"{subset:8} {name:14} {pipe:9} {int(r['images']):6d} {int(r['probe_no_face']):7d} "
                      f"{r['balanced_acc']:9.4f} {r['tar_at_far1']:7.4f} {r['rank1']:7.4f}")
    print(f"\nfiles in {work}")


if __name__ == "__main__":
    main()
