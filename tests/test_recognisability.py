"""Faces nobody can recognise — covered, heavily blurred, not a face at all — are stored but never
enrolled, named or grouped: the recognisability score (vision/recognisability.py) on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facelake.config import Settings
from facelake.store.base import Target
from facelake.vision.analyzer import FaceAnalyzer
from facelake.vision.models import EMBEDDERS
from facelake.vision.recognisability import GATE, calibrations

from .conftest import load_rgb
from .dbs import empty, rows
from .test_ingest import cli


def blurred(rgb: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray:
    """The photo heavily out of focus (a Gaussian of a twelfth of the face's width), as WIDER's "heavy
    blur" faces are: the detector still finds the face, and its quality (0.14) still passes for naming."""
    return np.asarray(cv2.GaussianBlur(rgb, (0, 0), analyzer.detect(rgb)[0].width / 12), dtype=np.uint8)


def masked(rgb: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray:
    """The photo with a helmet drawn down to the eyebrows and a mask from the nose to under the chin:
    only the eyes show. (A surgical mask alone on a sharp frontal face scores like a clear crowd
    face, about 0.6, and is not refused: docs/accuracy.md.)"""
    out = rgb.copy()
    det = analyzer.detect(rgb)[0]
    x, y, w, h = det.box
    eyes_y, nose_y = float(det.landmarks[:2, 1].mean()), float(det.landmarks[2, 1])
    cv2.rectangle(out, (int(x - 0.1 * w), int(y - 0.3 * h)), (int(x + 1.1 * w), int(eyes_y - 0.05 * h)), (40, 40, 40), -1)
    polygon = np.array([[x - 0.05 * w, nose_y - 0.05 * h], [x + 1.05 * w, nose_y - 0.05 * h], [x + 0.95 * w, y + 1.1 * h],
                        [x + 0.05 * w, y + 1.1 * h]], dtype=np.int32)
    cv2.fillPoly(out, [polygon], (170, 200, 225))
    return out


@pytest.fixture(scope="module")
def variants(samples: Path, analyzer: FaceAnalyzer) -> dict[str, np.ndarray]:
    from skimage import data

    obama = load_rgb(samples / "obama.jpg")
    return {"clear": obama, "blurred": blurred(obama, analyzer), "masked": masked(obama, analyzer),
            "cat": np.asarray(data.chelsea(), dtype=np.uint8)}


def test_every_embedder_has_a_calibration() -> None:
    assert {e.model_name for e in EMBEDDERS.values()} <= set(calibrations())


def test_clear_faces_are_recognisable_and_covered_or_blurred_ones_are_not(
        variants: dict[str, np.ndarray], analyzer: FaceAnalyzer, samples: Path) -> None:
    score = {k: analyzer.analyze(v)[0].recognisability for k, v in variants.items() if k != "cat"}
    for photo in ("obama2.jpg", "obama3.jpg", "biden.jpg"):
        score[photo] = analyzer.analyze(load_rgb(samples / photo))[0].recognisability
    assert all(v is not None for v in score.values())
    clear = {k: v for k, v in score.items() if k not in ("blurred", "masked")}
    enroll = Settings.model_construct().enroll_min_recognisability
    assert min(clear.values()) >= enroll, score  # type: ignore[type-var]
    assert score["blurred"] < GATE, score  # type: ignore[operator]
    assert score["masked"] < enroll, score  # type: ignore[operator]


def test_enrollment_refuses_a_cat_a_blurred_and_a_masked_face_and_writes_nothing(
        db: Target, tmp_path: Path, variants: dict[str, np.ndarray], samples: Path) -> None:
    for name, rgb in variants.items():  # the cat at PIL's default JPEG quality: the detector finds a "face" (0.65)
        Image.fromarray(rgb).save(tmp_path / f"{name}.jpg", **({} if name == "cat" else {"quality": 95}))
    code, output = cli(db, "people", "add", "Carol", str(tmp_path / "cat.jpg"), "--consent", "asked")
    assert code == 7 and "not sure this is a face" in output and "clear, well-lit photo" in output, output
    for name in ("blurred", "masked"):
        code, output = cli(db, "people", "add", "Barack", str(tmp_path / f"{name}.jpg"), "--consent", "asked")
        assert code == 7 and "cannot be recognised well enough to enroll" in output and "uncovered face" in output, output
    # One weak photo among good ones enrolls nothing either.
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), str(tmp_path / "blurred.jpg"),
                       "--consent", "asked")
    assert code == 7, output
    assert empty(db, "people") and empty(db, "sightings") and empty(db, "enrollments")
    code, output = cli(db, "people", "add", "Barack", str(tmp_path / "clear.jpg"), "--consent", "asked")
    assert code == 0, output


