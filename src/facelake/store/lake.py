"""The Parquet lake: one pair of files per image in a bucket (or folder), for writers that share nothing.

A fleet of Cloud Function instances cannot share a DuckDB file, so each writes its image
as ``<lake>/images/<image_id>.parquet`` (one row), ``<lake>/sightings/<image_id>.parquet``
(one row per face) and ``<lake>/faces/<image_id>.parquet`` (each face's crop and track), and
a video clip its tracks as ``<lake>/tracks/<image_id>.parquet`` with each track's still frame in
``<lake>/stills/<image_id>.parquet``. Why this layout:
- the file name *is* the image id, so a redelivered event rewrites the same two objects and
  can never add a second row; ``facelake import`` skips ids it already holds without
  downloading them;
- the sightings file is written first and the image file last, so an image file's presence
  means its sightings are complete (an instance killed in between leaves no image file, and
  the redelivery finishes the job);
- ``images/``, ``sightings/`` and ``tracks/`` hold exactly the columns of the BigQuery tables
  (``store.bigquery``: the same names, order and types), so ``bq load`` or an external table
  over ``gs://BUCKET/lake/sightings/*.parquet`` takes them as they are; what only
  ``facelake import`` needs (the face crops and track stills, which stay out of the warehouse,
  and a clip's face-to-track links) is in ``faces/`` and ``stills/``;
- an object's error row is keyed by its uri (``store.base.error_id``), and the object's good
  row removes it first: a fixed object resent adds no second row.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
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
FACE_COLUMNS = ("image_id VARCHAR, face_index INTEGER, thumb BLOB, track_index INTEGER, offset_s DOUBLE, "
                "recognisability FLOAT")
TRACK_COLUMNS = """track_id BIGINT, image_id VARCHAR, track_index BIGINT, camera VARCHAR, started_at TIMESTAMP,
    ended_at TIMESTAMP, start_s DOUBLE, end_s DOUBLE, frames BIGINT, person_id BIGINT, cluster_id BIGINT,
    match_score DOUBLE, template DOUBLE[], model VARCHAR, face_indexes BIGINT[]"""
"""``bigquery.TRACK_FIELDS``, column for column (a track's name is its faces' name, as the
BigQuery sink writes it; ``track_id`` and ``cluster_id`` are NULL like the sightings')."""
STILL_COLUMNS = "image_id VARCHAR, track_index BIGINT, still BLOB"
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
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                    [image_id, s.face_index, s.thumb, s.track, s.offset_s, s.recognisability])
    return _to_file(con, "t")


