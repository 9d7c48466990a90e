"""Rules applied to faces as they are stored, and the ingest stage that sends the alerts.

Debounce: a rule stays silent for ``debounce_s`` after alerting about the same enrolled
person, or about a stranger whose face matches (same-person threshold) one it alerted about
within that window — a stranger lingering at the door is one alert, not one per frame.
Time is the image's capture time where known, so re-ingesting a night of footage alerts
as the night happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..identities.matching import thresholds
from ..pipeline import IngestSummary, Stage
from ..store.base import ImageRecord, SightingRecord, Store, TrackRecord
from .outputs import Alert, Dispatcher, MqttOutput, Output, Presence, WebhookOutput
from .rules import AlertConfig, Rule, load_alerts


@dataclass
class _Recent:
    known: dict[int, datetime] = field(default_factory=dict)
    strangers: list[tuple[datetime, NDArray[np.float32]]] = field(default_factory=list)


class AlertEngine:
    """Decides which stored faces raise which alerts; hands them to the dispatcher."""

    def __init__(self, config: AlertConfig, names: dict[int, str], same_person: float,
                 submit: Callable[[Alert | Presence, Sequence[str]], None]) -> None:
        self.config, self.names, self.same_person, self.submit = config, names, same_person, submit
        self.recent: dict[str, _Recent] = {rule.name: _Recent() for rule in config.rule}
        self.raised = 0
        self.early: dict[tuple[str, int], int | None] = {}
        """Live tracks alerted at their first revision: (segment, track) → the person it named then."""

    def _wanted(self, rule: Rule, image: ImageRecord, face: SightingRecord, when: datetime) -> bool:
        known = face.person_id is not None
        if rule.on == "unknown" and known or rule.on == "person" and not known:
            return False
        if rule.on == "person" and rule.people and self.names.get(face.person_id or -1) not in rule.people:
            return False
        if rule.cameras and image.camera not in rule.cameras:
            return False
        return face.quality >= rule.min_quality and not rule.quiet_at(when)

    def _debounced(self, rule: Rule, face: SightingRecord, when: datetime) -> bool:
        recent = self.recent[rule.name]
        if face.person_id is not None:
            last = recent.known.get(face.person_id)
            if last is not None and abs((when - last).total_seconds()) < rule.debounce_s:
                return True
            recent.known[face.person_id] = when
            return False
        recent.strangers = [(t, e) for t, e in recent.strangers if abs((when - t).total_seconds()) < rule.debounce_s]
        if any(float(e @ face.embedding) >= self.same_person for _, e in recent.strangers):
            return True
        recent.strangers.append((when, np.asarray(face.embedding, dtype=np.float32)))
        return False

    def on_stored(self, image: ImageRecord, faces: list[SightingRecord], ids: Sequence[int | None]) -> None:
        """Alerts for a stored image's faces; a clip's track alerts once, by its best face, at its start.

        A person walking past a camera is one track however many frames saw them, so they are
        one alert, not one per kept face (which debounce would only partly hold back).
        """
        best: dict[int, int] = {}
        for i, face in enumerate(faces):
            if face.track is not None and (face.track not in best or face.quality > faces[best[face.track]].quality):
                best[face.track] = i
        for i, (face, sighting_id) in enumerate(zip(faces, ids)):
            if face.track is not None and best[face.track] != i:
                continue
            update = False
            if face.track is not None and image.format == "stream":
                key = (image.image_id, face.track)
                if image.revision == 0:
                    self.early[key] = face.person_id
                elif key in self.early:
                    # The early alert went out; say it again only if the track's name changed since.
                    if self.early.pop(key) == face.person_id:
                        self._presence(image, face, sighting_id, image.tracks[face.track])
                        continue
                    update = True
            track = image.tracks[face.track] if face.track is not None else None
            when = (track.started_at if track else None) or image.taken_at or datetime.now()
            self._presence(image, face, sighting_id, track)
            for rule in self.config.rule:
                if self._wanted(rule, image, face, when) and (update or not self._debounced(rule, face, when)):
                    self.raised += 1
                    self.submit(Alert(rule.name, image.camera, self.names.get(face.person_id or -1), sighting_id,
                                      face.match_score, face.quality, image.taken_at, image.uri, face.thumb,
                                      update, image.image_id, face.face_index), rule.outputs)

    def _presence(self, image: ImageRecord, face: SightingRecord, sighting_id: int | None,
                  track: TrackRecord | None) -> None:
        """Home Assistant's presence of an enrolled person seen (see ``MqttOutput``)."""
        name = self.names.get(face.person_id) if face.person_id is not None else None
        if name and self.config.mqtt is not None and self.config.mqtt.presence_window_s > 0:
            last = (track.ended_at if track else None) or image.taken_at or datetime.now()
            self.submit(Presence(name, image.camera, last, sighting_id), ["mqtt"])


def outputs_for(config: AlertConfig) -> dict[str, Output]:
    outputs: dict[str, Output] = {}
    if config.webhook is not None:
        outputs["webhook"] = WebhookOutput(config.webhook)
    if config.mqtt is not None:
        outputs["mqtt"] = MqttOutput(config.mqtt)
    return outputs


class AlertStage(Stage):
    """Raises alerts for stored faces by the rules, through a background dispatcher.

    Delivery runs on the dispatcher's thread so a slow webhook never holds up ingest;
    ``close`` waits up to ``flush_s`` for the queue to drain and counts what was not sent.
    """

    def __init__(self, settings: Settings, config: AlertConfig) -> None:
        self.settings, self.config = settings, config
        self.dispatcher: Dispatcher | None = None
        self.engine: AlertEngine | None = None
        self._reported = 0

    def start(self, store: Store) -> None:
        self.begin(store.people.names())

    def begin(self, names: dict[int, str]) -> None:
        """Start the dispatcher with the enrolled people's names; without a store (the Cloud Function's
        gallery file holds the names) this is the whole of :meth:`start`."""
        self.dispatcher = Dispatcher(outputs_for(self.config), self.config.queue_size)
        same_person = thresholds(self.settings).match
        if self.engine is None:
            self.engine = AlertEngine(self.config, names, same_person, self.dispatcher.submit)
        else:  # keep the debounce memory across a function instance's events
            self.engine.names, self.engine.submit = names, self.dispatcher.submit

    def stored(self, image: ImageRecord, sightings: list[SightingRecord], ids: Sequence[int | None]) -> None:
        assert self.engine is not None, "stage not started"
        self.engine.on_stored(image, sightings, ids)

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        assert self.engine is not None, "stage not started"
        summary.alerts = self.engine.raised - self._reported
        self._reported = self.engine.raised
        self.engine.names = store.people.names()

    def close(self, summary: IngestSummary) -> None:
        if self.dispatcher is not None:
            summary.alerts_undelivered = self.dispatcher.close(self.config.flush_s)
            self.dispatcher = None


def alert_stage(settings: Settings) -> AlertStage | None:
    """The alert stage of ``settings.alerts_file``, or ``None`` when no rules are configured."""
    if settings.alerts_file is None:
        return None
    return AlertStage(settings, load_alerts(settings.alerts_file))
