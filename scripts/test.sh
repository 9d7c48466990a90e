#!/usr/bin/env bash
# Install facelake with its test dependencies and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# Debian packages the tests run for real: a MQTT broker (mosquitto) for the alert tests, ffmpeg for streams,
# headless Chromium for the dashboard test (driven by Playwright, which downloads no browser),
# and PostgreSQL without pgvector (the plain-server path; pgvector's server is PyPI's pgserver).
need=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
[ -x /usr/bin/chromium ] || need="$need chromium"
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need="$need postgresql"
# ffmpeg serves the live-stream tests' MJPEG and MPEG-TS streams on 127.0.0.1 (its HTTP listen mode).
command -v ffmpeg >/dev/null 2>&1 || need="$need ffmpeg"
# GStreamer's gst-rtsp-server is the RTSP camera of tests/test_rtsp.py (tests/rtsp_server.py, run by
# Debian's /usr/bin/python3 through python3-gi); -good has qtdemux and rtph264pay, -bad h264parse.
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' \
  >/dev/null 2>&1 || need="$need python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
if [ -n "$need" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# The BigQuery tests run bqemulator, a real BigQuery REST server over DuckDB. It pins DuckDB
# 1.5 and needs DuckDB's spatial extension, which it would download at start; the PyPI wheel
# duckdb-extension-spatial carries it instead. Its own venv keeps its DuckDB apart from ours.
if [ ! -f .venv-bq/.ready ]; then
  .venv/bin/python -m venv .venv-bq
  .venv-bq/bin/python -m pip install --quiet "bqemulator==1.4.0" "duckdb==1.5.5" \
    "duckdb-extension-spatial==1.5.5" numpy
  .venv-bq/bin/python - <<'PY'
import os, duckdb, duckdb_extension_spatial
path = os.path.join(os.path.dirname(duckdb_extension_spatial.__file__), "extensions", "v1.5.5", "spatial.duckdb_extension")
duckdb.connect().execute(f"INSTALL '{path}'")
PY
  touch .venv-bq/.ready
fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
[ "$rc" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$rc"
