"""dlib's ResNet face embedder, rebuilt as an ONNX graph from its own weight file.

Why: dlib-bin runs the 29-layer ResNet without BLAS at 115-130 ms per face on two cores;
the same network in onnxruntime runs in a few milliseconds. Nothing is downloaded: the
weights are read from ``dlib_face_recognition_resnet_model_v1.dat`` (shipped in
``face-recognition-models``) by parsing dlib's serialization format, and the graph is
written to the user cache once, named by the hash of the weight file.

dlib's format, as far as this file needs it: integers are a length byte (high bit = sign)
followed by that many little-endian bytes; strings are an integer length then bytes;
tensors are a version integer, four dimensions (n, k, nr, nc) and n·k·nr·nc little-endian
float32. Each layer writes its name (``con_4``, ``affine_``, ``fc_2``, ...) before its
fields, and layers appear from the input upwards, so the parameter tensors are found by
their names and read in order.

The network (dlib's ``dnn_face_recognition_ex.cpp``): a 7×7/2 convolution with 32 filters,
affine (batch norm folded by dlib), ReLU and 3×3/2 max pooling; then residual blocks of two
3×3 convolutions, each followed by an affine layer — 3 × 32 channels, then 4 × 64, 3 × 128,
3 × 256 and 1 × 256, the first block of each group after the first halving the resolution
with a stride-2 convolution while its shortcut is 2×2 average-pooled; then global average
pooling and a 256 → 128 linear layer without bias. Stride-2 layers have no padding, so a
block's output and its pooled shortcut can differ in size (3×3 vs 4×4); dlib adds such
tensors as if the smaller were zero-padded at the bottom and right, and so does this graph.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ModelLoadError

BLOCKS: tuple[tuple[int, int, bool], ...] = (
    *((32, 1, False),) * 3,
    (64, 2, True), *((64, 1, False),) * 3,
    (128, 2, True), *((128, 1, False),) * 2,
    (256, 2, True), *((256, 1, False),) * 2,
    (256, 2, True),
)
"""(filters, stride of the first convolution, shortcut is pooled) per residual block, input first."""


@dataclass(frozen=True)
class Conv:
    weight: NDArray[np.float32]
    """(filters, channels, rows, cols)."""
    bias: NDArray[np.float32]
    stride: int
    padding: int


@dataclass(frozen=True)
class DlibResnetWeights:
    input_mean: tuple[float, float, float]
    """Mean R, G, B that dlib subtracts before dividing by 256."""
    convs: list[Conv]
    """Every convolution with the affine layer after it folded in, input first."""
    fc: NDArray[np.float32]
    """(256, 128): descriptor = pooled features @ fc."""


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa * 2.0**exponent)

    def string(self) -> str:
        n = self.int()
        text = self.data[self.pos : self.pos + n].decode("ascii")
        self.pos += n
        return text

    def tensor(self) -> NDArray[np.float32]:
        version = self.int()
        if version != 2:
            raise ModelLoadError(f"unsupported dlib tensor version {version}")
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)


def _find(data: bytes, name: str) -> list[int]:
    """Offsets of every length-prefixed occurrence of the layer name ``name``."""
    marker = bytes([1, len(name)]) + name.encode("ascii")
    found, start = [], 0
    while (at := data.find(marker, start)) >= 0:
        found.append(at)
        start = at + 1
    return found


def parse_dlib_resnet(path: Path) -> DlibResnetWeights:
    """Read the weights of dlib's face ResNet from its serialized ``.dat`` file."""
    data = path.read_bytes()
    inputs = _find(data, "input_rgb_image_sized")
    if len(inputs) != 1:
        raise ModelLoadError(f"{path} is not dlib's face ResNet: no input_rgb_image_sized layer")
    r = _Reader(data, inputs[0])
    r.string()
    mean = (r.float(), r.float(), r.float())
    layers = sorted([(p, "con") for p in _find(data, "con_4")] + [(p, "affine") for p in _find(data, "affine_")])
    kinds = [k for _, k in layers]
    if kinds != ["con", "affine"] * (1 + 2 * len(BLOCKS)):
        raise ModelLoadError(f"{path}: unexpected layer sequence ({len(kinds)} conv/affine layers)")
    convs: list[Conv] = []
    for i in range(0, len(layers), 2):
        r = _Reader(data, layers[i][0])
        r.string()
        params = r.tensor().ravel()
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
        if stride_y != stride_x or pad_y != pad_x or rows != cols:
            raise ModelLoadError(f"{path}: non-square convolution {rows}x{cols}/{stride_y}x{stride_x}")
        n_weights = params.size - filters
        channels = n_weights // (filters * rows * cols)
        weight = params[:n_weights].reshape(filters, channels, rows, cols)
        bias = params[n_weights:]
        r = _Reader(data, layers[i + 1][0])
        r.string()
        affine = r.tensor().ravel()
        if affine.size != 2 * filters:
            raise ModelLoadError(f"{path}: affine layer of {affine.size} values after {filters} filters")
        gamma, beta = affine[:filters], affine[filters:]
        convs.append(Conv((weight * gamma[:, None, None, None]).astype(np.float32),
                          (bias * gamma + beta).astype(np.float32), stride_y, pad_y))
    fcs = _find(data, "fc_2")
    if len(fcs) != 1:
        raise ModelLoadError(f"{path}: expected one fc layer, found {len(fcs)}")
    r = _Reader(data, fcs[0])
    r.string()
    outputs, inputs_n = r.int(), r.int()
    fc = r.tensor().reshape(inputs_n, outputs)
    return DlibResnetWeights(mean, convs, fc.astype(np.float32))


