"""Throughput on a synthetic CCTV corpus, or on photos: facelake against a face_recognition-style baseline.

The corpus is reproducible (seeded): N frames of 1920×1080, each with 0-4 faces cut from the
photos in a folder (default ``../shared/facedata``), pasted at widths of 16-160 px onto a
textured background, then blurred, noised and JPEG-compressed like a camera recorder's
export. Where each face was pasted is known, so detection recall is measured per face size.

Each pipeline runs in its own process (so peak memory is its own) over the same frames:

- ``facelake/retinaface``: ``facelake.ingest`` into a fresh DuckDB file — decoding, hashing,
  detection, alignment, embedding, thumbnails and the database writes all counted;
- ``facelake/hog``: the same with ``--detector hog``;
- ``baseline/N``: face_recognition's pipeline — dlib HOG with one upsample, dlib's 5-point
  predictor and dlib's ResNet — over N processes (1 is how the library runs by itself).

With ``--kind photos`` the corpus is instead N photos like the held-out ones of issue #21:
0.3-12 MP (log-uniform), 1-6 faces, portraits and groups in turn. Portraits are the development
photos (all folders but ``att_orl``'s grey 92x112 faces and ``wider_dev``) where RetinaFace finds
one or two faces, groups those where it finds three to six; the ``wider_dev`` photos (WIDER
FACE validation, mostly ~1024 px wide) count only where their hand labels hold one to six
faces. Each draw (seeded) is resized with Lanczos to its drawn size — most sources are under
1 MP, so most photos are upscaled, as soft as an upscale is — and saved as a camera would
(JPEG quality 90). Their truth is what RetinaFace finds in the source photo at its own
resolution (score >= 0.9), scaled, faces of 20 px and more — "faces the network can find".
The corpus is built at run time in a temporary folder (``--corpus`` keeps it elsewhere).

Two more rows time whole processes, as the issues do (interpreter start, imports and model
loading included), on the same files:

- ``cli/embed``: ``facelake embed --jsonl CORPUS`` (its default workers; with
  ``FACELAKE_BENCH_KEEP=DIR`` its output is kept there, for ``shared/eval/verify.py``);
- ``cli/recipe``: face_recognition's recipe in one process, written with dlib directly (the
  package is not installed; these are the calls it makes): ``load_image_file`` (Pillow, RGB),
  ``face_locations`` (HOG, one upsample), ``face_encodings`` (the 5-point predictor, dlib's
  ResNet, no jitter) on every photo.

Usage: python bench/throughput.py [--kind frames|photos|both] [--frames 40] [--photo-count 60] [--workers 2] [--photos DIR]
                                  [--seed 0] [--pipelines facelake/retinaface facelake/hog baseline/1 cli/embed cli/recipe
                                               cli/embed@PYTHONPATH=OTHER/src ...] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

FRAME_W, FRAME_H = 1920, 1080
BUCKETS = ((16, 21), (21, 32), (32, 48), (48, 80), (80, 161))
PHOTO_BUCKETS = ((20, 64), (64, 128), (128, 256), (256, 100_000))
PHOTO_MAX_FACES = 6
"""Photos show one to six people, like issue #21's held-out photos (portraits and groups);
crowds are the frame corpus's and bench/detection.py's job."""
PORTRAIT_MAX_FACES = 2
"""A source with at most this many faces is a portrait; with more, a group."""
NOT_PEOPLE = {"dogs.jpg"}
"""dlib's sample with no face: RetinaFace scores a dog's face in it 0.97+, which made two
"faces" of the earlier corpora dogs (the two large misses of the frame corpus)."""


# --- corpus --------------------------------------------------------------------------------


def face_patches(photos: Path, limit: int = 60) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """Faces cut from the colour photos under ``photos``, with the face box inside each patch."""
    from facelake.vision.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer()
    patches = []
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and p.name not in NOT_PEOPLE)
    for path in files:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        for det in analyzer.detect(rgb):
            x, y, w, h = det.box
            if det.score < 0.97 or w < 60:
                continue
            m = 0.5 * w
            x0, y0 = int(max(0, x - m)), int(max(0, y - m))
            x1, y1 = int(min(rgb.shape[1], x + w + m)), int(min(rgb.shape[0], y + h + m))
            patches.append((rgb[y0:y1, x0:x1].copy(), (x - x0, y - y0, w, h)))
        if len(patches) >= limit:
            break
    return patches


def background(rng: np.random.Generator) -> np.ndarray:
    """A textured scene: smooth colour blobs, a gradient and fine grain."""
    coarse = rng.integers(40, 200, size=(9, 16, 3)).astype(np.uint8)
    bg = cv2.resize(coarse, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    bg *= np.linspace(0.7, 1.1, FRAME_W, dtype=np.float32)[None, :, None]
    bg += rng.normal(0, 6, size=bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def paste_face(frame: np.ndarray, patch: np.ndarray, face: tuple[float, float, float, float], width: float,
               boxes: list[list[float]], rng: np.random.Generator, attempts: int,
               apart: Callable[[list[float], list[float]], bool]) -> None:
    """Paste ``patch`` resized so its face is ``width`` px wide, at a random place where
    ``apart(new_box, box)`` holds for every face in ``boxes``; the new face's box joins them.
    Gives up after ``attempts`` places (or when the patch does not fit in the frame)."""
    fx, fy, fw, fh = face
    scale = width / fw
    pw, ph = max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale))
    height, frame_w = frame.shape[:2]
    if pw >= frame_w or ph >= height:
        return
    for _attempt in range(attempts):
        px, py = int(rng.integers(0, frame_w - pw)), int(rng.integers(0, height - ph))
        box = [px + fx * scale, py + fy * scale, fw * scale, fh * scale]
        if all(apart(box, b) for b in boxes):
            frame[py : py + ph, px : px + pw] = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
            boxes.append(box)
            return


def make_corpus(photos: Path, out: Path, frames: int, seed: int) -> list[dict]:
    """Write ``frames`` JPEG frames into ``out``; return the ground truth per frame."""
    rng = np.random.default_rng(seed)
    patches = face_patches(photos)
    if not patches:
        raise SystemExit(f"no usable faces found under {photos}")
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(frames):
        frame = background(rng)
        boxes: list[list[float]] = []
        for _ in range(int(rng.integers(0, 5))):
            patch, face = patches[int(rng.integers(len(patches)))]
            width = float(np.exp(rng.uniform(np.log(16), np.log(160))))
            paste_face(frame, patch, face, width, boxes, rng, 20,
                       lambda a, b: abs(a[0] - b[0]) > a[2] + b[2] and abs(a[1] - b[1]) > a[3] + b[3])
        frame = cv2.GaussianBlur(frame, (0, 0), float(rng.uniform(0.3, 0.9)))
        frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        name = f"frame_{i:05d}.jpg"
        Image.fromarray(frame).save(out / name, quality=int(rng.integers(45, 75)))
        truth.append({"file": name, "faces": boxes})
    (out / "truth.json").write_text(json.dumps(truth))
    return truth


def photo_sources(photos: Path) -> tuple[list[tuple[Path, list]], list[tuple[Path, list]]]:
    """Portraits and group photos among the colour photos under ``photos``, each with its faces
    (RetinaFace at the source's own resolution, score >= 0.9); see the module docstring."""
    from facelake.sources.decode import decode_image
    from facelake.vision.analyzer import FaceAnalyzer

    detector = FaceAnalyzer().detector
    wider = photos / "wider_dev" / "truth.json"
    labelled = json.loads(wider.read_text()) if wider.exists() else {}
    portraits, groups = [], []
    for path in sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        if "att_orl" in path.parts or path.name in NOT_PEOPLE:
            continue
        if "wider_dev" in path.parts and not 1 <= len(labelled.get(path.name, [])) <= PHOTO_MAX_FACES:
            continue
        rgb = decode_image(path.read_bytes(), 200_000_000).pixels
        if rgb.shape[0] * rgb.shape[1] < 100_000:
            continue
        found = [d.box for d in detector._run(rgb, 1.0, 0.9)]
        if 0 < len(found) <= PORTRAIT_MAX_FACES:
            portraits.append((path, found))
        elif PORTRAIT_MAX_FACES < len(found) <= PHOTO_MAX_FACES:
            groups.append((path, found))
    return portraits, groups


def make_photo_corpus(photos: Path, out: Path, count: int, seed: int) -> list[dict]:
    """``count`` photos of 0.3-12 MP, portraits and groups in turn; returns their truth."""
    from facelake.sources.decode import decode_image

    rng = np.random.default_rng(seed)
    portraits, groups = photo_sources(photos)
    if not portraits and not groups:
        raise SystemExit(f"no usable photos under {photos}")
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(count):
        pool = (portraits if i % 2 == 0 else groups) or portraits or groups
        path, boxes = pool[int(rng.integers(len(pool)))]
        rgb = decode_image(path.read_bytes(), 200_000_000).pixels
        megapixels = float(np.exp(rng.uniform(np.log(0.3), np.log(12.0))))
        scale = float(np.sqrt(megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1])))
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        name = f"photo_{i:05d}.jpg"
        Image.fromarray(rgb).resize(size, Image.LANCZOS).save(out / name, quality=90)
        faces = [[b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale] for b in boxes if b[2] * scale >= 20]
        truth.append({"file": name, "faces": faces, "megapixels": round(megapixels, 2), "source": path.name})
    (out / "truth.json").write_text(json.dumps(truth))
    return truth


