#!/usr/bin/env bash
# Quick-start demo: install facelake, fetch the sample photos, ingest them, show what was stored.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export FACELAKE_DB=${FACELAKE_DB:-demo.duckdb}
demo=${DEMO_DIR:-demo-cams}
mkdir -p "$demo/frontdoor" "$demo/garden"
.venv/bin/python -m facelake.samples "$demo/frontdoor" >/dev/null
mv -f "$demo/frontdoor/biden.jpg" "$demo/frontdoor/obama3.jpg" "$demo/garden/" 2>/dev/null || true
.venv/bin/facelake ingest "$demo"
.venv/bin/facelake stats
.venv/bin/facelake sql "SELECT i.camera, regexp_extract(i.uri, '[^/]+$') AS file, s.face_index,
  round(s.det_score, 3) AS score, round(s.quality, 2) AS quality, s.box
  FROM sightings s JOIN images i USING (image_id) ORDER BY 1, 2, 3"
