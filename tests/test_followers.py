"""Followers and outputs: serve owns its DuckDB file, no password is ever printed, PostgreSQL
restarts are survived, each alert output has its own queue, watch sees new and moved-in folders.
Real servers throughout (PostgreSQL, mosquitto, uvicorn in a `facelake serve` subprocess)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .dbs import PostgresServers, rows
from .servers import RestartablePostgres, free_port, new_database, postgres_bins, wait_healthy
from .test_alerts import receiver  # noqa: F401 - the webhook receiver fixture
from .test_ingest import cli
from .test_watch import no_watch_left  # noqa: F401 (autouse: no watch left behind)

PASSWORD = "s3cretPW"


def with_password(url: str) -> str:
    """The server trusts local connections, so any password is accepted: enough to see it printed."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def serve(db: object, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), "serve", "--port", str(port),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def test_the_postgresql_password_is_printed_nowhere(pg_servers: PostgresServers, cams: Path) -> None:
    url = with_password(pg_servers.database("pgvector", "pw"))
    code, output = cli(url, "ingest", str(cams), "--workers", "1", "-v")
    assert code == 0, output
    assert PASSWORD not in output and "postgres:***@" in output, output
    code, output = cli(url, "stats")
    assert code == 0 and PASSWORD not in output
    port = free_port()
    proc = serve(url, port)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
    finally:
        out = stop(proc)
    assert PASSWORD not in out and "postgres:***@" in out, out
    assert not [r for r in rows(url, "SELECT subject FROM audit") if PASSWORD in str(r)]