# --- pipelines (each run in its own process) ------------------------------------------------


def run_facelake(corpus: Path, detector: str, workers: int) -> dict:
    from facelake import ingest, load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, db=Path(tmp) / "bench.duckdb", detector=detector)
        start = time.perf_counter()
        summary = ingest([corpus], settings, workers=workers)
        seconds = time.perf_counter() - start
        import duckdb

        with duckdb.connect(str(settings.db), read_only=True) as con:
            rows = con.execute(
                "SELECT regexp_extract(i.uri, '[^/]+$'), s.box FROM sightings s JOIN images i USING (image_id)"
            ).fetchall()
    found: dict[str, list[list[float]]] = {}
    for name, box in rows:
        found.setdefault(name, []).append(list(box))
    return {"seconds": seconds, "frames": summary.new, "detections": found}


_BASE: tuple | None = None


def _baseline_init() -> None:
    global _BASE
    _BASE = _baseline_models()


def _baseline_frame(path: str) -> tuple[str, list[list[float]], dict[str, float]]:
    assert _BASE is not None
    hog, sp, net = _BASE
    rgb = np.asarray(Image.open(path).convert("RGB"))
    t0 = time.perf_counter()
    rects = hog(rgb, 1)
    t1 = time.perf_counter()
    shapes = [sp(rgb, r) for r in rects]
    t2 = time.perf_counter()
    for shape in shapes:
        np.asarray(net.compute_face_descriptor(rgb, shape))
    t3 = time.perf_counter()
    boxes = [[float(r.left()), float(r.top()), float(r.width()), float(r.height())] for r in rects]
    return Path(path).name, boxes, {"detect": t1 - t0, "align": t2 - t1, "embed": t3 - t2}


