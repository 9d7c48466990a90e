"""The Parquet lake: one pair of files per image in a bucket (or folder), for writers that share nothing.

A fleet of Cloud Function instances cannot share a DuckDB file, so each writes its image
as ``<lake>/images/<image_id>.parquet`` (one row), ``<lake>/sightings/<image_id>.parquet``
(one row per face) and ``<lake>/faces/<image_id>.parquet`` (each face's crop and track), and
a video clip its tracks as ``<lake>/tracks/<image_id>.parquet``. Why this layout:
- the file name *is* the image id, so a redelivered event rewrites the same two objects and
  can never add a second row; ``facelake import`` skips ids it already holds without
  downloading them;
- the sightings file is written first and the image file last, so an image file's presence
  means its sightings are complete (an instance killed in between leaves no image file, and
  the redelivery finishes the job);
- ``images/`` and ``sightings/`` hold exactly the columns of the BigQuery tables
  (``store.bigquery``: the same names, order and types), so ``bq load`` or an external table
  over ``gs://BUCKET/lake/sightings/*.parquet`` takes them as they are; what only
  ``facelake import`` needs (the face crops, which stay out of the warehouse, and a clip's
  face-to-track links) is in ``faces/``;
- an object's error row is keyed by its uri (``store.base.error_id``), and the object's good
  row removes it first: a fixed object resent adds no second row.
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
from .base import ImageRecord, SightingRecord, Store, TrackRecord, error_id, utcnow

IMAGE_COLUMNS = """image_id VARCHAR, uri VARCHAR, camera VARCHAR, taken_at TIMESTAMP, taken_at_source VARCHAR,
    gps_lat DOUBLE, gps_lon DOUBLE, camera_make VARCHAR, camera_model VARCHAR, format VARCHAR, width BIGINT,
    height BIGINT, bytes BIGINT, ingested_at TIMESTAMP, status VARCHAR, error VARCHAR"""
SIGHTING_COLUMNS = """sighting_id BIGINT, image_id VARCHAR, face_index BIGINT, box DOUBLE[],
    landmarks STRUCT(x DOUBLE, y DOUBLE)[], det_score DOUBLE, quality DOUBLE, embedding DOUBLE[], model VARCHAR,
    person_id BIGINT, cluster_id BIGINT, match_score DOUBLE"""
"""``bigquery.SIGHTING_FIELDS``, column for column (``sighting_id`` and ``cluster_id`` are NULL:
a database gives them when it imports the lake)."""
FACE_COLUMNS = "image_id VARCHAR, face_index INTEGER, thumb BLOB, track_index INTEGER, offset_s DOUBLE"
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
    """The warehouse's sightings row of each face (float32 values widened exactly to float64)."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({SIGHTING_COLUMNS})")
    for s in sightings:
        landmarks = [{"x": float(x), "y": float(y)} for x, y in np.asarray(s.landmarks, dtype=np.float32)]
        con.execute("INSERT INTO t VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)", [
            image_id, s.face_index, [float(v) for v in s.box], landmarks, float(s.det_score), float(s.quality),
            np.asarray(s.embedding, dtype=np.float32).tolist(), s.model, s.person_id,
            None if s.match_score is None else float(s.match_score)])
    return _to_file(con, "t")


def faces_parquet(image_id: str, sightings: list[SightingRecord]) -> bytes:
    """What only ``facelake import`` reads: each face's crop and, in a clip, its track."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({FACE_COLUMNS})")
    for s in sightings:
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [image_id, s.face_index, s.thumb, s.track, s.offset_s])
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
        """Sightings (and a clip's tracks) first, image last: the image file marks a complete record.

        A good row first removes its object's error row (keyed by the uri): killed in between,
        the object has no row and its redelivery writes it."""
        if image.status == "ok":
            failed = error_id(image.uri)
            if failed != image.image_id and self.has(failed):
                self.bucket.delete(self._key("images", failed))
                for table in ("sightings", "faces"):
                    self.bucket.delete(self._key(table, failed))
        self.bucket.write(self._key("faces", image.image_id), faces_parquet(image.image_id, sightings))
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
            tables = ["images", "sightings"] + [t for t in ("faces", "tracks")
                                                 if self.bucket.exists(self._key(t, image_id))]
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
        if "faces" in tables:
            faces = con.execute("""SELECT s.face_index, s.box, s.landmarks, s.det_score, s.quality, s.embedding,
                                          s.model, f.thumb, s.person_id, s.match_score, f.track_index, f.offset_s
                                   FROM sightings s LEFT JOIN faces f USING (face_index)
                                   ORDER BY s.face_index""").fetchall()
        else:
            # Lakes written before faces/: the crop (and, once clips were known, the track) in sightings.
            names = {r[0] for r in con.execute("DESCRIBE sightings").fetchall()}
            extra = "track_index, offset_s" if "track_index" in names else "NULL, NULL"
            faces = con.execute(f"""SELECT face_index, box, landmarks, det_score, quality, embedding, model, thumb,
                                           person_id, match_score, {extra} FROM sightings
                                    ORDER BY face_index""").fetchall()
        sightings = [
            SightingRecord(
                face_index=f[0], box=tuple(f[1]),  # type: ignore[arg-type]
                landmarks=np.array([[p["x"], p["y"]] for p in f[2]], dtype=np.float32), det_score=f[3],
                quality=f[4], embedding=np.array(f[5], dtype=np.float32), model=f[6], thumb=f[7],
                person_id=f[8], match_score=f[9], track=f[10], offset_s=f[11],
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
                                         s.model, s.thumb) for s in sightings]
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
