"""Bucket sources against real local servers: the GCS emulator and moto's S3 server."""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelake import ImageTooLarge, load_settings
from facelake.pipeline import ingest
from facelake.sources import BucketSource
from facelake.sources.base import Writable
from facelake.sources.buckets import Bucket, GcsBucket, ObjectInfo, S3Bucket
from facelake.store.base import Target

from .dbs import NewDb, rows
from .test_ingest import cli


def new_bucket(scheme: str) -> Bucket:
    name = f"cams-{uuid.uuid4().hex[:12]}"
    if scheme == "gs":
        from google.cloud import storage

        storage.Client().create_bucket(name)
        return GcsBucket(name)
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)
    return S3Bucket(name)


def upload_tree(bucket: Bucket, root: Path, prefix: str) -> int:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        bucket.write(f"{prefix}/{path.relative_to(root).as_posix()}", path.read_bytes(), "image/jpeg")
    return len(files)


class CountingBucket:
    """Wraps a real bucket and records which keys were downloaded."""

    def __init__(self, inner: Bucket) -> None:
        self.inner, self.uri = inner, inner.uri
        self.reads: list[str] = []
        self.downloads: list[str] = []

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def read(self, key: str, max_bytes: int) -> bytes:
        self.reads.append(key)
        return self.inner.read(key, max_bytes)

    def download(self, key: str, out: Writable, max_bytes: int) -> None:
        self.downloads.append(key)
        self.inner.download(key, out, max_bytes)

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.inner.write(key, data, content_type)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


