"""The owner's workflows in the dashboard (issue 21): through the app (TestClient) for what
the pages list and in what order, and in Debian's headless Chromium, at desktop and phone
width, for what the owner clicks: give a group to someone enrolled, rename, "not this person",
name one face, the photo behind a face, forget with a confirmation; and pages that cannot be
framed or posted to from another site."""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from facelake import load_settings
from facelake.service import create_token
from facelake.store.base import Target
from facelake.store.duck import DuckStore

from .dbs import rows
from .servers import free_port, wait_healthy
from .test_api import auth
from .test_browser import CHROMIUM, not_blank
from .test_cloud import gps_photo
from .test_ingest import cli
from .web import app_client

DAY = 86_400


def dated(cams: Path) -> None:
    """Capture times against the order of ingest: the file read first is the newest photo."""
    order = sorted(p for p in cams.rglob("*.jpg"))
    for age, path in enumerate(order):
        t = 1_700_000_000 + (len(order) - age) * DAY
        os.utime(path, (t, t))


def test_pages_order_by_capture_time_and_page_on(db: Target, cams: Path, samples: Path) -> None:
    dated(cams)
    gps_photo(samples / "obama3.jpg", cams / "garden" / "gps.jpg")  # EXIF: 2024-05-01, the oldest
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    settings = load_settings(db=db)
    token = create_token(settings, "admin", "owner")[1]
    with app_client(settings) as c:
        c.post("/login", data={"token": token})
        ids = [int(x.split('"')[0]) for x in c.get("/").text.split('data-sighting="')[1:]]
        taken = dict(rows(db, "SELECT s.sighting_id, i.taken_at FROM sightings s JOIN images i USING (image_id)"))
        assert len(ids) == 4 and [taken[i] for i in ids] == sorted(taken.values(), reverse=True)
        assert ids != sorted(ids, reverse=True), "the test's capture times run against the ids"
        # Two at a time: every face once, in the same order, then no Older link.
        seen, url, pages = [], "/?n=2", 0
        while url:
            page = c.get(url).text
            pages += 1
            seen += [int(x.split('"')[0]) for x in page.split('data-sighting="')[1:]]
            link = re.search(r'<a href="([^"]+)" id="older"', page)
            url = html.unescape(link.group(1)) if link else ""
        assert seen == ids and pages == 2, "two full pages, and no Older link to an empty third"
        # The activity page: places counted on the map, not a table row per point; the zone said.
        activity = c.get("/activity").text
        assert "<circle" in activity and re.search(r"\d+ faces?</text>", activity), "dots and their legend"
        assert "this server's zone" in activity and activity.count("<tr>") <= 11
        typo = c.get("/activity?camera=nope", headers={"Accept": "text/html"})
        assert typo.status_code == 404 and "no camera called" in typo.text, "not a chart of zeros"


