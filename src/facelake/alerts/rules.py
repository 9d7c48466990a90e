"""Alert rules: which stored faces should reach the owner, and through which outputs.

Rules live in a TOML file (``alerts_file`` in the settings), validated like the settings:
unknown keys are errors, times and thresholds are checked. Example::

    [webhook]
    url = "http://127.0.0.1:8123/api/webhook/facelake"

    [mqtt]
    host = "127.0.0.1"
    port = 1883

    [[rule]]
    name = "stranger at the door"
    on = "unknown"              # "unknown", "person" (see people) or "any"
    cameras = ["frontdoor"]     # empty: every camera
    quiet_hours = ["23:00-06:30"]
    min_quality = 0.15
    debounce_s = 300
    outputs = ["webhook", "mqtt"]
"""

from __future__ import annotations

import tomllib
from datetime import datetime, time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

OutputName = Literal["webhook", "mqtt"]
OUTPUTS: tuple[OutputName, ...] = ("webhook", "mqtt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookConfig(_Strict):
    url: str = Field(title="URL that receives a JSON POST per alert")
    timeout_s: float = Field(5.0, gt=0, le=120)
    headers: dict[str, str] = Field(default_factory=dict, title="Extra HTTP headers (e.g. a token)")


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    topic_prefix: str = Field("facelake", title="Alerts go to <prefix>/<camera>/face")
    discovery_prefix: str = Field("homeassistant", title="Home Assistant MQTT discovery prefix")
    timeout_s: float = Field(5.0, gt=0, le=120)
    presence_window_s: float = Field(
        600.0, ge=0, le=7 * 86_400, title="Presence: an enrolled person is home until unseen this long (s)",
        description="Each enrolled person gets a Home Assistant presence (on while seen within the window; "
        "Home Assistant turns it off by itself) and a 'last seen' sensor (camera, time); 0 publishes none.",
    )


class Rule(_Strict):
    name: str
    on: Literal["unknown", "person", "any"] = "unknown"
    people: list[str] = Field(default_factory=list, title="With on = 'person': these names (empty: anyone enrolled)")
    cameras: list[str] = Field(default_factory=list, title="Cameras the rule watches (empty: all)")
    quiet_hours: list[str] = Field(default_factory=list, title="'HH:MM-HH:MM' spans when the rule stays silent")
    min_quality: float = Field(0.15, ge=0, le=1, title="Ignore faces of lower quality")
    debounce_s: float = Field(300, ge=0, le=86400, title="Silence after an alert for the same person or stranger")
    outputs: list[OutputName] = Field(default_factory=lambda: list(OUTPUTS))

    @field_validator("quiet_hours")
    @classmethod
    def _spans(cls, spans: list[str]) -> list[str]:
        for span in spans:
            parse_span(span)
        return spans

    def quiet_at(self, when: datetime) -> bool:
        t = when.time()
        for span in self.quiet_hours:
            start, end = parse_span(span)
            inside = start <= t < end if start <= end else (t >= start or t < end)
            if inside:
                return True
        return False


def parse_span(span: str) -> tuple[time, time]:
    try:
        start, end = span.split("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError as exc:
        raise ValueError(f"quiet hours must look like '23:00-06:30', got {span!r}") from exc


class AlertConfig(_Strict):
    webhook: WebhookConfig | None = None
    mqtt: MqttConfig | None = None
    rule: list[Rule] = Field(default_factory=list)
    queue_size: int = Field(1000, ge=1, le=100_000, title="Alerts kept for retry while an output is down")
    flush_s: float = Field(10.0, ge=0, le=600, title="How long the end of an ingest waits for undelivered alerts")


def load_alerts(path: Path) -> AlertConfig:
    try:
        config = AlertConfig.model_validate(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read alerts file {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"alerts file {path}: {exc}") from exc
    for rule in config.rule:
        for out in rule.outputs:
            if getattr(config, out) is None:
                raise ConfigError(f"alerts file {path}: rule {rule.name!r} sends to {out!r}, which has no [{out}] section")
    return config
