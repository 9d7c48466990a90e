"""Video end to end: facelake's tracks against face_recognition's own recipe for video, on the same clips.

Measured once on this project's 2-core shared dev machine (``python bench/video.py``, defaults:
4 clips x 30 s = 120 s of 1080p H.264, 1.8 Mbit/s, 11 passes of which 4 of enrolled people,
someone in view 33 % of the time; 270 s for the whole run, plus 49 s to encode the clips once):

=====================================================  ====================================  ==================================  ========
measure                                                facelake                              face_recognition's recipe           goal
=====================================================  ====================================  ==================================  ========
decode, ms per frame of the clip                       1.4 decode only; 1.5 with 5-fps       2.5 (OpenCV ``read``, every frame)
                                                       sampling, gating and RGB
analysed frames per second, one thread                 16.8 gated (76 of 150 sampled);       1.55
                                                       23.7 ungated
real-time factor, one 1080p stream, one core           6.6x gated; 4.7x every 5-fps frame    0.062x (every frame)
1080p streams one 2-core machine follows               4.2 (whole ingest, 2 workers,         0.062 (x2 with 2 processes)         >= 4
                                                       start-up included); 13.3 from 2 x
                                                       the one-core factor
4 streams replayed at once in real time: lag p95/max   0.36 s / 0.64 s                       -
face fully in view -> open track, p50 / p95            0.02 s / 0.17 s                       -
face fully in view -> track named, p50 / p95           0.11 s / 0.21 s (0 enrolled passes    -                                   <= 2 s
                                                       unnamed, 0 named wrong)                                                   (to the
                                                                                                                                 row)
whole process on the 4 clips (120 s of video)          28.4 s: 68x faster                    1934 s (extrapolated, 1 in 15       >= 10x
                                                                                             frames modelled); 967 s if split
                                                                                             over 2 processes
peak RSS, MB                                           1290 (ingest + 2 workers)             400
enrolled people named right                            100 % (4/4) of tracks                 100 % (22/22) of frames at 0.6;
                                                                                             59 % (13/22) at 0.50
enrolled people named as someone else                  0 % (0/4) of tracks                   0 % (0/22) at 0.6 and at 0.50
strangers given a name                                 0 % (0/7) of tracks                   0 % (0/43) of frames at both
passes followed / split / stray tracks                 11/11 / 0 / 0 (11 tracks)             -
=====================================================  ====================================  ==================================  ========

facelake's one-stream time (4.5 s for a 30-s clip, gated): detect 1.9 s, align 0.5 s, embed
0.8 s, decoding, gating and tracking 1.3 s. The recipe: 642 ms of HOG + dlib per frame, so one
1080p stream needs 16 cores to be followed in real time; facelake's advantage is sampling (5 of
25 fps), motion gating (half the sampled frames of this scene skipped) and RetinaFace + ONNX in
place of upsampled HOG + dlib. The naming rows are small counts on rigid, frontal photo faces
(every frame of a pass is the same face), so they show that neither side confuses these people,
not that tracks beat frames on hard faces; the "tolerance 0.50" column is the example's own
setting, at which the recipe misses 41 % of the enrolled faces' frames. The latency is to a named
track in memory: facelake writes a clip's tracks when the clip ends and has no live-stream track
writer yet, so "to its row" is not measurable here.

The clips: ``--clips`` 1080p H.264 clips of ``--seconds`` each at 25 fps (libx264 ``veryfast``,
CRF 20 capped at 6 Mbit/s, GOP 50 = 2 s, no B-frames: what an IP camera records), encoded here
with PyAV from real face photos of ``../shared/facedata`` (read from there, never copied into the
project) walking across a still textured scene with sensor grain. A *typical scene*: a few
passes (one person, sometimes two at different heights), each 3.5-6 s, faces 90-170 px wide and
growing or shrinking by up to 25 % as they walk, separated by 4-12 s with nobody in view. Four
people are enrolled from one photo each (Lin-Manuel Miranda and Alex Lacamoire, the recipe's own
known faces, plus Obama and Biden); the clips show other photos of Obama, Biden and Lacamoire and
seven strangers. Where every face is, frame by frame, is known by construction.

What runs, each in its own process (peak RSS is the sum over that process and its children,
sampled every 0.1 s):

- ``facelake``: ``facelake ingest CLIPS --workers W`` into a fresh DuckDB file that holds the four
  enrolled people: listing, hashing, decoding, sampling at 5 fps, motion gating, detection,
  alignment, embedding, tracking, naming and the database writes, timed from process start to
  exit (interpreter start and model loading included);
- ``face_recognition``: its ``examples/facerec_from_video_file.py`` written with dlib directly (the
  package is not installed; the calls are the ones it makes): OpenCV reads every frame,
  ``frame[:, :, ::-1]``, HOG with one upsample, the 5-point predictor and dlib's ResNet on each
  face, ``compare_faces`` at ``--tolerance`` (0.6, the library's default; the example itself
  writes 0.50, reported too) against the known faces, the first match giving the name. Writing
  the annotated output movie is left out (it only costs the recipe more). One process, as the
  example runs. Every frame is decoded; with ``--stride K`` only one frame in K goes through the
  models and the model time is scaled by K (the row says "extrapolated"); ``--stride 1`` runs the
  whole recipe;
- one stream in one process (one thread): decode cost, analysed frames per second and real-time
  factor of ``analyse_video`` on the first clip(s), with and without motion gating;
- ``--streams`` N clips replayed *at once, in real time* (each frame waits for its time on the
  wall clock) through ``VideoReader`` + the models + ``Tracker``, one process per stream: how far
  each stream lags and, per pass of a person, the latency from the face being fully in view to an
  open track holding it, and to that track being named (``Namer`` on the track's template, the
  rule the clip pipeline uses). facelake has no live track writer yet, so this stops at the named
  track in memory, not a row in the database (see the report).

Usage: python bench/video.py [--clips 4] [--seconds 30] [--workers 2] [--streams 4] [--stride 15]
                             [--facedata ../shared/facedata] [--cache DIR] [--seed 0] [--skip live baseline]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

FRAME_W, FRAME_H, FPS = 1920, 1080, 25
BASE_FACE = 200
"""Face width (px) of the stored patches; each frame scales them to the pass's size."""
ENROLLED = {
    "Lin-Manuel Miranda": "face_recognition_examples/lin-manuel-miranda.png",
    "Alex Lacamoire": "face_recognition_examples/alex-lacamoire.png",
    "Barack Obama": "face_recognition_examples/obama.jpg",
    "Joe Biden": "face_recognition_examples/biden.jpg",
}
"""One photo per enrolled person; the recipe's own two known faces first (its match order)."""
WALKERS = [
    ("Barack Obama", "face_recognition_examples/obama2.jpg"),
    ("Barack Obama", "face_recognition_examples/knn_examples/test/obama1.jpg"),
    ("Joe Biden", "face_recognition_examples/knn_examples/train/biden/biden2.jpg"),
    ("Alex Lacamoire", "face_recognition_examples/knn_examples/train/alex_lacamoire/img1.jpg"),
    ("Alex Lacamoire", "face_recognition_examples/knn_examples/test/alex_lacamoire1.jpg"),
    ("Rose Leslie", "face_recognition_examples/knn_examples/train/rose_leslie/img1.jpg"),
    ("Rose Leslie", "face_recognition_examples/knn_examples/train/rose_leslie/img2.jpg"),
    ("Kit Harington", "face_recognition_examples/knn_examples/test/johnsnow_test1.jpg"),
    ("Kate Siegel", "facenet_pytorch/test_images/kate_siegel/1.jpg"),
    ("Paul Rudd", "facenet_pytorch/test_images/paul_rudd/1.jpg"),
    ("Shea Whigham", "facenet_pytorch/test_images/shea_whigham/1.jpg"),
    ("Angelina Jolie", "facenet_pytorch/test_images/angelina_jolie/1.jpg"),
]
"""Photos that walk through the clips (none of them an enrollment photo)."""
CLIP_VERSION = 3


