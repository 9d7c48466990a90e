"""Followers and outputs: serve owns its DuckDB file, no password is ever printed, PostgreSQL
restarts are survived, each alert output has its own queue, watch sees new and moved-in folders.
Real servers throughout (PostgreSQL, mosquitto, uvicorn in a `facelake serve` subprocess)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .dbs import PostgresServers, rows
from .servers import free_port, wait_healthy
from .test_ingest import cli

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
