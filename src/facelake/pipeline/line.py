"""The one line every image goes through, whichever front end brought it.

``records → annotate → write → stored``, with :class:`Stage` objects plugged in around the
write, and ``after_run`` once a group of images is done. ``ingest`` and ``watch`` (through
the :class:`~facelake.pipeline.ingest.Ingestor`), the Cloud Function (whose writer is its
sink), the API's ``recognize`` and video all run this same line, so naming, face context,
the capture-time fallback and alerts cannot drift apart between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..store import ImageRecord, SightingRecord, Store
from .records import ImageResult, IngestSummary, records

Item = tuple[ImageRecord, list[SightingRecord], str | None]
"""One image ready to write: its row, its sightings, and the source object's version (or None)."""


class Stage:
    """A step plugged into the line around each image's write; every hook does nothing by default.

    ``annotate`` may change the sightings before they are written (naming); ``stored`` sees
    each committed image (alerts); ``after_run`` runs once a group of images is done, with
    the store (purging expired faces); ``close`` runs when the line shuts down.
    """

    def start(self, store: Store) -> None:
        """Called once, before the first image, with the open store."""

    def annotate(self, image: ImageRecord, sightings: list[SightingRecord]) -> list[SightingRecord]:
        return sightings

    def stored(self, image: ImageRecord, sightings: list[SightingRecord], ids: Sequence[int | None]) -> None:
        """Called after the image's transaction committed (``ids`` are the new sighting ids; None each
        where the writer assigns none, as the Cloud Function's sinks do)."""

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        """Called after each group of images (an :meth:`Ingestor.run`), with its summary."""

    def close(self, summary: IngestSummary) -> None:
        """Called once when the line closes, with the last run's summary."""


class Writer(Protocol):
    """Where the line writes: a store, or a sink that a fleet of function instances shares."""

    def write(self, items: Sequence[Item], actor: str) -> Sequence[Sequence[int | None] | None]:
        """Write each item whole; per item the new sighting ids (None each where the writer assigns no
        ids), or None if it was stored already."""
        ...


class StoreWriter:
    """Writes to a :class:`Store`: a batch in one transaction where the engine gains from it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, items: Sequence[Item], actor: str) -> list[list[int] | None]:
        if self.store.groups_writes:
            return self.store.write_images(items, actor)
        return [self.store.write_image(image, sightings, actor=actor, version=version)
                for image, sightings, version in items]


@dataclass(frozen=True)
class Written:
    """An image the line wrote: ``ids`` are its new sighting ids, None when another writer had it first."""

    image: ImageRecord
    sightings: list[SightingRecord]
    ids: Sequence[int | None] | None


class ImageLine:
    """Stages around a writer; see the module docstring."""

    def __init__(self, stages: Sequence[Stage], writer: Writer, actor: str = "ingest") -> None:
        self.stages, self.writer, self.actor = list(stages), writer, actor

    def start(self, store: Store) -> None:
        for stage in self.stages:
            stage.start(store)

    def prepare(self, result: ImageResult) -> Item:
        """The image's rows with every stage's annotations (names), not written yet."""
        image, sightings = records(result.job, result.meta, result.faces, result.error, result.tracks, result.warning,
                                   result.revision, result.duration_s)
        for stage in self.stages:
            sightings = stage.annotate(image, sightings)
        return image, sightings, result.job.version

    def commit(self, items: Sequence[Item], actor: str | None = None) -> list[Written]:
        """Write prepared items, then let the stages see each committed image."""
        written = self.writer.write(items, actor or self.actor)
        out = []
        for (image, sightings, _), ids in zip(items, written):
            if ids:
                for stage in self.stages:
                    stage.stored(image, sightings, ids)
            out.append(Written(image, sightings, ids))
        return out

    def put(self, results: Sequence[ImageResult]) -> list[Written]:
        """:meth:`prepare` and :meth:`commit` a worker's batch."""
        return self.commit([self.prepare(r) for r in results])

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        for stage in self.stages:
            stage.after_run(store, summary)

    def close(self, summary: IngestSummary) -> None:
        for stage in self.stages:
            stage.close(summary)
