"""Erasure reaches the copies outside the database: the Cloud Function's Parquet lake and BigQuery.

The lake is written by the real function (``FunctionRuntime``, reading photos from the GCS
emulator) into a folder (``LocalBucket``) or into the emulator's bucket; each test reads
every crop and embedding the lake's Parquet files hold before and after ``forget`` or
``purge``, and imports the lake into a fresh database to see what would come back.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from facelake import load_settings
from facelake.store import Target
from facelake.store.lake import Lake

from .dbs import NewDb, execute, rows
from .test_cloud import bigquery_endpoint, bq_rows  # noqa: F401 (a fixture)
from .test_ingest import cli


def _bucket():  # type: ignore[no-untyped-def]
    from google.cloud import storage

    return storage.Client().create_bucket(f"lake-{uuid.uuid4().hex[:10]}")


def _run_function(bucket: object, lake: str, photos: dict[str, Path], tmp: Path) -> dict[str, str]:
    """Upload ``photos`` (name → file) and let the function write them into ``lake``, naming faces
    with the gallery exported to the bucket; returns each name's image id."""
    from facelake.triggers.cloud_function import FunctionRuntime

    settings = load_settings(db=tmp / "unused.duckdb", lake_uri=lake, function_reload_s=0,
                             gallery_uri=f"gs://{bucket.name}/gallery.npz")  # type: ignore[attr-defined]
    runtime = FunctionRuntime(settings)
    ids = {}
    for name, path in photos.items():
        bucket.blob(name).upload_from_filename(path)  # type: ignore[attr-defined]
        outcome = runtime.handle(bucket.name, name)  # type: ignore[attr-defined]
        assert outcome.outcome == "new", outcome
        assert outcome.image_id is not None
        ids[name] = outcome.image_id
    return ids


def _lake_faces(lake: Lake) -> list[tuple[str, int, int | None, bytes | None, bytes | None]]:
    """Every face row the lake's sightings files hold: image id, face index, person id, crop, and
    embedding (as float32 bytes), read from the Parquet files themselves."""
    out = []
    folder = "/".join(p for p in (lake.prefix, "sightings/") if p)
    with tempfile.TemporaryDirectory() as tmp:
        for obj in lake.bucket.list(folder):
            path = Path(tmp) / "s.parquet"
            path.write_bytes(lake.bucket.read(obj.key, 1 << 30))
            crops = Path(tmp) / "f.parquet"  # the crops are in faces/<id>.parquet beside it
            faces_key = obj.key.replace("sightings/", "faces/", 1)
            crops.write_bytes(lake.bucket.read(faces_key, 1 << 30) if lake.bucket.exists(faces_key) else b"")
            thumbs = (f"(SELECT f.thumb FROM read_parquet('{crops}') f WHERE f.face_index = s.face_index)"
                      if crops.stat().st_size else "NULL")
            for image_id, face, person, thumb, emb in duckdb.connect().execute(
                    f"SELECT image_id, face_index, person_id, {thumbs}, embedding "
                    f"FROM read_parquet('{path}') s").fetchall():
                out.append((image_id, face, person, None if thumb is None else bytes(thumb),
                            None if emb is None else np.asarray(emb, np.float32).tobytes()))
    return out


def _biometrics(faces: list[tuple[str, int, int | None, bytes | None, bytes | None]]) -> set[bytes]:
    return {b for f in faces for b in f[3:] if b is not None}


def _db_biometrics(db: Target) -> set[bytes]:
    out = set()
    for thumb, emb in rows(db, "SELECT thumb, embedding FROM sightings"):
        if thumb is not None:
            out.add(bytes(thumb))
        if emb is not None:
            out.add(np.asarray(emb, np.float32).tobytes())
    return out


