#!/usr/bin/env bash
# Assemble the Cloud Function's source folder (build/cloud-function/): main.py, facelake as a
# wheel (RetinaFace's weights inside it), and a requirements.txt that Cloud Functions' Python
# build installs with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=build/cloud-function
rm -rf "$out" && mkdir -p "$out/wheels"
cp deploy/cloud-function/main.py "$out/"
.venv/bin/python -m pip wheel --quiet --no-deps -w "$out/wheels" .
wheel=$(basename "$out"/wheels/facelake-*.whl)
printf 'functions-framework>=3.5\n./wheels/%s[cloud]\n' "$wheel" > "$out/requirements.txt"
echo "function source ready in $out:"
cat "$out/requirements.txt"
