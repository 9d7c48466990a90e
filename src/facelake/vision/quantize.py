"""int8 copies of facelake's ONNX networks, made on this machine from shipped activation ranges.

Why: dlib's ResNet is bound by its convolutions, and onnxruntime runs them in int8 (VNNI
instructions on current x86 CPUs) 2.3x faster than in float32: 2.3 instead of 5.3 ms per
chip, four chips per face. Its descriptors stay at cosine 0.9998 on average (0.9986 at
worst) to the float32 ones, and the naming benchmark gives the same names and thresholds
(docs/models.md).

How: the float32 graph is quantized by onnxruntime's own tool, weights per channel, but the
activations' scales and zero points are not measured here, where there are no face images:
they come from a small JSON file made once from the development photos
(``scripts/calibrate_int8.py``) and are given to the tool as overrides. The quantized graph
is cached beside the float32 one, named by both files' hashes (and, for a 7-bit copy, that).

On x86 CPUs without VNNI the weights are quantized to 7 bits (``reduce_range``). Why: there
onnxruntime multiplies u8 activations by s8 weights with an instruction that adds pairs into
saturating 16-bit sums, and 8-bit weights overflow them. Measured on an AMD EPYC with AVX2
only, over the 517 development faces: 8-bit weights gave descriptors at cosine 0.9919 on
average to float32's (0.924 at worst), 7-bit weights 0.9994 (0.9944). VNNI adds in 32 bits and
keeps the full 8 bits (0.9998 / 0.9986, docs/models.md). Each kind of copy has its own name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

_SEVEN_BITS = b"reduce-range "
"""Prefixed to the hashed name of a 7-bit copy; an 8-bit copy keeps the name it always had."""


@functools.cache
def sums_saturate() -> bool:
    """Whether onnxruntime's int8 convolutions add in saturating 16-bit sums here: x86 without VNNI.

    Read from Linux's CPU flags; an x86 machine whose flags cannot be read is assumed to
    saturate (7-bit weights are right everywhere, 8-bit ones only with VNNI).
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", flags) is None


def load_ranges(path: Path) -> dict[str, tuple[float, int]]:
    """``tensor name → (scale, zero point)`` from a ranges file."""
    try:
        tensors = json.loads(path.read_text())["tensors"]
        return {str(k): (float(v[0]), int(v[1])) for k, v in tensors.items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelLoadError(f"int8 ranges file {path} is missing or malformed: {exc}") from exc


def quantize(fp32: Path, ranges: dict[str, tuple[float, int]], target: Path, seven_bits: bool = False) -> None:
    """Write the int8 (QDQ) copy of ``fp32`` to ``target`` with the given activation ranges
    (with ``seven_bits``, weights in 7 bits: see the module docstring)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    feeds = {i.name: i.type.tensor_type for i in model.graph.input}

    class _OneInput(CalibrationDataReader):  # type: ignore[misc]
        """The tool insists on running the model once; the overrides decide every range."""

        def __init__(self) -> None:
            self.done = False

        def get_next(self) -> dict[str, Any] | None:
            if self.done:
                return None
            self.done = True
            return {name: np.zeros([d.dim_value or 1 for d in t.shape.dim], np.float32) for name, t in feeds.items()}

    overrides = {name: [{"scale": np.array(scale, np.float32), "zero_point": np.array(zp, np.uint8)}]
                 for name, (scale, zp) in ranges.items()}
    logging.disable(logging.WARNING)  # the tool advises "pre-processing" on the root logger; not needed here
    try:
        quantize_static(str(fp32), str(target), _OneInput(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=seven_bits,
                        extra_options={"TensorQuantOverrides": overrides})
    finally:
        logging.disable(logging.NOTSET)


def cached_int8(fp32: Path, ranges_file: Path, seven_bits: bool | None = None) -> Path:
    """The int8 copy of ``fp32`` quantized with ``ranges_file``, built beside it on first use;
    its weights in 7 bits where this CPU's sums saturate (``seven_bits=None``: :func:`sums_saturate`).

    Named by ``fp32``'s own name (itself named by its weights' hash) and the ranges file's
    hash: reading the 22-MB graph again to hash it cost every worker ~15 ms a run. Written to
    a temporary file and renamed, so an interrupted build never leaves half a model.
    """
    seven = sums_saturate() if seven_bits is None else seven_bits
    try:
        digest = hashlib.sha256((_SEVEN_BITS if seven else b"") + fp32.name.encode()
                                + ranges_file.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ModelLoadError(f"cannot read {exc.filename}: {exc.strerror}; reinstall facelake") from exc
    target = fp32.with_name(f"{fp32.stem}-int8-{digest}.onnx")
    if target.is_file():
        return target
    ranges = load_ranges(ranges_file)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=fp32.parent, suffix=".part.onnx")
        os.close(fd)
        quantize(fp32, ranges, Path(tmp), seven)
        os.replace(tmp, target)
    except Exception as exc:  # onnxruntime's tool raises its own untyped errors; the cache may be read-only
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ModelLoadError(f"could not make the int8 copy of {fp32.name} in {fp32.parent}: {exc}; "
                             "set embed_backend = \"onnx\" to run it in float32") from exc
    return target
