"""The Cloud Function: one finalized GCS object in, its faces written to a shared sink.

``deploy/cloud-function/main.py`` wraps :func:`handle_event` for functions-framework. The
work per object is the same code as ``ingest``: the source reads the object with the same
size limits, ``make_job`` hashes it, the same worker function decodes and analyses it, and
the same naming stage names it — only the store differs: a function instance cannot write
a local DuckDB file, so it writes to a :class:`Sink` that a fleet of instances can share
(the Parquet lake, or BigQuery directly). Both sinks are keyed by image id, so a
redelivered event (Cloud Functions delivers at least once) never adds a second row.

Everything expensive (models, sink client, gallery) is built once per instance, on the
first event that names an image, and kept: later events on a warm instance pay only for
their own image, and an event for anything else (the lake's own Parquet files, the gallery)
is answered before anything loads.

What an event's answer means to Cloud Functions, which redelivers failed ones with
``--retry``: an image stored (faces or none), an image that is bad for good (an error row,
never retried), an event for something else (ignored) all succeed; an object that could not
be read *now* (:class:`SourceUnavailable`: the network, 5xx, 403) fails the invocation so
that it is delivered again; an event that names no object (:class:`BadEvent`) is the
sender's error (HTTP 400). A sink keeps one error row per object, keyed by its uri, and the
good row replaces it when a fixed object is written again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from ..alerts.service import alert_stage
from ..config import Settings, load_settings
from ..errors import BadEvent, ConfigError, ImageUnreadable
from ..identities.matching import GalleryFile, model_of, read_gallery
from ..identities.stages import NamingStage
from ..pipeline.line import ImageLine, Item, Stage
from ..pipeline.records import IngestSummary, make_job, release
from ..pipeline.worker import Worker
from ..sources.base import Entry, camera_from_key, is_image_name
from ..sources.buckets import BucketSource, GcsBucket
from ..store.base import ImageRecord, SightingRecord, error_id

log = logging.getLogger(__name__)

FINALIZED = "google.cloud.storage.object.v1.finalized"


class Sink(Protocol):
    def has(self, image_id: str) -> bool: ...
    def write(self, image: ImageRecord, sightings: list[SightingRecord]) -> None:
        """Write one image's rows, keyed by its id; an ``ok`` row first removes the error row
        of the same uri (:func:`~facelake.store.base.error_id`)."""
        ...


class SinkWriter:
    """The image line's writer for a sink: each image written whole, keyed by its id.

    An error row is keyed by its uri instead (whatever bytes failed), so an object that
    fails again overwrites it and the fixed object's row replaces it: one row per object.
    A sink assigns no sighting ids (those come when ``facelake import`` brings the lake into
    a database), so each face's id is None: the alert stage then names the face by image id
    and face index instead.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, items: Sequence[Item], actor: str) -> list[Sequence[int | None] | None]:
        for image, sightings, _ in items:
            if image.status != "ok":
                image = replace(image, image_id=error_id(image.uri))
            self.sink.write(image, sightings)
        return [[None] * len(sightings) for _, sightings, _ in items]


def make_sink(settings: Settings) -> Sink:
    if settings.lake_uri:
        from ..store.lake import Lake

        return Lake(settings.lake_uri)
    if settings.bigquery_dataset:
        from ..store import bigquery

        project, dataset = bigquery.parse_dataset(settings.bigquery_dataset)
        return bigquery.BigQuerySink(bigquery.client(project, settings.bigquery_endpoint), project, dataset)
    raise ConfigError("the function needs a sink: set FACELAKE_LAKE_URI (gs://BUCKET/lake) "
                      "or FACELAKE_BIGQUERY_DATASET (PROJECT.DATASET)")


@dataclass(frozen=True)
class Outcome:
    uri: str
    outcome: str
    """``new``, ``failed`` (stored as an error row), ``skipped`` (already in the sink) or ``ignored``
    (not an image, or outside ``function_prefix``)."""
    image_id: str | None = None
    faces: int = 0
    named: int = 0
    seconds: float = 0.0
    alerts: int = 0
    alerts_undelivered: int = 0


def wanted(name: str, prefix: str) -> bool:
    """Whether an object is one the function analyses: an image or clip under ``prefix``."""
    base = prefix.strip("/")
    inside = not base or name.startswith(base + "/")
    return inside and not name.endswith("/") and is_image_name(name)


