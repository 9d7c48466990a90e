"""Detection, alignment and embedding: unit tests on synthetic arrays, integration tests on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelake.identities.matching import CALIBRATED
from facelake.vision.align import hog_style_box
from facelake.vision.analyzer import FaceAnalyzer
from facelake.vision.detect import _anchors, detection_scale, nms
from facelake.vision.embed import l2_normalize
from facelake.vision.models import FUSION

from .conftest import load_rgb, paste

THRESHOLD = CALIBRATED[FUSION].match


# --- unit tests: no model weights ---------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.4) == [1, 2]
    assert nms(boxes, scores, 0.99) == [1, 0, 2]


def test_detection_scale_enlarges_small_and_shrinks_large_images() -> None:
    assert detection_scale(100, 80, 640, 1920, 8.0) == pytest.approx(6.4)
    assert detection_scale(20, 30, 640, 1920, 8.0) == 8.0
    assert detection_scale(1080, 1920, 640, 1920, 8.0) == 1.0
    assert detection_scale(3000, 4000, 640, 1920, 8.0) == pytest.approx(0.48)


def test_a_doubtful_detection_with_its_landmarks_crammed_at_the_bottom_is_no_face() -> None:
    """A CCTV texture the network scored 0.64, its five points in the box's bottom eighth."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.types import Detection

    detector = RetinaFaceDetector(session=None)
    face = np.array([[11, 14], [22, 14], [16, 20], [12, 25], [21, 25]], dtype=np.float32)  # a 33-px face's
    texture = np.array([[12, 26], [19, 26], [16, 28], [13, 30], [19, 30]], dtype=np.float32)  # mouth at 91 %
    assert detector.plausible(Detection((0.0, 0.0, 33.0, 33.0), 0.64, face))
    assert not detector.plausible(Detection((0.0, 0.0, 33.0, 33.0), 0.64, texture))
    assert detector.plausible(Detection((0.0, 0.0, 33.0, 33.0), 0.95, texture)), "a sure detection is not judged"
    assert detector.plausible(Detection((0.0, 0.0, 16.0, 16.0), 0.64, texture / 2)), "too small to judge"


def test_anchor_count_matches_the_three_pyramid_levels() -> None:
    anchors = _anchors(64, 96)
    assert anchors.shape == (2 * (8 * 12 + 4 * 6 + 2 * 3), 4)
    assert anchors[0].tolist() == [4.0, 4.0, 16.0, 16.0]
    assert anchors[1].tolist() == [4.0, 4.0, 32.0, 32.0]


def test_l2_normalize_gives_unit_rows_and_survives_zero_rows() -> None:
    v = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert v[0].tolist() == pytest.approx([0.6, 0.8])
    assert v[1].tolist() == [0.0, 0.0]


def test_hog_style_box_is_centred_on_the_face_and_scales_with_it() -> None:
    pts = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], dtype=np.float32)
    x, y, w, h = hog_style_box(pts)
    assert w == h
    assert x < 40 and x + w > 60 and y < 50 and y + h > 70
    _x2, _y2, w2, _ = hog_style_box(pts * 2)
    assert w2 == pytest.approx(2 * w)


# --- integration tests: real models on real photos ----------------------------------------


def _embedding(analyzer: FaceAnalyzer, rgb: np.ndarray) -> np.ndarray:
    faces = analyzer.analyze(rgb)
    assert faces, "no face found"
    return faces[0].embedding