# --- clips -----------------------------------------------------------------------------------


@dataclass
class Pass:
    """One person crossing the frame: the patch's top-left moves from x0 to x1 between t0 and t1 s,
    its face growing from w0 to w1 px, centred vertically on yc."""

    name: str
    walker: int
    t0: float
    t1: float
    x0: float
    x1: float
    yc: float
    w0: float
    w1: float
    face: tuple[float, float, float, float]
    """The face's box inside the patch at BASE_FACE scale."""
    patch: tuple[int, int]
    """The patch's (width, height) at BASE_FACE scale."""

    def at(self, t: float) -> tuple[float, float, float] | None:
        """(x, y, scale) of the patch at ``t``, or None outside the pass."""
        if not self.t0 <= t <= self.t1:
            return None
        a = (t - self.t0) / (self.t1 - self.t0)
        scale = (self.w0 + a * (self.w1 - self.w0)) / BASE_FACE
        return self.x0 + a * (self.x1 - self.x0), self.yc - self.patch[1] * scale / 2, scale

    def box(self, t: float) -> list[float] | None:
        """The face's box ``[x, y, w, h]`` in the frame at ``t`` (None outside the pass)."""
        where = self.at(t)
        if where is None:
            return None
        x, y, s = where
        fx, fy, fw, fh = self.face
        return [x + fx * s, y + fy * s, fw * s, fh * s]

    def visible(self, t: float) -> bool:
        """The whole face is inside the frame at ``t``."""
        b = self.box(t)
        return b is not None and b[0] >= 0 and b[1] >= 0 and b[0] + b[2] <= FRAME_W and b[1] + b[3] <= FRAME_H

    def first_visible(self, step: float = 0.01) -> float | None:
        t = self.t0
        while t <= self.t1:
            if self.visible(t):
                return round(t, 3)
            t += step
        return None


