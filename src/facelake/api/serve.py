"""``facelake serve``: one process that owns the database — watcher, API and dashboard together.

DuckDB admits one process per file, so the server is that process: it keeps the file open
for its whole life (with ``--watch`` or without: a CLI ``ingest`` started beside it is
refused, never run between two requests to have the API fail after it), runs the watcher on
the given sources (the same ingest, naming and alerts as ``ingest``) in a thread, answers
HTTP while it ingests, and leaves a note next to the database (``<db>.serve.json``) so that
a CLI command started meanwhile can say who holds the file and where its data is served.
SIGTERM or Ctrl-C stop the web server (requests in flight get :data:`SHUTDOWN_GRACE_S`), then the
watcher finishes the images in hand.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError, StoreError
from ..service import default_stages
from ..sources import open_source
from ..store import is_postgres, open_store
from ..store.duck import MEMORY_LIMIT, SERVE_MEMORY_LIMIT, DuckStore, held_message, serve_lock_path, wait_for_others
from ..triggers.streams import plan_streams
from ..triggers.watch import Watcher, WatchSummary
from .app import create_app
from .dashboard import warm

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10
"""How long SIGTERM or Ctrl-C waits for requests in flight before it drops them: uvicorn's
default is to wait for ever, and one slow upload kept a stopped server alive (and its database
held) with nothing said."""

FINISH_WRITES_S = 120
"""How long a stopping serve then waits for the work of requests uvicorn dropped to finish on
their threads (a naming runs ``identify`` over every face: ~30 s at a million sightings)."""


class _CancelledAtShutdown(logging.Filter):
    """Drops uvicorn's traceback of a request cancelled when the grace ran out: its one line
    ("Cancel 1 running task(s), timeout graceful shutdown exceeded") says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is asyncio.CancelledError)


def check_port(host: str, port: int) -> None:
    """Raise ConfigError when ``host:port`` cannot be listened on (another server has it).

    uvicorn would say so only after serve had opened the database and printed where it serves,
    then end the process with its own exit code 3 (facelake's "sql refused a write")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                              "(another server there? stop it or give --port)") from exc


def serve(settings: Settings, host: str, port: int, watch: Sequence[str] = (), workers: int | None = None,
          on_ready: object = None) -> WatchSummary | None:
    """Serve until SIGTERM or Ctrl-C; with ``watch``, returns the watcher's totals once it has
    finished the images in hand (the alerts its outputs never took among them), as ``watch`` does."""
    import uvicorn

    check_port(host, port)
    # A DuckDB file admits one process: serve holds it and says so where other commands look.
    # A PostgreSQL server needs no such note: every command may write beside serve.
    lock = None if is_postgres(settings.db) else serve_lock_path(Path(settings.db))
    if lock is not None:
        message = held_message(Path(settings.db))
        if message:
            raise StoreError(message)
    # Create or migrate the database, and keep it open: DuckDB's lock on the file is what
    # makes serve its owner between requests too.
    DuckStore.memory_limit = SERVE_MEMORY_LIMIT  # small pages for as long as it runs: a small cache
    try:
        holder = open_store(settings.db)
    except BaseException:
        DuckStore.memory_limit = MEMORY_LIMIT
        raise
    DuckStore.shared = True
    url = f"http://{host}:{port}"
    if lock is not None:
        lock.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    watcher: Watcher | None = None
    thread: threading.Thread | None = None
    try:
        if watch:
            streams, places = plan_streams(list(watch), None, settings)
            # serve owns the file for as long as it runs: its watcher lends it to nobody.
            owned = settings.model_copy(update={"watch_lend_s": 0.0})
            watcher = Watcher([open_source(s) for s in places], owned, default_stages(owned, cluster=True),
                              workers, streams=streams)
            thread = threading.Thread(target=watcher.run, name="facelake-watch", daemon=True)
            thread.start()
        app = create_app(settings)
        warm(holder)
        # What is loaded by now (the libraries, the models' sessions, the pages) lives as long as
        # the process: frozen, the collector stops walking it, and a full collection in the middle
        # of a request took ~80 ms at a million sightings (a timeline every ~40 requests at 110 ms).
        gc.collect()
        gc.freeze()
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        # uvicorn handles SIGTERM/SIGINT (graceful shutdown), then re-raises the signal to the
        # handlers it found; these let the process go on to stop the watcher and remove its note.
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
        quiet = _CancelledAtShutdown()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        try:
            uvicorn.Server(config).run()
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if watcher is not None:
            watcher.stop()
        if thread is not None:
            thread.join(timeout=60)
        if lock is not None and (busy := wait_for_others(Path(settings.db), 0.0)):
            log.warning("waiting up to %d s for %d request(s) still at work on the database", FINISH_WRITES_S, busy)
            if left := wait_for_others(Path(settings.db), FINISH_WRITES_S):
                log.warning("%d request(s) still at work after %d s: dropped (each change is one transaction, "
                            "whole or absent)", left, FINISH_WRITES_S)
        if lock is not None:
            lock.unlink(missing_ok=True)
        holder.close()
        DuckStore.shared = False
        DuckStore.memory_limit = MEMORY_LIMIT
    return watcher.summary if watcher is not None else None
