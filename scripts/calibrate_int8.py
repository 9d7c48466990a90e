"""Make ``vision/weights/dlib_resnet_v1_int8.json``: the activation ranges of the int8 ResNet.

A development tool, run once when the network or its chips change (it needs the photos of
``../shared/facedata``, which are never shipped). Every face RetinaFace finds in those photos
is aligned the dlib way, and each chip is given as the embedder sees it: the chip, its
20-px view and both mirrors. (MobileFaceNet measured in int8 the same way named fewer
faces, 96.7 % of clean ones against 98.3 %: it stays in float32.) onnxruntime's MinMax calibrator (moving average over batches of
32) measures each quantized tensor's range; the file keeps only the resulting scale and zero
point per tensor, which ``facelake.vision.quantize`` gives back to the same tool as overrides.

Usage: python scripts/calibrate_int8.py [--facedata ../shared/facedata]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from facelake.errors import ImageUnreadable
from facelake.sources.decode import decode_image
from facelake.vision import models
from facelake.vision.analyzer import FaceAnalyzer, default_options
from facelake.vision.dlib_onnx import cached_onnx

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "facelake" / "vision" / "weights"


def chips(facedata: Path, analyzer: FaceAnalyzer) -> list[np.ndarray]:
    out = []
    for path in sorted(p for p in facedata.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".pgm")):
        try:
            image = decode_image(path.read_bytes(), 80_000_000).pixels
        except ImageUnreadable as exc:
            print(f"skipped {path}: {exc}")
        else:
            out += [a.chip for a in analyzer.align(image, analyzer.detect(image))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facedata", type=Path, default=ROOT.parent / "shared" / "facedata")
    args = parser.parse_args()
    analyzer = FaceAnalyzer(dataclasses.replace(default_options(), embedder="dlib", embed_backend="onnx"))
    found = chips(args.facedata, analyzer)
    inputs = np.stack([v for c in found for v in analyzer.embedder.views(c)]).astype(np.float32)
    fp32 = cached_onnx(models.dlib_model_path(f"{models.DLIB_RESNET}.dat"), models.cache_dir() / "models")
    target = WEIGHTS / "dlib_resnet_v1_int8.json"

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.at = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.at >= len(inputs):
                return None
            self.at += 32
            return {"chips": np.ascontiguousarray(inputs[self.at - 32 : self.at])}

    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(str(fp32), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv"], activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options={"CalibMovingAverage": True})
        graph = onnx.load(str(quantized)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    tensors = {n.input[0]: [float(values[n.input[1]]), int(values[n.input[2]])]
               for n in graph.node if n.op_type == "QuantizeLinear"}
    head = {
        "model": models.DLIB_RESNET,
        "calibration": f"onnxruntime MinMax (moving average, batches of 32) over {len(found)} faces of the "
                       f"development photos, {len(inputs)} chips as the embedder sees them (views and mirrors)",
    }
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in tensors.items())
    target.write_text(json.dumps(head, indent=1)[:-2] + ',\n "tensors": {\n' + rows + "\n }\n}\n")
    print(f"{len(tensors)} tensor ranges from {len(found)} faces ({len(inputs)} chips) -> {target}")


if __name__ == "__main__":
    main()