def test_the_map_legend_names_the_colour_of_every_dot() -> None:
    from facelake.reports.charts import HEAT, _legend, _step, cell_map

    for top in (1, 2, 5, 40, 1000, 10**6):
        legend = _legend(top)
        assert legend[0][1] == 1 and legend[-1][2] == top
        for n in {min(top, v) for v in (1, 2, 3, top // 3 or 1, top // 2 or 1, top - 1 or 1, top)}:
            assert [k for k, lo, hi in legend if lo <= n <= hi] == [_step(n, top)], (top, n)
    drawn = cell_map([(48.85, 2.35, 3, 40), (48.86, 2.36, 1, 1)], "map")
    assert drawn.count("<circle") == 2 and f"rgb{HEAT[-1]}" in drawn and "17–40 faces" in drawn


def test_a_group_or_a_face_goes_to_someone_enrolled(db: Target, cams: Path, samples: Path) -> None:
    """Naming a group with an enrolled person's name is refused ("already enrolled"); giving
    it to them works, and so does naming a single face with no group."""
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")  # a group needs three faces
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    settings = load_settings(db=db)
    token = create_token(settings, "admin", "owner")[1]
    with app_client(settings) as c:
        admin = auth(token)
        assert c.post("/api/clusters/refresh", headers=admin).json()["clusters"] == 1
        cid = c.get("/api/clusters", headers=admin).json()[0]["cluster_id"]
        joe = c.get("/api/people", headers=admin).json()[0]["person_id"]
        r = c.post(f"/api/clusters/{cid}/name", data={"name": "Joe", "consent": "x"}, headers=admin)
        assert r.status_code == 409 and "already enrolled" in r.text
        r = c.post(f"/api/clusters/{cid}/assign", data={"person_id": joe}, headers=admin)
        assert r.status_code == 200 and r.json() == {"person_id": joe, "name": "Joe"}
        named = c.get("/api/sightings", params={"person_id": joe}, headers=admin).json()["items"]
        assert len(named) == 3 and c.get("/api/clusters", headers=admin).json() == []  # (biden.jpg: his enrollment)
        # Take one back, then name that single face (no group now) as a new person.
        one = named[0]["sighting_id"]
        assert c.post(f"/api/sightings/{one}/unname", headers=admin).status_code == 200
        r = c.post(f"/api/sightings/{one}/name", data={"name": "Barack", "consent": "asked"}, headers=admin)
        assert r.status_code == 200, r.text
        assert c.get("/api/sightings", params={"person": "Barack"}, headers=admin).json()["items"][0][
            "sighting_id"] == one
        both = c.post(f"/api/sightings/{one}/name", data={"name": "X", "consent": "x", "person_id": joe},
                      headers=admin)
        assert both.status_code == 422 and "not both" in both.text
        json_body = c.post(f"/api/sightings/{one}/name", json={"person_id": joe}, headers=admin)
        assert json_body.status_code == 422 and "form fields" in json_body.text and "not both" not in json_body.text
        # The photo behind a face, with its box drawn, as a JPEG the browser must not keep.
        photo = c.get(f"/api/sightings/{one}/photo", headers=admin)
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert photo.headers["cache-control"] == "no-store"


def test_the_photo_behind_a_face_opens_a_file_whose_name_is_not_utf8(db: Target, tmp_path: Path, samples: Path) -> None:
    """The stored uri writes such a name readable (``caf\\xe9.jpg``), which opens no file: 404."""
    folder = tmp_path / "cams" / "door"
    folder.mkdir(parents=True)
    shutil.copy(samples / "biden.jpg", folder / os.fsdecode(b"caf\xe9.jpg"))
    assert cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")[0] == 0
    settings = load_settings(db=db)
    token = create_token(settings, "read", "viewer")[1]
    with app_client(settings) as c:
        face = c.get("/api/sightings", headers=auth(token)).json()["items"][0]
        assert face["uri"].endswith("caf\\xe9.jpg"), face["uri"]
        photo = c.get(f"/api/sightings/{face['sighting_id']}/photo", headers=auth(token))
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg", photo.text


@pytest.fixture
def served(db: Target, cams: Path, samples: Path) -> Iterator[tuple[str, str]]:
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
    gps_photo(samples / "obama_partial_face.jpg", cams / "garden" / "gps.jpg")
    token = cli(db, "tokens", "create", "--scope", "admin", "--name", "owner")[1].strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), "serve", "--port", str(port),
                             "--watch", str(cams), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not httpx.get(f"{base}/api/clusters", headers=auth(token),
                                                             timeout=5).json():
            time.sleep(0.3)
        yield base, token
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_owners_workflows_in_chromium(served: tuple[str, str], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    base, token = served
    outside: list[str] = []
    shots: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])

        def guard(route, request) -> None:  # type: ignore[no-untyped-def]
            if urlparse(request.url).hostname not in ("127.0.0.1", "localhost"):
                outside.append(request.url)
                route.abort()
            else:
                route.continue_()

        def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
            shots.append(name)

        # The CSP forbids eval, which Playwright's probes use: this context lifts it for them alone.
        for width in (390, 1100):  # the phone first: the workflows below change what there is to see
            page = browser.new_page(viewport={"width": width, "height": 844}, bypass_csp=True)
            page.route("**/*", guard)
            dialogs: list[str] = []
            answer = {"accept": True}

            def on_dialog(dialog, dialogs=dialogs, answer=answer) -> None:  # type: ignore[no-untyped-def]
                dialogs.append(dialog.message)
                dialog.accept() if answer["accept"] else dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(f"{base}/login")
            page.fill("#token", token)
            page.click("#login")
            page.wait_for_selector("#timeline figure.face")
            for path in ("/", "/people", "/clusters", "/activity"):
                page.goto(f"{base}{path}")
                page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
                wide = page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"{path} is {wide} px wide on a {width} px screen"
                who = page.locator("#who").bounding_box()
                assert who is not None and who["x"] >= 0 and who["x"] + who["width"] <= width, f"{path}: {who}"
                assert page.locator("#who").is_visible()
                shot(page, f"{path.strip('/') or 'timeline'}-{width}")
            if width == 390:
                page.goto(f"{base}/people")
                assert page.locator("#people img.thumb").count() >= 1, "a face per person on the people page"
                page.close()
                continue
            # The group of two Obama photos goes to the enrolled Joe (then is renamed Barack).
            page.goto(f"{base}/clusters")
            form = page.locator("form.assign-form").first
            form.locator("select").select_option(label="Joe")
            with page.expect_navigation():
                form.locator("button").click()
            assert page.locator("section.cluster").count() == 0
            page.goto(f"{base}/people")
            assert page.locator("#people img.thumb").count() == 1, "a face per person"
            with page.expect_navigation():
                page.click("#people a:text('Joe')")
            faces = page.locator("figure.face").count()
            assert faces >= 2
            page.locator("#rename input[name=name]").fill("Barack")
            with page.expect_navigation():
                page.click("#rename button")
            assert page.inner_text("#person-name") == "Barack"
            person_url = page.url
            shot(page, "person")
            # A face of his: the photo behind it with the box, then "not Barack" (asked first).
            with page.expect_navigation():
                page.locator("figure.face a").first.click()
            page.wait_for_function("document.getElementById('photo').naturalWidth > 0")
            shot(page, "sighting")
            with page.expect_navigation():
                page.click("#unname button")
            assert dialogs and "Not Barack" in dialogs[-1]
            assert page.inner_text("#who-title") == "unknown"
            # That face alone, in no group, becomes a new person.
            page.fill("#name-new input[name=name]", "Someone else")
            page.fill("#name-new input[name=consent]", "asked, test")
            with page.expect_navigation():
                page.click("#name-new button")
            assert page.inner_text("#who-title") == "Someone else"
            # Forget, asked first: a "cancel" keeps them, an "OK" erases them.
            with page.expect_navigation():
                page.click("#who-title a")
            answer["accept"] = False
            page.click("#forget button")
            page.wait_for_timeout(300)
            assert page.inner_text("#person-name") == "Someone else" and "cannot be undone" in dialogs[-1]
            answer["accept"] = True
            with page.expect_navigation():
                page.click("#forget button")
            assert page.url.endswith("/people") and "Someone else" not in page.inner_text("#people")
            page.goto(person_url)
            assert page.locator("figure.face").count() == faces - 1
            # A page that is not there is a page, not JSON.
            page.goto(f"{base}/people/424242")
            assert "no person with id 424242" in page.inner_text("#detail")
            shot(page, "404")
            page.close()
        # With the CSP in force: another site can neither frame the dashboard nor log the owner out.
        page = browser.new_page()
        page.route("**/*", guard)
        page.goto(f"{base}/login")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_url(f"{base}/")
        page.route("http://localhost:9/**", lambda route: route.fulfill(
            content_type="text/html", body=f'<iframe id="f" src="{base}/clusters"></iframe>'
            f'<form id="out" method="post" action="{base}/logout"></form>'))
        page.goto("http://localhost:9/attack")
        page.wait_for_timeout(500)
        framed = next((f for f in page.frames if f.url.startswith(base)), None)
        assert framed is None or "Unknown faces" not in framed.content(), "the dashboard rendered in a frame"
        with page.expect_navigation():
            page.evaluate("document.getElementById('out').submit()")
        assert "another site" in page.content(), "a cross-site logout is refused"
        page.goto(f"{base}/")
        assert page.url == f"{base}/", "still logged in"
        browser.close()
    for name in shots:
        not_blank(tmp_path / f"{name}.png")
    assert outside == [], f"pages tried to reach the internet: {outside}"
    keep = os.environ.get("FACELAKE_SCREENSHOTS")
    if keep:
        shutil.copytree(tmp_path, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.duckdb*", "cams"))


def test_timeline_pages_by_capture_time_across_gaps_of_years(tmp_path: Path) -> None:
    """Across stretches with no sighting (months, years), sightings at the same second and a
    camera or person filter, the timeline's keyset pages are full and give every sighting once,
    newest capture time first, as one sort of the whole table does."""
    import dataclasses
    from datetime import datetime, timedelta

    from facelake.store.base import ImageRecord

    from .test_postgres import _face

    now = datetime(2026, 11, 30, 12)
    times = ([now - timedelta(minutes=m) for m in range(0, 40, 4)]  # the last hour
             + [now - timedelta(days=700, seconds=s // 3) for s in range(30)]  # two years back, ties
             + [now - timedelta(days=1500 + 9 * d) for d in range(25)]  # further back, sparse
             + [datetime(2001, 1, 1)])  # one very old photo
    with DuckStore(tmp_path / "t.duckdb") as store:
        pid = store.people.add("Barack", "test")
        for n, taken in enumerate(times):
            image = ImageRecord(f"img-{n}", f"/cams/{n}.jpg", f"cam{n % 3}", "ok", taken_at=taken)
            store.write_image(image, [_face(pid if n % 2 else None), dataclasses.replace(_face(None), face_index=1)])
        every = store.query("SELECT sighting_id, seen_at, camera, person_id FROM sightings")[1]
        for name, value, at in (("camera", "cam1", 2), ("person", pid, 3), (None, None, 0)):
            want = [r for r in every if name is None or r[at] == value]
            for limit in (7, 25):
                shown, sizes, before = [], [], None
                while page := store.reports.timeline(**({name: value} if name else {}), before=before, limit=limit):
                    shown += [r.sighting_id for r in page]
                    sizes.append(len(page))
                    before = (page[-1].taken_at, page[-1].sighting_id)
                assert all(n == limit for n in sizes[:-1]), ("every page but the last is full", name, sizes)
                assert shown == [r[0] for r in sorted(want, key=lambda r: (r[1], r[0]), reverse=True)], (name, limit)
