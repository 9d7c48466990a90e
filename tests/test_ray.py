"""`--engine ray`: the models run as Ray Data actors on a local Ray instance; the sightings are the
process pool's, folders and buckets alike, and the same idempotency holds."""

from __future__ import annotations

from pathlib import Path

from facelake import load_settings
from facelake.pipeline import ingest
from facelake.scale import RayExecutor

from .dbs import NewDb, rows
from .test_buckets import new_bucket, upload_tree
from .test_ingest import cli

FACES = ("SELECT i.image_id, i.camera, s.face_index, s.box, s.landmarks, s.embedding FROM images i "
         "JOIN sightings s USING (image_id) ORDER BY 1, 3")


def test_ray_gives_the_process_pools_sightings_for_a_folder_and_a_bucket(
    new_db: NewDb, cams: Path, gcs: str
) -> None:
    pool_db, ray_db = new_db("pool"), new_db("ray")
    ingest([cams], load_settings(db=pool_db), workers=2)
    (cams / "garden" / "broken.jpg").write_bytes(b"not a picture")
    code, output = cli(ray_db, "ingest", str(cams), "--engine", "ray", "--workers", "2")
    assert code == 0, output
    assert rows(ray_db, FACES) == rows(pool_db, FACES) and len(rows(ray_db, FACES)) == 3
    assert rows(ray_db, "SELECT regexp_replace(uri, '^.*/', ''), status FROM images WHERE status = 'error'") == [
        ("broken.jpg", "error")]
    settings = load_settings(db=ray_db)
    again = ingest([cams], settings, workers=2, executor=RayExecutor(settings, workers=2))
    assert (again.new, again.skipped) == (0, 3), "stored objects are not sent to Ray again"
    bucket = new_bucket("gs")
    upload_tree(bucket, cams, "cams")
    bucket_db = new_db("bucket")
    settings = load_settings(db=bucket_db)
    summary = ingest([f"{bucket.uri}/cams"], settings, workers=2, executor=RayExecutor(settings, workers=2))
    assert (summary.new, summary.failed) == (3, 1)
    assert rows(bucket_db, FACES) == rows(pool_db, FACES)