def test_enrollment_refuses_a_tiny_or_box_blurred_face_the_gate_lets_through(
        db: Target, tmp_path: Path, samples: Path, analyzer: FaceAnalyzer) -> None:
    """The recognisability gate passes both (a 16-px face ~0.6, a box blur of an eighth of the face ~0.58):
    their embeddings still look like a face's, but neither is fit to be the template of a person."""
    obama = load_rgb(samples / "obama.jpg")
    small = cv2.resize(obama, (60, round(60 * obama.shape[0] / obama.shape[1])), interpolation=cv2.INTER_AREA)
    k = int(analyzer.detect(obama)[0].width / 8)
    weak = {"tiny": small, "smeared": cv2.blur(obama, (k, k))}
    for name, rgb in weak.items():
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp_path / f"{name}.jpg", quality=95)
        largest = analyzer.analyze(np.ascontiguousarray(rgb))[0]
        assert largest.recognisability is not None and largest.recognisability >= GATE, (name, largest.recognisability)
        code, output = cli(db, "people", "add", "Barack", str(tmp_path / f"{name}.jpg"), "--face", "0",
                           "--consent", "asked")
        assert code == 7 and "too small or too blurred to enroll" in output and "80 px wide" in output, output
    assert empty(db, "people") and empty(db, "sightings") and empty(db, "enrollments")
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output


def test_unclear_faces_are_stored_scored_and_never_named_or_clustered(
        db: Target, tmp_path: Path, variants: dict[str, np.ndarray], samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")[0] == 0
    cam = tmp_path / "cams" / "door"
    cam.mkdir(parents=True)
    for n in range(3):  # three copies of one unclear face would found a group if they counted
        Image.fromarray(np.ascontiguousarray(variants["blurred"][:, n:])).save(cam / f"blurred{n}.jpg", quality=95)
    Image.fromarray(variants["clear"][:, ::-1]).save(cam / "clear.jpg", quality=95)
    assert cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")[0] == 0
    assert cli(db, "cluster")[0] == 0
    found = rows(db, """SELECT regexp_replace(i.uri, '^.*/', ''), s.recognisability, p.name, s.cluster_id
                        FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
                        WHERE i.camera = 'door' ORDER BY 1""")
    assert [r[0] for r in found] == ["blurred0.jpg", "blurred1.jpg", "blurred2.jpg", "clear.jpg"]
    assert found[3][1] >= GATE and found[3][2] == "Barack"
    assert all(r[1] < GATE and r[2] is None and r[3] is None for r in found[:3]), found
    # The dashboard and the API say "unclear" for them.
    from jinja2 import Environment, PackageLoader

    from facelake.config import load_settings
    from facelake.reports.views import sighting_json
    from facelake.store import open_store

    with open_store(load_settings(db=db).db, read_only=True) as store:
        listed = {Path(r.uri).name: r for r in store.reports.sightings(camera="door")}
    face = Environment(loader=PackageLoader("facelake.api", "templates")).get_template("_face.html")
    assert '<figcaption><a href="/sightings/' in face.render(r=listed["blurred0.jpg"])
    assert '">unclear</a><br>' in face.render(r=listed["blurred0.jpg"])
    assert '">unclear</a>' not in face.render(r=listed["clear.jpg"])
    assert sighting_json(listed["blurred0.jpg"])["unclear"] is True and sighting_json(listed["clear.jpg"])["unclear"] is False
    # Nor does the owner make one of them someone's example, by name or as "this is them".
    from facelake import identities
    from facelake.errors import UnclearFace
    from facelake.store import open_store as reopen

    settings = load_settings(db=db)
    with reopen(settings.db, read_only=True) as store:
        ids = {Path(r.uri).name: r.sighting_id for r in store.reports.sightings(camera="door")}
        barack = store.people.find("Barack")
    assert barack is not None
    for person, name in ((None, "Someone"), (barack, None)):
        with pytest.raises(UnclearFace, match="cannot be recognised well enough to be someone's example"):
            identities.name_face(settings, ids["blurred0.jpg"], name, "asked" if name else None, person)
    assert rows(db, "SELECT count(*) FROM enrollments") == [(1,)] and rows(db, "SELECT count(*) FROM people") == [(1,)]
    identities.name_face(settings, ids["clear.jpg"], person=barack)  # a clear face is taken
    assert rows(db, "SELECT count(*) FROM enrollments") == [(2,)]
