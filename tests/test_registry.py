"""The model registry: names a setting may hold, validated against it; parts built through it,
each satisfying its protocol; one session loader; options derived from the settings."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path

import numpy as np
import pytest

from facelake.config import Settings, load_settings
from facelake.errors import ConfigError, ModelLoadError
from facelake.vision import models
from facelake.vision.analyzer import AnalyzerOptions, FaceAnalyzer, default_options
from facelake.vision.base import Aligner, Embedder, FaceDetector
from facelake.vision.types import AlignedFace, Detection, RGBImage

# --- unit tests: no model weights ---------------------------------------------------------


@pytest.mark.parametrize(("field", "table"), [("detector", models.DETECTORS), ("embedder", models.EMBEDDERS),
                                              ("embed_backend", models.RESNET_BACKENDS)])
def test_settings_take_every_registered_name_and_refuse_others_naming_all_three(field: str, table: dict) -> None:
    for name in table:
        assert getattr(Settings.model_validate({field: name}), field) == name
    with pytest.raises(ConfigError) as err:
        load_settings(None, **{field: "nope"})
    allowed = ", ".join(repr(n) for n in table)
    assert f"{field} must be one of {allowed}; got 'nope'" in str(err.value)


def test_the_analyzer_refuses_an_unknown_name_before_loading_anything() -> None:
    with pytest.raises(ValueError, match=r"detector must be one of 'retinaface', 'hog', 'mtcnn'; got 'yolo'"):
        FaceAnalyzer(replace(default_options(), detector="yolo"))
    with pytest.raises(ValueError, match=r"embedder must be one of .*'mobilefacenet'; got 'arcface'"):
        FaceAnalyzer(replace(default_options(), embedder="arcface"))


def test_the_stored_model_names_and_dims_are_the_registry_entries() -> None:
    assert models.EMBEDDER_MODELS == {name: e.model_name for name, e in models.EMBEDDERS.items()}
    assert models.EMBEDDING_DIMS == {e.model_name: e.dim for e in models.EMBEDDERS.values()}
    assert models.EMBEDDER_MODELS == {"fusion": models.FUSION, "dlib": models.DLIB_RESNET,
                                      "mobilefacenet": models.MOBILEFACENET}
    assert models.EMBEDDING_DIMS == {models.FUSION: 320, models.DLIB_RESNET: 128, models.MOBILEFACENET: 192}


def test_options_are_settings_fields_derived_not_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"FACELAKE_{name.upper()}", raising=False)
    for f in fields(AnalyzerOptions):
        assert f.name in Settings.model_fields, f.name
        assert f.default is MISSING and f.default_factory is MISSING, f"{f.name}: defaults live in Settings only"
    assert default_options() == AnalyzerOptions.from_settings(Settings())
    tuned = AnalyzerOptions.from_settings(Settings(det_threshold=0.7, embedder="dlib", keep_face_context=False))
    assert (tuned.det_threshold, tuned.embedder, tuned.keep_face_context) == (0.7, "dlib", False)
    # Workers get options pickled and compare them to decide whether to reload their models.
    assert pickle.loads(pickle.dumps(tuned)) == tuned and tuned != default_options()
    assert FaceAnalyzer().settings == default_options() and FaceAnalyzer().model_name == models.FUSION


class _Fake:
    """A detector, aligner and embedder in one, with known answers."""

    model_name = "fake_v1"
    dim = 3

    def detect(self, image: RGBImage) -> list[Detection]:
        return [Detection((1.0, 2.0, 30.0, 30.0), 0.9, np.zeros((5, 2), np.float32))]

    def align(self, image: RGBImage, det: Detection) -> AlignedFace:
        return AlignedFace(np.zeros((8, 8, 3), np.uint8), det.landmarks, "fake")

    def embed_faces(self, aligned: object) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0, 0.0], np.float32), (len(aligned), 1))  # type: ignore[arg-type]


def test_a_new_model_is_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered, a detector and an embedder are valid settings and what the analyzer runs."""
    fake = _Fake()
    assert isinstance(fake, FaceDetector) and isinstance(fake, Aligner) and isinstance(fake, Embedder)
    monkeypatch.setitem(models.DETECTORS, "fake", lambda options: fake)
    monkeypatch.setitem(models.EMBEDDERS, "fake", models.EmbedderEntry("fake_v1", 3, lambda o: fake, lambda o: fake))
    settings = load_settings(None, detector="fake", embedder="fake", keep_face_context=False)
    analyzer = FaceAnalyzer(AnalyzerOptions.from_settings(settings))
    faces = analyzer.analyze(np.full((64, 64, 3), 128, np.uint8))
    assert [(f.detection.box, f.model, f.embedding.tolist()) for f in faces] == [
        ((1.0, 2.0, 30.0, 30.0), "fake_v1", [1.0, 0.0, 0.0])]