def tracks_parquet(image: ImageRecord, sightings: list[SightingRecord]) -> bytes:
    """A clip's tracks (one row each, by their index, which the sightings' ``track_index`` points to),
    named by their faces; the template widened exactly to float64 like the embeddings."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({TRACK_COLUMNS})")
    for n, t in enumerate(image.tracks):
        faces = [s for s in sightings if s.track == n]
        person = next((s.person_id for s in faces), None)
        score = next((s.match_score for s in faces), None)
        template = None if t.template is None else np.asarray(t.template, dtype=np.float32).tolist()
        con.execute("INSERT INTO t VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)", [
            image.image_id, n, image.camera, t.started_at, t.ended_at, t.start_s, t.end_s, t.frames, person,
            None if score is None else float(score), template, t.model, [s.face_index for s in faces]])
    return _to_file(con, "t")


def stills_parquet(image: ImageRecord) -> bytes:
    """Each track's still frame: a picture of a face, so it stays out of the warehouse's columns."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({STILL_COLUMNS})")
    for n, t in enumerate(image.tracks):
        con.execute("INSERT INTO t VALUES (?, ?, ?)", [image.image_id, n, t.still])
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
            self.bucket.write(self._key("stills", image.image_id), stills_parquet(image))
            self.bucket.write(self._key("tracks", image.image_id), tracks_parquet(image, sightings))
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
            tables = ["images", "sightings"] + [t for t in ("faces", "tracks", "stills")
                                                 if self.bucket.exists(self._key(t, image_id))]
            for table in tables:
                path = Path(tmp) / f"{table}.parquet"
                path.write_bytes(self.bucket.read(self._key(table, image_id), max_bytes))
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
        row = con.execute("""SELECT image_id, uri, camera, status, error, taken_at, taken_at_source, gps_lat, gps_lon,
                                    camera_make, camera_model, format, width, height, bytes FROM images""").fetchone()
        assert row is not None, f"empty image file for {image_id}"
        tracks: tuple[TrackRecord, ...] = ()
        if "tracks" in tables:
            # Tracks files written before stills/ hold the still themselves.
            old = "still" in {r[0] for r in con.execute("DESCRIBE tracks").fetchall()}
            still = "t.still" if old else "st.still" if "stills" in tables else "NULL"
            joined = "LEFT JOIN stills st USING (track_index)" if not old and "stills" in tables else ""
            tracks = tuple(TrackRecord(*t) for t in con.execute(
                f"""SELECT t.start_s, t.end_s, t.frames, t.template, t.model, t.started_at, t.ended_at, {still}
                    FROM tracks t {joined} ORDER BY t.track_index""").fetchall())
        # An erased track (``erase_faces``) keeps its row without template or still.
        image = replace(ImageRecord(*row), tracks=tuple(
            replace(t, template=None if t.template is None else np.array(t.template, np.float32)) for t in tracks))
        if "faces" in tables:
            # Faces files written before the recognisability score have no such column (never gated).
            kept = {r[0] for r in con.execute("DESCRIBE faces").fetchall()}
            score = "f.recognisability" if "recognisability" in kept else "NULL"
            faces = con.execute(f"""SELECT s.face_index, s.box, s.landmarks, s.det_score, s.quality, s.embedding,
                                           s.model, f.thumb, s.person_id, s.match_score, f.track_index, f.offset_s,
                                           {score}
                                    FROM sightings s LEFT JOIN faces f USING (face_index)
                                    ORDER BY s.face_index""").fetchall()
        else:
            # Lakes written before faces/: the crop (and, once clips were known, the track) in sightings.
            names = {r[0] for r in con.execute("DESCRIBE sightings").fetchall()}
            extra = "track_index, offset_s" if "track_index" in names else "NULL, NULL"
            extra += ", recognisability" if "recognisability" in names else ", NULL"
            faces = con.execute(f"""SELECT face_index, box, landmarks, det_score, quality, embedding, model, thumb,
                                           person_id, match_score, {extra} FROM sightings
                                    ORDER BY face_index""").fetchall()
        sightings = [
            SightingRecord(
                face_index=f[0], box=tuple(f[1]),  # type: ignore[arg-type]
                landmarks=np.array([[p["x"], p["y"]] for p in f[2]], dtype=np.float32), det_score=f[3],
                quality=f[4], embedding=None if f[5] is None else np.array(f[5], dtype=np.float32),  # type: ignore[arg-type]
                model=f[6], thumb=f[7],
                person_id=f[8], match_score=f[9], track=f[10], offset_s=f[11], recognisability=f[12],
            )
            for f in faces
        ]
        return image, sightings

    def ingested_at(self, image_id: str) -> datetime | None:
        """When the function wrote the image (``None``: no image file): the clock retention runs by."""
        if not self.has(image_id):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "images.parquet"
            path.write_bytes(self.bucket.read(self._key("images", image_id), 1 << 26))
            row = duckdb.connect().execute(f"SELECT max(ingested_at) FROM read_parquet('{path}')").fetchone()
        return None if row is None else row[0]

    def erase_image(self, image_id: str) -> int:
        """Delete an image's files (the image file first: what is left is an incomplete record,
        which ``import`` never reads); returns how many there were."""
        n = 0
        for table in ("images", "sightings", "faces", "tracks", "stills"):
            key = self._key(table, image_id)
            if self.bucket.exists(key):
                self.bucket.delete(key)
                n += 1
        return n

    def erase_faces(self, image_id: str, where: str, params: list[object] | None = None) -> int:
        """Rewrite an image's sightings file (and tracks file) without the crops, embeddings and
        names of the faces ``where`` selects (SQL over the sightings file's columns); returns how
        many faces lost something. The rows stay, as in the database: counts keep working.

        A track any of whose faces is erased loses its template and still (a track is one face
        followed through a clip). Only columns the file has are touched, so files of older (or
        newer) layouts are erased too. Files that hold nothing to erase are not rewritten.
        """
        key = self._key("sightings", image_id)
        if not self.bucket.exists(key):
            return 0
        con = duckdb.connect()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sightings.parquet"
            path.write_bytes(self.bucket.read(key, 1 << 30))
            con.execute(f"CREATE TABLE sightings AS SELECT * FROM read_parquet('{path}')")
            cols = {r[0] for r in con.execute("DESCRIBE sightings").fetchall()}
            wipe = [c for c in ("embedding", "thumb", "person_id", "match_score", "cluster_id") if c in cols]
            held = " OR ".join(f"{c} IS NOT NULL" for c in wipe) or "FALSE"
            row = con.execute(f"SELECT count(*) FROM sightings WHERE ({where}) AND ({held})", params or []).fetchone()
            n = int(row[0]) if row else 0
            if not n:
                return 0
            con.execute(f"CREATE TABLE chosen AS SELECT face_index FROM sightings WHERE {where}", params or [])
            # The crops and track links live in faces/ (lakes written before it: in sightings).
            links = "sightings"
            faces_key = self._key("faces", image_id)
            if self.bucket.exists(faces_key):
                fpath = Path(tmp) / "faces.parquet"
                fpath.write_bytes(self.bucket.read(faces_key, 1 << 30))
                con.execute(f"CREATE TABLE faces AS SELECT * FROM read_parquet('{fpath}')")
                if "thumb" in {r[0] for r in con.execute("DESCRIBE faces").fetchall()}:
                    con.execute("UPDATE faces SET thumb = NULL WHERE face_index IN (SELECT face_index FROM chosen)")
                    self.bucket.write(faces_key, _to_file(con, "faces"))
                links = "faces"
            link_cols = {r[0] for r in con.execute(f"DESCRIBE {links}").fetchall()}
            tracks_key = self._key("tracks", image_id)
            if "track_index" in link_cols and self.bucket.exists(tracks_key):
                tpath = Path(tmp) / "tracks.parquet"
                tpath.write_bytes(self.bucket.read(tracks_key, 1 << 30))
                con.execute(f"CREATE TABLE tracks AS SELECT * FROM read_parquet('{tpath}')")
                tcols = {r[0] for r in con.execute("DESCRIBE tracks").fetchall()}
                twipe = [c for c in ("template", "still", "person_id", "match_score", "cluster_id") if c in tcols]
                if twipe:
                    con.execute(f"UPDATE tracks SET {', '.join(c + ' = NULL' for c in twipe)} WHERE track_index IN "
                                f"(SELECT track_index FROM {links} WHERE face_index IN "
                                f"(SELECT face_index FROM chosen))")
                    self.bucket.write(tracks_key, _to_file(con, "tracks"))
                stills_key = self._key("stills", image_id)
                if self.bucket.exists(stills_key):
                    spath = Path(tmp) / "stills.parquet"
                    spath.write_bytes(self.bucket.read(stills_key, 1 << 30))
                    con.execute(f"CREATE TABLE stills AS SELECT * FROM read_parquet('{spath}')")
                    con.execute(f"UPDATE stills SET still = NULL WHERE track_index IN "
                                f"(SELECT track_index FROM {links} WHERE face_index IN "
                                f"(SELECT face_index FROM chosen))")
                    self.bucket.write(stills_key, _to_file(con, "stills"))
            con.execute(f"UPDATE sightings SET {', '.join(c + ' = NULL' for c in wipe)} WHERE {where}", params or [])
            self.bucket.write(key, _to_file(con, "sightings"))
        return n


