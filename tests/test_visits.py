"""Visits: tracks of one person (or cluster) on one camera, closer than ``visit_gap_s``, on both engines.

Two levels (STYLE.md 9). Real clips encoded by the tests (tests/videoclips.py), whose capture
times are set through the container's ``creation_time``, go through ingest, and the visits come
out of the CLI, the API, the dashboard and the report. Track rows written by hand, whose
answer is known by construction, pin the grouping rules the clips cannot reach cheaply
(overlap, a long track swallowing short ones, unknown faces, erased people, ``since``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from facelake import load_settings, visits
from facelake.api.app import create_app
from facelake.cli import app
from facelake.reports.views import duration_text, visits_text
from facelake.service import create_token
from facelake.store import open_store
from facelake.store.base import Target
from facelake.store.duck import DuckStore
from facelake.store.visits import VisitTotal

from .dbs import execute, rows
from .test_ingest import cli
from .test_video_ingest import clip, walker
from .web import app_client

runner = CliRunner()


def run(db: Target, *args: str, gap: float | None = None) -> tuple[int, str]:
    env = {"FACELAKE_VISIT_GAP_S": str(gap)} if gap is not None else {}
    result = runner.invoke(app, ["--db", str(db), *args], env={"COLUMNS": "200", **env}, catch_exceptions=False)
    return result.exit_code, result.output


def listed(db: Target, *args: str, gap: float | None = None) -> list[dict[str, object]]:
    code, output = run(db, "visits", "--json", *args, gap=gap)
    assert code == 0, output
    return json.loads(output)  # type: ignore[no-any-return]


@pytest.fixture
def recorded(db: Target, tmp_path: Path, samples: Path) -> Target:
    """Barack enrolled; the door camera sees him in two clips a minute apart, the yard camera
    once in between (each clip: him walking across for 3 s)."""
    code, output = cli(db, "people", "add", "Barack", str(samples / "obama.jpg"), "--consent", "asked")
    assert code == 0, output
    cams = tmp_path / "cams"
    clip(cams / "door" / "a.mp4", [walker("obama.jpg")], creation_time="2024-05-01T10:00:00Z")
    clip(cams / "door" / "b.mp4", [walker("obama.jpg")], creation_time="2024-05-01T10:01:00Z")
    clip(cams / "yard" / "c.mp4", [walker("obama.jpg")], creation_time="2024-05-01T10:00:30Z")
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    person = rows(db, "SELECT person_id FROM people WHERE name = 'Barack'")[0][0]
    tracks = rows(db, "SELECT camera, person_id FROM tracks ORDER BY started_at")
    assert tracks == [("door", person), ("yard", person), ("door", person)], "one named track per clip"
    return db


def test_clips_a_minute_apart_on_one_camera_are_one_visit(recorded: Target) -> None:
    db = recorded
    found = listed(db)
    assert [(v["camera"], v["person"], v["tracks"]) for v in found] == [("yard", "Barack", 1), ("door", "Barack", 2)]
    door = found[1]
    assert str(door["started_at"]).startswith("2024-05-01T10:00:0") and str(door["ended_at"]).startswith(
        "2024-05-01T10:01:0"), door
    assert 60 <= float(door["seconds"]) <= 63  # from the first clip's first face to the second's last
    best = rows(db, "SELECT best_sighting_id FROM tracks WHERE camera = 'door'")
    assert door["best_sighting_id"] in {b[0] for b in best}
    # A gap shorter than the minute between the clips: two visits at the door.
    split = listed(db, gap=30)
    assert [(v["camera"], v["tracks"]) for v in split] == [("door", 1), ("yard", 1), ("door", 1)]
    assert [(v.camera, v.tracks) for v in visits(load_settings(db=db, visit_gap_s=30))] == [
        ("door", 1), ("yard", 1), ("door", 1)]
    # Filters.
    assert [v["camera"] for v in listed(db, "--camera", "yard")] == ["yard"]
    assert [v["tracks"] for v in listed(db, "--person", "Barack", "--camera", "door")] == [2]
    assert [v["tracks"] for v in listed(db, "--since", "2024-05-01T10:00:45", gap=30)] == [1], \
        "only the door's second visit goes on after 10:00:45"
    assert listed(db, "--since", "2024-05-02") == []


def test_visits_command_prints_a_table_and_fails_on_an_unknown_person(recorded: Target) -> None:
    code, output = run(recorded, "visits")
    assert code == 0, output
    assert "2 visits" in output
    for header in ("person", "camera", "start", "end", "duration", "tracks", "best sighting"):
        assert header in output, header
    lines = [line for line in output.splitlines() if "Barack" in line]
    assert len(lines) == 2 and "door" in lines[1] and "2024-05-01 10:00:0" in lines[1] and "1 min" in lines[1]
    assert "yard" in lines[0] and " s " in lines[0]
    code, output = run(recorded, "visits", "--person", "Nobody")
    assert code != 0 and "no enrolled person called 'Nobody'" in output
    assert run(recorded, "visits", "--since", "soon")[0] == 2


@pytest.fixture
def client(recorded: Target) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = load_settings(db=recorded)
    token = create_token(settings, "read", "reader")[1]
    with app_client(settings) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_api_lists_visits_and_tracks_and_the_dashboard_shows_them(client: tuple[TestClient, dict[str, str]]) -> None:
    c, read = client
    assert c.get("/api/visits").status_code == 401
    body = c.get("/api/visits", headers=read).json()
    assert body["gap_s"] == 300.0
    assert [(v["camera"], v["who"], v["tracks"]) for v in body["items"]] == [("yard", "Barack", 1), ("door", "Barack", 2)]
    crop = c.get(body["items"][1]["crop_url"], headers=read)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert [v["camera"] for v in c.get("/api/visits", params={"camera": "door"}, headers=read).json()["items"]] == [
        "door"]
    assert c.get("/api/visits", params={"person": "Nobody"}, headers=read).status_code == 404
    tracks = c.get("/api/tracks", headers=read).json()["items"]
    assert [t["camera"] for t in tracks] == ["door", "yard", "door"]
    for t in tracks:
        assert t["person"] == "Barack" and 1 <= len(t["crops"]) <= 3 and t["start_s"] < t["end_s"]
        assert t["crops"][0] == f"/api/sightings/{t['best_sighting_id']}/crop", "the best face leads the strip"
    # The dashboard: the timeline's track strips, the visits on the person's page, the people's totals.
    c.post("/login", data={"token": read["Authorization"].split()[1]})
    page = c.get("/").text
    assert page.count('class="track"') == 3
    for t in tracks:
        assert all(f'src="{u}"' in page for u in t["crops"])
    barack = next(p["person_id"] for p in c.get("/api/people", headers=read).json() if p["name"] == "Barack")
    person = c.get(f"/people/{barack}").text
    assert "Barack: 2 visits, 1 min in all" in person
    assert person.count("<tr>") == 3, "a header and two visits"
    assert "2 visits, 1 min in all" in c.get("/people").text
    # A clip's face: its page shows its track's still (a clip is no photo: /photo is a 404 there).
    t = next(t for t in tracks if len(t["crops"]) > 1)
    other = int(t["crops"][-1].split("/")[3])
    for sid in (t["best_sighting_id"], other):
        face = c.get(f"/sightings/{sid}").text
        assert f'src="/api/tracks/{t["track_id"]}/still"' in face and f"/api/sightings/{sid}/photo" not in face, face
        assert ("this face's frame" in face) == (sid == t["best_sighting_id"]), face
    still = c.get(f"/api/tracks/{t['track_id']}/still", headers=read)
    assert still.status_code == 200 and still.headers["content-type"] == "image/jpeg"


def test_report_counts_visits(recorded: Target, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, output = cli(recorded, "report", "--out", str(out))
    assert code == 0, output
    html = out.read_text()
    assert "Barack: 2 visits, 1 min in all" in html
    assert "<h2>Visits</h2>" in html and html.count('class="thumb"') == 2
    code, output = cli(recorded, "report", "--out", str(out), "--camera", "yard")
    assert code == 0, output
    assert re.search(r"Barack: 1 visit, [1-3] s in all", out.read_text())


def test_pages_without_tracks_show_photos_only(db: Target, cams: Path, tmp_path: Path) -> None:
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert listed(db) == []
    code, output = run(db, "visits")
    assert code == 0 and "0 visits" in output
    out = tmp_path / "report.html"
    assert cli(db, "report", "--out", str(out))[0] == 0
    assert "<h2>Visits</h2>" not in out.read_text()
    settings = load_settings(db=db)
    token = create_token(settings, "read", "reader")[1]
    with app_client(settings) as c:
        c.post("/login", data={"token": token})
        page = c.get("/")
        assert page.status_code == 200 and "Tracks" not in page.text and page.text.count('class="face"') == 3
        assert c.get("/people").status_code == 200
        assert c.get("/api/visits", headers={"Authorization": f"Bearer {token}"}).json()["items"] == []


# --- the grouping rules, on track rows written by hand ---

T0 = datetime(2024, 5, 1, 10, 0, 0)


def track(db: Target, n: int, camera: str, start: float, end: float, person: int | None = None,
          cluster: int | None = None, best: int | None = None) -> None:
    execute(db, """INSERT INTO tracks (image_id, track_index, camera, started_at, ended_at, start_s, end_s, frames,
                       person_id, cluster_id, best_sighting_id, model)
                   VALUES (?, 0, ?, ?, ?, 0, ?, 5, ?, ?, ?, 'test')""",
            [f"clip{n}", camera, T0 + timedelta(seconds=start), T0 + timedelta(seconds=end), end - start, person,
             cluster, best])


def face(db: Target, sighting: int, quality: float, person: int | None = None, cluster: int | None = None) -> None:
    execute(db, """INSERT INTO sightings (sighting_id, image_id, face_index, box, landmarks, det_score, quality,
                       model, person_id, cluster_id)
                   VALUES (?, ?, 0, ?, ?, 0.9, ?, 'test', ?, ?)""",
            [sighting, f"face{sighting}", [0.0, 0.0, 1.0, 1.0], [[0.0, 0.0] for _ in range(5)], quality, person, cluster])


def person(db: Target, name: str) -> int:
    execute(db, "INSERT INTO people (name, consent_note, created_at) VALUES (?, 'asked', ?)", [name, T0])
    return int(rows(db, "SELECT person_id FROM people WHERE name = ?", [name])[0][0])


def spans(db: Target, gap: float, **filters: object) -> list[tuple[object, ...]]:
    with open_store(db, read_only=True) as store:
        found = store.visits.listing(gap, **filters)  # type: ignore[arg-type]
    return sorted((v.person or (f"#{v.cluster_id}" if v.cluster_id is not None else "-"), v.camera, (v.started_at - T0).total_seconds(),
                   (v.ended_at - T0).total_seconds(), v.tracks, v.best_sighting_id) for v in found)


def test_grouping_rules_on_both_engines(db: Target) -> None:
    alice, bob = person(db, "Alice"), person(db, "Bob")
    track(db, 1, "door", 0, 10, alice)
    track(db, 2, "door", 70, 80, alice)      # 60 s after the first ended
    track(db, 3, "door", 1000, 1010, alice)  # much later: another visit
    track(db, 4, "yard", 5, 9, alice)        # another camera: another visit
    track(db, 5, "door", 20, 25, bob)        # someone else, in between
    track(db, 6, "door", 0, 300, None, 7)    # a long track of cluster 7 swallows a short one
    track(db, 7, "door", 50, 60, None, 7)
    track(db, 8, "door", 320, 330, None, 7)  # 20 s after the long one ended, though 260 s after the short one
    track(db, 9, "door", 1, 2)               # nobody known: a visit each, even side by side
    track(db, 10, "door", 3, 4)
    assert spans(db, 300) == sorted([
        ("Alice", "door", 0, 80, 2, None), ("Alice", "door", 1000, 1010, 1, None), ("Alice", "yard", 5, 9, 1, None),
        ("Bob", "door", 20, 25, 1, None), ("#7", "door", 0, 330, 3, None),
        ("-", "door", 1, 2, 1, None), ("-", "door", 3, 4, 1, None)])
    assert spans(db, 59) == sorted([
        ("Alice", "door", 0, 10, 1, None), ("Alice", "door", 70, 80, 1, None), ("Alice", "door", 1000, 1010, 1, None),
        ("Alice", "yard", 5, 9, 1, None), ("Bob", "door", 20, 25, 1, None), ("#7", "door", 0, 330, 3, None),
        ("-", "door", 1, 2, 1, None), ("-", "door", 3, 4, 1, None)])
    assert spans(db, 19, cluster=7) == [("#7", "door", 0, 300, 2, None), ("#7", "door", 320, 330, 1, None)]
    # Filters: person (by id), camera, cluster; since keeps a visit going on at or after it whole.
    assert spans(db, 300, person=alice, camera="door") == [("Alice", "door", 0, 80, 2, None),
                                                              ("Alice", "door", 1000, 1010, 1, None)]
    assert spans(db, 300, person=bob) == [("Bob", "door", 20, 25, 1, None)]
    assert spans(db, 300, cluster=7) == [("#7", "door", 0, 330, 3, None)]
    assert spans(db, 300, person=alice, since=T0 + timedelta(seconds=75)) == [
        ("Alice", "door", 0, 80, 2, None), ("Alice", "door", 1000, 1010, 1, None)]
    with open_store(db, read_only=True) as store:
        totals = store.visits.totals(300)
    assert totals == [VisitTotal(alice, "Alice", 3, 80 + 10 + 4, 4), VisitTotal(bob, "Bob", 1, 5, 1)]
    assert visits_text(totals[0]) == "Alice: 3 visits, 2 min in all"


def test_who_a_track_is_falls_back_to_its_best_face(db: Target) -> None:
    """Faces named after the clip was stored (``identify``) or grouped later (clustering works on
    sightings) name the track through its best face; an erased person names nothing."""
    alice = person(db, "Alice")
    face(db, 1, 0.9, person=alice)
    face(db, 2, 0.8, cluster=4)
    face(db, 3, 0.7, cluster=4)
    face(db, 4, 0.95)
    track(db, 1, "door", 0, 10, best=1)
    track(db, 2, "door", 0, 10, best=2)
    track(db, 3, "door", 30, 40, best=3)
    track(db, 4, "door", 0, 10, person=9999, best=4)  # a person erased since
    assert spans(db, 300) == sorted([("Alice", "door", 0, 10, 1, 1), ("#4", "door", 0, 40, 2, 2),
                                     ("-", "door", 0, 10, 1, 4)])


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (0, 3.4, 59, 61, 14 * 60 + 10, 2 * 3600 + 5 * 60)] == [
        "0 s", "3 s", "59 s", "1 min", "14 min", "2 h 05 min"]


@pytest.mark.parametrize("engine", ["duckdb"])
def test_dashboard_pages_fit_a_phone(recorded: Target, tmp_path: Path) -> None:
    """At 390 px (a phone held upright) nothing scrolls sideways: the track strips, the visits
    table and the navigation wrap or scroll inside themselves."""
    import signal
    import subprocess
    import sys

    from .servers import free_port, wait_healthy
    from .test_browser import CHROMIUM, not_blank

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    token = create_token(load_settings(db=recorded), "read", "phone")[1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(recorded), "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 390, "height": 844}, bypass_csp=True)  # for the probes
            page.goto(f"{base}/login")
            page.fill("#token", token)
            page.click("#login")
            page.wait_for_selector("#tracks article.track")
            barack = httpx.get(f"{base}/api/people", headers={"Authorization": f"Bearer {token}"}).json()[0]["person_id"]
            for path, shot in (("/", "timeline"), ("/people", "people"), (f"/people/{barack}", "person")):
                page.goto(f"{base}{path}")
                page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
                wide = page.evaluate("document.documentElement.scrollWidth")
                assert wide <= 390, f"{path} is {wide} px wide on a 390 px screen"
                page.screenshot(path=str(tmp_path / f"{shot}.png"), full_page=True)
            assert page.locator("#visits tr").count() == 3
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    for shot in ("timeline", "people", "person"):
        not_blank(tmp_path / f"{shot}.png")


def test_visits_page_by_keyset_with_ties(db: Target) -> None:
    """Pages of visits, each ``before`` the last of the one before, give every visit once and in
    order, also where two visits start at the same second (the track id breaks the tie)."""
    alice = person(db, "Alice")
    for n in range(7):
        track(db, n, "door", n * 1000, n * 1000 + 10, alice)
    track(db, 7, "yard", 3000, 3005, alice)  # starts with the door's fourth visit
    with open_store(db, read_only=True) as store:
        whole = store.visits.listing(300, person=alice)
        paged, before = [], None
        for _ in range(10):
            page = store.visits.listing(300, person=alice, limit=3, before=before)
            paged += page
            if len(page) < 3:
                break
            before = (page[-1].started_at, page[-1].first_track_id)
    assert len(whole) == 8 and paged == whole


def test_api_and_person_page_page_the_visits(db: Target) -> None:
    """``/api/visits`` hands out a ``next`` cursor, and a person's page links to their older visits:
    both listed the first 500 (200 on the page) and stopped."""
    alice = person(db, "Alice")
    for n in range(53):
        track(db, n, "door", n * 1000, n * 1000 + 10, alice)
    settings = load_settings(db=db)
    token = create_token(settings, "read", "reader")[1]
    read = {"Authorization": f"Bearer {token}"}
    DuckStore.shared = not str(db).startswith("postgresql")
    try:
        with TestClient(create_app(settings)) as c:
            seen: list[str] = []
            params: dict[str, object] = {"person_id": alice, "limit": 20}
            for _ in range(5):
                body = c.get("/api/visits", params=params, headers=read).json()
                seen += [v["started_at"] for v in body["items"]]
                if body["next"] is None:
                    break
                params.update(body["next"])
            assert len(seen) == 53 and seen == sorted(seen, reverse=True) and len(set(seen)) == 53
            full = c.get("/api/visits", params={"person_id": alice, "limit": 53}, headers=read).json()
            assert len(full["items"]) == 53 and full["next"] is None, "an exactly full last page has no next"
            assert c.get("/api/visits", params={"before": "2024-05-01T10:00:00"}, headers=read).status_code == 422
            c.post("/login", data={"token": token})
            first = c.get(f"/people/{alice}").text
            assert first.count("<tr>") == 1 + 50, "a header and a page of visits"
            link = re.search(r'href="([^"]+)" id="older-visits"', first)
            assert link is not None
            second = c.get(link.group(1).replace("&amp;", "&")).text
            assert second.count("<tr>") == 1 + 3 and 'id="older-visits"' not in second
    finally:
        DuckStore.shared = False


def test_a_clip_face_whose_still_was_erased_shows_its_crop_not_a_broken_picture(
        client: tuple[TestClient, dict[str, str]], recorded: Target) -> None:
    c, read = client
    execute(recorded, "UPDATE tracks SET still = NULL")  # what forget, purge and "not a face" leave
    sid = rows(recorded, "SELECT min(sighting_id) FROM sightings WHERE track_id IS NOT NULL")[0][0]
    c.post("/login", data={"token": read["Authorization"].split()[1]})
    face = c.get(f"/sightings/{sid}").text
    assert "/still" not in face and f"/api/sightings/{sid}/photo" not in face, face
    assert f'src="/api/sightings/{sid}/crop"' in face and "its track's still was erased" in face, face
