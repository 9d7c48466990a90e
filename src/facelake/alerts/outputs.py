"""Delivering alerts: a webhook (HTTP POST) and MQTT with Home Assistant discovery.

Delivery never blocks ingestion: each output has its own bounded queue, drained by its own
thread with retries and exponential backoff. An output that is down holds up only its own
alerts (a webhook keeps receiving while the MQTT broker is away), and costs queued alerts
(its oldest are dropped when its queue is full, and whatever is still queued when the
ingest's flush time runs out is reported as undelivered), never a stored face.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .rules import MqttConfig, WebhookConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    rule: str
    camera: str | None
    person: str | None
    """Name of the enrolled person, or ``None`` for an unknown face."""
    sighting_id: int | None
    """None from the Cloud Function, whose sinks assign no ids: ``image_id`` and ``face_index`` say which face."""
    score: float | None
    quality: float
    taken_at: datetime | None
    uri: str
    thumb: bytes
    update: bool = False
    """The same live track alerted before, now named (its early alert said "unknown" or another name)."""
    image_id: str | None = None
    face_index: int | None = None

    def payload(self, with_crop: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "rule": self.rule, "camera": self.camera, "person": self.person, "known": self.person is not None,
            "update": self.update,
            "sighting_id": self.sighting_id, "image_id": self.image_id, "face_index": self.face_index,
            "match_score": self.score, "quality": round(self.quality, 3),
            "taken_at": self.taken_at.isoformat() if self.taken_at else None, "image": self.uri,
        }
        if with_crop:
            body["crop_jpeg_base64"] = base64.b64encode(self.thumb).decode("ascii")
        return body


@dataclass(frozen=True)
class Presence:
    """An enrolled person seen: what Home Assistant's presence and "last seen" sensors show."""

    person: str
    camera: str | None
    seen_at: datetime
    sighting_id: int | None

    def payload(self) -> dict[str, Any]:
        return {"person": self.person, "camera": self.camera, "seen_at": self.seen_at.isoformat(),
                "sighting_id": self.sighting_id}


class Output(Protocol):
    name: str

    def send(self, alert: Alert | Presence) -> None: ...

    def close(self) -> None: ...


class WebhookOutput:
    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config

    def send(self, alert: Alert | Presence) -> None:
        if isinstance(alert, Presence):
            return  # presence is Home Assistant's, over MQTT
        request = urllib.request.Request(
            self.config.url, data=json.dumps(alert.payload()).encode(), method="POST",
            headers={"Content-Type": "application/json", **self.config.headers},
        )
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            if response.status >= 300:
                raise OSError(f"webhook answered HTTP {response.status}")

    def close(self) -> None:
        return None


def _slug(text: str | None) -> str:
    return "".join(c if c.isalnum() else "_" for c in (text or "unknown")).lower()


class MqttOutput:
    """Publishes ``<prefix>/<camera>/face`` (JSON) and ``/crop`` (JPEG), and announces a sensor
    per camera through Home Assistant's MQTT discovery, so it appears there by itself."""

    name = "mqtt"

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.client: Any = None
        self.announced: set[str] = set()

    def _connect(self) -> Any:
        if self.client is not None and self.client.is_connected():
            return self.client
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="facelake")
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password)
        client.connect(self.config.host, self.config.port, keepalive=30)
        client.loop_start()
        deadline = time.monotonic() + self.config.timeout_s
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not client.is_connected():
            client.loop_stop()
            raise OSError(f"MQTT broker {self.config.host}:{self.config.port} did not accept the connection")
        self.client, self.announced = client, set()
        return client

    def _publish(self, client: Any, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=self.config.timeout_s)
        if not info.is_published():
            raise OSError(f"MQTT publish to {topic} was not acknowledged")

    def send(self, alert: Alert | Presence) -> None:
        client = self._connect()
        if isinstance(alert, Presence):
            self._presence(client, alert)
            return
        camera = _slug(alert.camera)
        base = f"{self.config.topic_prefix}/{camera}"
        if camera not in self.announced:
            discovery = {
                "name": f"Last face at {alert.camera}",
                "unique_id": f"facelake_{camera}_last_face",
                "state_topic": f"{base}/face",
                "value_template": "{{ value_json.person if value_json.person else 'unknown' }}",
                "json_attributes_topic": f"{base}/face",
                "icon": "mdi:face-recognition",
                "device": {"identifiers": ["facelake"], "name": "facelake", "manufacturer": "facelake"},
            }
            self._publish(client, f"{self.config.discovery_prefix}/sensor/facelake_{camera}/config",
                          json.dumps(discovery), retain=True)
            self.announced.add(camera)
        self._publish(client, f"{base}/face", json.dumps(alert.payload(with_crop=False)))
        self._publish(client, f"{base}/crop", alert.thumb)

    def _presence(self, client: Any, seen: Presence) -> None:
        """``<prefix>/person/<name>/state`` ON (retained) and ``/last_seen``, with discovery for a presence
        binary sensor whose ``off_delay`` is the window (Home Assistant turns it off by itself, so a
        stopped facelake never leaves someone home forever) and a "last seen" sensor."""
        person = _slug(seen.person)
        base = f"{self.config.topic_prefix}/person/{person}"
        key = f"person:{person}"
        if key not in self.announced:
            device = {"identifiers": ["facelake"], "name": "facelake", "manufacturer": "facelake"}
            presence = {"name": f"{seen.person} seen", "unique_id": f"facelake_{person}_presence",
                        "state_topic": f"{base}/state", "device_class": "presence",
                        "off_delay": int(self.config.presence_window_s), "device": device}
            last = {"name": f"{seen.person} last seen", "unique_id": f"facelake_{person}_last_seen",
                    "state_topic": f"{base}/last_seen", "value_template": "{{ value_json.camera }}",
                    "json_attributes_topic": f"{base}/last_seen", "icon": "mdi:account-clock", "device": device}
            self._publish(client, f"{self.config.discovery_prefix}/binary_sensor/facelake_{person}/config",
                          json.dumps(presence), retain=True)
            self._publish(client, f"{self.config.discovery_prefix}/sensor/facelake_{person}_last_seen/config",
                          json.dumps(last), retain=True)
            self.announced.add(key)
        self._publish(client, f"{base}/last_seen", json.dumps(seen.payload()), retain=True)
        self._publish(client, f"{base}/state", "ON")

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None