@dataclass
class LakeErasure:
    """What :func:`erase_from_lake` removed from the lake."""

    images: int = 0
    """Images deleted whole (enrollment photos of a forgotten person)."""
    faces: int = 0
    """Faces whose crop, embedding and name were rewritten out of their sightings file."""
    scanned: int = 0
    """Lake images the database does not hold (never imported), read to find what to erase."""
    ids: list[str] = field(default_factory=list)
    """The images whose files were changed."""


def erase_from_lake(store: Store, lake: Lake, retention_days: int | None = None, actor: str = "cli") -> LakeErasure:
    """Carry the database's erasures over to the lake; safe to repeat, and resumes where it stopped.

    - every key in ``erased`` not applied to this lake yet (``exports`` remembers how far it
      got, like an export): an erased face loses its crop, embedding and name, an image
      removed whole loses its files;
    - lake images never imported (the database has no key for them): faces named as a
      forgotten person, and, given ``retention_days``, unknown faces written longer ago.

    The watermark moves only once every image is done, so an outage midway leaves the rest
    for the next run; ``facelake import`` refuses erased keys meanwhile.
    """
    target = f"lake:{lake.uri}"
    mark = store.exports.high_water(target, "erased")
    top = store.erasures.top()
    keys = store.erasures.since(mark)
    out = LakeErasure()
    for image_id in sorted(keys.images):
        if lake.erase_image(image_id):
            out.images += 1
            out.ids.append(image_id)
    for image_id, faces in sorted(keys.faces.items()):
        if image_id in keys.images:
            continue
        n = lake.erase_faces(image_id, f"face_index IN ({', '.join(str(int(f)) for f in sorted(faces))})")
        if n:
            out.faces += n
            out.ids.append(image_id)
    forgotten = sorted(store.erasures.forgotten_people())
    cutoff = None if retention_days is None else utcnow() - timedelta(days=retention_days)
    if forgotten or cutoff is not None:
        known = store.image_ids()
        for image_id in lake.image_ids():
            if image_id in known:
                continue
            out.scanned += 1
            wheres = [f"person_id IN ({', '.join(str(p) for p in forgotten)})"] if forgotten else []
            if cutoff is not None:
                written = lake.ingested_at(image_id)
                if written is not None and written < cutoff:
                    wheres.append("person_id IS NULL")
            n = lake.erase_faces(image_id, " OR ".join(f"({w})" for w in wheres)) if wheres else 0
            if n:
                out.faces += n
                out.ids.append(image_id)
    if top is not None:
        store.exports.advance(target, "erased", top)
    if out.images or out.faces:
        store.audit(actor, "erase_lake", f"{lake.uri} images:{out.images} faces:{out.faces}")
    return out