def run_baseline(corpus: Path, workers: int) -> dict:
    files = sorted(str(p) for p in corpus.glob("*.jpg"))
    ctx = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_baseline_init) as pool:
        results = list(pool.map(_baseline_frame, files))
    seconds = time.perf_counter() - start
    stages = {k: sum(r[2][k] for r in results) for k in ("detect", "align", "embed")}
    return {"seconds": seconds, "frames": len(files), "detections": {r[0]: r[1] for r in results if r[1]},
            "stages": stages}


def run_recipe(corpus: Path) -> dict:
    """face_recognition's recipe on every photo, in this process (see the module docstring)."""
    hog, sp, net = _baseline_models()
    found = {}
    for path in sorted(corpus.glob("*.jpg")):
        rgb = np.array(Image.open(path).convert("RGB"))
        rects = hog(rgb, 1)
        for rect in rects:
            np.array(net.compute_face_descriptor(rgb, sp(rgb, rect), 1))
        found[path.name] = [[float(r.left()), float(r.top()), float(r.width()), float(r.height())] for r in rects]
    return {"detections": found}


def _baseline_models() -> tuple:
    from facelake.vision import models

    return models.dlib_hog_detector(), models.dlib_shape_predictor(), models.dlib_resnet()


def whole_process(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Seconds from start to exit of ``cmd``, the CPU seconds of it and its worker processes, its
    peak RSS (MB, its largest process) and its stdout."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{cmd} failed with {proc.returncode}")
        out.seek(0)
        return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def stage_profile(corpus: Path, detector: str, frames: int) -> dict[str, float]:
    """Seconds per stage over the first ``frames`` frames, in this process, one thread."""
    from facelake import load_settings
    from facelake.pipeline import analyzer_options
    from facelake.sources.decode import decode_image
    from facelake.vision.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer(analyzer_options(load_settings(None, detector=detector)))
    files = sorted(corpus.glob("*.jpg"))[:frames]
    images = [decode_image(p.read_bytes(), 80_000_000).pixels for p in files]
    analyzer.load()  # outside the timing
    analyzer.analyze_many(images[:1])
    analyzer.timings = dict.fromkeys(analyzer.timings, 0.0)
    faces = sum(len(f) for f in analyzer.analyze_many(images))
    return {**analyzer.timings, "faces": float(faces), "frames": float(len(images))}