def test_an_entry_that_misstates_its_model_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _Fake()
    monkeypatch.setitem(models.EMBEDDERS, "fake", models.EmbedderEntry("fake_v1", 4, lambda o: fake, lambda o: fake))
    with pytest.raises(ModelLoadError, match=r"built fake_v1 \(3-D\), but its registry entry says fake_v1 \(4-D\)"):
        _ = FaceAnalyzer(replace(default_options(), embedder="fake")).embedder


def test_naming_the_models_loads_none_of_their_dependencies() -> None:
    code = ("import sys, facelake.config, facelake.vision.models as m; "
            "assert list(m.DETECTORS) and list(m.EMBEDDERS); "
            "print(sorted(n for n in ('onnxruntime', 'dlib', 'joblib', 'lz4', 'onnx', 'tflite') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_mtcnn_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lz4" else real(name, *a))
    models.mtcnn_sessions.cache_clear()
    try:
        with pytest.raises(ModelLoadError, match=r"missing: lz4\): pip install 'facelake\[mtcnn\]'"):
            _ = FaceAnalyzer(replace(default_options(), detector="mtcnn")).detector
    finally:
        models.mtcnn_sessions.cache_clear()


def _identity_graph() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_load_session_checks_pins_and_turns_every_failure_into_a_model_load_error(tmp_path: Path) -> None:
    import hashlib

    graph = _identity_graph()
    pin = hashlib.sha256(graph).hexdigest()
    x = np.array([2.5], np.float32)
    assert models.load_session(graph).run(None, {"x": x})[0].tolist() == [2.5]
    file = tmp_path / "g.onnx"
    file.write_bytes(graph)
    for session in (models.load_session(file), models.load_session(file, pin)):
        assert session.run(None, {"x": x})[0].tolist() == [2.5]
    with pytest.raises(ModelLoadError, match="does not match its pinned sha256; reinstall facelake"):
        models.load_session(file, "0" * 64)
    with pytest.raises(ModelLoadError, match="does not match its pinned sha256"):
        models.load_session(graph, "0" * 64)
    with pytest.raises(ModelLoadError, match="missing.*reinstall facelake"):
        models.load_session(tmp_path / "absent.onnx", pin)
    file.write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match=r"g\.onnx could not be loaded: .*; delete it to rebuild"):
        models.load_session(file)
    with pytest.raises(ModelLoadError, match="built in memory could not be loaded"):
        models.load_session(b"not a graph")


# --- integration: the real parts, loaded through the registry -------------------------------


@pytest.mark.parametrize("name", list(models.DETECTORS))
def test_every_registered_detector_is_a_face_detector(name: str, samples: Path) -> None:
    from .conftest import load_rgb

    detector = models.build_detector(replace(default_options(), detector=name))
    assert isinstance(detector, FaceDetector)
    found = detector.detect(load_rgb(samples / "obama.jpg"))  # largest first: the one real face
    assert found and found[0].width > 150 and found[0].landmarks.shape == (5, 2)


@pytest.mark.parametrize("name", list(models.EMBEDDERS))
def test_every_registered_embedder_is_what_its_entry_says(name: str, analyzer: FaceAnalyzer, samples: Path) -> None:
    from .conftest import load_rgb

    options = replace(default_options(), embedder=name)
    aligner, embedder = models.build_aligner(options), models.build_embedder(options)
    assert isinstance(aligner, Aligner) and isinstance(embedder, Embedder)
    entry = models.EMBEDDERS[name]
    assert (embedder.model_name, embedder.dim) == (entry.model_name, entry.dim)
    image = load_rgb(samples / "obama.jpg")
    vectors = embedder.embed_faces([aligner.align(image, d) for d in analyzer.detect(image)])
    assert vectors.shape == (1, entry.dim) and vectors.dtype == np.float32
    assert float(np.linalg.norm(vectors[0])) == pytest.approx(1.0, abs=1e-5)
