"""Real local servers for the tests, each started on 127.0.0.1 and a free port, stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{what} did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def server(cmd: list[str], port: int, what: str, log: Path, env: dict[str, str] | None = None,
           timeout: float = 60.0, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` until the block ends, once it listens on ``port`` (``popen``: more Popen arguments)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True, **popen)
        try:
            wait_for_port(port, proc, what, timeout)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def gcs_emulator(log_dir: Path) -> Iterator[str]:
    """gcp-storage-emulator in memory; yields the value for ``STORAGE_EMULATOR_HOST``."""
    port = free_port()
    cmd = [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with server(cmd, port, "gcp-storage-emulator", log_dir / "gcs.log"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def s3_server(log_dir: Path) -> Iterator[str]:
    """moto in server mode; yields the value for ``AWS_ENDPOINT_URL``."""
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with server(cmd, port, "moto S3 server", log_dir / "moto.log"):
        yield f"http://127.0.0.1:{port}"


def bqemulator_binary() -> Path:
    """bqemulator from the virtual environment scripts/test.sh makes for it (it pins its own DuckDB)."""
    root = Path(__file__).resolve().parents[1]
    path = Path(os.environ.get("FACELAKE_BQEMULATOR", root / ".venv-bq" / "bin" / "bqemulator"))
    if not path.exists():
        pytest.fail(f"bqemulator not found at {path}: run scripts/test.sh, which installs it into .venv-bq")
    return path


@contextmanager
def bigquery_emulator(log_dir: Path, project: str) -> Iterator[str]:
    """bqemulator (REST + gRPC) in memory; yields its REST endpoint."""
    rest, grpc = free_port(), free_port()
    cmd = [str(bqemulator_binary()), "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
           "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--project", project, "--log-level", "warning"]
    with server(cmd, rest, "bqemulator", log_dir / "bq.log", timeout=120):
        yield f"http://127.0.0.1:{rest}"


def wait_healthy(base: str, timeout: float = 60.0) -> None:
    """Wait until ``base``/api/health answers 200 (a `facelake serve` that is up)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{base} did not answer /api/health within {timeout:.0f} s")


PG_USER = "facelake-pg"
"""PostgreSQL refuses to run as root: the servers of the tests run as this system user."""


def postgres_bins() -> dict[str, Path]:
    """Where each PostgreSQL build lives: ``pgvector`` (PyPI's pgserver: PostgreSQL 16 + pgvector)
    and ``plain`` (Debian's postgresql package: no pgvector). Missing builds are left out."""
    import importlib.util

    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("pgserver")  # its files only: importing it starts nothing but warns
    if spec is not None and spec.submodule_search_locations:
        found["pgvector"] = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if debian:
        found["plain"] = debian[-1].parent
    return found


def _as_server_user() -> dict[str, object]:
    """Popen arguments that drop root to PG_USER (created on first use); nothing when not root."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def postgres(bindir: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (fsync off); yields the admin URL."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="facelake-pg-"))
    drop = _as_server_user()
    if drop:
        root.chmod(0o755)
        os.chown(root, int(drop["user"]), int(drop["group"]))  # type: ignore[call-overload]
        for folder in (bindir, bindir.parent / "lib", bindir.parent / "share"):  # pgserver's files: readable by all
            if folder.exists():
                subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, **drop)  # type: ignore[call-overload]
        port = free_port()
        cmd = [str(bindir / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port),
               "-k", str(root), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
               "-c", "max_connections=300"]
        with server(cmd, port, f"postgres ({bindir})", root / "log", **drop) as proc:
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _wait_ready(url, proc)
            yield url
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def new_database(admin_url: str, name: str) -> str:
    """Create an empty database on the server of ``admin_url``; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


class FaultyProxy:
    """A real HTTP proxy in front of a real server (the GCS emulator) that answers ``status``
    instead of forwarding, for the requests whose path contains one of ``failing`` (an outage,
    a permission being fixed). ``hits`` counts the requests it refused.

    Run in a thread of the test process; ``url`` is what ``STORAGE_EMULATOR_HOST`` takes.
    """

    def __init__(self, target: str) -> None:
        import http.server
        import threading
        import urllib.parse

        self.target = urllib.parse.urlsplit(target)
        self.failing: set[str] = set()
        self.status = 503
        self.hits = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urllib.parse.unquote(self.path)
                if any(f in path for f in proxy.failing):
                    proxy.hits += 1
                    message = b'{"error": {"code": %d, "message": "injected"}}' % proxy.status
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a refused request resets its connection

        self._server = Quiet(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RestartablePostgres:
    """A throw-away PostgreSQL cluster that can be stopped (fast shutdown: clients are cut off,
    as in a restart) and started again on the same port and data."""

    def __init__(self, bindir: Path) -> None:
        import tempfile

        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="facelake-pg-"))
        self.drop = _as_server_user()
        if self.drop:
            self.root.chmod(0o755)
            os.chown(self.root, int(self.drop["user"]), int(self.drop["group"]))  # type: ignore[call-overload]
        subprocess.run([str(bindir / "initdb"), "-D", str(self.root / "data"), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, **self.drop)  # type: ignore[call-overload]
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        cmd = [str(self.bindir / "postgres"), "-D", str(self.root / "data"), "-h", "127.0.0.1", "-p", str(self.port),
               "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off"]
        with open(self.root / "log", "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         **self.drop)  # type: ignore[call-overload]
        wait_for_port(self.port, self.proc, "postgres")
        _wait_ready(self.url, self.proc)

    def stop(self) -> None:
        import signal

        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
            self.proc = None

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