def embed_speed(batch: int = 32, repeats: int = 5) -> dict[str, float]:
    """Milliseconds per face for one pass of the ONNX ResNet (float32 and int8) and of dlib's own."""
    from facelake.vision import models
    from facelake.vision.embed import ResnetEmbedder, dlib_describe, onnx_describe

    chips = list(np.random.default_rng(0).integers(0, 255, (batch, 150, 150, 3), dtype=np.uint8))

    def pass_ms(describe: Callable[[list[np.ndarray]], np.ndarray]) -> float:
        describe(chips)  # warm-up
        t = time.perf_counter()
        for _ in range(repeats):
            describe(chips)
        return (time.perf_counter() - t) / repeats / batch * 1000

    onnx = onnx_describe(models.dlib_resnet_onnx(), batch=batch)
    onnx_ms = pass_ms(onnx)
    int8_ms = pass_ms(onnx_describe(models.dlib_resnet_int8(), batch=batch))
    full = ResnetEmbedder(onnx, models.DLIB_RESNET)
    t = time.perf_counter()
    full.embed(chips)
    full_ms = (time.perf_counter() - t) / batch * 1000
    dlib = dlib_describe(models.dlib_resnet())
    t = time.perf_counter()
    dlib(chips[:8])
    dlib_ms = (time.perf_counter() - t) / 8 * 1000
    return {"onnx_pass_ms": onnx_ms, "int8_pass_ms": int8_ms, "onnx_face_ms": full_ms, "dlib_pass_ms": dlib_ms}


def child(args: argparse.Namespace) -> None:
    corpus = Path(args.corpus)
    if args.child.startswith("baseline/"):
        args.workers = int(args.child.split("/", 1)[1])
        result = run_baseline(corpus, args.workers)
    elif args.child == "recipe":
        result = run_recipe(corpus)
    elif args.child == "embed-speed":
        result = embed_speed()
    elif args.child.startswith("profile/"):
        result = stage_profile(corpus, args.child.split("/", 1)[1], args.profile_frames)
    else:
        result = run_facelake(corpus, args.child.split("/", 1)[1], args.workers)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["rss_mb"] = own + kids * (args.workers if kids else 0)
    print(json.dumps(result))


# --- scoring and report ---------------------------------------------------------------------


def matches(truth: list[float], found: list[float]) -> bool:
    """Same face: centres within half a face width and widths within a factor of two.

    Detectors draw boxes differently (HOG's is tighter than RetinaFace's), so overlap alone
    would penalise a box convention rather than a miss.
    """
    tx, ty, tw, th = truth
    fx, fy, fw, fh = found
    close = abs((tx + tw / 2) - (fx + fw / 2)) < tw / 2 and abs((ty + th / 2) - (fy + fh / 2)) < th / 2
    return close and 0.5 < fw / tw < 2.0


