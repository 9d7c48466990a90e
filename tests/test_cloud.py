"""The cloud path end to end: the Cloud Function in a real functions-framework server, the Parquet
lake in the GCS emulator, `facelake import`, the gallery file, and BigQuery in bqemulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from facelake import load_settings
from facelake.pipeline import ingest
from facelake.store.base import Target
from facelake.store.lake import Lake

from .dbs import NewDb, rows
from .servers import BIN, bigquery_emulator, free_port, server
from .test_alerts import receiver  # noqa: F401 (a fixture)
from .test_ingest import cli

ROOT = Path(__file__).resolve().parents[1]
FACES = ("SELECT i.image_id, i.camera, i.status, s.face_index, s.box, s.landmarks, s.det_score, s.embedding "
         "FROM images i LEFT JOIN sightings s USING (image_id) ORDER BY i.image_id, s.face_index")


def gcs_bucket():  # type: ignore[no-untyped-def]
    from google.cloud import storage

    return storage.Client().create_bucket(f"cams-{uuid.uuid4().hex[:10]}")


def cloud_event(bucket: str, name: str, size: int, generation: int) -> tuple[dict[str, str], str]:
    """A binary-mode CloudEvent as Eventarc delivers a GCS finalize notification."""
    headers = {
        "ce-id": uuid.uuid4().hex, "ce-specversion": "1.0", "ce-time": "2024-05-01T10:00:00Z",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}", "Content-Type": "application/json",
    }
    body = {"bucket": bucket, "name": name, "size": str(size), "generation": str(generation),
            "contentType": "image/jpeg"}
    return headers, json.dumps(body)


@pytest.fixture
def function(tmp_path: Path, gcs: str) -> Iterator[tuple[str, object, float]]:
    """functions-framework serving deploy/cloud-function/main.py, writing a lake into a fresh bucket."""
    bucket = gcs_bucket()
    port = free_port()
    env = {"FACELAKE_LAKE_URI": f"gs://{bucket.name}/lake", "FACELAKE_WORKERS": "1",
           "FACELAKE_GALLERY_URI": f"gs://{bucket.name}/gallery.npz", "FACELAKE_FUNCTION_RELOAD_S": "0"}
    cmd = [str(BIN / "functions-framework"), "--source", str(ROOT / "deploy" / "cloud-function" / "main.py"),
           "--target", "on_object_finalized", "--signature-type", "cloudevent", "--host", "127.0.0.1",
           "--port", str(port)]
    start = time.monotonic()
    with server(cmd, port, "functions-framework", tmp_path / "function.log", env=env):
        yield f"http://127.0.0.1:{port}/", bucket, time.monotonic() - start


def post(url: str, bucket: object, name: str) -> requests.Response:
    blob = bucket.get_blob(name)  # type: ignore[attr-defined]
    headers, body = cloud_event(blob.bucket.name, name, blob.size, blob.generation)
    return requests.post(url, headers=headers, data=body, timeout=120)


def test_function_writes_the_lake_once_and_import_matches_the_folder(
    new_db: NewDb, cams: Path, samples: Path, function: tuple[str, object, float]
) -> None:
    url, bucket, _ = function
    files = sorted(p for p in cams.rglob("*.jpg"))
    for path in files:
        bucket.blob(path.relative_to(cams).as_posix()).upload_from_filename(path)  # type: ignore[attr-defined]
    bucket.blob("door/cut.jpg").upload_from_string((samples / "biden.jpg").read_bytes()[:15_000])  # type: ignore[attr-defined]
    bucket.blob("door/notes.txt").upload_from_string(b"not an image")  # type: ignore[attr-defined]
    for name in [p.relative_to(cams).as_posix() for p in files] + ["door/cut.jpg", "door/notes.txt"]:
        assert post(url, bucket, name).status_code == 200
    lake = Lake(f"gs://{bucket.name}/lake")  # type: ignore[attr-defined]
    assert len(list(lake.image_ids())) == 4, "three photos and the truncated one; the text file is ignored"
    # Redelivery: the same event again rewrites nothing and adds nothing.
    assert post(url, bucket, "garden/c.jpg").status_code == 200
    assert len(list(lake.image_ids())) == 4
    db = new_db("lake")
    code, output = cli(db, "import", f"gs://{bucket.name}/lake/")  # type: ignore[attr-defined]
    assert code == 0 and "imported 4 images" in output, output
    code, output = cli(db, "import", f"gs://{bucket.name}/lake/")  # type: ignore[attr-defined]
    assert code == 0 and "imported 0 images" in output and "4 already here" in output
    folder_db = new_db("folder")
    ingest([cams], load_settings(db=folder_db), workers=1)
    from_lake = [r for r in rows(db, FACES) if r[2] == "ok"]
    assert len(from_lake) == 3 and from_lake == rows(folder_db, FACES)
    assert rows(db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images WHERE status = 'error'") == [
        ("cut.jpg", "error")]
    assert rows(db, "SELECT count(*) FROM sightings") == [(3,)]


def test_function_names_people_from_the_exported_gallery(
    db: Target, samples: Path, function: tuple[str, object, float]
) -> None:
    url, bucket, _ = function
    assert cli(db, "people", "add", "Barack Obama", str(samples / "obama.jpg"), "--consent", "test")[0] == 0
    code, output = cli(db, "people", "export", f"gs://{bucket.name}/gallery.npz")  # type: ignore[attr-defined]
    assert code == 0 and "1 enrolled" in output
    bucket.blob("door/o2.jpg").upload_from_filename(samples / "obama2.jpg")  # type: ignore[attr-defined]
    bucket.blob("door/b.jpg").upload_from_filename(samples / "biden.jpg")  # type: ignore[attr-defined]
    for name in ("door/o2.jpg", "door/b.jpg"):
        assert post(url, bucket, name).status_code == 200
    assert cli(db, "import", f"gs://{bucket.name}/lake")[0] == 0  # type: ignore[attr-defined]
    assert rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), p.name FROM sightings s JOIN images i USING (image_id) "
                    "LEFT JOIN people p USING (person_id) WHERE i.camera = 'door' ORDER BY 1") == [
        ("b.jpg", None), ("o2.jpg", "Barack Obama")]


def gps_photo(src: Path, dst: Path) -> None:
    """A copy of ``src`` with an EXIF capture time and GPS position (as a phone writes them)."""
    import piexif
    from PIL import Image

    exif = piexif.dump({
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 07:30:15"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2400, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (0, 1))},
    })
    Image.open(src).save(dst, "JPEG", quality=92, exif=exif)


def _plain(value: object) -> object:
    """Compare local and BigQuery values: numbers to 5 places (PostgreSQL's EXTRACT gives a
    decimal), everything else as it is."""
    from decimal import Decimal

    return round(float(value), 5) if isinstance(value, float | Decimal) else value


@pytest.fixture(scope="module")
def bigquery_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with bigquery_emulator(tmp_path_factory.mktemp("bq"), "facelake-test") as endpoint:
        yield endpoint


def bq_rows(endpoint: str, sql: str, default_dataset: str | None = None) -> list[tuple]:
    from google.cloud import bigquery

    from facelake.store.bigquery import client

    config = bigquery.QueryJobConfig(default_dataset=default_dataset) if default_dataset else None
    return [tuple(r.values()) for r in client("facelake-test", endpoint).query(sql, job_config=config).result()]


def test_export_to_bigquery_is_incremental_and_erasures_follow(
    db: Target, engine: str,
    tmp_path: Path, cams: Path, samples: Path, bigquery_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACELAKE_BIGQUERY_ENDPOINT", bigquery_endpoint)
    ds = f"exp_{engine}"  # one dataset per engine: the emulator lives for the module
    assert cli(db, "people", "add", "Barack Obama", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0 and "4 images and 4 sightings sent" in output, output
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0 and "0 images and 0 sightings sent" in output, output
    gps_photo(samples / "obama_partial_face.jpg", cams / "garden" / "p.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert "1 images and 1 sightings sent" in cli(db, "export", "--bigquery", f"facelake-test.{ds}")[1]
    # The shipped report queries give the same answers on DuckDB and on BigQuery.
    from facelake.reports.queries import report_names, report_sql

    for name in report_names():
        here = rows(db, report_sql(name))
        there = bq_rows(bigquery_endpoint, report_sql(name), default_dataset=f"facelake-test.{ds}")
        assert here and [tuple(map(_plain, r)) for r in there] == [tuple(map(_plain, r)) for r in here], name
    local = rows(db, "SELECT i.image_id, i.camera, s.face_index, s.person_id FROM images i JOIN sightings s "
                     "USING (image_id) ORDER BY 1, 3")
    remote = bq_rows(bigquery_endpoint, "SELECT i.image_id, i.camera, s.face_index, s.person_id FROM "
                     f"{ds}.images i JOIN {ds}.sightings s USING (image_id) ORDER BY 1, 3")
    assert remote == local and len(remote) == 5
    emb = bq_rows(bigquery_endpoint, f"SELECT ARRAY_LENGTH(embedding), ARRAY_LENGTH(landmarks) FROM {ds}.sightings")
    assert set(emb) == {(320, 5)}
    # A clip's tracks follow, with the faces each holds.
    from .test_video_ingest import clip, walker

    clip(cams / "door" / "walk.mp4", [walker("obama.jpg")])
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0 and "(1 tracks)" in output, output
    local = rows(db, "SELECT t.track_index, t.frames, t.person_id, count(s.sighting_id) FROM tracks t "
                     "JOIN sightings s USING (track_id) GROUP BY 1, 2, 3")
    remote = bq_rows(bigquery_endpoint, f"SELECT track_index, frames, person_id, ARRAY_LENGTH(face_indexes) "
                                        f"FROM {ds}.tracks")
    assert remote == local and local[0][2] is not None, (remote, local)
    assert bq_rows(bigquery_endpoint, f"SELECT ARRAY_LENGTH(template) FROM {ds}.tracks") == [(320,)]
    # Erasure reaches the warehouse on the next export.
    assert cli(db, "forget", "Barack Obama")[0] == 0
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0 and "deleted" in output
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.sightings WHERE person_id IS NOT NULL") == [(0,)]
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.tracks") == [(0,)], "the erased person's track"


def test_function_sink_writes_bigquery_rows_once(
    tmp_path: Path, samples: Path, gcs: str, bigquery_endpoint: str
) -> None:
    from facelake.store import bigquery
    from facelake.triggers.cloud_function import FunctionRuntime, handle_event

    bucket = gcs_bucket()
    bucket.blob("door/a.jpg").upload_from_filename(samples / "obama.jpg")
    settings = load_settings(db=tmp_path / "unused.duckdb", bigquery_dataset="facelake-test.fn",
                             bigquery_endpoint=bigquery_endpoint)
    runtime = FunctionRuntime(settings)
    assert isinstance(runtime.sink, bigquery.BigQuerySink)
    blob = bucket.get_blob("door/a.jpg")
    data = {"bucket": bucket.name, "name": "door/a.jpg", "size": str(blob.size), "generation": str(blob.generation)}
    first = handle_event("google.cloud.storage.object.v1.finalized", data, runtime)
    again = handle_event("google.cloud.storage.object.v1.finalized", data, runtime)
    assert (first.outcome, first.faces, again.outcome) == ("new", 1, "skipped")
    assert bq_rows(bigquery_endpoint, "SELECT camera, status FROM fn.images") == [("door", "ok")]
    assert bq_rows(bigquery_endpoint, "SELECT face_index, ARRAY_LENGTH(embedding) FROM fn.sightings") == [(0, 320)]
    # A clip: its tracks are written beside its sightings, once.
    from .test_video_ingest import clip, walker

    bucket.blob("door/walk.mp4").upload_from_filename(clip(tmp_path / "walk.mp4", [walker("biden.jpg")]))
    blob = bucket.get_blob("door/walk.mp4")
    data = {"bucket": bucket.name, "name": "door/walk.mp4", "size": str(blob.size), "generation": str(blob.generation)}
    assert handle_event("google.cloud.storage.object.v1.finalized", data, runtime).outcome == "new"
    assert handle_event("google.cloud.storage.object.v1.finalized", data, runtime).outcome == "skipped"
    tracks = bq_rows(bigquery_endpoint, "SELECT camera, frames > 0, ARRAY_LENGTH(template), face_indexes FROM fn.tracks")
    assert len(tracks) == 1 and tracks[0][:3] == ("door", True, 320) and list(tracks[0][3]) == list(
        range(len(tracks[0][3]))), tracks


def test_function_refuses_an_oversized_object_before_downloading_it(tmp_path: Path, samples: Path, gcs: str) -> None:
    from facelake.sources.buckets import LocalBucket
    from facelake.store.lake import Lake
    from facelake.triggers.cloud_function import FunctionRuntime

    bucket = gcs_bucket()
    bucket.blob("door/big.jpg").upload_from_filename(samples / "obama3.jpg")  # 596 kB
    lake = Lake(str(tmp_path / "lake"), bucket=LocalBucket(tmp_path / "lake"))
    runtime = FunctionRuntime(load_settings(db=tmp_path / "x.duckdb", max_file_mb=0.5), sink=lake)
    size = bucket.get_blob("door/big.jpg").size
    outcome = runtime.handle(bucket.name, "door/big.jpg", size=size)
    assert outcome.outcome == "failed" and outcome.faces == 0
    image, sightings = lake.read(outcome.image_id or "")
    assert image.status == "error" and "over the" in (image.error or "") and sightings == []
    assert runtime.handle(bucket.name, "door/notes.txt").outcome == "ignored"


def test_function_on_a_clip_writes_its_tracks_and_import_restores_them(
    new_db: NewDb, tmp_path: Path, function: tuple[str, object, float]
) -> None:
    from .test_video_ingest import clip, walker

    url, bucket, _ = function
    path = clip(tmp_path / "door" / "walk.mp4", [walker("obama.jpg")])
    bucket.blob("door/walk.mp4").upload_from_filename(path)  # type: ignore[attr-defined]
    assert post(url, bucket, "door/walk.mp4").status_code == 200
    db, folder_db = new_db("lake"), new_db("folder")
    code, output = cli(db, "import", f"gs://{bucket.name}/lake/")  # type: ignore[attr-defined]
    assert code == 0 and "imported 1 images" in output, output
    ingest([tmp_path / "door"], load_settings(db=folder_db), camera="door", workers=1)
    tracks = ("SELECT track_index, start_s, end_s, frames, template, model, still IS NOT NULL FROM tracks "
              "ORDER BY track_index")
    faces = "SELECT face_index, box, embedding, offset_s, track_id IS NOT NULL FROM sightings ORDER BY face_index"
    assert len(rows(db, tracks)) == 1 and rows(db, tracks) == rows(folder_db, tracks)
    assert rows(db, faces) == rows(folder_db, faces)


def test_function_alerts_by_its_rules_naming_the_face_by_image_and_index(
    tmp_path: Path, samples: Path, gcs: str, receiver: tuple[str, list[dict]],  # noqa: F811
) -> None:
    from facelake.sources.buckets import LocalBucket
    from facelake.triggers.cloud_function import FunctionRuntime

    from .test_video_ingest import clip, walker

    url, posts = receiver
    rules = tmp_path / "alerts.toml"
    rules.write_text(f'flush_s = 10\n[webhook]\nurl = "{url}"\n[[rule]]\nname = "stranger"\non = "unknown"\n'
                     'debounce_s = 0\noutputs = ["webhook"]\n')
    bucket = gcs_bucket()
    bucket.blob("door/obama.jpg").upload_from_filename(samples / "obama.jpg")
    bucket.blob("door/walk.mp4").upload_from_filename(clip(tmp_path / "walk.mp4", [walker("biden.jpg")]))
    lake = Lake(str(tmp_path / "lake"), bucket=LocalBucket(tmp_path / "lake"))
    runtime = FunctionRuntime(load_settings(db=tmp_path / "x.duckdb", alerts_file=rules), sink=lake)
    photo = runtime.handle(bucket.name, "door/obama.jpg")
    assert (photo.outcome, photo.faces, photo.alerts, photo.alerts_undelivered) == ("new", 1, 1, 0)
    assert len(posts) == 1, "the alert is delivered before the function answers"
    alert = posts[0]
    assert alert["rule"] == "stranger" and alert["camera"] == "door" and alert["known"] is False
    assert (alert["sighting_id"], alert["image_id"], alert["face_index"]) == (None, photo.image_id, 0)
    assert alert["crop_jpeg_base64"]
    video = runtime.handle(bucket.name, "door/walk.mp4")
    assert video.outcome == "new" and video.faces >= 2 and video.alerts == 1, "one alert for the clip's one track"
    assert len(posts) == 2 and posts[1]["image_id"] == video.image_id
    # Redelivered (at least once): stored already, so no second alert.
    assert runtime.handle(bucket.name, "door/obama.jpg").outcome == "skipped" and len(posts) == 2


def test_lake_files_load_into_the_bigquery_tables_as_docs_say(
    tmp_path: Path, samples: Path, gcs: str, bigquery_endpoint: str, new_db: NewDb
) -> None:
    """docs/bigquery.md: `bq load` of lake/images/, lake/sightings/ and lake/tracks/ files into the
    tables facelake makes. The files hold exactly those tables' columns; the crops stay in faces/,
    the tracks' stills in stills/."""
    import duckdb

    from facelake.sources.buckets import LocalBucket
    from facelake.store import bigquery
    from facelake.triggers.cloud_function import FunctionRuntime

    bucket = gcs_bucket()
    bucket.blob("door/a.jpg").upload_from_filename(samples / "obama.jpg")
    lake = Lake(str(tmp_path / "lake"), bucket=LocalBucket(tmp_path / "lake"))
    runtime = FunctionRuntime(load_settings(db=tmp_path / "x.duckdb"), sink=lake)
    from .test_video_ingest import clip, walker

    bucket.blob("door/walk.mp4").upload_from_filename(clip(tmp_path / "walk.mp4", [walker("biden.jpg")]))
    image_id = runtime.handle(bucket.name, "door/a.jpg").image_id
    clip_id = runtime.handle(bucket.name, "door/walk.mp4").image_id
    for table, ids in (("images", [image_id, clip_id]), ("sightings", [image_id, clip_id]), ("tracks", [clip_id])):
        for one in ids:
            columns = [r[0] for r in duckdb.sql(
                f"DESCRIBE SELECT * FROM '{tmp_path}/lake/{table}/{one}.parquet'").fetchall()]
            assert columns == [name for name, _, _ in bigquery.FIELDS[table]], table
    bq = bigquery.client("facelake-test", bigquery_endpoint)
    ds = f"lake_{uuid.uuid4().hex[:8]}"
    bigquery.ensure_tables(bq, "facelake-test", ds)
    for table, ids in (("images", [image_id, clip_id]), ("sightings", [image_id, clip_id]), ("tracks", [clip_id])):
        for one in ids:
            with open(tmp_path / "lake" / table / f"{one}.parquet", "rb") as f:
                bq.load_table_from_file(f, f"facelake-test.{ds}.{table}",
                                        job_config=bigquery.load_config(table, staging=False)).result()
    assert bq_rows(bigquery_endpoint, "SELECT i.camera, s.face_index, ARRAY_LENGTH(s.embedding), s.sighting_id "
                                      f"FROM {ds}.images i JOIN {ds}.sightings s USING (image_id) "
                                      f"WHERE image_id = '{image_id}'") == [("door", 0, 320, None)]
    tracks = bq_rows(bigquery_endpoint, "SELECT t.camera, ARRAY_LENGTH(t.template), ARRAY_LENGTH(t.face_indexes), "
                                        f"(SELECT count(*) FROM {ds}.sightings s WHERE s.image_id = t.image_id) "
                                        f"FROM {ds}.tracks t")
    assert len(tracks) == 1 and tracks[0][:2] == ("door", 320) and tracks[0][2] == tracks[0][3] > 0, tracks
    # The crop is still in the lake for `facelake import`.
    db = new_db("lake")
    from facelake.store import open_store
    from facelake.store.lake import import_lake

    store = open_store(db)
    try:
        assert import_lake(store, lake).imported == 2
    finally:
        store.close()
    assert rows(db, "SELECT bool_and(thumb IS NOT NULL) FROM sightings") == [(True,)]
    assert rows(db, "SELECT still IS NOT NULL, template IS NOT NULL FROM tracks") == [(True, True)], \
        "the still comes back from stills/"