class _Lane:
    """One output's queue and the thread that delivers it, head first, retrying with backoff."""

    def __init__(self, output: Output, queue_size: int) -> None:
        self.output = output
        self.queue: deque[Alert | Presence] = deque()
        self.queue_size = queue_size
        self.delivered = 0
        self.dropped = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"facelake-alerts-{output.name}", daemon=True)
        self.thread.start()

    def submit(self, alert: Alert | Presence) -> None:
        with self.cond:
            if len(self.queue) >= self.queue_size:
                self.queue.popleft()
                self.dropped += 1
            self.queue.append(alert)
            self.cond.notify()

    def _run(self) -> None:
        attempts = 0
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue or self.stopping:
                    return
                alert = self.queue[0]
            try:
                self.output.send(alert)
            except Exception as exc:  # noqa: BLE001 - any delivery failure is retried, never raised
                attempts += 1
                log.warning("alert to %s failed (attempt %d): %s", self.output.name, attempts, exc)
                with self.cond:
                    if not self.stopping:
                        self.cond.wait(timeout=min(0.5 * 2 ** (attempts - 1), 10.0))
                continue
            attempts = 0
            with self.cond:
                if self.queue and self.queue[0] is alert:
                    self.queue.popleft()
                self.delivered += 1
                self.cond.notify_all()

    def left(self) -> int:
        with self.cond:
            return len(self.queue)

    def stop(self) -> int:
        """Stop delivering; returns how many alerts were not delivered (still queued, or dropped)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=5)
        with self.cond:
            return len(self.queue) + self.dropped


class Dispatcher:
    """A lane (bounded queue + delivering thread) per output, so one output down holds up no other."""

    def __init__(self, outputs: dict[str, Output], queue_size: int) -> None:
        self.outputs = outputs
        self.lanes = {name: _Lane(output, queue_size) for name, output in outputs.items()}

    @property
    def delivered(self) -> int:
        return sum(lane.delivered for lane in self.lanes.values())

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self.lanes.values())

    def submit(self, alert: Alert | Presence, outputs: Sequence[str]) -> None:
        for name in outputs:
            lane = self.lanes.get(name)
            if lane is None:
                log.warning("alert for output %r, which is not configured: dropped", name)
                continue
            lane.submit(alert)

    def close(self, flush_s: float) -> int:
        """Wait up to ``flush_s`` for every queue to drain; returns how many deliveries are left
        (queued or dropped, over all outputs)."""
        deadline = time.monotonic() + flush_s
        while time.monotonic() < deadline and any(lane.left() for lane in self.lanes.values()):
            time.sleep(0.05)
        undelivered = sum(lane.stop() for lane in self.lanes.values())
        for output in self.outputs.values():
            try:
                output.close()
            except Exception:  # noqa: BLE001 - closing a dead connection must not fail the ingest
                log.debug("closing %s failed", output.name)
        return undelivered