def _age_lake_image(lake: Lake, image_id: str, days: int) -> None:
    """Rewrite an image file as if the function had written it ``days`` ago."""
    key = lake._key("images", image_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "i.parquet"
        path.write_bytes(lake.bucket.read(key, 1 << 30))
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')")
        con.execute("UPDATE t SET ingested_at = ?", [datetime.now() - timedelta(days=days)])
        out = Path(tmp) / "o.parquet"
        con.execute(f"COPY t TO '{out}' (FORMAT PARQUET)")
        lake.bucket.write(key, out.read_bytes())


def _forget_reaches_the_lake(new_db: NewDb, samples: Path, tmp_path: Path, lake_uri: str, bucket: object,
                             by_setting: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    db = new_db("home")
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "people", "export", f"gs://{bucket.name}/gallery.npz")[0] == 0  # type: ignore[attr-defined]
    ids = _run_function(bucket, lake_uri, {"door/enrolled.jpg": samples / "obama3.jpg",
                                           "door/o.jpg": samples / "obama.jpg", "door/b.jpg": samples / "biden.jpg"},
                        tmp_path)
    assert cli(db, "import", lake_uri)[0] == 0
    # One more of him, written by the function after the import: the database never saw it.
    ids.update(_run_function(bucket, lake_uri, {"door/o2.jpg": samples / "obama2.jpg"}, tmp_path))
    lake = Lake(lake_uri)
    before = _lake_faces(lake)
    his = [f for f in before if f[2] == 1]
    assert {f[0] for f in his} == {ids["door/enrolled.jpg"], ids["door/o.jpg"], ids["door/o2.jpg"]}, before
    assert all(f[3] and f[4] for f in his), "the control: the lake holds his crops and embeddings"
    assert rows(db, "SELECT count(*) FROM images WHERE image_id = ?", [ids["door/enrolled.jpg"]]) == [(1,)]
    untouched = _biometrics([f for f in before if f[2] is None])
    assert untouched, "Biden's face is unknown, and stays"
    copy = tmp_path / "stale-lake"  # a copy nobody cleaned (a backup, a second bucket)
    if not lake_uri.startswith("gs://"):
        shutil.copytree(lake_uri, copy)

    if by_setting:
        monkeypatch.setenv("FACELAKE_LAKE_URI", lake_uri)
        code, output = cli(db, "forget", "Barack")
    else:
        code, output = cli(db, "forget", "Barack", "--lake", lake_uri)
    assert code == 0, output
    after = _lake_faces(lake)
    assert not _biometrics(his) & _biometrics(after), "no crop or embedding of his is left in the lake"
    assert "1 lake images deleted" in output and "2 lake faces erased" in output, output
    assert "export --parquet" in output, "the owner is told what no erasure reaches"
    assert not [f for f in after if f[2] == 1], "nor his id"
    assert ids["door/enrolled.jpg"] not in set(lake.image_ids()), "his enrollment photo is gone from the lake"
    assert ids["door/o.jpg"] in set(lake.image_ids()), "the other images stay, as in the database"
    assert _biometrics([f for f in after if f[2] is None]) >= untouched, "nobody else's face was erased"
    # The lake imported into a fresh database brings none of it back.
    fresh = new_db("fresh")
    code, output = cli(fresh, "import", lake_uri)
    assert code == 0 and "imported 3 images" in output, output
    assert not _biometrics(his) & _db_biometrics(fresh)
    assert rows(fresh, "SELECT count(*) FROM sightings WHERE embedding IS NOT NULL") == [(1,)], "Biden only"
    # Defence in depth: the database refuses what a stale copy of the lake still holds.
    if not lake_uri.startswith("gs://"):
        monkeypatch.delenv("FACELAKE_LAKE_URI", raising=False)
        code, output = cli(db, "import", str(copy))
        assert code == 0 and "faces came without crop and embedding" in output, output
        assert not _biometrics(his) & _db_biometrics(db)
        assert rows(db, "SELECT count(*) FROM images WHERE image_id = ?", [ids["door/enrolled.jpg"]]) == [(0,)]


def test_forget_erases_the_person_from_a_folder_lake_and_import_brings_nothing_back(
    new_db: NewDb, samples: Path, tmp_path: Path, gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forget_reaches_the_lake(new_db, samples, tmp_path, str(tmp_path / "lake"), _bucket(), True, monkeypatch)


@pytest.mark.parametrize("engine", ["duckdb"])
def test_forget_erases_the_person_from_a_gcs_lake(
    new_db: NewDb, samples: Path, tmp_path: Path, gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket()
    _forget_reaches_the_lake(new_db, samples, tmp_path, f"gs://{bucket.name}/lake", bucket, False, monkeypatch)


@pytest.mark.parametrize("engine", ["duckdb"])
def test_purge_erases_expired_faces_from_the_lake_and_import_does_not_restore_them(
    new_db: NewDb, samples: Path, tmp_path: Path, gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = new_db("home")
    bucket = _bucket()
    lake_uri = str(tmp_path / "lake")
    _run_function(bucket, lake_uri, {"a.jpg": samples / "obama.jpg", "b.jpg": samples / "biden.jpg"}, tmp_path)
    assert cli(db, "import", lake_uri)[0] == 0
    late = _run_function(bucket, lake_uri, {"c.jpg": samples / "obama2.jpg"}, tmp_path)["c.jpg"]
    lake = Lake(lake_uri)
    faces = _lake_faces(lake)
    assert len(faces) == 3 and all(f[3] and f[4] for f in faces)
    # Everything expired: what the database imported, and what the function wrote that it never saw.
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now() - timedelta(days=400)])
    _age_lake_image(lake, late, 400)
    copy = tmp_path / "stale-lake"
    shutil.copytree(lake_uri, copy)
    monkeypatch.setenv("FACELAKE_LAKE_URI", lake_uri)
    code, output = cli(db, "purge")
    assert code == 0 and "of 2 unknown faces" in output, output
    after = _lake_faces(lake)
    assert len(after) == 3, "the rows stay, as in the database"
    assert not _biometrics(faces) & _biometrics(after), "no expired crop or embedding is left in the lake"
    assert "lake: 3 faces erased" in output, output
    fresh = new_db("fresh")
    assert cli(fresh, "import", lake_uri)[0] == 0
    assert rows(fresh, "SELECT count(*), count(thumb), count(embedding) FROM sightings") == [(3, 0, 0)]
    # A stale copy: the imported faces are refused by key, the late one by its age in the lake.
    monkeypatch.delenv("FACELAKE_LAKE_URI")
    code, output = cli(db, "import", str(copy))
    assert code == 0 and "1 faces came without crop" in output, output
    assert rows(db, "SELECT count(*), count(thumb), count(embedding) FROM sightings") == [(3, 0, 0)]
    # Running it again finds nothing left to do.
    code, output = cli(db, "purge", "--lake", lake_uri)
    assert code == 0 and "lake: 0 faces erased" in output, output


@pytest.mark.parametrize("engine", ["duckdb"])
def test_export_erases_forgotten_and_expired_faces_from_bigquery(
    db: Target, cams: Path, samples: Path, bigquery_endpoint: str,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACELAKE_BIGQUERY_ENDPOINT", bigquery_endpoint)
    ds = "erasures"
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(db, "export", "--bigquery", f"facelake-test.{ds}")[0] == 0
    enrolled = rows(db, "SELECT image_id FROM images WHERE camera = 'enrollment'")
    assert len(enrolled) == 1
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.images WHERE image_id = '{enrolled[0][0]}'") == [(1,)]
    # A face the Cloud Function's sink wrote, which the database never held.
    now = datetime.now().replace(microsecond=0)
    bq_rows(bigquery_endpoint, f"INSERT INTO {ds}.images (image_id, uri, ingested_at, status) VALUES "
                               f"('fn', 'gs://b/x.jpg', DATETIME '{now:%Y-%m-%d %H:%M:%S}', 'ok')")
    bq_rows(bigquery_endpoint, f"INSERT INTO {ds}.sightings (image_id, face_index, embedding) VALUES ('fn', 0, [0.5])")
    assert cli(db, "forget", "Barack")[0] == 0
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0, output
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.images WHERE image_id = '{enrolled[0][0]}'") == [(0,)]
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.sightings WHERE person_id IS NOT NULL") == [(0,)]
    unknown = bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.sightings WHERE ARRAY_LENGTH(embedding) > 0")
    assert unknown == [(2,)], "Biden's face, and the function's"
    # Retention: the unknown faces expire in the warehouse too, at the next export after purge.
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now() - timedelta(days=400)])
    bq_rows(bigquery_endpoint, f"UPDATE {ds}.images SET ingested_at = DATETIME '2020-01-01 00:00:00' WHERE TRUE")
    assert "of 1 unknown faces" in cli(db, "purge")[1]
    code, output = cli(db, "export", "--bigquery", f"facelake-test.{ds}")
    assert code == 0 and "2 rows of erased or expired faces emptied" in output, output
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.sightings WHERE ARRAY_LENGTH(embedding) > 0") == [(0,)]
    assert bq_rows(bigquery_endpoint, f"SELECT count(*) FROM {ds}.sightings") == [(2,)], "the rows stay"


@pytest.mark.parametrize("engine", ["duckdb"])
def test_an_erased_face_takes_its_clip_track_template_and_still_from_the_lake(db: Target, tmp_path: Path) -> None:
    """A clip's track is one face followed through the frames: erasing the face erases the track's
    template and still in the lake's tracks file, and import writes the track without them."""
    from facelake.store import SightingRecord, open_store
    from facelake.store.base import ImageRecord, TrackRecord
    from facelake.store.lake import import_lake

    rng = np.random.default_rng(0)
    template = rng.standard_normal(128).astype(np.float32)
    track = TrackRecord(0.0, 2.0, 12, template, "m", still=b"\xff\xd8still-of-the-clip\xff\xd9")
    faces = [SightingRecord(n, (0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9, 0.8,
                            rng.standard_normal(128).astype(np.float32), "m", f"crop{n}".encode(), track=n, offset_s=0.5)
             for n in range(2)]
    clip = ImageRecord("clip-1", "/cams/walk.mp4", "door", "ok", tracks=(track, replace(track, still=b"other")))
    lake = Lake(str(tmp_path / "lake"))
    lake.write(clip, faces)
    assert lake.erase_faces("clip-1", "face_index IN (0)") == 1
    assert lake.erase_faces("clip-1", "face_index IN (0)") == 0, "nothing left to erase: not rewritten"
    image, sightings = lake.read("clip-1")
    assert (image.tracks[0].template, image.tracks[0].still) == (None, None)
    assert image.tracks[1].still == b"other" and image.tracks[1].template is not None, "the other track stays"
    assert (sightings[0].embedding, sightings[0].thumb) == (None, None) and sightings[1].thumb == b"crop1"
    with open_store(db) as store:
        assert import_lake(store, lake).imported == 1
    assert rows(db, "SELECT track_index, template IS NULL, still IS NULL FROM tracks ORDER BY 1") == [
        (0, True, True), (1, False, False)]
    assert rows(db, "SELECT face_index, embedding IS NULL, thumb IS NULL FROM sightings ORDER BY 1") == [
        (0, True, True), (1, False, False)]


def test_a_lake_written_before_stills_keeps_its_tracks_still_on_import(tmp_path: Path) -> None:
    """Tracks files once held the still (and no warehouse columns): such a lake still reads whole,
    and erasing one of its faces still wipes the track in that file."""
    from facelake.store import SightingRecord
    from facelake.store.base import ImageRecord, TrackRecord

    rng = np.random.default_rng(1)
    track = TrackRecord(0.0, 2.0, 12, rng.standard_normal(128).astype(np.float32), "m", still=b"old-still")
    face = SightingRecord(0, (0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9, 0.8,
                          rng.standard_normal(128).astype(np.float32), "m", b"crop", track=0, offset_s=0.5)
    lake = Lake(str(tmp_path / "lake"))
    lake.write(ImageRecord("clip-1", "/cams/walk.mp4", "door", "ok", tracks=(track,)), [face])
    new_layout = lake.read("clip-1")[0].tracks[0]
    old = tmp_path / "lake" / "tracks" / "clip-1.parquet"
    (tmp_path / "lake" / "stills" / "clip-1.parquet").unlink()
    duckdb.sql(f"""COPY (SELECT 'clip-1' AS image_id, 0::INTEGER AS track_index, 0.0::DOUBLE AS start_s,
                   2.0::DOUBLE AS end_s, 12::INTEGER AS frames, {track.template.tolist()}::FLOAT[] AS template,
                   'm' AS model, NULL::TIMESTAMP AS started_at, NULL::TIMESTAMP AS ended_at,
                   'old-still'::BLOB AS still) TO '{old}' (FORMAT PARQUET)""")
    read = lake.read("clip-1")[0].tracks[0]
    assert read.still == b"old-still" and np.array_equal(read.template, track.template)
    assert np.array_equal(new_layout.template, track.template) and new_layout.still == b"old-still", \
        "the new layout gives back the same track: the template widened exactly, the still from stills/"
    assert lake.erase_faces("clip-1", "face_index IN (0)") == 1
    assert (lake.read("clip-1")[0].tracks[0].template, lake.read("clip-1")[0].tracks[0].still) == (None, None)
