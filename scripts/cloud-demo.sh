#!/usr/bin/env bash
# The cloud path on this machine, against the GCS emulator: a bucket of camera images is
# ingested straight from the bucket, then the Cloud Function runs on each object and writes
# the Parquet lake, which `facelake import` brings into a second database. Both databases
# end up with the same sightings. Safe to run again (everything lives under cloud-demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --extras cloud
.venv/bin/python -m pip install --quiet "gcp-storage-emulator>=2024.8"
work=cloud-demo
rm -rf "$work" && mkdir -p "$work/photos"
.venv/bin/python -m facelake.samples "$work/photos" >/dev/null

port=${GCS_PORT:-$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
.venv/bin/gcp-storage-emulator start --host 127.0.0.1 --port "$port" --in-memory >"$work/gcs.log" 2>&1 &
gcs=$!
fn=""
trap 'kill $gcs ${fn:-} 2>/dev/null || true' EXIT
export STORAGE_EMULATOR_HOST="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -s "$STORAGE_EMULATOR_HOST" >/dev/null && break; sleep 0.2; done

echo "== a bucket 'cams' with two cameras"
.venv/bin/python - "$work/photos" <<'PY'
import pathlib, sys
from google.cloud import storage
bucket = storage.Client().create_bucket("cams")
for i, photo in enumerate(sorted(pathlib.Path(sys.argv[1]).glob("*.jpg"))):
    camera = "frontdoor" if i % 2 == 0 else "garden"
    bucket.blob(f"{camera}/2024-05-01/{photo.name}").upload_from_filename(photo)
    print(f"  gs://cams/{camera}/2024-05-01/{photo.name}")
PY

echo "== facelake ingest gs://cams/ (twice: the second run downloads nothing)"
.venv/bin/facelake --db "$work/bucket.duckdb" ingest gs://cams/
.venv/bin/facelake --db "$work/bucket.duckdb" ingest gs://cams/

echo "== the Cloud Function, locally (functions-framework), writing the lake to gs://cams/lake"
FACELAKE_LAKE_URI=gs://cams/lake .venv/bin/functions-framework --source deploy/cloud-function/main.py \
  --target on_object_finalized --signature-type cloudevent --host 127.0.0.1 --port 8089 >"$work/function.log" 2>&1 &
fn=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8089 && break; sleep 0.2; done
for name in $(.venv/bin/python -c "from google.cloud import storage
for b in storage.Client().list_blobs('cams'): print(b.name)"); do
  curl -s -o /dev/null -w "  %{http_code} $name (%{time_total} s)\n" -X POST http://127.0.0.1:8089/ \
    -H "ce-id: $RANDOM$RANDOM" -H "ce-specversion: 1.0" -H "ce-source: //storage.googleapis.com/projects/_/buckets/cams" \
    -H "ce-type: google.cloud.storage.object.v1.finalized" -H "Content-Type: application/json" \
    -d "{\"bucket\": \"cams\", \"name\": \"$name\"}"
done

echo "== facelake import gs://cams/lake/"
.venv/bin/facelake --db "$work/lake.duckdb" import gs://cams/lake/
for db in bucket lake; do
  echo "-- $db.duckdb"
  .venv/bin/facelake --db "$work/$db.duckdb" sql "SELECT i.camera, count(*) AS faces,
    sum(hash(s.embedding::VARCHAR)) % 1000000 AS embedding_checksum FROM sightings s JOIN images i USING (image_id)
    GROUP BY 1 ORDER BY 1"
done
