#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install facelake into it; safe to run again.
# Usage: scripts/setup.sh [--test | --extras cloud,mtcnn]   (--test: the test dependencies and every extra)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "facelake needs Python >= 3.11" >&2; exit 1; }
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing python3-venv with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extra=""
case "${1:-}" in
  --test) extra="[test]" ;;
  --extras) extra="[${2:?--extras needs a list, e.g. cloud or cloud,mtcnn}]" ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test | --extras LIST]" >&2; exit 2 ;;
esac
stamp=".venv/.facelake-installed$extra"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".$extra"
  touch "$stamp"
fi