def test_serve_without_watch_owns_its_duckdb_file(tmp_path: Path, cams: Path) -> None:
    db = tmp_path / "s.duckdb"
    code, output = cli(db, "tokens", "create", "--scope", "read", "--name", "reader")
    token = output.strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(db, port)
    try:
        wait_healthy(base)
        code, output = cli(db, "ingest", str(cams), "--workers", "1")
        assert code == 4 and "held by `facelake serve`" in output and base in output, output
        answer = httpx.get(f"{base}/api/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0, "once serve stops, the file is free"


def test_a_lock_held_by_another_process_never_blames_serve_itself(tmp_path: Path) -> None:
    import json
    import os

    from facelake.store.duck import held_message, serve_lock_path

    db = tmp_path / "x.duckdb"
    serve_lock_path(db).write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:1"}))
    assert held_message(db) is None


def test_watch_ingests_a_folder_created_with_its_file_and_a_folder_moved_in(
    tmp_path: Path, samples: Path
) -> None:
    from .test_watch import Watch

    db = tmp_path / "w.duckdb"
    cams = tmp_path / "cams"
    (cams / "frontdoor").mkdir(parents=True)
    watch = Watch(db, str(cams), "--workers", "1", "--settle", "0.3")
    watch.ready()
    # A recorder's new day: the folder and its first frame at the same moment.
    day = cams / "frontdoor" / "2024-05-01"
    day.mkdir()
    shutil.copy(samples / "obama.jpg", day / "a.jpg")
    # A folder of frames prepared elsewhere and moved in whole.
    outside = tmp_path / "elsewhere" / "garden"
    outside.mkdir(parents=True)
    shutil.copy(samples / "biden.jpg", outside / "b.jpg")
    shutil.copy(samples / "obama2.jpg", outside / "c.jpg")
    os.rename(outside, cams / "garden")
    watch.wait_for(lambda: len(watch.new_lines()) >= 3, 60, "three images ingested")
    assert watch.stop() == 0
    assert rows(db, "SELECT camera, regexp_replace(uri, '^.*/', '') FROM images ORDER BY 2") == [
        ("frontdoor", "a.jpg"), ("garden", "b.jpg"), ("garden", "c.jpg")]


ALERTS = """
flush_s = {flush}
[webhook]
url = "{url}"
timeout_s = 2
[mqtt]
port = {mqtt}
timeout_s = 1
[[rule]]
name = "anyone"
on = "any"
debounce_s = 0
outputs = ["webhook", "mqtt"]
"""


def _door(tmp_path: Path, samples: Path) -> Path:
    """A camera folder of three sample photos, each a face that raises one stranger alert."""
    door = tmp_path / "cams" / "door"
    door.mkdir(parents=True)
    for i, name in enumerate(["obama.jpg", "biden.jpg", "obama2.jpg"]):
        shutil.copy(samples / name, door / f"{i}.jpg")
    return door


def test_an_mqtt_broker_that_is_down_holds_up_no_webhook_alert(
    tmp_path: Path, samples: Path, receiver: tuple[str, list[dict]]  # noqa: F811 - the fixture imported above
) -> None:
    from .test_alerts import wait_for

    url, posts = receiver
    door = _door(tmp_path, samples)
    rules = tmp_path / "alerts.toml"
    rules.write_text(ALERTS.format(flush=3, url=url, mqtt=free_port()))
    code, output = cli(tmp_path / "a.duckdb", "ingest", str(door.parent), "--workers", "1", "--alerts", str(rules))
    assert code == 0, output
    assert len(posts) == 3, f"the webhook got {len(posts)} of 3 alerts while MQTT was down"
    assert "alerts: 3 raised, 3 not delivered" in output, output
    # watch says what it could not deliver when it stops
    from .test_watch import Watch

    rules.write_text(ALERTS.format(flush=1, url=url, mqtt=free_port()))
    watch = Watch(tmp_path / "w.duckdb", str(door.parent), "--workers", "1", "--alerts", str(rules))
    watch.ready()
    wait_for(lambda: len(posts) >= 6, 60)
    assert len(posts) == 6
    assert watch.stop() == 0
    stopped = [line for line in watch.out if line.startswith("stopped:")]
    assert stopped and "3 alerts (3 not delivered)" in stopped[0], watch.out



def test_serve_watch_says_what_it_could_not_deliver_when_it_stops(
    tmp_path: Path, samples: Path, receiver: tuple[str, list[dict]]  # noqa: F811 - the fixture imported above
) -> None:
    """``serve --watch`` runs the same watcher as ``watch`` and, like it, says on stopping how many
    alerts an output never took (it said nothing: an MQTT broker down all day went unnoticed)."""
    from .test_alerts import wait_for

    url, posts = receiver
    door = _door(tmp_path, samples)
    rules = tmp_path / "alerts.toml"
    rules.write_text(ALERTS.format(flush=1, url=url, mqtt=free_port()))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(tmp_path / "s.duckdb"), "serve",
                             "--port", str(port), "--watch", str(door.parent), "--workers", "1", "--alerts", str(rules)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        wait_for(lambda: len(posts) >= 3, 90)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert stopped and "3 new" in stopped[0] and "3 alerts (3 not delivered)" in stopped[0], (out, err)


def _restartable() -> RestartablePostgres:
    return RestartablePostgres(postgres_bins()["pgvector"])


def test_watch_survives_a_postgresql_restart(tmp_path: Path, samples: Path) -> None:
    from .test_watch import Watch

    pg = _restartable()
    try:
        db = new_database(pg.url, "restart")
        cams = tmp_path / "cams" / "door"
        cams.mkdir(parents=True)
        watch = Watch(db, str(cams.parent), "--workers", "1", "--settle", "0.3")  # type: ignore[arg-type]
        watch.ready()
        shutil.copy(samples / "obama.jpg", cams / "a.jpg")
        watch.wait_for(lambda: watch.new_lines("a.jpg"), 60, "a.jpg ingested")
        pg.stop()  # every connection is cut; the server is away for a few seconds
        shutil.copy(samples / "biden.jpg", cams / "b.jpg")
        time.sleep(3)
        pg.start()
        watch.wait_for(lambda: watch.new_lines("b.jpg"), 60, "b.jpg ingested after the restart")
        shutil.copy(samples / "obama2.jpg", cams / "c.jpg")
        watch.wait_for(lambda: watch.new_lines("c.jpg"), 60, "c.jpg ingested")
        assert watch.stop() == 0
        assert rows(db, "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM images") == [(3, 3)]
        assert not [line for line in watch.err if "Traceback" in line]
    finally:
        from facelake.store.pg import close_pools

        close_pools()
        pg.close()


def test_a_read_in_blocks_after_a_restart_reconnects_like_any_statement(tmp_path: Path, samples: Path) -> None:
    """The blocks identify and clustering read come through a server-side cursor, on the
    connection as it was: after a restart its first statement failed where any other reconnects."""
    from facelake.store import open_store
    from facelake.store.pg import close_pools

    pg = _restartable()
    try:
        db = new_database(pg.url, "blocks")
        cams = tmp_path / "door"
        cams.mkdir()
        shutil.copy(samples / "obama.jpg", cams / "a.jpg")
        code, output = cli(db, "ingest", str(cams), "--workers", "1")
        assert code == 0, output
        with open_store(db) as store:
            model = rows(db, "SELECT model FROM sightings")[0][0]
            before = [ids for ids, _ in store.sightings.embedded(model)]
            pg.stop()
            pg.start()
            after = [ids for ids, _ in store.sightings.embedded(model)]
        assert after == before and sum(len(ids) for ids in after) == 1
    finally:
        close_pools()
        pg.close()


def test_a_writer_whose_server_stays_away_gives_up_in_one_line_with_exit_4(tmp_path: Path, samples: Path) -> None:
    from .test_watch import Watch

    pg = _restartable()
    try:
        db = new_database(pg.url, "away")
        cams = tmp_path / "cams" / "door"
        cams.mkdir(parents=True)
        watch = Watch(db, str(cams.parent), "--workers", "1", "--settle", "0.3",  # type: ignore[arg-type]
                      env={"FACELAKE_PG_RECONNECT_S": "3"})
        watch.ready()
        pg.stop()
        shutil.copy(samples / "obama.jpg", cams / "a.jpg")
        code = watch.proc.wait(timeout=90)
        time.sleep(0.5)  # the pumps read the last lines
        assert code == 4, (code, watch.err[-10:])
        errors = [line for line in watch.err if line.startswith("error:")]
        assert len(errors) == 1 and "lost the connection" in errors[0] and PASSWORD not in errors[0], watch.err[-10:]
        assert not [line for line in watch.err if "Traceback" in line], watch.err[-30:]
    finally:
        pg.close()


def _left_after(proc: subprocess.Popen[str], kids: list) -> list:  # type: ignore[type-arg]
    import psutil

    deadline = time.monotonic() + 30
    alive = kids
    while time.monotonic() < deadline:
        alive = [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.3)
    for k in alive:
        k.kill()
    return [k.pid for k in alive]


def _frames(folder: Path, samples: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    base = Image.open(samples / "obama.jpg").convert("RGB")
    for i in range(n):
        img = base.copy()
        img.putpixel((i, 0), (i * 4, 0, 0))
        img.save(folder / f"{i:02d}.jpg", quality=90)


def test_nothing_of_a_ray_ingest_outlives_it_when_killed(tmp_path: Path, samples: Path) -> None:
    import psutil

    _frames(tmp_path / "cams" / "c", samples, 40)
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(tmp_path / "r.duckdb"), "ingest",
                             str(tmp_path / "cams"), "-v", "--workers", "2", "--engine", "ray"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("new "):
            break
    kids = psutil.Process(proc.pid).children(recursive=True)
    assert any("Agent" in k.name() for k in kids), [k.name() for k in kids]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert _left_after(proc, kids) == [], "Ray's agents (or anything else) outlived the killed ingest"


def test_nothing_of_serve_outlives_it_when_killed(tmp_path: Path, samples: Path) -> None:
    import psutil

    _frames(tmp_path / "cams" / "c", samples, 30)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(tmp_path / "s.duckdb"), "serve",
                             "--port", str(port), "--watch", str(tmp_path / "cams"), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    wait_healthy(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    kids: list = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and len(kids) < 2:
        kids = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.3)
    assert len(kids) >= 2, "serve's watcher runs worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert _left_after(proc, kids) == []