def recall(truth: list[dict], found: dict[str, list[list[float]]],
           buckets: tuple[tuple[int, int], ...] = BUCKETS) -> tuple[list[tuple[int, int]], int]:
    per_bucket = [[0, 0] for _ in buckets]
    false_pos = 0
    for frame in truth:
        dets = found.get(frame["file"], [])
        used = set()
        for box in frame["faces"]:
            b = next(i for i, (lo, hi) in enumerate(buckets) if lo <= round(box[2]) < hi or i == len(buckets) - 1)
            per_bucket[b][1] += 1
            hit = next((j for j, d in enumerate(dets) if j not in used and matches(box, d)), None)
            if hit is not None:
                used.add(hit)
                per_bucket[b][0] += 1
        false_pos += len(dets) - len(used)
    return [(h, n) for h, n in per_bucket], false_pos


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["frames", "photos", "both"], default="frames",
                        help="synthetic 1080p CCTV frames, real photos of 0.3-12 MP, or both in one run")
    parser.add_argument("--frames", type=int, default=40, help="how many frames (or photos)")
    parser.add_argument("--photo-count", type=int, default=60, help="how many photos with --kind both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--photos", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile-frames", type=int, default=10)
    parser.add_argument("--pipelines", nargs="+",
                        default=["facelake/retinaface", "facelake/hog", "baseline/1", "baseline/2"],
                        help="facelake/DETECTOR, or baseline/PROCESSES")
    parser.add_argument("--corpus", type=Path, default=None, help="reuse or keep the corpus here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    kinds = ["frames", "photos"] if args.kind == "both" else [args.kind]
    args.both = len(kinds) > 1
    for kind in kinds:
        args.kind = kind
        if len(kinds) > 1:
            print(f"\n== {kind} ==")
        run_corpus(args)


def run_corpus(args: argparse.Namespace) -> None:
    """Build (or reuse) one corpus and print its table: each pipeline beside the baseline."""
    count = args.photo_count if args.both and args.kind == "photos" else args.frames
    corpus = (args.corpus / args.kind if args.corpus and args.both else args.corpus) or \
        Path(tempfile.mkdtemp(prefix=f"facelake-{args.kind}-"))
    if not (corpus / "truth.json").exists() or len(json.loads((corpus / "truth.json").read_text())) != count:
        (make_photo_corpus if args.kind == "photos" else make_corpus)(args.photos, corpus, count, args.seed)
    truth = json.loads((corpus / "truth.json").read_text())
    n_faces = sum(len(f["faces"]) for f in truth)
    buckets = PHOTO_BUCKETS if args.kind == "photos" else BUCKETS
    if args.kind == "photos":
        mp = [f["megapixels"] for f in truth]
        print(f"corpus: {len(truth)} photos of {min(mp):.1f}-{max(mp):.1f} MP (median {np.median(mp):.1f}), "
              f"{n_faces} faces (seed {args.seed}) in {corpus}")
    else:
        print(f"corpus: {len(truth)} frames of {FRAME_W}x{FRAME_H}, {n_faces} faces (seed {args.seed}) in {corpus}")

    def run(kind: str) -> dict:
        cmd = [sys.executable, __file__, "--child", kind, "--corpus", str(corpus), "--workers", str(args.workers),
               "--profile-frames", str(args.profile_frames)]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

    speed = run("embed-speed")
    print(f"dlib's ResNet, batch of 32, one thread: ONNX {speed['onnx_pass_ms']:.1f} ms per pass, int8 "
          f"(the default) {speed['int8_pass_ms']:.1f}; {speed['onnx_face_ms']:.1f} ms per face with its 4 views "
          f"(chip, mirror, 20-px view, its mirror) in float32; dlib itself {speed['dlib_pass_ms']:.1f} ms per pass")

    rows = []
    for spec in args.pipelines:
        kind, _, extra = spec.partition("@")
        env = {**os.environ, **dict(kv.split("=", 1) for kv in extra.split(",") if kv)}
        if kind.startswith("cli/"):
            rows.append(cli_row(spec, kind, corpus, env, truth, buckets))
            continue
        result = run(kind)
        if kind.startswith("baseline"):
            stages, faces = result["stages"], sum(len(v) for v in result["detections"].values())
        else:
            prof = run("profile/" + kind.split("/", 1)[1])
            stages, faces = prof, prof["faces"]
        per_bucket, false_pos = recall(truth, result["detections"], buckets)
        fps = result["frames"] / result["seconds"]
        ms = {k: 1000 * stages[k] / max(faces, 1) for k in ("align", "embed")}
        ms["detect"] = 1000 * stages["detect"] / (len(truth) if kind.startswith("baseline") else prof["frames"])
        rows.append((spec, fps, ms, result["rss_mb"], per_bucket, false_pos))

    base_fps = next((r[1] for r in rows if r[0].startswith("baseline")), None)
    recipe_fps = next((r[1] for r in rows if r[0].startswith("cli/recipe")), None)
    labels = " ".join(f"{f'{lo}-{hi - 1}px' if hi < 100_000 else f'{lo}px+':>9}" for lo, hi in buckets)
    unit = "photo" if args.kind == "photos" else "frame"
    width = max([20] + [len(r[0]) for r in rows])
    header = (f"{'pipeline':{width}} {unit + 's/s':>8} {'x base':>6} {'detect ms/' + unit:>15} {'align ms/face':>13} "
              f"{'embed ms/face':>13} {'peak RSS MB':>11} {labels} {'false +':>7}")
    print(header)
    print("-" * len(header))
    for kind, fps, ms, rss, per_bucket, false_pos in rows:
        base = recipe_fps if kind.startswith("cli/") else base_fps
        ratio = f"{fps / base:6.1f}" if base else "     -"
        rec = " ".join(f"{h:>4}/{n:<4}" for h, n in per_bucket)
        stage = " ".join(f"{ms[k]:{w}.{d}f}" if k in ms else f"{'-':>{w}}"
                         for k, w, d in (("detect", 15, 0), ("align", 13, 1), ("embed", 13, 1)))
        print(f"{kind:{width}} {fps:8.2f} {ratio} {stage} {rss:11.0f} {rec} {false_pos:7d}")
    print(f"\nfacelake ran {args.workers} worker processes; 'x base' is relative to the first baseline row "
          "(baseline/1 = face_recognition used as a library, one process); recall is found/total per face-width bucket; stage times are "
          "per frame (detect) and per face (align, embed), measured single-threaded on the first "
          f"{args.profile_frames} frames for facelake and over all frames for the baseline. cli/ rows time whole "
          "processes (start to exit, models loading included), 'x base' against cli/recipe; NAME@VAR=VALUE,... runs "
          "a row with those environment variables.")


def cli_row(spec: str, kind: str, corpus: Path, env: dict[str, str], truth: list[dict],
            buckets: tuple[tuple[int, int], ...]) -> tuple:
    """One whole-process row: ``cli/embed`` (facelake's command) or ``cli/recipe`` (face_recognition's)."""
    if kind == "cli/recipe":
        cmd = [sys.executable, __file__, "--child", "recipe", "--corpus", str(corpus)]
    elif kind == "cli/embed":
        cmd = [sys.executable, "-c", "from facelake.cli import app; app()", "embed", "--jsonl", str(corpus)]
    else:
        raise SystemExit(f"unknown pipeline {spec}")
    seconds, cpu, rss, out = whole_process(cmd, env)
    print(f"  {spec}: {seconds:.2f} s wall, {cpu:.2f} CPU s ({1000 * cpu / len(truth):.0f} ms a photo)", flush=True)
    if kind == "cli/recipe":
        found = json.loads(out.splitlines()[-1])["detections"]
    else:
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        found = {Path(r["image"]).name: [d["box"] for d in r.get("detections", [])] for r in records}
        keep = os.environ.get("FACELAKE_BENCH_KEEP")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / (spec.replace("/", "_") + ".jsonl")).write_text(out)
    per_bucket, false_pos = recall(truth, found, buckets)
    return spec, len(truth) / seconds, {}, rss, per_bucket, false_pos


if __name__ == "__main__":
    main()
