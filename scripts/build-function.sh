#!/usr/bin/env bash
# Assemble the Cloud Function's source folder (build/cloud-function/): main.py, facelake's source,
# the two dlib weight files it loads, the converted models, and a requirements.txt of pinned
# versions that Cloud Functions' Python build installs with pip (see scripts/build_function.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --extras cloud
.venv/bin/python scripts/build_function.py build/cloud-function
cat build/cloud-function/requirements.txt