def load_patches(facedata: Path) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """Head-and-shoulders patch of each walker photo at BASE_FACE face width, with its face box."""
    from PIL import Image, ImageOps

    from facelake.vision.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer()
    out = []
    for _name, rel in WALKERS:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(facedata / rel)).convert("RGB"))
        dets = sorted(analyzer.detect(rgb), key=lambda d: -d.box[2] * d.box[3])
        if not dets:
            raise SystemExit(f"no face found in {facedata / rel}")
        x, y, w, h = dets[0].box
        x0, y0 = max(0, int(x - 0.45 * w)), max(0, int(y - 0.4 * h))
        x1, y1 = min(rgb.shape[1], int(x + 1.45 * w)), min(rgb.shape[0], int(y + 1.6 * h))
        crop = Image.fromarray(rgb[y0:y1, x0:x1])
        s = BASE_FACE / w
        crop = crop.resize((max(1, round(crop.width * s)), max(1, round(crop.height * s))), Image.LANCZOS)
        out.append((np.asarray(crop), ((x - x0) * s, (y - y0) * s, w * s, h * s)))
    return out


def plan(seconds: float, rng: np.random.Generator, patches: list) -> list[Pass]:
    """A typical scene: passes of one (sometimes two) people with long empty stretches between."""
    passes: list[Pass] = []
    t = float(rng.uniform(2.0, 6.0))
    while t < seconds - 2.5:
        duration = float(rng.uniform(3.5, 6.0))
        together = 2 if rng.random() < 0.25 else 1
        walkers = rng.choice(len(WALKERS), size=together, replace=False)
        if together == 2 and WALKERS[walkers[0]][0] == WALKERS[walkers[1]][0]:
            walkers = walkers[:1]
        bands = [(300.0, 380.0), (700.0, 780.0)] if len(walkers) == 2 else [(300.0, 780.0)]
        for k, (walker, band) in enumerate(zip(walkers, bands)):
            patch, face = patches[int(walker)]
            top = 140.0 if len(walkers) == 2 else 170.0
            w0 = float(rng.uniform(90.0, top))
            w1 = float(np.clip(w0 * rng.uniform(0.8, 1.25), 80.0, top + 10))
            pw = patch.shape[1] * max(w0, w1) / BASE_FACE
            left = rng.random() < 0.5
            x0, x1 = (-pw, float(FRAME_W)) if left else (float(FRAME_W), -pw)
            start = t + (float(rng.uniform(0.0, 1.0)) if k else 0.0)
            end = min(start + duration, seconds - 0.05)
            passes.append(Pass(WALKERS[int(walker)][0], int(walker), start, end, x0, x1,
                               float(rng.uniform(*band)), w0, w1, face, (patch.shape[1], patch.shape[0])))
        t += duration + float(rng.uniform(4.0, 12.0))
    return passes