class FunctionRuntime:
    """What one function instance keeps between events; the models load on the first image."""

    def __init__(self, settings: Settings | None = None, sink: Sink | None = None) -> None:
        self.settings = settings or load_settings()
        self.sink = sink or make_sink(self.settings)
        self._worker: Worker | None = None
        self.naming = NamingStage(self.settings)
        self.alerts = alert_stage(self.settings)
        stages: list[Stage] = [self.naming] if self.alerts is None else [self.naming, self.alerts]
        self.line = ImageLine(stages, SinkWriter(self.sink), actor="function")
        self._names: dict[int, str] = {}
        """The enrolled people's names, from the gallery file: the alerts' ``person``."""
        self._gallery_checked = float("-inf")
        self._sources: dict[str, BucketSource] = {}
        self._alerts_raised = 0

    @property
    def models_loaded(self) -> bool:
        return self._worker is not None

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = Worker.from_settings(self.settings).load()
        return self._worker

    def _source(self, bucket: str) -> BucketSource:
        """One source (and storage client) per bucket for the instance's life, not one per event."""
        if bucket not in self._sources:
            self._sources[bucket] = BucketSource(f"gs://{bucket}", bucket=GcsBucket(bucket))
        return self._sources[bucket]

    def _refresh_gallery(self) -> None:
        uri = self.settings.gallery_uri
        if not uri or time.monotonic() - self._gallery_checked < self.settings.function_reload_s:
            return
        self._gallery_checked = time.monotonic()
        try:
            file: GalleryFile = read_gallery(uri)
        except ImageUnreadable as exc:
            # No gallery yet (nobody enrolled, or not exported): faces stay unknown, as at home.
            log.warning("no gallery read from %s, faces stay unknown: %s", uri, exc)
            self.naming.use_gallery(None)
            self._names = {}
            return
        if file.model != model_of(self.settings):
            raise ConfigError(f"gallery {uri} holds {file.model} embeddings; this function computes "
                              f"{model_of(self.settings)} (set FACELAKE_EMBEDDER to match, or re-export)")
        self.naming.use_gallery(file.gallery())
        self._names = dict(file.names)

    def handle(self, bucket: str, name: str, size: int | None = None, generation: str | None = None,
               mtime: float | None = None) -> Outcome:
        """Analyse one object. ``mtime`` (the object's update time, from the event) dates an
        image without EXIF, as ``ingest gs://`` does with the listing's time; when the event
        has none, the object's metadata is asked. Raises SourceUnavailable when the object
        cannot be read now (the delivery must fail, to be retried)."""
        start = time.perf_counter()
        uri = f"gs://{bucket}/{name}"
        prefix = self.settings.function_prefix.strip("/")
        if not wanted(name, prefix):
            return Outcome(uri, "ignored")
        source = self._source(bucket)
        if mtime is None and isinstance(source.bucket, GcsBucket):
            mtime = source.bucket.mtime(name)
        entry = Entry(uri, camera_from_key(name, prefix, bucket), size, generation, mtime)
        job = make_job(entry, source, int(self.settings.max_file_mb * 1e6), int(self.settings.video_max_file_mb * 1e6),
                       raise_unavailable=True)
        try:
            if self.sink.has(job.image_id):
                return Outcome(uri, "skipped", job.image_id, seconds=time.perf_counter() - start)
            self._refresh_gallery()
            results = self.worker.process([job])
            summary = IngestSummary()
            if self.alerts is not None:
                self.alerts.begin(self._names)
            try:
                written = self.line.put(results)[0]
            finally:
                if self.alerts is not None:
                    # Sent before the function answers: an instance may be frozen right after.
                    raised = self.alerts.engine.raised if self.alerts.engine else 0
                    self.alerts.close(summary)
                    summary.alerts = raised - self._alerts_raised
                    self._alerts_raised = raised
        finally:
            release(job)
        image, sightings = written.image, written.sightings
        named = sum(s.person_id is not None for s in sightings)
        outcome = "new" if image.status == "ok" else "failed"
        image_id = image.image_id if image.status == "ok" else error_id(uri)
        log.info("%s %s faces=%d named=%d alerts=%d %s", outcome, uri, len(sightings), named, summary.alerts,
                 image.error or "")
        if summary.alerts_undelivered:
            log.warning("%d alerts for %s could not be delivered", summary.alerts_undelivered, uri)
        return Outcome(uri, outcome, image_id, len(sightings), named, time.perf_counter() - start,
                       summary.alerts, summary.alerts_undelivered)


def _event_time(data: dict[str, Any]) -> float | None:
    """The object's update time (RFC 3339, as GCS notifications carry ``updated`` and ``timeCreated``)."""
    for key in ("updated", "timeCreated"):
        value = data.get(key)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                continue
    return None


def handle_event(event_type: str, data: Any, runtime: FunctionRuntime) -> Outcome:
    """Run the pipeline on the object a ``finalized`` CloudEvent names.

    Raises BadEvent for an event that names no object. Objects the function does not analyse
    are answered before the models load (:meth:`FunctionRuntime.handle`), so a cold instance
    woken by the lake's own Parquet file pays for no model.
    """
    if event_type != FINALIZED:
        raise BadEvent(f"expected a {FINALIZED} event, got {event_type!r}")
    if not isinstance(data, dict):
        raise BadEvent(f"the event's data must be a JSON object with bucket and name, got {type(data).__name__}")
    missing = [k for k in ("bucket", "name") if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise BadEvent(f"the event names no {' and no '.join(missing)}: a storage finalize event carries both")
    try:
        size = int(data["size"]) if data.get("size") not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise BadEvent(f"the event's size must be a number of bytes, got {data.get('size')!r}") from exc
    return runtime.handle(data["bucket"], data["name"], size,
                          str(data["generation"]) if data.get("generation") else None, _event_time(data))