@pytest.mark.parametrize("name", ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png"])
def test_one_face_per_portrait(analyzer: FaceAnalyzer, samples: Path, name: str) -> None:
    faces = analyzer.analyze(load_rgb(samples / name))
    assert len(faces) == 1
    face = faces[0]
    assert face.embedding.shape == (320,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    assert face.detection.score > 0.9
    assert 0.0 < face.quality <= 1.0
    assert face.thumb[:2] == b"\xff\xd8"


def test_partial_faces_are_found(analyzer: FaceAnalyzer, samples: Path) -> None:
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        assert len(analyzer.detect(load_rgb(samples / name))) >= 1, name


def test_same_person_above_threshold_and_different_people_below(
    analyzer: FaceAnalyzer, samples: Path, astronaut_rgb: np.ndarray
) -> None:
    obama = [_embedding(analyzer, load_rgb(samples / n)) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    biden = _embedding(analyzer, load_rgb(samples / "biden.jpg"))
    astro = _embedding(analyzer, astronaut_rgb)
    for i in range(3):
        for j in range(i + 1, 3):
            assert float(obama[i] @ obama[j]) > THRESHOLD
    for o in obama:
        assert float(o @ biden) < THRESHOLD
        assert float(o @ astro) < THRESHOLD
    assert float(biden @ astro) < THRESHOLD


def test_group_photo_gives_every_face_with_its_identity(
    analyzer: FaceAnalyzer, samples: Path, patches: dict[str, np.ndarray]
) -> None:
    canvas = np.full((700, 1400, 3), 90, dtype=np.uint8)
    layout = {"obama": (60, 150, 300), "biden": (520, 200, 220), "astronaut": (950, 100, 360)}
    for name, (x, y, w) in layout.items():
        paste(canvas, patches[name], x, y, w)
    faces = analyzer.analyze(canvas)
    assert len(faces) == 3
    refs = {
        "obama": _embedding(analyzer, load_rgb(samples / "obama2.jpg")),
        "biden": _embedding(analyzer, load_rgb(samples / "biden.jpg")),
        "astronaut": _embedding(analyzer, patches["astronaut"]),
    }
    for face in faces:
        cx = face.detection.box[0] + face.detection.box[2] / 2
        expected = next(n for n, (x, _, w) in layout.items() if x <= cx <= x + w)
        best = max(refs, key=lambda n: float(refs[n] @ face.embedding))
        assert best == expected
    widths = [f.detection.box[2] for f in faces]
    assert widths == sorted(widths, reverse=True), "largest face first"


def test_24px_face_in_a_1080p_frame_is_found(analyzer: FaceAnalyzer, patches: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(60, 120, size=(1080, 1920, 3), dtype=np.uint8)
    patch = patches["obama"]
    # The patch has 0.6 face-widths of margin each side: 2.2 face widths in all.
    paste(frame, patch, 900, 500, round(24 * 2.2))
    faces = analyzer.detect(frame)
    assert len(faces) == 1
    x, _y, w, _h = faces[0].box
    assert 900 <= x + w / 2 <= 900 + 53 and 16 <= w <= 36


def test_faces_under_20px_in_a_1080p_frame_are_found(patches: dict[str, np.ndarray]) -> None:
    """Shrunk to 1024 px for the first pass, a 17-19 px face is 9-10 px: under the network's
    smallest anchor, it scores below the usual candidate bar and is found only because such
    tiny candidates are confirmed from a lower score (issue #10)."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.models import retinaface_session

    frame = np.random.default_rng(0).integers(60, 120, size=(1080, 1920, 3), dtype=np.uint8)
    centres = []
    for i, (name, width) in enumerate([("obama", 17), ("biden", 18), ("astronaut", 19)]):
        x, y = 300 + i * 600, 300 + i * 200
        paste(frame, patches[name], x, y, round(width * 2.2))
        centres.append((x + width * 1.1, y + width * 1.3))

    def found(detector: RetinaFaceDetector) -> tuple[int, int]:
        faces = detector.detect(frame)
        hits = sum(any(abs(f.box[0] + f.box[2] / 2 - cx) < 10 and abs(f.box[1] + f.box[3] / 2 - cy) < 14
                       for f in faces) for cx, cy in centres)
        return hits, len(faces)

    session = retinaface_session()
    assert found(RetinaFaceDetector(session)) == (3, 3)
    assert found(RetinaFaceDetector(session, tiny_threshold=0.02))[0] < 3  # the usual bar misses some


def test_one_face_seen_by_many_candidates_is_not_a_crowd() -> None:
    """Neighbouring candidates often confirm the same face; counted once, six of them do not
    send a frame through the 7x-slower crowd search."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.types import Detection

    face = Detection((1000.0, 500.0, 20.0, 24.0), 0.9, np.zeros((5, 2), np.float32))
    candidates = [Detection((1000.0 + dx, 500.0, 20.0, 24.0), 0.1, np.zeros((5, 2), np.float32))
                  for dx in range(0, 12, 2)]
    detector = RetinaFaceDetector(session=None)
    detector._run = lambda image, scale, threshold: candidates  # type: ignore[method-assign]
    detector._refine = lambda image, cand: [face]  # type: ignore[method-assign]
    zoomed = []
    detector._zoom = lambda image: zoomed.append(1) or []  # type: ignore[method-assign]
    assert [d.box for d in detector.detect(np.zeros((1080, 1920, 3), np.uint8))] == [face.box]
    assert not zoomed


def test_no_face_in_noise(analyzer: FaceAnalyzer) -> None:
    rng = np.random.default_rng(0)
    assert analyzer.analyze(rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)) == []


def test_dlib_points_become_eyes_nose_and_mouth_in_image_order() -> None:
    from facelake.vision.detect import dlib_points_to_five

    # dlib order: one eye's two corners, the other eye's two corners, nose base.
    pts = np.array([[70, 50], [60, 50], [30, 50], [40, 50], [50, 70]], dtype=np.float32)
    five = dlib_points_to_five(pts)
    assert five[0].tolist() == [35, 50] and five[1].tolist() == [65, 50]
    assert five[2].tolist() == [50, 70]
    assert five[3, 0] < 50 < five[4, 0] and five[3, 1] > 70


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "32bit.png"])
def test_mtcnn_agrees_with_retinaface(analyzer: FaceAnalyzer, samples: Path, name: str) -> None:
    from facelake.vision.models import mtcnn_sessions
    from facelake.vision.mtcnn import MtcnnDetector

    rgb = load_rgb(samples / name)
    mtcnn = MtcnnDetector(mtcnn_sessions()).detect(rgb)
    retina = analyzer.detect(rgb)[0]
    assert mtcnn and mtcnn[0].score > 0.95
    width = retina.box[2]
    assert np.abs(np.array(mtcnn[0].box) - np.array(retina.box)).max() < 0.12 * width
    assert np.abs(mtcnn[0].landmarks - retina.landmarks).max() < 0.06 * width


def test_embed_min_score_reports_low_scoring_detections(tmp_path: Path, samples: Path) -> None:
    """--min-score lowers the reporting threshold of `embed` only, down to 0.01 (for PR curves)."""
    import json

    from typer.testing import CliRunner

    from facelake.cli import app

    photo = str(samples / "obama_partial_face2.jpg")
    runner = CliRunner()
    default = json.loads(runner.invoke(app, ["embed", photo, "--jsonl"]).stdout)
    low = json.loads(runner.invoke(app, ["embed", photo, "--jsonl", "--min-score", "0.01"]).stdout)
    assert low["faces"] > default["faces"]
    assert min(d["score"] for d in low["detections"]) >= 0.01
    assert all(d["score"] >= 0.6 for d in default["detections"])
    assert runner.invoke(app, ["embed", photo, "--jsonl", "--min-score", "0.001"]).exit_code == 2


def test_a_large_face_above_the_threshold_survives_an_unconfirming_crop() -> None:
    """Issue #10: the confirmation crop may add faces but never drop a large one a plain pass keeps."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.types import Detection

    big = Detection((400.0, 300.0, 200.0, 240.0), 0.8, np.zeros((5, 2), np.float32))  # doubtful: < 0.95
    frame = np.zeros((2160, 3840, 3), np.uint8)  # shrunk for the first pass
    for keep in (True, False):
        detector = RetinaFaceDetector(session=None, score_threshold=0.6)
        detector.keep_unconfirmed_large = keep
        detector._run = lambda image, scale, threshold: [big]  # type: ignore[method-assign]
        detector._refine = lambda image, cand: []  # type: ignore[method-assign]
        assert [d.box for d in detector.detect(frame)] == ([big.box] if keep else [])


def test_a_crowd_of_tiny_faces_is_searched_enlarged(patches: dict[str, np.ndarray]) -> None:
    """Faces of 10-14 px are under RetinaFace's smallest anchor: a crowd of them is found only
    because the detector, seeing many small faces, searches the frame again enlarged."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.models import retinaface_session

    rng = np.random.default_rng(5)
    frame = rng.integers(70, 110, size=(768, 1024, 3), dtype=np.uint8)
    centres = []
    for i, name in enumerate(["obama", "biden", "astronaut"] * 8):  # 24 tiny faces on a grid
        x, y, width = 60 + (i % 8) * 115, 90 + (i // 8) * 220, int(rng.integers(10, 15))
        paste(frame, patches[name], x, y, round(width * 2.2))
        centres.append((x + width * 1.1, y + width * 1.3))
    for i, name in enumerate(["biden", "obama", "astronaut", "obama", "biden", "astronaut"]):  # 6 of 28 px
        paste(frame, patches[name], 100 + i * 150, 640, round(28 * 2.2))
        centres.append((100 + i * 150 + 31, 640 + 36))

    def found(detector: RetinaFaceDetector) -> int:
        faces = detector.detect(frame)
        return sum(any(abs(f.box[0] + f.box[2] / 2 - cx) < 10 and abs(f.box[1] + f.box[3] / 2 - cy) < 14
                       for f in faces) for cx, cy in centres)

    session = retinaface_session()
    plain = found(RetinaFaceDetector(session, zoom_below_px=0))  # no face counts as small: no second look
    zoomed = found(RetinaFaceDetector(session))
    assert plain <= 8 and zoomed >= 22, (plain, zoomed)


def test_the_cached_hog_detector_finds_the_boxes_dlib_builds_it_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, samples: Path
) -> None:
    import dlib

    from facelake.vision import models

    monkeypatch.setenv("FACELAKE_CACHE", str(tmp_path))
    rgb = load_rgb(samples / "obama.jpg")
    built = dlib.get_frontal_face_detector()(rgb, 0)
    models.dlib_hog_detector.cache_clear()
    first = models.dlib_hog_detector()  # builds and saves
    saved = list((tmp_path / "models").glob("*_frontal_face_hog.svm"))
    assert len(saved) == 1 and not list((tmp_path / "models").glob("*.part"))
    models.dlib_hog_detector.cache_clear()
    loaded = models.dlib_hog_detector()  # reads the file
    as_tuples = lambda rects: [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    assert len(built) == 1
    assert as_tuples(first(rgb, 0)) == as_tuples(loaded(rgb, 0)) == as_tuples(built)
    saved[0].write_bytes(b"not a detector")  # a damaged cache file is rebuilt, not trusted
    models.dlib_hog_detector.cache_clear()
    assert as_tuples(models.dlib_hog_detector()(rgb, 0)) == as_tuples(built)
    assert saved[0].stat().st_size > 1000
    models.dlib_hog_detector.cache_clear()


@pytest.mark.parametrize("box", [(40.0, 30.0, 60.0, 70.0), (-20.0, 150.0, 80.0, 90.0), (300.0, -40.0, 150.0, 120.0)])
def test_face_crop_matches_a_black_padded_copy(box: tuple[float, float, float, float]) -> None:
    import cv2

    from facelake.vision.align import face_crop
    from facelake.vision.types import Detection

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)
    crop, factor, origin = face_crop(image, Detection(box, 0.9, np.zeros((5, 2), np.float32)))
    # The reference: the square region copied onto black, then resized the same way.
    face = max(box[2], box[3])
    side = int(np.ceil(face * 2))
    x0, y0 = int(origin[0]), int(origin[1])
    padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    region = padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side]
    out = round(side * 150.0 / face)
    expected = cv2.resize(region, (out, out), interpolation=cv2.INTER_CUBIC if out > side else cv2.INTER_AREA)
    assert crop.shape == expected.shape and factor == pytest.approx(out / side)
    assert np.array_equal(crop, expected)