def scene(rng: np.random.Generator) -> np.ndarray:
    """A still room-like scene: smooth colour blobs, a light gradient, fine static texture."""
    import cv2

    coarse = rng.integers(50, 190, size=(12, 20, 3)).astype(np.uint8)
    bg = cv2.resize(coarse, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    bg *= np.linspace(0.75, 1.1, FRAME_W, dtype=np.float32)[None, :, None]
    bg += rng.normal(0, 5, size=bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def render_clip(path: Path, passes: list[Pass], patches: list, seconds: float, rng: np.random.Generator) -> None:
    """Encode one clip with PyAV: the scene with fresh sensor grain each frame, the passes pasted on it."""
    import av
    import cv2

    bg = scene(rng)
    grain = [(rng.normal(0, 2.5, size=bg.shape).clip(0, 10)).astype(np.uint8) for _ in range(6)]
    n = round(seconds * FPS)
    with av.open(str(path), "w") as out:
        out.metadata["creation_time"] = "2025-06-01T08:00:00.000000Z"
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        stream.codec_context.gop_size = 2 * FPS
        stream.options = {"preset": "veryfast", "crf": "20", "maxrate": "6M", "bufsize": "12M", "bf": "0"}
        for i in range(n):
            t = i / FPS
            frame = cv2.subtract(cv2.add(bg, grain[i % 6]), grain[(i + 3) % 6])
            for p in passes:
                where = p.at(t)
                if where is None:
                    continue
                x, y, s = where
                patch = patches[p.walker][0]
                pw, ph = max(1, round(patch.shape[1] * s)), max(1, round(patch.shape[0] * s))
                small = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
                xi, yi = round(x), round(y)
                fx0, fy0, fx1, fy1 = max(xi, 0), max(yi, 0), min(xi + pw, FRAME_W), min(yi + ph, FRAME_H)
                if fx1 > fx0 and fy1 > fy0:
                    frame[fy0:fy1, fx0:fx1] = small[fy0 - yi:fy1 - yi, fx0 - xi:fx1 - xi]
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_clips(args: argparse.Namespace) -> tuple[Path, list[dict]]:
    """The clips (cached by their parameters) and their truth: every pass with its timing and path."""
    key = hashlib.sha256(json.dumps([CLIP_VERSION, args.clips, args.seconds, args.seed, WALKERS]).encode()).hexdigest()[:12]
    root = args.cache / f"clips-{key}"
    truth_file = root / "truth.json"
    if truth_file.exists():
        return root, json.loads(truth_file.read_text())
    patches = load_patches(args.facedata)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    truth = []
    t = time.perf_counter()
    for c in range(args.clips):
        rng = np.random.default_rng(args.seed * 1000 + c)
        passes = plan(args.seconds, rng, patches)
        path = root / "clips" / f"typical_{c:02d}.mp4"
        render_clip(path, passes, patches, args.seconds, rng)
        truth.append({"clip": path.name, "seconds": args.seconds,
                      "passes": [{**asdict(p), "visible_at": p.first_visible()} for p in passes]})
        print(f"  encoded {path.name}: {len(passes)} passes, {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    truth_file.write_text(json.dumps(truth))
    print(f"  clips made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return root, truth


def passes_of(clip_truth: dict) -> list[Pass]:
    return [Pass(**{k: (tuple(v) if k in ("face", "patch") else v) for k, v in p.items() if k != "visible_at"})
            for p in clip_truth["passes"]]


def same_face(truth: list[float], found: list[float]) -> bool:
    """Centres within half a face and widths within a factor of two (as bench/throughput.py)."""
    tx, ty, tw, th = truth
    fx, fy, fw, fh = found
    close = abs((tx + tw / 2) - (fx + fw / 2)) < tw / 2 and abs((ty + th / 2) - (fy + fh / 2)) < th / 2
    return close and 0.5 < fw / tw < 2.0


def who(passes: list[Pass], t: float, box: list[float]) -> int | None:
    """The pass whose face is at ``box`` at ``t``."""
    for i, p in enumerate(passes):
        b = p.box(t)
        if b is not None and same_face(b, box):
            return i
    return None


# --- children (each in its own process) -----------------------------------------------------


def facelake_cmd() -> list[str]:
    return [sys.executable, "-c", "from facelake.cli import app; app()"]


def child_baseline(args: argparse.Namespace) -> dict:
    """face_recognition's examples/facerec_from_video_file.py, with dlib's calls made directly."""
    t_start = time.perf_counter()
    import cv2
    from PIL import Image

    from facelake.vision import models

    hog, sp, net = models.dlib_hog_detector(), models.dlib_shape_predictor(), models.dlib_resnet()

    def encodings(rgb: np.ndarray, rects: list) -> list[np.ndarray]:
        return [np.asarray(net.compute_face_descriptor(rgb, sp(rgb, r), 1)) for r in rects]

    t_known = time.perf_counter()
    known = []
    for rel in ENROLLED.values():  # face_recognition.load_image_file + face_encodings(image)[0]
        image = np.asarray(Image.open(args.facedata / rel).convert("RGB"))
        known.append(encodings(image, list(hog(image, 1)))[0])
    known_arr = np.stack(known)
    t_known = time.perf_counter() - t_known
    decode_s = model_s = 0.0
    frames = sampled = 0
    out = []
    for c, clip in enumerate(sorted((args.root / "clips").glob("*.mp4"))):
        capture = cv2.VideoCapture(str(clip))
        index = -1
        while True:
            t0 = time.perf_counter()
            ret, frame = capture.read()
            decode_s += time.perf_counter() - t0
            if not ret:
                break
            index += 1
            frames += 1
            if index % args.stride != (c * 7) % args.stride:
                continue
            t0 = time.perf_counter()
            # the example's frame[:, :, ::-1] is a negative-stride view, which dlib-bin's
            # compute_face_descriptor refuses (HOG takes it): the usual fix, a contiguous copy
            rgb_frame = np.ascontiguousarray(frame[:, :, ::-1])
            rects = list(hog(rgb_frame, 1))  # face_recognition.face_locations(rgb_frame)
            found = encodings(rgb_frame, rects)  # face_recognition.face_encodings(rgb_frame, face_locations)
            distances = [np.linalg.norm(known_arr - e, axis=1).tolist() for e in found]  # compare_faces
            model_s += time.perf_counter() - t0
            sampled += 1
            out.append({"clip": c, "t": index / FPS, "faces": [
                {"box": [r.left(), r.top(), r.width(), r.height()], "distances": d} for r, d in zip(rects, distances)]})
        capture.release()
    return {"frames": frames, "sampled": sampled, "decode_s": decode_s, "model_s": model_s, "known_s": t_known,
            "setup_s": time.perf_counter() - t_start - decode_s - model_s - t_known, "detections": out}


def child_stream(args: argparse.Namespace) -> dict:
    """One stream in one process and one thread: decode cost, analysed frames/s, real-time factor."""
    import av
    import cv2

    from facelake import load_settings
    from facelake.pipeline import analyzer_options
    from facelake.pipeline.records import Job
    from facelake.pipeline.video import VideoOptions, analyse_video
    from facelake.sources.video import VideoReader
    from facelake.vision.analyzer import FaceAnalyzer

    cv2.setNumThreads(1)
    clips = sorted((args.root / "clips").glob("*.mp4"))[: args.rtf_clips]
    settings = load_settings(None)
    analyzer = FaceAnalyzer(analyzer_options(settings))
    analyzer.load()
    analyzer.analyze_many([np.zeros((FRAME_H, FRAME_W, 3), np.uint8)])
    result: dict = {"clips": len(clips), "video_s": 0.0, "frames": 0}
    for clip in clips:
        with av.open(str(clip)) as container:  # decode only, every frame, no conversion
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            t0 = time.perf_counter()
            n = sum(1 for _ in container.decode(stream))
            result["decode_only_s"] = result.get("decode_only_s", 0.0) + time.perf_counter() - t0
        result["frames"] += n
        result["video_s"] += n / FPS
        for gated in (True, False):  # the reader alone: decode, sample at 5 fps, gate, convert
            reader = VideoReader(clip, fps=settings.video_fps, motion_threshold=settings.video_motion_threshold if gated else 0)
            t0 = time.perf_counter()
            with reader:
                for _ in reader.frames():
                    pass
            tag = "gated" if gated else "ungated"
            result[f"reader_{tag}_s"] = result.get(f"reader_{tag}_s", 0.0) + time.perf_counter() - t0
            result[f"analysed_{tag}"] = result.get(f"analysed_{tag}", 0) + reader.analysed
        for gated in (True, False):  # the whole clip analysis facelake runs per clip in a worker
            options = VideoOptions.from_settings(settings)
            if not gated:
                options = VideoOptions(**{**asdict(options), "motion_threshold": 0.0})
            job = Job("bench", str(clip), "bench", None, None, path=str(clip))
            analyzer.timings = dict.fromkeys(analyzer.timings, 0.0)
            t0 = time.perf_counter()
            image = analyse_video(analyzer, job, options)
            tag = "gated" if gated else "ungated"
            for stage, spent in analyzer.timings.items():
                result[f"{stage}_{tag}_s"] = result.get(f"{stage}_{tag}_s", 0.0) + spent
            result[f"analyse_{tag}_s"] = result.get(f"analyse_{tag}_s", 0.0) + time.perf_counter() - t0
            result[f"tracks_{tag}"] = result.get(f"tracks_{tag}", 0) + len(image.tracks)
    return result


def child_live(args: argparse.Namespace) -> dict:
    """Replay one clip as a live stream: each frame is handled no earlier than its time on the wall clock."""
    import cv2

    from facelake import load_settings
    from facelake.identities.matching import load_namer
    from facelake.pipeline import analyzer_options
    from facelake.pipeline.video import VideoOptions
    from facelake.sources.video import VideoReader
    from facelake.store import open_store
    from facelake.vision.analyzer import FaceAnalyzer

    cv2.setNumThreads(1)
    settings = load_settings(None, db=args.db)
    with open_store(settings.db, read_only=True) as store:
        namer = load_namer(store, settings)
    analyzer = FaceAnalyzer(analyzer_options(settings))
    analyzer.load()
    analyzer.analyze_many([np.zeros((FRAME_H, FRAME_W, 3), np.uint8)])
    truth = json.loads(Path(args.truth).read_text())
    clip_truth = next(c for c in truth if c["clip"] == Path(args.clip).name)
    passes = passes_of(clip_truth)
    options = VideoOptions.from_settings(settings)
    tracker = options.tracker()
    reader = VideoReader(args.clip, fps=options.fps, motion_threshold=options.motion_threshold,
                         motion_refresh_s=options.motion_refresh_s, scene_cut_threshold=options.scene_cut)
    ready = Path(args.sync) / f"ready-{os.getpid()}"
    ready.write_text("")
    start_file = Path(args.sync) / "start"
    while not start_file.exists():
        time.sleep(0.01)
    start = float(start_file.read_text())
    tracked: dict[int, float] = {}
    named: dict[int, tuple[float, int | None]] = {}
    track_names: dict[int, int | None] = {}
    lags = []
    with reader:
        for frame in reader.frames():
            due = start + frame.offset_s
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            faces = analyzer.analyze_many([frame.pixels])[0]
            tracker.update(frame.offset_s, faces, frame.scene_cut, frame.index)
            now = time.time()
            for track in tracker.open:
                if track.end_t != frame.offset_s:
                    continue
                k = who(passes, frame.offset_s, list(track.box))
                if k is None:
                    continue
                tracked.setdefault(k, now)
                if track.track_id not in track_names:  # name the open track until it has a name
                    quality = max(tf.face.quality for tf in track.best)
                    person, _score = namer.name_image(track.template[None, :], [quality])[0]
                    if person is not None:
                        track_names[track.track_id] = person
                        named.setdefault(k, (now, person))
            lags.append(time.time() - due)
    return {"clip": Path(args.clip).name, "start": start, "tracked": tracked, "named": named, "lags": lags,
            "analysed": reader.analysed}


def child(args: argparse.Namespace) -> None:
    result = {"baseline": child_baseline, "stream": child_stream, "live": child_live}[args.child](args)
    print(json.dumps(result))


# --- the parent: run each, measure, score, print --------------------------------------------


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, the process and its children summed, sampled every 0.1 s), stdout."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text = out.read()
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])}... failed ({proc.returncode}):\n{err.read()[-3000:]}")
    return seconds, peak / 1e6, text