@dataclass
class ImportSummary:
    imported: int = 0
    skipped: int = 0
    faces: int = 0
    erased: int = 0
    """Faces imported without crop and embedding: erased here, or expired, though the lake held them."""


def _without_erased(store: Store, lake: Lake, image: ImageRecord, sightings: list[SightingRecord],
                    people: set[int], forgotten: set[int], cutoff: datetime | None,
                    ) -> tuple[ImageRecord, list[SightingRecord], int]:
    """The image's faces as the database may take them back; returns how many lost their biometric data.

    Erased keys (``store.erasures``), faces of a forgotten person, and unknown faces the
    function wrote before the retention cutoff come without crop, embedding or name, whatever
    the lake still holds; a person removed since (not forgotten) is only unlinked, as
    ``people remove`` leaves their faces. A track with such a face loses its template and still.
    """
    keys = store.erasures.of([image.image_id]).faces.get(image.image_id, set())
    expired = cutoff is not None and (written := lake.ingested_at(image.image_id)) is not None and written < cutoff
    out: list[SightingRecord] = []
    erased = 0
    tracks: set[int] = set()
    for s in sightings:
        gone = (s.face_index in keys or s.person_id in forgotten
                or (expired and (s.person_id is None or s.person_id not in people)))
        if gone:
            erased += 1
            if s.track is not None:
                tracks.add(s.track)
            out.append(replace(s, embedding=None, thumb=None, person_id=None, match_score=None))  # type: ignore[arg-type]
        elif s.person_id is not None and s.person_id not in people:
            out.append(replace(s, person_id=None, match_score=None))
        else:
            out.append(s)
    if image.tracks:
        image = replace(image, tracks=tuple(replace(t, template=None, still=None) if n in tracks else t  # type: ignore[arg-type]
                                            for n, t in enumerate(image.tracks)))
    return image, out, erased


def import_lake(store: Store, lake: Lake, on_image: Callable[[str, str], None] | None = None,
                retention_days: int | None = None) -> ImportSummary:
    """Bring every lake image the store does not hold into it, one transaction per image.

    Person ids in the lake come from the gallery the function was given; a person who no
    longer exists here is not linked, so an erasure is never undone. What the database erased
    stays erased even if the lake still holds it (``_without_erased``): an image removed
    whole is not imported, an erased face comes without crop and embedding.
    """
    summary = ImportSummary()
    known = store.image_ids()
    people = store.people.ids()
    forgotten = store.erasures.forgotten_people()
    cutoff = None if retention_days is None else utcnow() - timedelta(days=retention_days)
    for image_id in lake.image_ids():
        if image_id in known or image_id in store.erasures.of([image_id]).images:
            summary.skipped += 1
            if on_image:
                on_image(image_id, "skipped")
            continue
        image, sightings = lake.read(image_id)
        image, sightings, erased = _without_erased(store, lake, image, sightings, people, forgotten, cutoff)
        known.add(image_id)
        if store.write_image(image, sightings, actor="import") is None:  # another writer was first
            summary.skipped += 1
            if on_image:
                on_image(image_id, "skipped")
            continue
        summary.imported += 1
        summary.erased += erased
        summary.faces += len(sightings)
        if on_image:
            on_image(image_id, "imported")
    return summary
