"""Rules applied to faces as they are stored, and the ingest that sends the alerts.

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
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..identities import service as identities
from ..pipeline import IngestSummary
from ..store.duck import ImageRecord, SightingRecord, Store
from ..store.people import list_people
from .outputs import Alert, Dispatcher, MqttOutput, Output, WebhookOutput
from .rules import AlertConfig, Rule, load_alerts


@dataclass
class _Recent:
    known: dict[int, datetime] = field(default_factory=dict)
    strangers: list[tuple[datetime, NDArray[np.float32]]] = field(default_factory=list)


class AlertEngine:
    """Decides which stored faces raise which alerts; hands them to the dispatcher."""

    def __init__(self, config: AlertConfig, names: dict[int, str], same_person: float,
                 submit: Callable[[Alert, Sequence[str]], None]) -> None:
        self.config, self.names, self.same_person, self.submit = config, names, same_person, submit
        self.recent: dict[str, _Recent] = {rule.name: _Recent() for rule in config.rule}
        self.raised = 0

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

    def on_stored(self, image: ImageRecord, faces: list[SightingRecord], ids: list[int]) -> None:
        when = image.taken_at or datetime.now()
        for face, sighting_id in zip(faces, ids):
            for rule in self.config.rule:
                if self._wanted(rule, image, face, when) and not self._debounced(rule, face, when):
                    self.raised += 1
                    self.submit(Alert(rule.name, image.camera, self.names.get(face.person_id or -1), sighting_id,
                                      face.match_score, face.quality, image.taken_at, image.uri, face.thumb),
                                rule.outputs)


def outputs_for(config: AlertConfig) -> dict[str, Output]:
    outputs: dict[str, Output] = {}
    if config.webhook is not None:
        outputs["webhook"] = WebhookOutput(config.webhook)
    if config.mqtt is not None:
        outputs["mqtt"] = MqttOutput(config.mqtt)
    return outputs


def ingest(
    sources: list[Path],
    settings: Settings,
    camera: str | None = None,
    workers: int | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_image: Callable[[str, str, int, str | None], None] | None = None,
) -> IngestSummary:
    """The whole job: ingest, name enrolled people, alert by the rules, purge expired faces."""
    if settings.alerts_file is None:
        return identities.ingest(sources, settings, camera, workers, on_listed, on_image)
    config = load_alerts(settings.alerts_file)
    with Store(settings.db) as store:
        names = {p.person_id: p.name for p in list_people(store)}
    dispatcher = Dispatcher(outputs_for(config), config.queue_size)
    engine = AlertEngine(config, names, settings.match_threshold, dispatcher.submit)
    try:
        summary = identities.ingest(sources, settings, camera, workers, on_listed, on_image,
                                    on_stored=engine.on_stored)
    finally:
        undelivered = dispatcher.close(config.flush_s)
    summary.alerts = engine.raised
    summary.alerts_undelivered = undelivered
    return summary