def child_cmd(args: argparse.Namespace, kind: str, *extra: str) -> list[str]:
    return [sys.executable, __file__, "--child", kind, "--root", str(args.root), "--facedata", str(args.facedata),
            "--stride", str(args.stride), "--rtf-clips", str(args.rtf_clips), *extra]


def enroll(db: Path, facedata: Path) -> None:
    for name, rel in ENROLLED.items():
        subprocess.run([*facelake_cmd(), "--db", str(db), "people", "add", name, str(facedata / rel),
                        "--consent", "benchmark photo"], check=True, capture_output=True, text=True)


def score_tracks(db: Path, truth: list[dict]) -> dict:
    """Per track: the pass it follows (majority of its sightings) and its name against the truth."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        people = dict(con.execute("SELECT person_id, name FROM people").fetchall())
        rows = con.execute(
            "SELECT regexp_extract(i.uri, '[^/]+$'), t.track_id, t.person_id, s.offset_s, s.box "
            "FROM tracks t JOIN images i USING (image_id) JOIN sightings s ON s.track_id = t.track_id").fetchall()
    by_clip = {c["clip"]: passes_of(c) for c in truth}
    tracks: dict[int, dict] = {}
    for clip, track_id, person, offset, box in rows:
        entry = tracks.setdefault(track_id, {"clip": clip, "name": people.get(person), "votes": []})
        entry["votes"].append(who(by_clip[clip], offset, list(box)))
    s = {"tracks": len(tracks), "known_tracks": 0, "known_right": 0, "known_wrong": 0, "known_unnamed": 0,
         "stranger_tracks": 0, "stranger_named": 0, "stray_tracks": 0, "stray_named": 0}
    followed: dict[tuple[str, int], int] = {}
    for entry in tracks.values():
        votes = [v for v in entry["votes"] if v is not None]
        if not votes:
            s["stray_tracks"] += 1
            s["stray_named"] += entry["name"] is not None
            continue
        k = max(set(votes), key=votes.count)
        followed[(entry["clip"], k)] = followed.get((entry["clip"], k), 0) + 1
        actual = by_clip[entry["clip"]][k].name
        if actual in ENROLLED:
            s["known_tracks"] += 1
            s["known_right" if entry["name"] == actual else "known_unnamed" if entry["name"] is None else "known_wrong"] += 1
        else:
            s["stranger_tracks"] += 1
            s["stranger_named"] += entry["name"] is not None
    total_passes = sum(len(p) for p in by_clip.values())
    s["passes"] = total_passes
    s["passes_tracked"] = len(followed)
    s["passes_split"] = sum(1 for n in followed.values() if n > 1)
    return s


def score_frames(result: dict, truth: list[dict], tolerance: float) -> dict:
    """Per frame: each face the recipe named against who is really there (the first known face within tolerance)."""
    names = list(ENROLLED)
    clips = [passes_of(c) for c in truth]
    s = {"known_faces": 0, "known_right": 0, "known_wrong": 0, "known_unnamed": 0,
         "stranger_faces": 0, "stranger_named": 0, "stray_named": 0}
    for frame in result["detections"]:
        passes, t = clips[frame["clip"]], frame["t"]
        seen: dict[int, str | None] = {}
        for face in frame["faces"]:
            first = next((i for i, d in enumerate(face["distances"]) if d <= tolerance), None)
            name = names[first] if first is not None else None
            k = who(passes, t, face["box"])
            if k is None:
                s["stray_named"] += name is not None
            else:
                seen[k] = name
        for k, p in enumerate(passes):
            if not p.visible(t):
                continue
            name = seen.get(k)
            if p.name in ENROLLED:
                s["known_faces"] += 1
                s["known_right" if name == p.name else "known_unnamed" if name is None else "known_wrong"] += 1
            else:
                s["stranger_faces"] += 1
                s["stranger_named"] += name is not None
    return s


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.0f} % ({n}/{d})" if d else "-"


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--streams", type=int, default=4, help="clips replayed at once in real time")
    parser.add_argument("--stride", type=int, default=15, help="the recipe's models see one frame in this many")
    parser.add_argument("--tolerance", type=float, default=0.6)
    parser.add_argument("--rtf-clips", type=int, default=1, help="clips for the one-stream measurement")
    parser.add_argument("--facedata", type=Path, default=here.parent / "shared" / "facedata")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "facelake-bench" / "video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["facelake", "baseline", "stream", "live"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--sync", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    t_all = time.perf_counter()
    args.root, truth = make_clips(args)
    clips = sorted((args.root / "clips").glob("*.mp4"))
    video_s = sum(c["seconds"] for c in truth)
    n_passes = sum(len(c["passes"]) for c in truth)
    occupied = []
    for c in truth:
        passes = passes_of(c)
        ts = np.arange(0, c["seconds"], 1 / FPS)
        occupied.append(np.mean([any(p.at(t) is not None for p in passes) for t in ts]))
    mb = sum(c.stat().st_size for c in clips) / 1e6
    print(f"clips: {len(clips)} x {args.seconds:g} s of {FRAME_W}x{FRAME_H} H.264 at {FPS} fps "
          f"({mb / video_s * 8:.1f} Mbit/s), {n_passes} passes "
          f"({sum(p['name'] in ENROLLED for c in truth for p in c['passes'])} of enrolled people), "
          f"someone in view {100 * np.mean(occupied):.0f} % of the time; in {args.root}")
    work = Path(tempfile.mkdtemp(prefix="facelake-video-bench-"))
    db = work / "bench.duckdb"
    enroll(db, args.facedata)
    env = {**os.environ}
    R: dict = {}

    if "facelake" not in args.skip:
        fl_db = work / "ingest.duckdb"
        import shutil

        shutil.copy(db, fl_db)
        seconds, rss, _ = run_measured([*facelake_cmd(), "--db", str(fl_db), "ingest", str(args.root / "clips"),
                                        "--workers", str(args.workers)], env)
        R["facelake"] = {"seconds": seconds, "rss": rss, **score_tracks(fl_db, truth)}
        print(f"  facelake ingest: {seconds:.1f} s", file=sys.stderr)
    if "baseline" not in args.skip:
        seconds, rss, text = run_measured(child_cmd(args, "baseline"), env)
        b = json.loads(text.splitlines()[-1])
        scale = b["frames"] / max(b["sampled"], 1)
        b["seconds_measured"] = seconds
        b["seconds"] = seconds - b["known_s"] + b["model_s"] * (scale - 1)
        b["rss"] = rss
        b["scores"] = {tol: score_frames(b, truth, tol) for tol in sorted({args.tolerance, 0.5})}
        R["baseline"] = b
        print(f"  recipe: {seconds:.1f} s measured on 1 in {args.stride} frames", file=sys.stderr)
    if "stream" not in args.skip:
        seconds, rss, text = run_measured(child_cmd(args, "stream"), {**env, "FACELAKE_ORT_THREADS": "1"})
        R["stream"] = json.loads(text.splitlines()[-1])
        print(f"  one stream: {seconds:.1f} s", file=sys.stderr)
    if "live" not in args.skip:
        R["live"] = run_live(args, db, clips, env)

    print_table(args, R, video_s, len(clips))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(f"\n(bench ran {time.perf_counter() - t_all:.0f} s)")


def run_live(args: argparse.Namespace, db: Path, clips: list[Path], env: dict) -> dict:
    sync = Path(tempfile.mkdtemp(prefix="facelake-live-"))
    procs = []
    for k in range(args.streams):
        cmd = child_cmd(args, "live", "--db", str(db), "--clip", str(clips[k % len(clips)]),
                        "--truth", str(args.root / "truth.json"), "--sync", str(sync))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**env, "FACELAKE_ORT_THREADS": "1"}))
    while len(list(sync.glob("ready-*"))) < args.streams:
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a live replay failed:\n" + next(p for p in procs if p.poll()).stderr.read()[-3000:])
        time.sleep(0.05)
    (sync / "start.tmp").write_text(str(time.time() + 0.5))
    (sync / "start.tmp").rename(sync / "start")
    outs = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode:
            raise SystemExit(f"a live replay failed:\n{stderr[-3000:]}")
        outs.append(json.loads(stdout.splitlines()[-1]))
    import shutil

    shutil.rmtree(sync, ignore_errors=True)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        people = {str(k): v for k, v in con.execute("SELECT person_id, name FROM people").fetchall()}
    truth = {c["clip"]: c for c in json.loads((args.root / "truth.json").read_text())}
    to_track, to_name, wrong, unnamed, missed = [], [], 0, 0, 0
    for out in outs:
        passes = truth[out["clip"]]["passes"]
        for k, p in enumerate(passes):
            seen = p["visible_at"]
            if seen is None:
                continue
            at = out["tracked"].get(str(k))
            if at is None:
                missed += 1
                continue
            to_track.append(max(0.0, at - out["start"] - seen))
            hit = out["named"].get(str(k))
            if hit is not None and people.get(str(hit[1])) != p["name"]:
                wrong += 1
            elif p["name"] in ENROLLED:
                if hit is None:
                    unnamed += 1
                else:
                    to_name.append(max(0.0, hit[0] - out["start"] - seen))
    lags = np.concatenate([out["lags"] for out in outs])
    return {"to_track": to_track, "to_name": to_name, "missed": missed, "unnamed": unnamed, "wrong": wrong,
            "lag_p95": float(np.percentile(lags, 95)), "lag_max": float(lags.max()),
            "lag_end": max(out["lags"][-1] for out in outs), "streams": args.streams}


def print_table(args: argparse.Namespace, R: dict, video_s: float, n_clips: int) -> None:
    fl, b, st, live = R.get("facelake"), R.get("baseline"), R.get("stream"), R.get("live")
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, mine: str, theirs: str, goal: str = "") -> None:
        rows.append((what, mine, theirs, goal))

    per_frame_b = (b["model_s"] / b["sampled"]) if b else None
    decode_b = (b["decode_s"] / b["frames"]) if b else None
    if st:
        frames = st["frames"]
        row("decode, ms per frame of the clip",
            f"{1000 * st['decode_only_s'] / frames:.1f} decode only; {1000 * st['reader_gated_s'] / frames:.1f} "
            f"with 5-fps sampling, gating and RGB",
            f"{1000 * decode_b:.1f} (OpenCV read, every frame)" if b else "-")
        afps_g = st["analysed_gated"] / st["analyse_gated_s"]
        afps_u = st["analysed_ungated"] / st["analyse_ungated_s"]
        row("analysed frames per second, one thread",
            f"{afps_g:.1f} gated ({st['analysed_gated']} of {st['analysed_ungated']} sampled); {afps_u:.1f} ungated",
            f"{1 / (per_frame_b + decode_b):.2f}" if b else "-")
        rtf_g = st["video_s"] / st["analyse_gated_s"]
        rtf_u = st["video_s"] / st["analyse_ungated_s"]
        row("real-time factor, one 1080p stream, one core",
            f"{rtf_g:.1f}x gated; {rtf_u:.1f}x every 5-fps frame",
            f"{1 / (FPS * (per_frame_b + decode_b)):.3f}x (every frame)" if b else "-")
    if fl:
        streams = video_s / fl["seconds"]
        steady = f"; {2 * st['video_s'] / st['analyse_gated_s']:.1f} from 2 x the one-core factor" if st else ""
        row(f"1080p streams one 2-core machine follows (whole ingest, {args.workers} workers)",
            f"{streams:.1f}{steady}", f"{video_s / b['seconds']:.3f} (x2 with 2 processes)" if b else "-", ">= 4")
    if live:
        row(f"{live['streams']} streams replayed at once in real time: lag p95 / max",
            f"{live['lag_p95']:.2f} s / {live['lag_max']:.2f} s", "-")
        if live["to_track"]:
            row("face fully in view -> open track, p50 / p95",
                f"{np.percentile(live['to_track'], 50):.2f} s / {np.percentile(live['to_track'], 95):.2f} s"
                + (f" ({live['missed']} passes never tracked)" if live["missed"] else ""), "-")
        if live["to_name"]:
            row("face fully in view -> track named, p50 / p95",
                f"{np.percentile(live['to_name'], 50):.2f} s / {np.percentile(live['to_name'], 95):.2f} s"
                f" ({live['unnamed']} enrolled passes never named live, {live['wrong']} passes named wrong)",
                "-", "<= 2 s (to the row)")
    if fl or b:
        ratio = f" -> {b['seconds'] / fl['seconds']:.1f}x faster" if fl and b else ""
        est = " (extrapolated)" if b and args.stride > 1 else ""
        row(f"whole process on the {n_clips} clips ({video_s:g} s of video)",
            f"{fl['seconds']:.1f} s{ratio}" if fl else "-",
            f"{b['seconds']:.0f} s{est}; {b['seconds'] / 2:.0f} s if split over 2 processes" if b else "-", ">= 10x")
        row("peak RSS, MB", f"{fl['rss']:.0f}" if fl else "-", f"{b['rss']:.0f}" if b else "-")
    if fl:
        kt, st_ = fl["known_tracks"], fl["stranger_tracks"]
        row("enrolled people named right", f"{pct(fl['known_right'], kt)} of tracks",
            "; ".join(f"{pct(s['known_right'], s['known_faces'])} of frames at {tol}" for tol, s in b["scores"].items()) if b else "-")
        row("enrolled people named as someone else", f"{pct(fl['known_wrong'], kt)} of tracks",
            "; ".join(f"{pct(s['known_wrong'], s['known_faces'])} at {tol}" for tol, s in b["scores"].items()) if b else "-")
        row("strangers given a name", f"{pct(fl['stranger_named'], st_)} of tracks",
            "; ".join(f"{pct(s['stranger_named'], s['stranger_faces'])} at {tol}" for tol, s in b["scores"].items()) if b else "-")
        row("passes followed / split in 2+ tracks / stray tracks",
            f"{fl['passes_tracked']}/{fl['passes']} / {fl['passes_split']} / {fl['stray_tracks']} ({fl['tracks']} tracks)", "-")
    w = [max(len(r[i]) for r in rows + [("measure", "facelake", "face_recognition recipe", "goal")]) for i in range(4)]
    head = ("measure", "facelake", "face_recognition recipe", "goal")
    print()
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
    print("  ".join("-" * w[i] for i in range(4)))
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    if st:
        spent = {k[:-len("_gated_s")]: v for k, v in st.items() if k.endswith("_gated_s") and not k.startswith(("reader", "analyse"))}
        other = st["analyse_gated_s"] - sum(spent.values())
        print("\nfacelake, one stream gated, where the time goes: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in spent.items()) + f", decode/gating/tracking {other:.1f} s "
            f"(of {st['analyse_gated_s']:.1f} s for {st['video_s']:g} s of video, {st['analysed_gated']} frames analysed)")
    if b:
        print(f"\nrecipe: {b['sampled']} of {b['frames']} frames through HOG+dlib ({1000 * per_frame_b:.0f} ms each, "
              f"{1000 * decode_b:.1f} ms decode), setup {b['setup_s']:.1f} s, known faces {b['known_s']:.1f} s (not counted)"
              + (f"; measured {b['seconds_measured']:.0f} s, the model time scaled by {b['frames'] / b['sampled']:.1f}"
                 if args.stride > 1 else ""))


if __name__ == "__main__":
    main()
