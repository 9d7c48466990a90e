"""BigQuery: incremental export from the local store, and a direct sink for the Cloud Function.

Why it is built this way:
- **Explicit schemas**, never autodetect: a warehouse table must not change type because
  one batch happened to hold no GPS point.
- **Idempotent by key.** Rows are keyed by ``image_id`` (images) and ``(image_id,
  face_index)`` (sightings). The export loads new rows into a staging table and MERGEs them,
  so a crash between the load and the bookkeeping re-sends rows that the MERGE then ignores;
  the function's sink MERGEs each image's rows directly, so a redelivered event adds nothing.
- **No face crops in the warehouse.** ``thumb`` stays in the owner's database: a warehouse
  copy of every face is outside the reach of ``facelake forget``. Embeddings are exported
  (reports and search need them), so every export also erases (``erase``): rows of people
  erased since are deleted, the faces the database erased since (``store.erasures``) lose
  their embedding, and unknown faces past ``retention_days`` too, the function's own included.
- The client comes from the standard credential chain (ADC); ``bigquery_endpoint`` points it
  at an emulator, with anonymous credentials, for tests and local runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError
from .base import ImageRecord, SightingRecord, Store, error_id, utcnow

IMAGE_FIELDS: list[tuple[str, str, str]] = [
    ("image_id", "STRING", "REQUIRED"), ("uri", "STRING", "REQUIRED"), ("camera", "STRING", "NULLABLE"),
    ("taken_at", "DATETIME", "NULLABLE"), ("taken_at_source", "STRING", "NULLABLE"),
    ("gps_lat", "FLOAT64", "NULLABLE"), ("gps_lon", "FLOAT64", "NULLABLE"),
    ("camera_make", "STRING", "NULLABLE"), ("camera_model", "STRING", "NULLABLE"),
    ("format", "STRING", "NULLABLE"), ("width", "INT64", "NULLABLE"), ("height", "INT64", "NULLABLE"),
    ("bytes", "INT64", "NULLABLE"), ("ingested_at", "DATETIME", "REQUIRED"), ("status", "STRING", "REQUIRED"),
    ("error", "STRING", "NULLABLE"),
]
SIGHTING_FIELDS: list[tuple[str, str, str]] = [
    ("sighting_id", "INT64", "NULLABLE"), ("image_id", "STRING", "REQUIRED"), ("face_index", "INT64", "REQUIRED"),
    ("box", "FLOAT64", "REPEATED"), ("landmarks", "RECORD", "REPEATED"), ("det_score", "FLOAT64", "NULLABLE"),
    ("quality", "FLOAT64", "NULLABLE"), ("embedding", "FLOAT64", "REPEATED"), ("model", "STRING", "NULLABLE"),
    ("person_id", "INT64", "NULLABLE"), ("cluster_id", "INT64", "NULLABLE"), ("match_score", "FLOAT64", "NULLABLE"),
]
TRACK_FIELDS: list[tuple[str, str, str]] = [
    ("track_id", "INT64", "NULLABLE"), ("image_id", "STRING", "REQUIRED"), ("track_index", "INT64", "REQUIRED"),
    ("camera", "STRING", "NULLABLE"), ("started_at", "DATETIME", "NULLABLE"), ("ended_at", "DATETIME", "NULLABLE"),
    ("start_s", "FLOAT64", "NULLABLE"), ("end_s", "FLOAT64", "NULLABLE"), ("frames", "INT64", "NULLABLE"),
    ("person_id", "INT64", "NULLABLE"), ("cluster_id", "INT64", "NULLABLE"), ("match_score", "FLOAT64", "NULLABLE"),
    ("template", "FLOAT64", "REPEATED"), ("model", "STRING", "NULLABLE"), ("face_indexes", "INT64", "REPEATED"),
]
"""A clip's tracks; ``face_indexes`` are the ``face_index`` values of its sightings in the same image
(the sightings table keeps its columns, so warehouses made before clips keep loading)."""
KEYS = {"images": ["image_id"], "sightings": ["image_id", "face_index"], "tracks": ["image_id", "track_index"]}
FIELDS = {"images": IMAGE_FIELDS, "sightings": SIGHTING_FIELDS, "tracks": TRACK_FIELDS}

# Where an export starts when a table was never exported (see ``store.exports``).
START = {"images": "1970-01-01 00:00:00", "sightings": "0", "tracks": "0"}


def schema(table: str) -> list[Any]:
    """The explicit BigQuery schema of ``table`` ("images" or "sightings")."""
    from google.cloud import bigquery

    out = []
    for name, kind, mode in FIELDS[table]:
        if kind == "RECORD":
            point = [bigquery.SchemaField("x", "FLOAT64"), bigquery.SchemaField("y", "FLOAT64")]
            out.append(bigquery.SchemaField(name, kind, mode=mode, fields=point))
        else:
            out.append(bigquery.SchemaField(name, kind, mode=mode))
    return out


def load_config(table: str, staging: bool = True) -> Any:
    """Load-job settings: Parquet with list inference (lists become REPEATED, not nested records)."""
    from google.cloud import bigquery

    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, schema=schema(table),
        write_disposition="WRITE_TRUNCATE" if staging else "WRITE_APPEND",
    )
    options = bigquery.ParquetOptions()
    options.enable_list_inference = True
    config.parquet_options = options
    return config


def parse_dataset(value: str) -> tuple[str, str]:
    """``PROJECT.DATASET`` → its two parts."""
    project, dot, dataset = value.partition(".")
    if not dot or not project or not dataset or "." in dataset:
        raise ConfigError(f"BigQuery dataset must be PROJECT.DATASET, got {value!r}")
    return project, dataset


def client(project: str, endpoint: str | None = None) -> Any:
    try:
        from google.cloud import bigquery
    except ImportError as exc:
        raise ConfigError(f"BigQuery needs the cloud extra: pip install 'facelake[cloud]' ({exc})") from exc
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=endpoint))
    try:
        return bigquery.Client(project=project)
    except Exception as exc:
        raise SourceError(f"cannot reach BigQuery for {project}: no credentials found "
                          f"(run `gcloud auth application-default login`): {type(exc).__name__}") from exc


def ensure_tables(bq: Any, project: str, dataset: str) -> None:
    from google.cloud import bigquery

    bq.create_dataset(f"{project}.{dataset}", exists_ok=True)
    for table in FIELDS:
        bq.create_table(bigquery.Table(f"{project}.{dataset}.{table}", schema=schema(table)), exists_ok=True)


def _merge_sql(target: str, source: str, table: str) -> str:
    cols = [name for name, _, _ in FIELDS[table]]
    on = " AND ".join(f"T.{k} = S.{k}" for k in KEYS[table])
    return (f"MERGE `{target}` T USING {source} S ON {on} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('S.' + c for c in cols)})")


def export(store: Store, bq: Any, project: str, dataset: str, retention_days: int | None = None) -> dict[str, int]:
    """Send the rows not exported yet; returns rows added per table (and rows erased since).

    Incremental by watermark (``exports`` table): images by ``ingested_at``, sightings by
    ``sighting_id``. Rows at the watermark are re-sent and the MERGE drops them, so the
    bookkeeping never needs to be exact to avoid duplicates.
    """
    ensure_tables(bq, project, dataset)
    target = f"bigquery:{project}.{dataset}"
    sent: dict[str, int] = {}
    for table in ("images", "sightings", "tracks"):
        mark = store.exports.high_water(target, table)
        since = START[table] if mark is None else mark
        top = store.exports.top(table)
        added = 0
        fd, tmp = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        try:
            if store.export_rows(table, since, Path(tmp)):
                staging = f"{project}.{dataset}._facelake_staging_{table}"
                with open(tmp, "rb") as f:
                    bq.load_table_from_file(f, staging, job_config=load_config(table)).result()
                merge = bq.query(_merge_sql(f"{project}.{dataset}.{table}", f"`{staging}`", table))
                merge.result()
                added = int(merge.num_dml_affected_rows or 0)
                bq.delete_table(staging, not_found_ok=True)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if top is not None:
            store.exports.advance(target, table, top)
        sent[table] = added
    sent["erased"] = apply_erasures(store, bq, project, dataset)
    sent["embeddings erased"] = erase(store, bq, project, dataset, retention_days)
    store.audit("cli", "export_bigquery", f"{project}.{dataset} images:{sent['images']} sightings:{sent['sightings']} "
                                          f"tracks:{sent['tracks']}")
    return sent


def apply_erasures(store: Store, bq: Any, project: str, dataset: str) -> int:
    """Delete exported sightings and tracks of people who are no longer enrolled (forgotten or removed)."""
    from google.cloud import bigquery

    people = sorted(store.people.ids())
    erased = 0
    for table in ("sightings", "tracks"):
        job = bq.query(
            f"DELETE FROM `{project}.{dataset}.{table}` WHERE person_id IS NOT NULL "
            f"AND person_id NOT IN UNNEST(@people)",
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("people", "INT64", people)]),
        )
        job.result()
        erased += int(job.num_dml_affected_rows or 0)
    return erased


def erase(store: Store, bq: Any, project: str, dataset: str, retention_days: int | None = None,
          chunk: int = 2_000) -> int:
    """Carry the database's erasures and retention over to the warehouse; returns rows changed.

    - images the database removed whole (a forgotten person's enrollment photos) are deleted
      with their sightings and tracks;
    - faces erased since the last run (``store.erasures``, watermark in ``exports``) lose their
      embedding (REPEATED columns hold ``[]``, not NULL), their name, and their track's template;
    - given ``retention_days``, unknown faces of images ingested before the cutoff lose theirs:
      this also reaches rows the Cloud Function wrote, which the database never held.
    Idempotent: a run cut short repeats from the same watermark.
    """
    from google.cloud import bigquery

    P, A = bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter
    target = f"bigquery:{project}.{dataset}"
    top = store.erasures.top()
    keys = store.erasures.since(store.exports.high_water(target, "erased"))
    changed = 0

    def dml(sql: str, *params: Any) -> None:
        nonlocal changed
        job = bq.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=list(params)))
        job.result()
        changed += int(job.num_dml_affected_rows or 0)

    table = f"`{project}.{dataset}"
    images = sorted(keys.images)
    for start in range(0, len(images), chunk):
        ids = A("ids", "STRING", images[start:start + chunk])
        for name in ("sightings", "tracks", "images"):
            dml(f"DELETE FROM {table}.{name}` WHERE image_id IN UNNEST(@ids)", ids)
    faces = sorted(f"{image_id}/{n}" for image_id, ns in keys.faces.items() for n in ns)
    for start in range(0, len(faces), chunk):
        batch = A("keys", "STRING", faces[start:start + chunk])
        dml(f"UPDATE {table}.tracks` T SET template = [], person_id = NULL, match_score = NULL WHERE EXISTS "
            "(SELECT 1 FROM UNNEST(T.face_indexes) AS f WHERE CONCAT(T.image_id, '/', CAST(f AS STRING)) "
            "IN UNNEST(@keys)) AND ARRAY_LENGTH(T.template) > 0", batch)
        dml(f"UPDATE {table}.sightings` SET embedding = [], person_id = NULL, match_score = NULL "
            "WHERE CONCAT(image_id, '/', CAST(face_index AS STRING)) IN UNNEST(@keys) "
            "AND (ARRAY_LENGTH(embedding) > 0 OR person_id IS NOT NULL)", batch)
    if retention_days is not None:
        cutoff = P("cutoff", "DATETIME", utcnow() - timedelta(days=retention_days))
        old = f"image_id IN (SELECT image_id FROM {table}.images` WHERE ingested_at < @cutoff)"
        dml(f"UPDATE {table}.sightings` SET embedding = [] WHERE person_id IS NULL "
            f"AND ARRAY_LENGTH(embedding) > 0 AND {old}", cutoff)
        dml(f"UPDATE {table}.tracks` SET template = [] WHERE person_id IS NULL "
            f"AND ARRAY_LENGTH(template) > 0 AND {old}", cutoff)
    if top is not None:
        store.exports.advance(target, "erased", top)
    return changed


class BigQuerySink:
    """Writes one image's rows straight into BigQuery (the Cloud Function's second sink)."""

    def __init__(self, bq: Any, project: str, dataset: str) -> None:
        self.bq, self.project, self.dataset = bq, project, dataset
        ensure_tables(bq, project, dataset)

    def _table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def has(self, image_id: str) -> bool:
        from google.cloud import bigquery

        rows = self.bq.query(
            f"SELECT count(*) AS n FROM `{self._table('images')}` WHERE image_id = @id",
            job_config=bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", image_id)]),
        ).result()
        return any(r[0] for r in rows)

    def write(self, image: ImageRecord, sightings: Sequence[SightingRecord]) -> None:
        """Sightings first, the image last: an image row marks a complete record. A good row
        first deletes its object's error row (keyed by the uri, ``store.base.error_id``)."""
        from google.cloud import bigquery

        P, A, S = bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter, bigquery.StructQueryParameter
        image_id = P("image_id", "STRING", image.image_id)
        failed = error_id(image.uri)
        if image.status == "ok" and failed != image.image_id and self.has(failed):
            self.bq.query(f"DELETE FROM `{self._table('images')}` WHERE image_id = @id",
                          job_config=bigquery.QueryJobConfig(query_parameters=[P("id", "STRING", failed)])).result()
        if sightings:
            faces = [S(None, P("face_index", "INT64", s.face_index), A("box", "FLOAT64", [float(v) for v in s.box]),
                       A("landmarks", "STRUCT", [S(None, P("x", "FLOAT64", float(x)), P("y", "FLOAT64", float(y)))
                                                 for x, y in np.asarray(s.landmarks, dtype=np.float64)]),
                       P("det_score", "FLOAT64", float(s.det_score)), P("quality", "FLOAT64", float(s.quality)),
                       A("embedding", "FLOAT64", np.asarray(s.embedding, dtype=np.float64).tolist()),
                       P("model", "STRING", s.model), P("person_id", "INT64", s.person_id),
                       P("match_score", "FLOAT64", None if s.match_score is None else float(s.match_score)))
                     for s in sightings]
            source = ("(SELECT CAST(NULL AS INT64) AS sighting_id, @image_id AS image_id, f.face_index, f.box, "
                      "f.landmarks, f.det_score, f.quality, f.embedding, f.model, f.person_id, "
                      "CAST(NULL AS INT64) AS cluster_id, f.match_score FROM UNNEST(@faces) AS f)")
            self.bq.query(_merge_sql(self._table("sightings"), source, "sightings"), job_config=bigquery.QueryJobConfig(
                query_parameters=[image_id, A("faces", "STRUCT", faces)])).result()
        if image.tracks:
            self._write_tracks(image, sightings)
        values = {
            "uri": ("STRING", image.uri), "camera": ("STRING", image.camera),
            "taken_at": ("DATETIME", image.taken_at), "taken_at_source": ("STRING", image.taken_at_source),
            "gps_lat": ("FLOAT64", image.gps_lat), "gps_lon": ("FLOAT64", image.gps_lon),
            "camera_make": ("STRING", image.camera_make), "camera_model": ("STRING", image.camera_model),
            "format": ("STRING", image.format), "width": ("INT64", image.width), "height": ("INT64", image.height),
            "bytes": ("INT64", image.bytes), "ingested_at": ("DATETIME", utcnow()),
            "status": ("STRING", image.status), "error": ("STRING", image.error),
        }
        params = [image_id] + [P(k, t, v) for k, (t, v) in values.items()]
        source = "(SELECT @image_id AS image_id, " + ", ".join(f"@{k} AS {k}" for k in values) + ")"
        self.bq.query(_merge_sql(self._table("images"), source, "images"),
                      job_config=bigquery.QueryJobConfig(query_parameters=params)).result()

    def _write_tracks(self, image: ImageRecord, sightings: Sequence[SightingRecord]) -> None:
        """A clip's tracks, MERGEd by ``(image_id, track_index)`` like its sightings."""
        from google.cloud import bigquery

        P, A, S = bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter, bigquery.StructQueryParameter
        rows = []
        for n, t in enumerate(image.tracks):
            faces = [s for s in sightings if s.track == n]
            person = next((s.person_id for s in faces), None)
            score = next((s.match_score for s in faces), None)
            rows.append(S(None, P("track_index", "INT64", n), P("started_at", "DATETIME", t.started_at),
                          P("ended_at", "DATETIME", t.ended_at), P("start_s", "FLOAT64", float(t.start_s)),
                          P("end_s", "FLOAT64", float(t.end_s)), P("frames", "INT64", int(t.frames)),
                          P("person_id", "INT64", person),
                          P("match_score", "FLOAT64", None if score is None else float(score)),
                          A("template", "FLOAT64", np.asarray(t.template, dtype=np.float64).tolist()),
                          P("model", "STRING", t.model),
                          A("face_indexes", "INT64", [s.face_index for s in faces])))
        source = ("(SELECT CAST(NULL AS INT64) AS track_id, @image_id AS image_id, t.track_index, "
                  "@camera AS camera, t.started_at, t.ended_at, t.start_s, t.end_s, t.frames, t.person_id, "
                  "CAST(NULL AS INT64) AS cluster_id, t.match_score, t.template, t.model, t.face_indexes "
                  "FROM UNNEST(@tracks) AS t)")
        self.bq.query(_merge_sql(self._table("tracks"), source, "tracks"), job_config=bigquery.QueryJobConfig(
            query_parameters=[P("image_id", "STRING", image.image_id), P("camera", "STRING", image.camera),
                              A("tracks", "STRUCT", rows)])).result()
