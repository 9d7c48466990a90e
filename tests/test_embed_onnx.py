"""The ONNX port of dlib's ResNet: format reader units, and faithfulness against dlib itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelake.errors import ModelLoadError
from facelake.vision import models
from facelake.vision.analyzer import FaceAnalyzer
from facelake.vision.dlib_onnx import _Reader, cached_onnx, parse_dlib_resnet
from facelake.vision.embed import dlib_describe, onnx_describe

from .conftest import load_rgb


def _dlib_int(value: int) -> bytes:
    raw = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw


def test_reader_decodes_dlib_integers_floats_strings_and_tensors() -> None:
    values = np.arange(6, dtype="<f4") / 4
    data = (
        _dlib_int(300) + _dlib_int(-28) + _dlib_int(0)
        + _dlib_int(10737418) + _dlib_int(-28)  # dlib's float: mantissa · 2^exponent
        + _dlib_int(5) + b"con_4"
        + _dlib_int(2) + b"".join(_dlib_int(d) for d in (1, 2, 3, 1)) + values.tobytes()
    )
    r = _Reader(data, 0)
    assert (r.int(), r.int(), r.int()) == (300, -28, 0)
    assert r.float() == pytest.approx(0.04)
    assert r.string() == "con_4"
    assert r.tensor().tolist() == values.reshape(1, 2, 3, 1).tolist()
    assert r.pos == len(data)


def test_a_file_that_is_not_the_resnet_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(np.random.default_rng(0).integers(0, 256, 10000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelLoadError, match="not dlib's face ResNet"):
        parse_dlib_resnet(bogus)
    predictor = models.dlib_model_path("shape_predictor_5_face_landmarks.dat")
    with pytest.raises(ModelLoadError):
        parse_dlib_resnet(predictor)


def test_onnx_descriptors_match_dlib_on_real_faces(
    analyzer: FaceAnalyzer, samples: Path, astronaut_rgb: np.ndarray, tmp_path: Path
) -> None:
    chips = []
    for rgb in [load_rgb(samples / n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "32bit.png")] + [astronaut_rgb]:
        chips += [a.chip for a in analyzer.align(rgb, analyzer.detect(rgb))]
    assert len(chips) == 5
    reference = dlib_describe(models.dlib_resnet())(chips)
    ported = onnx_describe(models.dlib_resnet_onnx(), batch=2)(chips)
    cos = (reference * ported).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ported, axis=1)
    assert cos.min() >= 0.9999, cos
    assert np.allclose(reference, ported, atol=1e-4)


def test_the_graph_is_cached_by_content_hash(tmp_path: Path) -> None:
    dat = models.dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
    first = cached_onnx(dat, tmp_path)
    assert first.parent == tmp_path and first.name.startswith("dlib_resnet_v1_")
    mtime = first.stat().st_mtime_ns
    assert cached_onnx(dat, tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.part"))


def test_int8_descriptors_stay_within_cosine_0999_of_float32_on_real_faces(
    analyzer: FaceAnalyzer, samples: Path, astronaut_rgb: np.ndarray
) -> None:
    """The int8 copy (the default backend) keeps what matters: each face's descriptor, and
    which faces are nearest to which."""
    chips = []
    for rgb in [load_rgb(samples / n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "32bit.png")] + [astronaut_rgb]:
        chips += [a.chip for a in analyzer.align(rgb, analyzer.detect(rgb))]
    fp32 = onnx_describe(models.dlib_resnet_onnx())(chips)
    int8 = onnx_describe(models.dlib_resnet_int8())(chips)
    fp32 /= np.linalg.norm(fp32, axis=1, keepdims=True)
    int8 /= np.linalg.norm(int8, axis=1, keepdims=True)
    assert (fp32 * int8).sum(1).min() >= 0.999
    assert not np.allclose(fp32, int8, atol=1e-4)  # it is the quantized network that ran
    assert np.abs(fp32 @ fp32.T - int8 @ int8.T).max() < 0.01


def test_the_int8_copy_is_cached_by_both_files_and_a_broken_or_missing_ranges_file_is_refused(tmp_path: Path) -> None:
    import json

    from facelake.vision.quantize import cached_int8

    fp32 = cached_onnx(models.dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"), tmp_path)
    shipped = Path(models.__file__).parent / "weights" / "dlib_resnet_v1_int8.json"
    ranges = tmp_path / "ranges.json"
    ranges.write_bytes(shipped.read_bytes())
    first = cached_int8(fp32, ranges)
    assert first.parent == tmp_path and "int8" in first.name
    mtime = first.stat().st_mtime_ns
    assert cached_int8(fp32, ranges) == first and first.stat().st_mtime_ns == mtime
    ranges.write_text(json.dumps({"tensors": {"conv_7": ["not a number", 0]}}))
    with pytest.raises(ModelLoadError, match="malformed"):
        cached_int8(fp32, ranges)
    with pytest.raises(ModelLoadError, match="cannot read"):
        cached_int8(fp32, tmp_path / "missing.json")
    assert not list(tmp_path.glob("*.part*"))


def test_a_seven_bit_copy_for_saturating_cpus_has_its_own_name_and_an_eight_bit_one_keeps_its_old_name(
    tmp_path: Path,
) -> None:
    import hashlib

    from facelake.vision.quantize import cached_int8

    fp32 = cached_onnx(models.dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"), tmp_path)
    ranges = Path(models.__file__).parent / "weights" / "dlib_resnet_v1_int8.json"
    eight, seven = cached_int8(fp32, ranges, seven_bits=False), cached_int8(fp32, ranges, seven_bits=True)
    assert eight != seven and eight.is_file() and seven.is_file()
    assert eight.read_bytes() != seven.read_bytes()
    before = hashlib.sha256(fp32.name.encode() + ranges.read_bytes()).hexdigest()[:16]
    assert eight.name == f"{fp32.stem}-int8-{before}.onnx", "copies cached by earlier versions stay valid"
