"""The Parquet lake: one pair of files per image in a bucket (or folder), for writers that share nothing.

A fleet of Cloud Function instances cannot share a DuckDB file, so each writes its image
as ``<lake>/images/<image_id>.parquet`` (one row) and ``<lake>/sightings/<image_id>.parquet``
(one row per face), and a video clip its tracks as ``<lake>/tracks/<image_id>.parquet``. Why
this layout:
- the file name *is* the image id, so a redelivered event rewrites the same two objects and
  can never add a second row; ``facelake import`` skips ids it already holds without
  downloading them;
- the sightings file is written first and the image file last, so an image file's presence
  means its sightings are complete (an instance killed in between leaves no image file, and
  the redelivery finishes the job);
- two prefixes with one fixed schema each are what BigQuery external tables and load jobs
  expect (``gs://BUCKET/lake/images/*.parquet``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np

from ..sources.buckets import Bucket, open_bucket
from .base import ImageRecord, SightingRecord, Store, TrackRecord, utcnow

IMAGE_COLUMNS = """image_id VARCHAR, uri VARCHAR, camera VARCHAR, taken_at TIMESTAMP, taken_at_source VARCHAR,
    gps_lat DOUBLE, gps_lon DOUBLE, camera_make VARCHAR, camera_model VARCHAR, format VARCHAR, width INTEGER,
    height INTEGER, bytes BIGINT, ingested_at TIMESTAMP, status VARCHAR, error VARCHAR"""
SIGHTING_COLUMNS = """image_id VARCHAR, face_index INTEGER, box FLOAT[], landmarks STRUCT(x FLOAT, y FLOAT)[],
    det_score FLOAT, quality FLOAT, embedding FLOAT[], model VARCHAR, person_id BIGINT, match_score FLOAT,
    thumb BLOB, track_index INTEGER, offset_s DOUBLE, recognisability FLOAT"""
TRACK_COLUMNS = """image_id VARCHAR, track_index INTEGER, start_s DOUBLE, end_s DOUBLE, frames INTEGER,
    template FLOAT[], model VARCHAR, started_at TIMESTAMP, ended_at TIMESTAMP, still BLOB"""
PARQUET = "(FORMAT PARQUET, COMPRESSION ZSTD)"


def _to_file(con: duckdb.DuckDBPyConnection, table: str) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        con.execute(f"COPY {table} TO '{tmp}' {PARQUET}")
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


def image_parquet(image: ImageRecord) -> bytes:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({IMAGE_COLUMNS})")
    con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        image.image_id, image.uri, image.camera, image.taken_at, image.taken_at_source, image.gps_lat,
        image.gps_lon, image.camera_make, image.camera_model, image.format, image.width, image.height,
        image.bytes, utcnow(), image.status, image.error])
    return _to_file(con, "t")


def sightings_parquet(image_id: str, sightings: list[SightingRecord]) -> bytes:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({SIGHTING_COLUMNS})")
    for s in sightings:
        landmarks = [{"x": float(x), "y": float(y)} for x, y in np.asarray(s.landmarks, dtype=np.float32)]
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            image_id, s.face_index, [float(v) for v in s.box], landmarks, s.det_score, s.quality,
            np.asarray(s.embedding, dtype=np.float32).tolist(), s.model, s.person_id, s.match_score, s.thumb,
            s.track, s.offset_s, s.recognisability])
    return _to_file(con, "t")


def tracks_parquet(image: ImageRecord) -> bytes:
    """A clip's tracks (one row each, by their index, which the sightings' ``track_index`` points to)."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({TRACK_COLUMNS})")
    for n, t in enumerate(image.tracks):
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            image.image_id, n, t.start_s, t.end_s, t.frames, np.asarray(t.template, dtype=np.float32).tolist(),
            t.model, t.started_at, t.ended_at, t.still])
    return _to_file(con, "t")


