"""The ingest stages the identities module plugs into the pipeline: naming, purging, clustering."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..config import Settings
from ..pipeline import IngestSummary, Stage
from ..store.base import ImageRecord, SightingRecord, Store, TrackRecord
from ..vision.recognisability import clearest
from .clusters import cluster
from .index import sync_index
from .matching import Gallery, Namer, load_namer, overlapping, thresholds
from .people import gallery_gap


class NamingStage(Stage):
    """Names the faces of enrolled people as they are stored (open-set: the rest stay unknown).

    The gallery is loaded once when the ingest starts; ``watch`` reloads it after each
    batch so people enrolled meanwhile are recognised from then on.
    """

    def __init__(self, settings: Settings, on_warning: Callable[[str], None] | None = None) -> None:
        self.settings, self.on_warning = settings, on_warning
        self.namer: Namer | None = None

    def start(self, store: Store) -> None:
        """Load the gallery; say so (``on_warning``) when enrolled people cannot be named by this embedder."""
        self.namer = load_namer(store, self.settings)
        gap = gallery_gap(store, self.settings) if self.on_warning else None
        if gap and self.on_warning:
            self.on_warning(gap)

    def use_gallery(self, gallery: Gallery | None) -> None:
        """Name with ``gallery`` (the Cloud Function's gallery file) instead of the store's."""
        self.namer = None if gallery is None else Namer(gallery, thresholds(self.settings),
                                                        self.settings.identify_min_quality,
                                                        min_recognisability=self.settings.min_recognisability)

    def annotate(self, image: ImageRecord, sightings: list[SightingRecord]) -> list[SightingRecord]:
        if not sightings or self.namer is None:
            return sightings
        if image.tracks:
            return self._name_tracks(image.tracks, sightings)
        decisions = self.namer.name_image(np.stack([s.embedding for s in sightings]), [s.quality for s in sightings],
                                          recognisability=[s.recognisability for s in sightings])
        return [replace(s, person_id=p, match_score=score) for s, (p, score) in zip(sightings, decisions)]

    def closest(self, sightings: list[SightingRecord]) -> list[tuple[float | None, float | None]]:
        """Each face's similarity to its most similar enrolled person and the score its quality needed
        to be named (``None`` with nobody enrolled): why a face stayed unknown, or how sure a name is."""
        if not sightings or self.namer is None or not len(self.namer.gallery.people_):
            return [(None, None)] * len(sightings)
        matches = self.namer.gallery.match(np.stack([s.embedding for s in sightings]))
        return [(m.score, self.namer.required(s.quality)) for m, s in zip(matches, sightings)]

    def _name_tracks(self, tracks: tuple[TrackRecord, ...], sightings: list[SightingRecord]) -> list[SightingRecord]:
        """A clip is named track by track: each track's template (its faces' quality-weighted mean)
        against the gallery, by the same rule and thresholds as a photo's face, judged at the
        quality of the track's best face, and only when one of its faces is recognisable. The
        decision is made once, so a name never flips within a track, and every sighting of the
        track carries it.

        Tracks seen at the same time are like faces of one photo (two of them are never the
        same person); tracks that never overlap may well be one person coming back.
        """
        assert self.namer is not None
        best: dict[int, float] = {}
        scores: dict[int, list[float | None]] = {}
        for s in sightings:
            if s.track is not None:
                best[s.track] = max(best.get(s.track, 0.0), s.quality)
                scores.setdefault(s.track, []).append(s.recognisability)
        clear = {n: clearest(v) for n, v in scores.items()}
        decided: dict[int, tuple[int | None, float | None]] = {}
        indices = sorted(best)
        for group in overlapping([(tracks[n].start_s, tracks[n].end_s) for n in indices]):
            chosen = [indices[g] for g in group]
            decisions = self.namer.name_image(np.stack([tracks[n].template for n in chosen]), [best[n] for n in chosen],
                                              recognisability=[clear[n] for n in chosen])
            decided.update(zip(chosen, decisions))
        return [s if s.track is None else replace(s, person_id=decided[s.track][0], match_score=decided[s.track][1])
                for s in sightings]

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        self.namer = load_namer(store, self.settings)


class PurgeStage(Stage):
    """Erases expired unknown faces and brings the search index up to date after a run.

    A long-running watcher calls it after every small batch; the purge itself runs at most
    every ``every_s`` seconds (the index sync is cheap and always runs).
    """

    def __init__(self, settings: Settings, every_s: float = 3600.0) -> None:
        self.settings, self.every_s = settings, every_s
        self._last = float("-inf")

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            summary.purged = store.people.purge_unknown(self.settings.retention_days, actor="ingest")
            self._last = now
        if summary.new or summary.purged:
            sync_index(store, self.settings)
        if summary.purged or store.erasure_pending():
            # Under `serve`, a `forget` from the API cannot swap the file this watcher holds; the
            # watcher does it here, waiting a moment for the requests in flight to close theirs.
            store.compact(wait_s=10.0)


class ClusterStage(Stage):
    """Groups new unknown faces after each run, so a long-running watcher keeps clusters current.

    Used by ``watch`` and ``serve`` (an owner looking at the dashboard expects strangers to
    appear as groups by themselves); a batch ``ingest`` leaves it to ``facelake cluster``.
    Incremental: existing groups keep their ids, so names given meanwhile stay attached.
    """

    def __init__(self, settings: Settings, every_s: float = 30.0) -> None:
        self.settings, self.every_s = settings, every_s
        self._last = float("-inf")
        self._pending = False

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        self._pending = self._pending or summary.new > 0
        if self._pending and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._pending = False
            cluster(store, self.settings, actor="watch")