@pytest.fixture(params=["gs", "s3"])
def scheme(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("gcs" if request.param == "gs" else "s3")
    return str(request.param)


FACES = "SELECT i.image_id, i.camera, i.width, i.height, s.face_index, s.box, s.landmarks, s.embedding " \
        "FROM images i JOIN sightings s USING (image_id) ORDER BY i.image_id, s.face_index"


def test_bucket_gives_the_same_sightings_as_the_folder_and_is_one_image_with_it(
    new_db: NewDb, cams: Path, scheme: str
) -> None:
    bucket = new_bucket(scheme)
    assert upload_tree(bucket, cams, "site/cams") == 3
    folder_db, bucket_db = new_db("folder"), new_db("bucket")
    ingest([cams], load_settings(db=folder_db), workers=1)
    summary = ingest([f"{bucket.uri}/site/cams"], load_settings(db=bucket_db), workers=1)
    assert (summary.new, summary.failed) == (3, 0)
    from_folder, from_bucket = rows(folder_db, FACES), rows(bucket_db, FACES)
    assert len(from_bucket) == 3 and from_bucket == from_folder
    assert {r[0] for r in rows(bucket_db, "SELECT uri FROM images")} == {
        f"{bucket.uri}/site/cams/frontdoor/2024-05-01/a.jpg", f"{bucket.uri}/site/cams/frontdoor/2024-05-01/b.jpg",
        f"{bucket.uri}/site/cams/garden/c.jpg"}
    versions = rows(bucket_db, "SELECT version FROM source_objects")
    assert len(versions) == 3 and all(v[0] for v in versions)
    # The same bytes already ingested from the folder: the bucket adds nothing.
    again = ingest([f"{bucket.uri}/site/cams"], load_settings(db=folder_db), workers=1)
    assert (again.new, again.skipped) == (0, 3)
    assert rows(folder_db, "SELECT count(*) FROM images") == [(3,)]


def test_a_second_listing_downloads_nothing_and_new_objects_are_picked_up(
    db: Target, tmp_path: Path, cams: Path, samples: Path, scheme: str
) -> None:
    bucket = new_bucket(scheme)
    upload_tree(bucket, cams, "cams")
    counting = CountingBucket(bucket)
    source = BucketSource(f"{bucket.uri}/cams", bucket=counting)
    assert ingest([source], load_settings(db=db), workers=1).new == 3
    assert len(counting.reads) == 3
    counting.reads.clear()
    second = ingest([source], load_settings(db=db), workers=1)
    assert (second.new, second.skipped, counting.reads) == (0, 3, [])
    bucket.write("cams/garden/d.jpg", (samples / "obama3.jpg").read_bytes())
    third = ingest([source], load_settings(db=db), workers=1)
    assert (third.new, third.skipped, counting.reads) == (1, 3, ["cams/garden/d.jpg"])


def test_corrupt_and_oversized_objects_are_errors_and_the_run_goes_on(
    db: Target, tmp_path: Path, samples: Path, scheme: str
) -> None:
    bucket = new_bucket(scheme)
    bucket.write("door/ok.jpg", (samples / "obama.jpg").read_bytes())
    bucket.write("door/cut.jpg", (samples / "biden.jpg").read_bytes()[:20_000])
    bucket.write("door/huge.jpg", (samples / "obama3.jpg").read_bytes())  # 596 kB, over the limit below
    counting = CountingBucket(bucket)
    settings = load_settings(db=db, max_file_mb=0.5)
    summary = ingest([BucketSource(f"{bucket.uri}/door", bucket=counting)], settings, workers=1)
    assert (summary.new, summary.failed) == (1, 2)
    errors = dict(rows(db, "SELECT regexp_replace(uri, '^.*/', ''), error FROM images WHERE status = 'error'"))
    assert "truncated" in errors["cut.jpg"] and "over the" in errors["huge.jpg"]
    assert "door/huge.jpg" not in counting.reads, "the listing's size refuses it before any download"
    # A re-run retries the errors without adding rows.
    ingest([BucketSource(f"{bucket.uri}/door", bucket=counting)], settings, workers=1)
    assert rows(db, "SELECT count(*), count(*) FILTER (WHERE status = 'error') FROM images") == [(3, 2)]


def test_the_stream_is_cut_at_the_limit_whatever_the_listing_said(samples: Path, scheme: str) -> None:
    bucket = new_bucket(scheme)
    data = (samples / "obama3.jpg").read_bytes()
    bucket.write("x/big.jpg", data)
    with pytest.raises(ImageTooLarge):
        bucket.read("x/big.jpg", 100_000)
    assert bucket.read("x/big.jpg", len(data)) == data


def test_cli_ingests_a_bucket_and_keeps_no_secret(db: Target, tmp_path: Path, cams: Path, scheme: str) -> None:
    bucket = new_bucket(scheme)
    upload_tree(bucket, cams, "cams")
    code, output = cli(db, "ingest", f"{bucket.uri}/cams", "--workers", "1")
    assert code == 0, output
    assert rows(db, "SELECT camera, count(*) FROM images GROUP BY 1 ORDER BY 1") == [("frontdoor", 2), ("garden", 1)]
    dump = str(rows(db, "SELECT * FROM images")) + str(rows(db, "SELECT * FROM source_objects"))
    assert "testing" not in dump and "secret" not in dump.lower()


def test_a_missing_bucket_is_a_clear_error(tmp_path: Path, scheme: str) -> None:
    code, output = cli(tmp_path / "f.duckdb", "ingest", f"{scheme}://no-such-bucket-{uuid.uuid4().hex[:8]}/x")
    assert code == 8 and "cannot list" in output


def test_camera_of_an_object_follows_the_folder_rule() -> None:
    from facelake.sources.base import camera_from_key

    assert camera_from_key("site/cams/frontdoor/2024/a.jpg", "site/cams", "b") == "frontdoor"
    assert camera_from_key("site/cams/a.jpg", "site/cams", "b") == "cams"
    assert camera_from_key("a.jpg", "", "bucket") == "bucket"


def test_an_object_deleted_between_listing_and_reading_is_an_error_and_the_run_goes_on(
    db: Target, tmp_path: Path, samples: Path, scheme: str
) -> None:
    bucket = new_bucket(scheme)
    bucket.write("door/a.jpg", (samples / "obama.jpg").read_bytes())
    bucket.write("door/gone.jpg", (samples / "biden.jpg").read_bytes())
    source = BucketSource(f"{bucket.uri}/door", bucket=bucket)
    listed = list(source.entries())
    bucket.delete("door/gone.jpg")
    from facelake.pipeline import Ingestor

    with Ingestor(load_settings(db=db), workers=1) as ingestor:
        summary = ingestor.run([], entries=[(source, e) for e in listed])
    assert (summary.new, summary.failed) == (1, 1)
    assert rows(db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images ORDER BY 1") == [
        ("a.jpg", "ok"), ("gone.jpg", "error")]
    assert "cannot read" in rows(db, "SELECT error FROM images WHERE status = 'error'")[0][0]


def test_a_clip_in_a_bucket_is_spooled_to_disk_never_read_whole_and_the_copy_is_deleted(
    db: Target, tmp_path: Path, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_video_ingest import clip, walker

    bucket = new_bucket(scheme)
    local = clip(tmp_path / "src" / "walk.mp4", [walker("obama.jpg")])
    bucket.write("door/walk.mp4", local.read_bytes(), "video/mp4")
    bucket.write("door/cut.mp4", local.read_bytes()[:3000], "video/mp4")
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    counting = CountingBucket(bucket)
    summary = ingest([BucketSource(f"{bucket.uri}/door", bucket=counting)], load_settings(db=db), workers=1)
    assert (summary.new, summary.failed) == (1, 1), summary.errors
    assert sorted(counting.downloads) == ["door/cut.mp4", "door/walk.mp4"] and counting.reads == [], \
        "a clip is downloaded in chunks to a file, never read into memory whole"
    assert list(spool.iterdir()) == [], "the spooled copies are deleted once written"
    assert rows(db, "SELECT count(*) FROM tracks") == [(1,)]
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert rows(db, "SELECT image_id FROM images WHERE status = 'ok'") == [(digest,)], "the id is the bytes' hash"
    # Over the clip size limit: refused by the stream, and nothing is left behind either.
    summary = ingest([BucketSource(f"{bucket.uri}/door", bucket=counting)],
                     load_settings(db=db, video_max_file_mb=0.001), workers=1)
    assert list(spool.iterdir()) == []
