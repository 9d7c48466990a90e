"""The HTTP API through the real app (TestClient) on real photos: flows, the auth matrix,
hostile uploads, CSRF; and `facelake serve --watch` as a real process."""

from __future__ import annotations

import importlib
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facelake import load_settings
from facelake.service import create_token, revoke_token
from facelake.store.base import Target

from .dbs import rows
from .servers import free_port, wait_healthy
from .test_ingest import cli
from .web import app_client


@pytest.fixture
def site(db: Target, cams: Path) -> Iterator[tuple[TestClient, dict[str, str], Target]]:
    """An app over a database holding the sample cameras, and tokens of every kind."""
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    settings = load_settings(db=db, max_file_mb=20)
    tokens = {scope: create_token(settings, scope, scope)[1] for scope in ("read", "admin")}
    tokens["revoked"] = create_token(settings, "admin", "old")[1]
    revoke_token(settings, "old")
    with app_client(settings) as client:
        yield client, tokens, db


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jpeg(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


ENDPOINTS = [  # method, path, scope needed
    ("GET", "/api/stats", "read"), ("GET", "/api/sightings", "read"), ("GET", "/api/sightings/1/crop", "read"),
    ("GET", "/api/people", "read"), ("GET", "/api/clusters", "read"), ("GET", "/api/visits", "read"),
    ("GET", "/api/tracks", "read"), ("GET", "/api/tracks/1/still", "read"), ("POST", "/api/recognize", "read"),
    ("POST", "/api/search", "read"), ("POST", "/api/people", "admin"), ("PATCH", "/api/people/9999", "admin"),
    ("DELETE", "/api/people/9999", "admin"), ("POST", "/api/clusters/refresh", "admin"),
    ("POST", "/api/clusters/1/name", "admin"), ("POST", "/api/clusters/1/merge", "admin"),
    ("POST", "/api/clusters/1/split", "admin"), ("POST", "/api/clusters/1/dismiss", "admin"),
    ("POST", "/api/sightings/1/unname", "admin"), ("POST", "/api/sightings/1/name", "admin"),
    ("GET", "/api/sightings/1/photo", "read"), ("POST", "/api/clusters/1/assign", "admin"), ("POST", "/api/recognize?store=true", "admin"),
    ("GET", "/api/tokens", "admin"), ("DELETE", "/api/tokens/9999", "admin"),
    ("GET", "/", "page"), ("GET", "/people", "page"), ("GET", "/clusters", "page"), ("GET", "/activity", "page"),
]


def test_every_api_route_is_in_the_scope_table() -> None:
    """A new route cannot skip the token test below: every /api route of the app is listed there."""
    import re

    from fastapi.routing import APIRoute

    from facelake.api.routes import ROUTERS

    listed = {(m, re.sub(r"/\d+|/x(?=/|$)", "/{}", p.split("?")[0])) for m, p, _ in ENDPOINTS}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path.startswith("/api/") and route.path != "/api/health":
                path = re.sub(r"\{[^}]+\}", "{}", route.path)
                for method in route.methods:
                    assert (method, path) in listed, f"{method} {route.path} is missing from ENDPOINTS"


def test_every_endpoint_needs_a_token_and_the_right_scope(site: tuple[TestClient, dict[str, str], Target],
                                                          samples: Path) -> None:
    client, tokens, _ = site
    photo = {"photo": jpeg(samples / "obama.jpg")}
    for method, path, need in ENDPOINTS:
        files = photo if path.startswith(("/api/recognize", "/api/search")) else None
        for who in (None, "revoked", "read", "admin"):
            r = client.request(method, path, headers=auth(tokens[who]) if who else {}, files=files,
                               follow_redirects=False)
            where = f"{method} {path} as {who}: {r.status_code} {r.text[:120]}"
            if need == "page":
                assert (r.status_code == 303) == (who in (None, "revoked")), where
            elif who in (None, "revoked"):
                assert r.status_code == 401, where
            elif who == "read" and need == "admin":
                assert r.status_code == 403, where
            else:
                assert r.status_code not in (401, 403, 500), where
    for open_path in ("/api/health", "/login", "/docs", "/openapi.json", "/static/app.js"):
        assert client.get(open_path).status_code == 200, open_path


def test_an_admin_revokes_a_leaked_token_while_serve_owns_the_database(
        site: tuple[TestClient, dict[str, str], Target]) -> None:
    """``facelake tokens revoke`` is refused while serve holds a DuckDB file: the API revokes it
    at once, by id (a token named like another's id cannot be hit instead)."""
    client, tokens, db = site
    admin, read = auth(tokens["admin"]), auth(tokens["read"])
    listed = client.get("/api/tokens", headers=admin).json()
    assert {t["name"] for t in listed} == {"read", "admin", "old"} and not any("hash" in k for t in listed for k in t)
    assert client.get("/api/sightings", headers=read).status_code == 200
    reader = next(t for t in listed if t["name"] == "read")
    revoked = client.delete(f"/api/tokens/{reader['token_id']}", headers=admin).json()
    assert revoked["name"] == "read" and revoked["revoked_at"] is not None
    assert client.get("/api/sightings", headers=read).status_code == 401, "revoked from the next request on"
    assert client.delete("/api/tokens/9999", headers=admin).status_code == 404
    assert rows(db, "SELECT actor FROM audit WHERE action = 'revoke_token' AND subject = 'token:read'") == [("token:admin",)]


def test_recognize_enroll_cluster_search_forget(site: tuple[TestClient, dict[str, str], Target], samples: Path) -> None:
    client, tokens, db = site
    admin, read = auth(tokens["admin"]), auth(tokens["read"])
    # Nobody enrolled: three Obama photos (the cameras' two and a phone's mirrored one; a group needs
    # three faces of evidence) form an unknown cluster; naming it names past sightings.
    mirrored = io.BytesIO()
    Image.open(samples / "obama.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored, "JPEG", quality=95)
    assert client.post("/api/recognize?store=true&camera=phone", headers=admin,
                       files={"photo": ("m.jpg", mirrored.getvalue(), "image/jpeg")}).json()["stored"]
    assert client.post("/api/clusters/refresh", headers=admin).json()["clusters"] == 1
    clusters = client.get("/api/clusters", headers=read).json()
    assert len(clusters) == 1 and clusters[0]["faces"] == 3 and len(clusters[0]["crops"]) == 3
    cid = clusters[0]["cluster_id"]
    r = client.post(f"/api/clusters/{cid}/name", headers=admin, data={"name": "Barack", "consent": "public figure"})
    assert r.status_code == 200, r.text
    named = client.get("/api/sightings", params={"person": "Barack"}, headers=read).json()["items"]
    assert len(named) == 3 and all(s["person"] == "Barack" for s in named)
    crop = client.get(named[0]["crop_url"], headers=read)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    Image.open(io.BytesIO(crop.content)).verify()
    # Recognise without storing, then with.
    before = rows(db, "SELECT count(*) FROM images")
    faces = client.post("/api/recognize", headers=read, files={"photo": jpeg(samples / "obama3.jpg")}).json()["faces"]
    assert [f["person"] for f in faces] == ["Barack"] and rows(db, "SELECT count(*) FROM images") == before
    # The scores say how sure a name is, and why a face stayed unknown (a stranger: under what it needed).
    assert faces[0]["best_score"] == faces[0]["match_score"] >= faces[0]["required_score"] > 0
    stranger = client.post("/api/recognize", headers=read, files={"photo": jpeg(samples / "biden.jpg")}).json()["faces"]
    assert stranger[0]["person"] is None and stranger[0]["match_score"] is None
    assert stranger[0]["best_score"] < stranger[0]["required_score"] and stranger[0]["recognisability"] > 0.5
    stored = client.post("/api/recognize?store=true&camera=phone", headers=admin,
                         files={"photo": jpeg(samples / "obama3.jpg")}).json()
    assert stored["stored"] and stored["faces"][0]["sighting_id"] is not None
    # The API stores through the same image line as ingest: named, with the face's context
    # (so `reembed` can redo it), and the same audit row as a named ingested face.
    sid = stored["faces"][0]["sighting_id"]
    assert stored["faces"][0]["person"] == "Barack"
    assert rows(db, f"SELECT count(*) FROM face_contexts WHERE sighting_id = {sid}") == [(1,)]
    assert rows(db, f"SELECT count(*) FROM audit WHERE action = 'identify' AND subject LIKE 'sighting:{sid} %'") == [(1,)]
    # Enroll through the API; Joe's earlier sighting gets his name.
    r = client.post("/api/people", headers=admin, data={"name": "Joe", "consent": "asked"},
                    files=[("photos", jpeg(samples / "biden.jpg"))])
    assert r.status_code == 201, r.text
    joe = r.json()["person_id"]
    assert [s["person"] for s in client.get("/api/sightings", params={"person": "Joe"}, headers=read).json()["items"]] \
        == ["Joe"]
    hits = client.post("/api/search?top=3", headers=read, files={"photo": jpeg(samples / "obama2.jpg")}).json()["hits"]
    assert hits[0]["person"] == "Barack" and hits[0]["score"] > 0.99
    # Pagination: a cursor walks every sighting once.
    seen, cursor = [], None
    while True:
        page = client.get("/api/sightings", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=read).json()
        seen += [s["sighting_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert client.delete(f"/api/people/{joe}", headers=admin).status_code == 200
    assert [p["name"] for p in client.get("/api/people", headers=read).json()] == ["Barack"]
    audit = rows(db, "SELECT actor, action FROM audit WHERE actor LIKE 'token:%'")
    assert {("token:admin", "forget"), ("token:read", "search"), ("token:admin", "add_person")} <= set(audit)


def test_hostile_uploads_get_4xx_and_store_nothing(site: tuple[TestClient, dict[str, str], Target],
                                                  samples: Path, tmp_path: Path) -> None:
    client, tokens, db = site
    admin = auth(tokens["admin"])
    before = rows(db, "SELECT count(*) FROM images"), rows(db, "SELECT count(*) FROM sightings")
    good = (samples / "obama.jpg").read_bytes()
    bomb = io.BytesIO()
    Image.new("L", (12000, 12000)).save(bomb, "PNG")  # 144 MP of zeros, ~140 kB on disk
    cases = {
        "truncated": (good[: len(good) // 3], 422),
        "text": (b"this is not a picture\n" * 40, 422),
        "empty": (b"", 422),
        "bomb": (bomb.getvalue(), 413),
        "50 MB": (np.random.default_rng(0).bytes(50_000_000), 413),
    }
    for name, (data, status) in cases.items():
        for path in ("/api/recognize?store=true", "/api/search"):
            r = client.post(path, headers=admin, files={"photo": (f"{name}.jpg", data, "image/jpeg")})
            assert r.status_code == status, (name, path, r.status_code, r.text[:200])
            assert "detail" in r.json()
        r = client.post("/api/people", headers=admin, data={"name": name, "consent": "x"},
                        files=[("photos", (f"{name}.jpg", data, "image/jpeg"))])
        assert r.status_code == status, (name, "enroll", r.status_code)
    assert (rows(db, "SELECT count(*) FROM images"), rows(db, "SELECT count(*) FROM sightings")) == before
    assert rows(db, "SELECT count(*) FROM people") == [(0,)]


def test_dashboard_session_needs_csrf_for_changes(site: tuple[TestClient, dict[str, str], Target]) -> None:
    client, tokens, _ = site
    assert client.post("/login", data={"token": "fl_wrong"}, follow_redirects=False).status_code == 401
    r = client.post("/login", data={"token": tokens["admin"]}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = client.get("/")
    assert page.status_code == 200 and "Timeline" in page.text
    csrf = page.text.split('data-csrf="')[1].split('"')[0]
    assert client.post("/api/clusters/refresh").status_code == 403, "a session post without the CSRF token"
    assert client.post("/api/clusters/refresh", data={"csrf": "forged"}).status_code == 403
    assert client.post("/api/clusters/refresh", data={"csrf": csrf}).status_code == 200
    for path in ("/people", "/clusters", "/activity"):
        assert client.get(path).status_code == 200, path
    assert client.post("/logout", follow_redirects=False).status_code == 403, "logout needs the CSRF token too"
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_stopped_server_waits_for_a_stalled_upload_only_so_long(tmp_path: Path, samples: Path) -> None:
    """SIGTERM during an upload that stalls (a client that sends part of its photo and waits): the
    server kept running without a word, its database held, until it was killed."""
    from facelake.api.serve import SHUTDOWN_GRACE_S

    db = tmp_path / "f.duckdb"
    token = cli(db, "tokens", "create", "--scope", "read", "--name", "slow")[1].strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + (samples / "obama.jpg").read_bytes() + b"\r\n--b0undary--\r\n")
    head = (f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        with socket.create_connection(("127.0.0.1", port), timeout=60) as stalled:
            stalled.sendall(head + body[:1000])  # the rest never comes
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            out, _ = proc.communicate(timeout=SHUTDOWN_GRACE_S + 20)
            waited = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and waited < SHUTDOWN_GRACE_S + 15, (proc.returncode, waited, out)
    assert not Path(f"{db}.serve.json").exists(), "the note that the server holds the file is gone"
    assert cli(db, "stats")[0] == 0, "the file is free again"
    assert "Traceback" not in out and "timeout graceful shutdown exceeded" in out, out


def test_a_stopping_server_lets_a_dropped_request_finish_its_write(tmp_path: Path) -> None:
    """After the grace uvicorn drops a request, but its thread goes on writing: serve waits for the
    stores such threads hold (``wait_for_others``) before it lets go of the file, so a naming
    asked for just before the stop is whole, not lost with the process."""
    from facelake.store import open_store
    from facelake.store.duck import wait_for_others

    db = tmp_path / "f.duckdb"
    holder = open_store(db)
    try:
        started = threading.Event()

        def slow_write() -> None:
            with open_store(db) as store:
                started.set()
                time.sleep(1.0)
                store.tokens.create("read", "late", "test")

        worker = threading.Thread(target=slow_write)
        worker.start()
        assert started.wait(10)
        assert wait_for_others(db, 0.1) == 1, "the request's store is still open"
        begun = time.monotonic()
        assert wait_for_others(db, 30) == 0
        assert time.monotonic() - begun < 20
        worker.join()
        assert [t.name for t in holder.tokens.listing()] == ["late"], "the write was finished, not dropped"
    finally:
        holder.close()


def test_serve_watches_answers_while_ingesting_and_tells_the_cli(
    db: Target, engine: str, tmp_path: Path, samples: Path
) -> None:
    cams = tmp_path / "cams" / "door"
    cams.mkdir(parents=True)
    code, output = cli(db, "tokens", "create", "--scope", "read", "--name", "watcher")
    token = output.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facelake.cli", "--db", str(db), "serve", "--port", str(port),
                             "--watch", str(tmp_path / "cams"), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        shutil.copy(samples / "obama.jpg", cams / "a.jpg")
        start, items = time.monotonic(), []
        while time.monotonic() - start < 20 and not items:
            items = httpx.get(f"{base}/api/sightings", headers=auth(token), timeout=5).json()["items"]
            time.sleep(0.3)
        assert items and items[0]["camera"] == "door", "the dropped file appears in the API"
        assert time.monotonic() - start < 15
        code, output = cli(db, "stats")
        if engine == "duckdb":  # one process may hold a DuckDB file: the CLI says where the data is
            assert code == 4 and "held by `facelake serve`" in output and base in output
        else:  # a server database takes every process at once
            assert code == 0 and "door" in output, output
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert not Path(f"{db}.serve.json").exists()
    assert rows(db, "SELECT count(*) FROM images") == [(1,)]
    assert json.loads(json.dumps(items))[0]["person"] is None


def test_report_is_one_self_contained_file(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    from .test_cloud import gps_photo

    gps_photo(samples / "obama_partial_face.jpg", cams / "garden" / "gps.jpg")
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    out = tmp_path / "report.html"
    code, output = cli(db, "report", "--out", str(out))
    assert code == 0 and "4 sightings" in output, output
    html = out.read_text()
    assert "<script" not in html and "<link" not in html and 'src="http' not in html
    assert html.count("<svg") == 3 and html.count("data:image/jpeg;base64,") == 4
    assert "Barack" in html and "48.8" in html  # the person table and the GPS point (48°51'24"N)
    code, output = cli(db, "report", "--out", str(out), "--since", "1d", "--camera", "garden", "--no-faces")
    assert code == 0 and "0 sightings" in output and "data:image" not in out.read_text()
    assert cli(db, "report", "--out", str(out), "--since", "soon")[0] == 2
    png = tmp_path / "summary.png"
    code, output = cli(db, "report", "--format", "png", "--out", str(png))
    assert code == 0 and "4 sightings" in output
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    assert pixels.shape == (560, 900) and pixels.std() > 10


def test_map_draws_offline_and_over_a_configured_tile_server() -> None:
    from facelake.reports.charts import gps_map, tiled_map

    points = [(48.8566, 2.3522, "door"), (48.8570, 2.3530, "gate")]
    plain = gps_map(points, "map")
    assert plain.count("<circle") == 2 and "<image" not in plain and "http" not in plain.replace(
        "http://www.w3.org/2000/svg", "")
    tiled = tiled_map(points, "map", "http://127.0.0.1:8080/{z}/{x}/{y}.png")
    assert tiled.count("<circle") == 2 and 'href="http://127.0.0.1:8080/' in tiled
    z = int(tiled.split('href="http://127.0.0.1:8080/')[1].split("/")[0])
    assert 14 <= z <= 18, "two points 80 m apart are drawn at street level"


def test_search_never_rebuilds_the_index_inside_a_request(site: tuple[TestClient, dict[str, str], Target],
                                                          samples: Path, engine: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost or stale index is caught up in the background: the request answers at once (at a million
    faces the rebuild took 208 s inside the first search) and says how many faces it could not search."""
    from facelake.identities import index as index_module
    from facelake.identities.index import LiveIndex, index_base, index_paths

    client, tokens, db = site
    if engine == "postgres":
        pytest.skip("pgvector searches in SQL: there is no index of ours to fall behind")
    index_file = index_paths(index_base(load_settings(db=db)))[0]
    index_file.unlink()  # lost: every face is behind
    LiveIndex._all.clear()
    rebuilds: list[int] = []
    real_sync = index_module._sync

    def slow_sync(*args: object, **kwargs: object) -> object:
        rebuilds.append(1)
        time.sleep(1.0)  # a big rebuild, made slow: the request must not wait for it
        return real_sync(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "_sync", slow_sync)
    search_module = importlib.import_module("facelake.identities.search")  # the facade's `search` is a function
    monkeypatch.setattr(search_module, "LIVE_TAIL", 1)
    read = auth(tokens["read"])
    started = time.monotonic()
    body = client.post("/api/search?top=3", headers=read, files={"photo": jpeg(samples / "obama2.jpg")}).json()
    assert time.monotonic() - started < 1.0 or not index_file.exists(), "answered before the rebuild ended"
    assert body["index"] == {"catching_up": True, "faces_not_searched": 3, "faces_behind": 3}, body
    deadline = time.monotonic() + 30
    while not index_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rebuilds and index_file.exists(), "the background thread rebuilt it"
    body = client.post("/api/search?top=3", headers=read, files={"photo": jpeg(samples / "obama2.jpg")}).json()
    assert body["index"] == {"catching_up": False, "faces_not_searched": 0, "faces_behind": 0}
    assert Path(body["hits"][0]["uri"]).name in ("a.jpg", "c.jpg") and body["hits"][0]["score"] > 0.99
    # A few new faces (within LIVE_TAIL) are compared one by one: found before the index has them.
    monkeypatch.setattr(search_module, "LIVE_TAIL", 5000)
    index_file.unlink()
    LiveIndex._all.clear()
    body = client.post("/api/search?top=3", headers=read, files={"photo": jpeg(samples / "obama2.jpg")}).json()
    assert body["index"]["catching_up"] is False and body["hits"][0]["score"] > 0.99
    assert body["index"]["faces_behind"] == 3, "compared one by one, not yet in the index"


def test_groups_come_a_page_at_a_time_largest_first(db: Target, samples: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A site with thousands of groups listed them all, each with a read of its faces: the page
    and the API now page them (here pages of 2 groups, made by hand from the sample faces)."""
    from facelake.api import dashboard

    from .dbs import execute

    cam = tmp_path / "cam"
    cam.mkdir()
    for photo in sorted(samples.glob("*.jpg")):
        shutil.copy(photo, cam / photo.name)
    assert cli(db, "ingest", str(cam), "--workers", "1")[0] == 0
    faces = [r[0] for r in rows(db, "SELECT sighting_id FROM sightings ORDER BY sighting_id")]
    assert len(faces) >= 6
    # Groups 1, 2 and 3 hold 3, 2 and 1 faces (the last is under min_size 2, so never listed).
    sizes = {1: faces[:3], 2: faces[3:5], 3: faces[5:6]}
    for cluster_id, members in sizes.items():
        execute(db, f"UPDATE sightings SET cluster_id = {cluster_id} WHERE sighting_id IN "
                    f"({', '.join(map(str, members))})")
    monkeypatch.setattr(dashboard, "CLUSTERS_PAGE", 1)
    settings = load_settings(db=db)
    admin = create_token(settings, "admin", "admin")[1]
    with app_client(settings) as client:
        got = client.get("/api/clusters?limit=1", headers=auth(admin)).json()
        assert [(c["cluster_id"], c["faces"]) for c in got] == [(1, 3)]
        got = client.get("/api/clusters?limit=1&offset=1", headers=auth(admin)).json()
        assert [(c["cluster_id"], c["faces"]) for c in got] == [(2, 2)]
        assert client.get("/api/clusters?limit=5&offset=2", headers=auth(admin)).json() == []
        assert client.get("/api/clusters?limit=501", headers=auth(admin)).status_code == 422
        first = client.get("/clusters", headers=auth(admin)).text
        assert 'id="cluster-1"' in first and 'id="cluster-2"' not in first
        assert 'href="/clusters?page=2"' in first and 'id="previous"' not in first
        second = client.get("/clusters?page=2", headers=auth(admin)).text
        assert 'id="cluster-2"' in second and 'id="cluster-1"' not in second
        assert 'href="/clusters?page=1"' in second and 'id="next"' not in second
        assert "No more groups" in client.get("/clusters?page=3", headers=auth(admin)).text
        bad = client.get("/clusters?page=abc", headers={**auth(admin), "Accept": "text/html"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html"), bad.text
        assert "page: " in bad.text and "Back to the timeline" in bad.text, "a page of the dashboard saying what was wrong"
        assert client.get("/api/clusters?limit=abc", headers={**auth(admin), "Accept": "text/html"}).json()[
            "detail"], "the API answers JSON whatever the client accepts"


def test_serve_refuses_a_missing_watch_folder_and_a_busy_port_before_it_says_it_serves(tmp_path: Path) -> None:
    """``serve --watch /nonexistent`` served on and said "1 failed" at the end; on a port another
    server held it printed where it served, then ended with uvicorn's exit code 3 (facelake's "sql
    refused a write"). Both are usage errors now (exit 2), said before anything is served."""
    import socket

    db = tmp_path / "s.duckdb"
    code, output = cli(db, "serve", "--port", str(free_port()), "--watch", str(tmp_path / "nope"))
    assert code == 2 and "nope" in output and "serving" not in output, output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = cli(db, "serve", "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in output and "serving" not in output, output
    assert not db.exists(), "nothing was opened"