class Lake:
    """Write and read the per-image Parquet files under ``uri`` (``gs://``, ``s3://`` or a folder)."""

    def __init__(self, uri: str, bucket: Bucket | None = None) -> None:
        opened, prefix = open_bucket(uri) if bucket is None else (bucket, "")
        self.bucket = opened
        self.prefix = prefix.strip("/")
        self.uri = uri.rstrip("/")

    def _key(self, table: str, image_id: str) -> str:
        return "/".join(p for p in (self.prefix, table, f"{image_id}.parquet") if p)

    def has(self, image_id: str) -> bool:
        return self.bucket.exists(self._key("images", image_id))

    def write(self, image: ImageRecord, sightings: list[SightingRecord]) -> None:
        """Sightings (and a clip's tracks) first, image last: the image file marks a complete record."""
        self.bucket.write(self._key("sightings", image.image_id), sightings_parquet(image.image_id, sightings))
        if image.tracks:
            self.bucket.write(self._key("tracks", image.image_id), tracks_parquet(image))
        self.bucket.write(self._key("images", image.image_id), image_parquet(image))

    def image_ids(self) -> Iterator[str]:
        folder = "/".join(p for p in (self.prefix, "images/") if p)
        for obj in self.bucket.list(folder):
            name = obj.key.rsplit("/", 1)[-1]
            if name.endswith(".parquet"):
                yield name[: -len(".parquet")]

    def read(self, image_id: str, max_bytes: int = 1 << 30) -> tuple[ImageRecord, list[SightingRecord]]:
        con = duckdb.connect()
        with tempfile.TemporaryDirectory() as tmp:
            tables = ["images", "sightings"] + (["tracks"] if self.bucket.exists(self._key("tracks", image_id)) else [])
            for table in tables:
                path = Path(tmp) / f"{table}.parquet"
                path.write_bytes(self.bucket.read(self._key(table, image_id), max_bytes))
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
        row = con.execute("""SELECT image_id, uri, camera, status, error, taken_at, taken_at_source, gps_lat, gps_lon,
                                    camera_make, camera_model, format, width, height, bytes FROM images""").fetchone()
        assert row is not None, f"empty image file for {image_id}"
        tracks = tuple(TrackRecord(*t) for t in con.execute(
            """SELECT start_s, end_s, frames, template, model, started_at, ended_at, still FROM tracks
               ORDER BY track_index""").fetchall()) if "tracks" in tables else ()
        image = replace(ImageRecord(*row), tracks=tuple(replace(t, template=np.array(t.template, np.float32))
                                                         for t in tracks))
        # Files written before clips were known have no track columns: their faces belong to none.
        names = {r[0] for r in con.execute("DESCRIBE sightings").fetchall()}
        # Nor, before the recognisability score, that column: their faces are not scored (never gated).
        extra = "track_index, offset_s" if "track_index" in names else "NULL, NULL"
        extra += ", recognisability" if "recognisability" in names else ", NULL"
        faces = con.execute(f"""SELECT face_index, box, landmarks, det_score, quality, embedding, model, thumb,
                                       person_id, match_score, {extra} FROM sightings ORDER BY face_index""").fetchall()
        sightings = [
            SightingRecord(
                face_index=f[0], box=tuple(f[1]),  # type: ignore[arg-type]
                landmarks=np.array([[p["x"], p["y"]] for p in f[2]], dtype=np.float32), det_score=f[3],
                quality=f[4], embedding=np.array(f[5], dtype=np.float32), model=f[6], thumb=f[7],
                person_id=f[8], match_score=f[9], track=f[10], offset_s=f[11], recognisability=f[12],
            )
            for f in faces
        ]
        return image, sightings


@dataclass
class ImportSummary:
    imported: int = 0
    skipped: int = 0
    faces: int = 0


def import_lake(store: Store, lake: Lake, on_image: Callable[[str, str], None] | None = None) -> ImportSummary:
    """Bring every lake image the store does not hold into it, one transaction per image.

    Person ids in the lake come from the gallery the function was given; a person who no
    longer exists here (forgotten since) is not linked, so an erasure is never undone.
    """
    summary = ImportSummary()
    known = store.image_ids()
    people = store.people.ids()
    for image_id in lake.image_ids():
        if image_id in known:
            summary.skipped += 1
            if on_image:
                on_image(image_id, "skipped")
            continue
        image, sightings = lake.read(image_id)
        sightings = [s if s.person_id in people or s.person_id is None
                     else SightingRecord(s.face_index, s.box, s.landmarks, s.det_score, s.quality, s.embedding,
                                         s.model, s.thumb, recognisability=s.recognisability) for s in sightings]
        known.add(image_id)
        if store.write_image(image, sightings, actor="import") is None:  # another writer was first
            summary.skipped += 1
            if on_image:
                on_image(image_id, "skipped")
            continue
        summary.imported += 1
        summary.faces += len(sightings)
        if on_image:
            on_image(image_id, "imported")
    return summary
