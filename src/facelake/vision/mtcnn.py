"""MTCNN (P-, R- and O-Net) rebuilt as ONNX graphs from the ``mtcnn`` package's weights.

The ``mtcnn`` package ships its weights as joblib+lz4 pickles of Keras weight lists (conv
kernels HWIO, biases, PReLU alphas, dense matrices); its own code needs TensorFlow. Here the
pickles are read with ``joblib`` (without importing the package), the three small networks
are written as ONNX graphs in memory and run by onnxruntime, and the cascade around them —
image pyramid, proposal decoding, non-maximum suppression, box regression, landmark
placement — follows the package's stages, with OpenCV standing in for TensorFlow's resizing
and cropping (area resize for the pyramid, bilinear corner-aligned crops for the patches).

Install with ``pip install 'facelake[mtcnn]'``; ``models.mtcnn_sessions`` loads the networks.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from ..errors import ModelLoadError
from .base import FaceDetector
from .types import Detection, RGBImage

_LAYERS: dict[str, list[tuple[str, Any]]] = {
    # (kind, argument) per layer, in the order of the Keras weight list.
    "pnet": [("conv", None), ("prelu", None), ("pool", (2, "same")), ("conv", None), ("prelu", None),
             ("conv", None), ("prelu", None), ("heads", ("conv", ["reg", "prob"]))],
    "rnet": [("conv", None), ("prelu", None), ("pool", (3, "same")), ("conv", None), ("prelu", None),
             ("pool", (3, "valid")), ("conv", None), ("prelu", None), ("flatten", None), ("dense", None),
             ("prelu", None), ("heads", ("dense", ["reg", "prob"]))],
    "onet": [("conv", None), ("prelu", None), ("pool", (3, "same")), ("conv", None), ("prelu", None),
             ("pool", (3, "valid")), ("conv", None), ("prelu", None), ("pool", (2, "same")), ("conv", None),
             ("prelu", None), ("flatten", None), ("dense", None), ("prelu", None),
             ("heads", ("dense", ["reg", "landmarks", "prob"]))],
}


EXTRA = ("mtcnn", "joblib", "lz4")
"""The packages of the ``mtcnn`` extra: the weights, and the two that read them."""


def weights_dir() -> Path:
    """Where the mtcnn package keeps its weight pickles; a ModelLoadError naming the extra if it is missing.

    The packages are located, not imported: ``mtcnn``'s own code imports TensorFlow.
    """
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    spec = importlib.util.find_spec("mtcnn")
    if missing or spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"detector 'mtcnn' needs the 'mtcnn' extra (missing: {', '.join(missing) or 'mtcnn'}): "
                             "pip install 'facelake[mtcnn]'")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def build_graph(name: str, weights: list[NDArray[Any]]) -> bytes:
    """The ONNX graph of one network (``pnet``, ``rnet`` or ``onet``) from its Keras weight list."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    it = iter(weights)
    count = iter(range(10_000))

    def const(value: NDArray[Any]) -> str:
        n = f"c{next(count)}"
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), n))
        return n

    def op(kind: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or f"t{next(count)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(x: str, kernel: NDArray[Any], bias: NDArray[Any], out: str | None = None) -> str:
        return op("Conv", [x, const(kernel.transpose(3, 2, 0, 1)), const(bias)], out)

    def dense(x: str, matrix: NDArray[Any], bias: NDArray[Any], out: str | None = None) -> str:
        return op("Add", [op("MatMul", [x, const(matrix)]), const(bias)], out)

    x = "image"
    flat = False
    for kind, arg in _LAYERS[name]:
        if kind == "conv":
            x = conv(x, next(it), next(it))
        elif kind == "prelu":
            alpha = next(it).reshape(-1)
            x = op("PRelu", [x, const(alpha if flat else alpha.reshape(-1, 1, 1))])
        elif kind == "pool":
            size, padding = arg
            pads = {"auto_pad": "SAME_UPPER"} if padding == "same" else {}
            x = op("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2], **pads)
        elif kind == "flatten":
            # Keras permuted (h, w) before flattening: the Caffe weights were trained transposed.
            x = op("Flatten", [op("Transpose", [x], perm=[0, 3, 2, 1])])
            flat = True
        elif kind == "dense":
            x = dense(x, next(it), next(it))
        elif kind == "heads":
            layer, outputs = arg
            for out in outputs:
                w, b = next(it), next(it)
                raw = conv(x, w, b) if layer == "conv" else dense(x, w, b)
                if out == "prob":
                    op("Softmax", [raw], out, axis=1)
                else:
                    op("Identity", [raw], out)
    spatial = ["h", "w"] if name == "pnet" else ([24, 24] if name == "rnet" else [48, 48])
    heads = _LAYERS[name][-1][1][1]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, *spatial])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["n"] + [None] * (3 if name == "pnet" else 1))
         for h in heads], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="facelake")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _nms(boxes: NDArray[np.float64], threshold: float, method: str = "union") -> NDArray[np.float64]:
    """MTCNN's suppression over rows ``[x1, y1, x2, y2, score, ...]`` (sorted by score here)."""
    if len(boxes) == 0:
        return boxes
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    iw = np.maximum(0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
    ih = np.maximum(0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
    inter = iw * ih
    denom = np.minimum(area[:, None], area[None]) if method == "min" else area[:, None] + area[None] - inter
    overlap = inter / np.maximum(denom, 1e-9)
    suppressed = (np.triu(overlap > threshold, k=1)).any(axis=0)
    return boxes[~suppressed]


def _square(boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w / 2 - side / 2
    boxes[:, 1] += h / 2 - side / 2
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _patches(image: NDArray[np.float32], boxes: NDArray[np.float64], size: int) -> NDArray[np.float32]:
    """Bilinear crops of ``boxes`` resized to ``size``, corners aligned, zeros outside the image."""
    out = np.zeros((len(boxes), 3, size, size), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4]):
        sx, sy = (x2 - x1) / (size - 1), (y2 - y1) / (size - 1)
        matrix = np.array([[sx, 0, x1], [0, sy, y1]], dtype=np.float64)
        crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[i] = crop.transpose(2, 0, 1)
    return out


@dataclass
class MtcnnDetector(FaceDetector):
    """The MTCNN cascade with the ``mtcnn`` package's default thresholds."""

    sessions: dict[str, Any]
    min_face_size: int = 20
    scale_factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)

    def detect(self, image: RGBImage) -> list[Detection]:
        norm = (image.astype(np.float32) - 127.5) / 128.0
        boxes = self._proposals(norm)
        if len(boxes):
            boxes = self._refine(norm, boxes)
        if not len(boxes):
            return []
        found = self._output(norm, boxes)
        return sorted(found, key=lambda d: d.box[2] * d.box[3], reverse=True)

    def _proposals(self, norm: NDArray[np.float32]) -> NDArray[np.float64]:
        height, width = norm.shape[:2]
        count = round(-((np.log(min(width, height) / 12) / np.log(self.scale_factor)) + 1))
        scales = (12 / self.min_face_size) * self.scale_factor ** np.arange(max(count, 0))
        found = []
        for scale in scales:
            h, w = int(np.ceil(height * scale)), int(np.ceil(width * scale))
            if min(h, w) < 12:
                continue
            scaled = cv2.resize(norm, (w, h), interpolation=cv2.INTER_AREA)
            reg, prob = self.sessions["pnet"].run(None, {"image": scaled.transpose(2, 0, 1)[None]})
            ys, xs = np.nonzero(prob[0, 1] > self.thresholds[0])
            if not len(ys):
                continue
            r = reg[0][:, ys, xs]
            x1, y1 = xs * 2 + 1.0, ys * 2 + 1.0
            x2, y2 = xs * 2 + 12.0, ys * 2 + 12.0
            boxes = np.stack([x1 + r[0] * 11, y1 + r[1] * 11, x2 + r[2] * 11, y2 + r[3] * 11], axis=1) / scale
            found.append(_nms(np.hstack([boxes, prob[0, 1, ys, xs][:, None]]), 0.5))
        if not found:
            return np.empty((0, 5))
        return _square(_nms(np.vstack(found), 0.7))

    def _refine(self, norm: NDArray[np.float32], boxes: NDArray[np.float64]) -> NDArray[np.float64]:
        reg, prob = self.sessions["rnet"].run(None, {"image": _patches(norm, boxes, 24)})
        boxes = boxes.copy()
        boxes[:, 4] = prob[:, 1]
        size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
        boxes[:, :4] += reg * size
        boxes = boxes[boxes[:, 4] > self.thresholds[1]]
        return _square(_nms(boxes, 0.7)) if len(boxes) else boxes

    def _output(self, norm: NDArray[np.float32], boxes: NDArray[np.float64]) -> list[Detection]:
        reg, marks, prob = self.sessions["onet"].run(None, {"image": _patches(norm, boxes, 48)})
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        xs = w[:, None] * marks[:, 0:5] + boxes[:, 0:1] - 1
        ys = h[:, None] * marks[:, 5:10] + boxes[:, 1:2] - 1
        out = boxes.copy()
        out[:, 4] = prob[:, 1]
        out[:, :4] += reg * np.stack([w, h, w, h], axis=1)
        rows = np.hstack([out[:, :5], xs, ys])
        rows = _nms(rows[rows[:, 4] > self.thresholds[2]], 0.7, method="min")
        height, width = norm.shape[:2]
        found = []
        for row in rows:
            x1, y1 = max(0.0, row[0]), max(0.0, row[1])
            x2, y2 = min(width - 1.0, row[2]), min(height - 1.0, row[3])
            points = np.stack([row[5:10], row[10:15]], axis=1).astype(np.float32)
            found.append(Detection((x1, y1, x2 - x1, y2 - y1), float(row[4]), points))
        return found
