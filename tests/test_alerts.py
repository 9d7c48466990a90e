"""Alerts against a real Mosquitto broker and a real HTTP receiver, both on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from facelake.alerts.rules import Rule, load_alerts
from facelake.errors import ConfigError
from facelake.store.base import Target

from .dbs import rows
from .test_ingest import cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if binary is None:
        pytest.fail("mosquitto is not installed (scripts/test.sh installs the Debian package)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("mosquitto did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def subscribe(port: int) -> tuple[object, list[tuple[str, bytes, bool]]]:
    import paho.mqtt.client as mqtt

    messages: list[tuple[str, bytes, bool]] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")
    client.on_message = lambda _c, _u, msg: messages.append((msg.topic, msg.payload, bool(msg.retain)))
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10), "test subscriber could not subscribe"
    return client, messages


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():  # type: ignore[operator]
        time.sleep(0.05)


@pytest.fixture
def door(tmp_path: Path, samples: Path) -> Path:
    """One camera, three frames taken at the same moment: Obama twice (re-encoded), then Biden."""
    root = tmp_path / "cams"
    (root / "door").mkdir(parents=True)
    for i, name in enumerate(["obama.jpg", "obama.jpg", "biden.jpg"]):
        img = Image.open(samples / name).convert("RGB")
        img.save(root / "door" / f"{i}.jpg", quality=90 - i)  # no EXIF; different bytes
        os.utime(root / "door" / f"{i}.jpg", (1_700_000_000, 1_700_000_000 + i))
    return root


def _rules(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(body)
    return path


def test_alerts_reach_the_webhook_and_home_assistant(
    db: Target, tmp_path: Path, door: Path, samples: Path, mosquitto: int, receiver: tuple[str, list[dict]]
) -> None:
    url, posts = receiver
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "public figure, test")[0] == 0
    alerts = _rules(tmp_path, f"""
flush_s = 10
[webhook]
url = "{url}"
[mqtt]
port = {mosquitto}
[[rule]]
name = "stranger"
on = "unknown"
debounce_s = 300
[[rule]]
name = "joe is home"
on = "person"
people = ["Joe"]
outputs = ["webhook"]
""")
    client, messages = subscribe(mosquitto)
    code, output = cli(db, "ingest", str(door), "--workers", "1", "--alerts", str(alerts))
    wait_for(lambda: any(t == "facelake/door/crop" for t, _, _ in messages))
    wait_for(lambda: any(t == "facelake/person/joe/state" for t, _, _ in messages))
    client.loop_stop()  # type: ignore[attr-defined]
    assert code == 0, output
    assert "alerts: 2 raised, 0 not delivered" in output
    by_rule = {p["rule"]: p for p in posts}
    assert set(by_rule) == {"stranger", "joe is home"}, "the second Obama frame is debounced"
    assert by_rule["stranger"]["person"] is None and by_rule["stranger"]["camera"] == "door"
    assert by_rule["joe is home"]["person"] == "Joe" and by_rule["joe is home"]["match_score"] > 0.9
    crop = Image.open(io.BytesIO(base64.b64decode(by_rule["stranger"]["crop_jpeg_base64"])))
    assert crop.format == "JPEG" and crop.size == (96, 96)
    topics = [t for t, _, _ in messages]
    config = [(p, r) for t, p, r in messages if t == "homeassistant/sensor/facelake_door/config"]
    assert config and json.loads(config[0][0])["state_topic"] == "facelake/door/face"
    faces = [json.loads(p) for t, p, _ in messages if t == "facelake/door/face"]
    assert len(faces) == 1 and faces[0]["person"] is None, "MQTT only for the rule that asks for it"
    assert "facelake/door/crop" in topics
    assert rows(db, "SELECT count(*) FROM sightings s JOIN images i USING (image_id) WHERE i.camera = 'door'") == [(3,)]
    # Presence for Home Assistant: Joe is home (on, turned off by HA after the window) and was last seen at the door.
    presence = [json.loads(p) for t, p, _ in messages if t == "homeassistant/binary_sensor/facelake_joe/config"]
    assert presence and presence[0]["device_class"] == "presence" and presence[0]["off_delay"] == 600
    assert next(p for t, p, _ in messages if t == "facelake/person/joe/state") == b"ON"
    last = [json.loads(p) for t, p, _ in messages if t == "facelake/person/joe/last_seen"]
    assert last and last[0]["camera"] == "door" and last[0]["person"] == "Joe"
    assert not any(t.startswith("facelake/person/") and "joe" not in t for t in topics), "only enrolled people"


def test_a_dead_broker_and_receiver_do_not_stop_ingestion(db: Target, tmp_path: Path, door: Path) -> None:
    alerts = _rules(tmp_path, f"""
flush_s = 1
[webhook]
url = "http://127.0.0.1:{free_port()}/nothing-here"
timeout_s = 1
[mqtt]
port = {free_port()}
timeout_s = 1
[[rule]]
name = "stranger"
""")
    start = time.monotonic()
    code, output = cli(db, "ingest", str(door), "--workers", "1", "--alerts", str(alerts))
    assert code == 0, output
    assert "not delivered" in output and "0 not delivered" not in output
    assert rows(db, "SELECT count(*) FROM images WHERE status = 'ok'") == [(3,)]
    assert time.monotonic() - start < 60


def test_quiet_hours_span_midnight() -> None:
    rule = Rule(name="night", quiet_hours=["23:00-06:30"])
    assert rule.quiet_at(datetime(2024, 5, 1, 23, 30)) and rule.quiet_at(datetime(2024, 5, 2, 6, 0))
    assert not rule.quiet_at(datetime(2024, 5, 2, 6, 30)) and not rule.quiet_at(datetime(2024, 5, 2, 12, 0))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[[rule]]\nname = "x"\nquiet_hours = ["late"]\n', "quiet hours"),
        ('[[rule]]\nname = "x"\non = "everyone"\n', "on"),
        ('[[rule]]\nname = "x"\ncolour = "red"\n', "colour"),
        ('[[rule]]\nname = "x"\noutputs = ["mqtt"]\n', "no [mqtt] section"),
    ],
)
def test_bad_rules_are_rejected_with_the_reason(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_alerts(_rules(tmp_path, body))


def test_a_track_alerts_once_however_many_faces_it_keeps(
    db: Target, tmp_path: Path, receiver: tuple[str, list[dict]]
) -> None:
    from .test_video_ingest import clip, walker

    url, posts = receiver
    clip(tmp_path / "cams" / "door" / "walk.mp4", [walker("obama.jpg")])
    alerts = _rules(tmp_path, f"""
flush_s = 10
[webhook]
url = "{url}"
[[rule]]
name = "stranger"
on = "unknown"
debounce_s = 0
outputs = ["webhook"]
""")
    code, output = cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1", "--alerts", str(alerts))
    assert code == 0, output
    kept = rows(db, "SELECT count(*) FROM sightings WHERE track_id IS NOT NULL")[0][0]
    assert kept >= 2, "the track keeps several faces (else this test proves nothing)"
    wait_for(lambda: len(posts) >= 1)
    assert len(posts) == 1 and "alerts: 1 raised" in output, (posts, output)
    best = rows(db, "SELECT best_sighting_id FROM tracks")[0][0]
    assert posts[0]["sighting_id"] == best