def build_onnx(weights: DlibResnetWeights) -> bytes:
    """The network as a serialized ONNX model.

    Input ``chips``: float32 (N, 150, 150, 3), RGB in 0..255 — aligned face chips as
    ``dlib.get_face_chip`` cuts them. Output ``descriptors``: float32 (N, 128), unnormalised,
    as dlib's ``compute_face_descriptor`` returns them.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = iter(range(1_000_000))

    def name(prefix: str) -> str:
        return f"{prefix}_{next(counter)}"

    def const(value: NDArray[np.generic], prefix: str = "c") -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(x: str, c: Conv) -> str:
        k = c.weight.shape[2]
        return op("Conv", [x, const(c.weight, "w"), const(c.bias, "b")], kernel_shape=[k, k],
                  strides=[c.stride, c.stride], pads=[c.padding] * 4)

    def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
        return (size + 2 * pad - kernel) // stride + 1

    x = op("Transpose", ["chips"], perm=[0, 3, 1, 2])
    mean = np.array(weights.input_mean, dtype=np.float32).reshape(1, 3, 1, 1)
    x = op("Mul", [op("Sub", [x, const(mean)]), const(np.array(1 / 256, dtype=np.float32))])
    convs = iter(weights.convs)
    first = next(convs)
    x = op("Relu", [conv(x, first)])
    size, channels = out_size(150, first.weight.shape[2], first.stride, first.padding), first.weight.shape[0]
    x = op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = out_size(size, 3, 2, 0)
    for filters, stride, pooled in BLOCKS:
        a, b = next(convs), next(convs)
        if a.weight.shape[0] != filters or a.stride != stride or b.stride != 1:
            raise ModelLoadError(f"block of {filters} filters has conv {a.weight.shape}/{a.stride}")
        y = conv(op("Relu", [conv(x, a)]), b)
        y_size = out_size(out_size(size, 3, stride, a.padding), 3, 1, b.padding)
        if pooled:
            x = op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            size = out_size(size, 2, 2, 0)
        total_c, total_s = max(channels, filters), max(size, y_size)
        if (channels, size) != (total_c, total_s):
            x = op("Pad", [x, const(np.array([0, 0, 0, 0, 0, total_c - channels, total_s - size, total_s - size]))])
        if (filters, y_size) != (total_c, total_s):
            y = op("Pad", [y, const(np.array([0, 0, 0, 0, 0, total_c - filters, total_s - y_size, total_s - y_size]))])
        x = op("Relu", [op("Add", [x, y])])
        channels, size = total_c, total_s
    pooled_features = op("Flatten", [op("GlobalAveragePool", [x])])
    nodes.append(helper.make_node("MatMul", [pooled_features, const(weights.fc, "fc")], ["descriptors"]))
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", 150, 150, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", 128])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="facelake")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def cached_onnx(dat_path: Path, cache: Path) -> Path:
    """The ONNX file for ``dat_path``, built into ``cache`` on first use.

    Named by the SHA-256 of the weight file, so a different ``.dat`` never reuses a stale
    graph; written to a temporary file and renamed, so a concurrent or interrupted build
    never leaves a half-written model behind.
    """
    digest = hashlib.sha256(dat_path.read_bytes()).hexdigest()[:16]
    target = cache / f"dlib_resnet_v1_{digest}.onnx"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    model = build_onnx(parse_dlib_resnet(dat_path))
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(model)
    os.replace(tmp, target)
    return target
