"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against a
real `facelake serve --watch`. Every request that would leave 127.0.0.1 is blocked and counted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from facelake.store.base import Target

from .servers import free_port, wait_healthy
from .test_ingest import cli

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served(db: Target, cams: Path) -> Iterator[tuple[str, str, Target, Path]]:
    token = cli(db, "tokens", "create", "--scope", "admin", "--name", "owner")[1].strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), "serve", "--port", str(port),
                             "--watch", str(cams), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    deadline = time.monotonic() + 60
    # serve's watcher ingests the folder it starts with and groups the unknown faces by itself.
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/api/clusters", headers=headers, timeout=5).json():
            break
        time.sleep(0.3)
    try:
        yield base, token, db, cams
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert pixels.std() > 10, f"{path} looks blank"


def test_log_in_name_a_stranger_and_see_the_name(served: tuple[str, str, Path, Path], tmp_path: Path,
                                                 samples: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    base, token, _, cams = served
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        # Playwright's waits evaluate strings in the page, which the dashboard's CSP forbids (no eval):
        # this context lifts the CSP for the test's own probes; test_browser_security keeps it.
        page = browser.new_page(viewport={"width": 1100, "height": 800}, bypass_csp=True)

        def guard(route, request) -> None:  # type: ignore[no-untyped-def]
            if urlparse(request.url).hostname not in ("127.0.0.1", "localhost"):
                outside.append(request.url)
                route.abort()
            else:
                route.continue_()

        page.route("**/*", guard)
        page.goto(f"{base}/")
        assert page.url.endswith("/login")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_selector("#timeline figure.face")
        assert page.locator("#timeline figure.face").count() == 3
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
        # A new file in the watched folder shows up on the open timeline by itself.
        shutil.copy(samples / "obama3.jpg", cams / "garden" / "new.jpg")
        page.wait_for_function("document.querySelectorAll('#timeline figure.face').length >= 4", timeout=20_000)
        # Name the unknown cluster through the UI.
        page.goto(f"{base}/clusters")
        form = page.locator("form.name-form").first
        form.locator("input[name=name]").fill("Barack")
        form.locator("input[name=consent]").fill("public figure, test")
        with page.expect_navigation():
            form.locator("button").click()
        page.screenshot(path=str(tmp_path / "clusters.png"), full_page=True)
        page.goto(f"{base}/people")
        with page.expect_navigation():
            page.click("a:text('Barack')")  # people are addressed by id: /people/<id>
        assert page.inner_text("#person-name") == "Barack"
        assert page.locator("figure.face").count() >= 2
        page.screenshot(path=str(tmp_path / "person.png"), full_page=True)
        for other in ("/people", "/activity"):
            page.goto(f"{base}{other}")
            page.screenshot(path=str(tmp_path / f"{other.strip('/')}.png"), full_page=True)
        browser.close()
    for shot in ("timeline", "clusters", "person", "people", "activity"):
        not_blank(tmp_path / f"{shot}.png")
    assert outside == [], f"pages tried to reach the internet: {outside}"
    named = httpx.get(f"{base}/api/sightings", params={"person": "Barack"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["items"]
    assert len(named) >= 2, "the name reached the past sightings"
