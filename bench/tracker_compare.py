"""facelake's tracker against supervision's ByteTrack on the same real detections.

Why: issue 18 asks whether a kept tracker (ByteTrack as packaged in ``supervision``, or
``norfair``) fits instead of facelake's own small assigner. This encodes the test suite's clips
(sample photos moving over a background, ``tests/videoclips.py``), runs the real detector and
embedder once per analysed frame (5 fps), then feeds the same faces to both trackers.

Ground truth per face is the nearer of the two people's reference embeddings (Obama and Biden
are far apart: 0.74-0.78 against > 0.93 for one person; a half-hidden face at a crossing still
scores 0.85 against 0.78), so a track is *pure* if all its faces are one person; a swap or merge
makes it impure. Printed per clip: tracks, impure tracks, and ms per update.

Run: ``PYTHONPATH=src python bench/tracker_compare.py [SUPERVISION_DIR]`` (a ``pip install
--target`` folder holding supervision, so the project's environment stays as it is).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from videoclips import Actor, encode, face_patch, render

from facelake.sources.video import VideoReader
from facelake.vision.analyzer import FaceAnalyzer
from facelake.vision.track import Tracker


def clips() -> dict[str, list[Actor]]:
    ob, bi = face_patch("obama.jpg", 110), face_patch("biden.jpg", 100)
    return {
        "one person passing": [Actor(ob, (-40, 60), (560, 90))],
        "two crossing, same height": [Actor(ob, (-40, 40), (560, 40)), Actor(bi, (560, 30), (-40, 30))],
        "two crossing, offset": [Actor(ob, (-40, 20), (560, 60)), Actor(bi, (560, 80), (-40, 40))],
        "two meet and turn back": [
            Actor(ob, (-40, 40), (250, 40), 0.0, 2.0), Actor(ob, (250, 40), (-40, 40), 2.0, 4.0),
            Actor(bi, (560, 40), (270, 40), 0.0, 2.0), Actor(bi, (270, 40), (560, 40), 2.0, 4.0),
        ],
    }


def main() -> None:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    import supervision as sv

    analyzer = FaceAnalyzer()
    obama, biden = (
        analyzer.analyze(render(640, 360, 0.04, 25, [Actor(face_patch(n, 110), (200, 60), (200, 60))])[0])[0].embedding
        for n in ("obama.jpg", "biden.jpg")
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, actors in clips().items():
            path = encode(Path(tmp) / "clip.mp4", render(640, 360, 4.0, 25, actors), 25)
            frames = [(f.offset_s, analyzer.analyze(f.pixels)) for f in VideoReader(path, fps=5).frames()]
            truth = {id(f): float(f.embedding @ obama) > float(f.embedding @ biden) for _, fs in frames for f in fs}

            ours = Tracker(top_k=1000)
            t0 = time.perf_counter()
            tracks = [tr for t, fs in frames for tr in ours.update(t, fs)] + ours.close()
            ours_ms = 1000 * (time.perf_counter() - t0) / len(frames)
            ours_impure = sum(len({truth[id(b.face)] for b in tr.best}) > 1 for tr in tracks)

            byte = sv.ByteTrack(frame_rate=5, lost_track_buffer=10)
            members: dict[int, set[bool]] = {}
            t0 = time.perf_counter()
            for _, fs in frames:
                if not fs:
                    byte.update_with_detections(sv.Detections.empty())
                    continue
                xyxy = np.array([[f.detection.box[0], f.detection.box[1], f.detection.box[0] + f.detection.box[2],
                                  f.detection.box[1] + f.detection.box[3]] for f in fs], dtype=np.float32)
                det = sv.Detections(xyxy=xyxy, confidence=np.array([f.detection.score for f in fs], np.float32),
                                    class_id=np.zeros(len(fs), int), data={"k": np.arange(len(fs))})
                out = byte.update_with_detections(det)
                for tid, k in zip(out.tracker_id, out.data["k"], strict=True):
                    members.setdefault(int(tid), set()).add(truth[id(fs[int(k)])])
            byte_ms = 1000 * (time.perf_counter() - t0) / len(frames)
            byte_impure = sum(len(v) > 1 for v in members.values())
            print(f"{name:28s} facelake: {len(tracks)} tracks, {ours_impure} impure, {ours_ms:.2f} ms/update | "
                  f"ByteTrack: {len(members)} tracks, {byte_impure} impure, {byte_ms:.2f} ms/update")


if __name__ == "__main__":
    main()
