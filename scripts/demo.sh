#!/usr/bin/env bash
# Quick-start demo: install facelake, fetch the sample photos, enroll one person, ingest two
# "cameras" of photos, and show what was stored. Safe to run again (it starts a fresh demo.duckdb).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export FACELAKE_DB=${FACELAKE_DB:-demo.duckdb}
demo=${DEMO_DIR:-demo-cams}
rm -rf "$demo" demo-enroll "$FACELAKE_DB" "$FACELAKE_DB".wal "$FACELAKE_DB".faces.*
mkdir -p "$demo/frontdoor" "$demo/garden" demo-enroll
.venv/bin/python -m facelake.samples "$demo/frontdoor" >/dev/null
mv "$demo/frontdoor/obama3.jpg" demo-enroll/
mv "$demo/frontdoor/biden.jpg" "$demo/frontdoor/obama2.jpg" "$demo/garden/"
fl=.venv/bin/facelake
$fl people add "Barack Obama" demo-enroll/obama3.jpg \
  --consent "demo: public-figure photo shipped with face_recognition's tests"
$fl ingest "$demo"
$fl stats
$fl sql --title "what the cameras saw: each face found, and who it is" "SELECT i.camera, regexp_extract(i.uri, '[^/]+$') AS file, coalesce(p.name, 'unknown') AS person,
  round(s.match_score::DOUBLE, 3) AS match, round(s.quality::DOUBLE, 2) AS quality,
  list_transform(s.box, lambda v: round(v)::INTEGER) AS box
  FROM sightings s JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
  WHERE i.camera <> 'enrollment' ORDER BY 1, 2"
$fl search demo-enroll/obama3.jpg --top 3
cat <<EOF

Next steps. This demo used the database $FACELAKE_DB: to keep using it, run
  export FACELAKE_DB=$FACELAKE_DB
(or give --db $FACELAKE_DB to each command); then
  what is stored, per camera:             $fl stats
  who is enrolled, with consent notes:    $fl people list
  the dashboard (http://127.0.0.1:8470):  .venv/bin/python -m pip install -e '.[serve]' && $fl serve
  your own camera folders:                $fl ingest YOUR-FOLDER
EOF
