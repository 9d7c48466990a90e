"""The web app as ``facelake serve`` runs it, for tests that drive it in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from facelake.api.app import create_app
from facelake.config import Settings
from facelake.store.duck import DuckStore


@contextmanager
def app_client(settings: Settings, **kwargs: Any) -> Iterator[TestClient]:
    """A client of the app over ``settings``. As under serve, every store of the process opens the
    DuckDB file read-write (DuckDB admits no read-only connection beside a read-write one)."""
    DuckStore.shared = True
    try:
        with TestClient(create_app(settings), **kwargs) as client:
            yield client
    finally:
        DuckStore.shared = False
