"""The web side against attack, on loopback only and bounded: uploads refused before their
body is read (a real uvicorn on 127.0.0.1, a chunked body), security headers, login and
logout CSRF, people addressed by id, and the smaller findings of issue 21."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from facelake import load_settings
from facelake.api.app import create_app
from facelake.api.auth import Sessions
from facelake.service import create_token
from facelake.store.base import Target
from facelake.store.duck import DuckStore

from .dbs import rows
from .servers import free_port, wait_healthy
from .test_api import ENDPOINTS, auth, jpeg
from .test_ingest import cli


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """``app`` served by a real uvicorn on 127.0.0.1 (a thread of this process), stopped afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def tokens_db(db: Target) -> Iterator[tuple[Target, dict[str, str]]]:
    settings = load_settings(db=db)
    tokens = {scope: create_token(settings, scope, scope)[1] for scope in ("read", "admin")}
    DuckStore.shared = True
    try:
        yield db, tokens
    finally:
        DuckStore.shared = False


def test_uploads_are_refused_before_their_body_is_read(tokens_db: tuple[Target, dict[str, str]],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunked 100 MB upload without a token is answered 401, and one over ``max_file_mb``
    with a token 413, after the server has read at most a few MB of it (before: all of it,
    written to a temporary file, then 401)."""
    db, tokens = tokens_db
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where the multipart parser would write the body
    app = create_app(load_settings(db=db, max_file_mb=2))
    total = 100 * 2**20
    with running(app) as base:
        for who, status, path in ((None, 401, "/api/recognize"), (None, 401, "/api/people"),
                                  ("read", 413, "/api/search"), ("admin", 413, "/api/recognize?store=true")):
            sent = 0

            def body() -> Iterator[bytes]:
                nonlocal sent
                head = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n\r\n'
                sent += len(head)
                yield head
                chunk = b"\0" * 65536
                while sent < total:
                    sent += len(chunk)
                    yield chunk

            headers = {"Content-Type": "multipart/form-data; boundary=b", **(auth(tokens[who]) if who else {})}
            try:
                r = httpx.post(f"{base}{path}", content=body(), headers=headers, timeout=60)
                answer = r.status_code
            except httpx.TransportError:  # the server closed the connection on the rest of the body
                answer = None
            assert answer in (status, None), (who, path, answer)
            assert sent < 24 * 2**20, f"{who} {path}: the client could send {sent / 2**20:.0f} MB of 100"
            assert [p for p in spool.rglob("*") if p.is_file() and p.stat().st_size > 3_000_000] == []
        # Said in a Content-Length, the size is refused at once.
        r = httpx.post(f"{base}/api/recognize", content=b"\0" * 3_000_000, headers=auth(tokens["read"]), timeout=30)
        assert r.status_code == 413
        # And the answer arrives whole when the client waits for it (a body the guard refused unread).
        r = httpx.post(f"{base}/api/recognize", content=b"\0" * 1000,
                       headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=30)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def client(tokens_db: tuple[Target, dict[str, str]]) -> Iterator[tuple[TestClient, dict[str, str], Target]]:
    db, tokens = tokens_db
    with TestClient(create_app(load_settings(db=db))) as c:
        yield c, tokens, db


def login(client: TestClient, token: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client.get("/").text.split('data-csrf="')[1].split('"')[0]


def test_every_response_carries_the_security_headers(client: tuple[TestClient, dict[str, str], Target]) -> None:
    c, tokens, _ = client
    for path in ("/login", "/api/health", "/api/sightings", "/docs", "/openapi.json", "/static/app.js", "/nowhere"):
        r = c.get(path, headers=auth(tokens["read"]))
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert "script-src 'self';" in r.headers["content-security-policy"], path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "same-origin", path
        if not path.startswith("/static/"):
            assert r.headers["cache-control"] == "no-store", path


def test_login_and_logout_refuse_other_sites(client: tuple[TestClient, dict[str, str], Target]) -> None:
    """A page on another site posting to /login (logging the victim in as the attacker) or to
    /logout is refused, by what the browser says of the request's origin."""
    c, tokens, db = client
    evil = [{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "http://evil.example"},  # a browser without Fetch Metadata
            {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"},
            {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "cross-site"}]
    for headers in evil:
        r = c.post("/login", data={"token": tokens["admin"]}, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    csrf = login(c, tokens["read"])
    for headers in evil:
        r = c.post("/logout", data={"csrf": csrf}, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    r = c.post("/logout", follow_redirects=False)  # same site, but without the session's CSRF token
    assert r.status_code == 403
    assert c.get("/", follow_redirects=False).status_code == 200, "still logged in"
    same = {"Origin": str(c.base_url), "Sec-Fetch-Site": "same-origin"}
    assert c.post("/logout", data={"csrf": csrf}, headers=same, follow_redirects=False).status_code == 303
    assert c.get("/", follow_redirects=False).status_code == 303
    # Failed logins are audited (with where they came from, never the token tried).
    c.post("/login", data={"token": "fl_guess"}, follow_redirects=False)
    audit = rows(db, "SELECT actor, action, subject FROM audit WHERE action LIKE 'login%' ORDER BY 1, 2")
    assert ("web", "login_failed", "from:testclient") in audit and ("token:read", "login", "from:testclient") in audit
    assert not any("fl_guess" in str(r) for r in audit)


def test_sessions_expire_and_are_secure_over_tls(tokens_db: tuple[Target, dict[str, str]]) -> None:
    db, tokens = tokens_db
    now = [1000.0]
    sessions = Sessions(3600, clock=lambda: now[0])
    sid, _ = sessions.open(tokens["read"])
    now[0] += 3599
    assert sessions.get(sid) is not None
    now[0] += 2
    assert sessions.get(sid) is None, "a session ends after its lifetime"
    with TestClient(create_app(load_settings(db=db, session_hours=2)), base_url="https://testserver") as c:
        cookie = c.post("/login", data={"token": tokens["read"]}, follow_redirects=False).headers["set-cookie"].lower()
        assert "secure" in cookie and "max-age=7200" in cookie and "httponly" in cookie
    with TestClient(create_app(load_settings(db=db))) as c:
        cookie = c.post("/login", data={"token": tokens["read"]}, follow_redirects=False).headers["set-cookie"].lower()
        assert "secure" not in cookie, "plain http on loopback: a Secure cookie would never come back"


def test_unknown_hosts_are_refused_when_hosts_are_set(tokens_db: tuple[Target, dict[str, str]]) -> None:
    db, _ = tokens_db
    with TestClient(create_app(load_settings(db=db, allowed_hosts=["127.0.0.1", "testserver"]))) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"Host": "rebound.evil.example"}).status_code == 400


def test_docs_are_served_from_this_process(client: tuple[TestClient, dict[str, str], Target]) -> None:
    c, _, _ = client
    page = c.get("/docs").text
    assert "http" not in page and "/docs/assets/swagger-ui-bundle.js" in page
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
        assert c.get(asset).status_code == 200, asset


def test_huge_integers_are_422_not_500(client: tuple[TestClient, dict[str, str], Target]) -> None:
    """Every integer a route takes (ids in paths, cursors and filters in queries, form fields) is 64-bit."""
    c, tokens, _ = client
    huge = str(2**130)
    admin = auth(tokens["admin"])
    for method, path, _ in ENDPOINTS:
        if "9999" in path or "/1/" in path or path.endswith("/1/crop"):
            r = c.request(method, path.replace("9999", huge).replace("/1/", f"/{huge}/"), headers=admin,
                          data={"name": "x", "into": "1", "consent": "x"} if method != "GET" else None)
            assert r.status_code == 422, (method, path, r.status_code, r.text[:200])
    for query in ("cluster", "cursor", "after_id", "person_id"):
        r = c.get("/api/sightings", params={query: huge}, headers=admin)
        assert r.status_code == 422, (query, r.status_code, r.text[:200])
    for path, query in (("/api/visits", "cluster"), ("/api/visits", "person_id"), ("/api/tracks", "person_id"),
                        ("/api/clusters", "min_size")):
        assert c.get(path, params={query: huge}, headers=admin).status_code == 422, (path, query)
    assert c.post("/api/clusters/1/merge", data={"into": huge}, headers=admin).status_code == 422


def test_people_are_addressed_by_id_and_names_are_checked(
        tokens_db: tuple[Target, dict[str, str]], cams: Path, samples: Path) -> None:
    """A group named "1" cannot shadow person 1: paths take ids, names are fields or ``?person=``."""
    db, tokens = tokens_db
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    with TestClient(create_app(load_settings(db=db))) as c:
        admin = auth(tokens["admin"])
        barack = next(p for p in c.get("/api/people", headers=admin).json() if p["name"] == "Barack")["person_id"]
        r = c.post("/api/people", headers=admin, data={"name": str(barack), "consent": "asked"},
                   files=[("photos", jpeg(samples / "biden.jpg"))])
        assert r.status_code == 201, r.text
        one = r.json()["person_id"]
        assert one != barack
        # Renaming and listing by id touch that person only, whatever the others are called.
        assert c.patch(f"/api/people/{one}", data={"name": "Joe"}, headers=admin).json() == {"person_id": one,
                                                                                            "name": "Joe"}
        names = {p["person_id"]: p["name"] for p in c.get("/api/people", headers=admin).json()}
        assert names == {barack: "Barack", one: "Joe"}
        assert c.patch(f"/api/people/{one}", data={"name": str(barack)}, headers=admin).status_code == 200
        by_name = c.get("/api/sightings", params={"person": str(barack)}, headers=admin).json()["items"]
        by_id = c.get("/api/sightings", params={"person_id": barack}, headers=admin).json()["items"]
        assert {s["person"] for s in by_name} == {str(barack)} and {s["person"] for s in by_id} == {"Barack"}
        assert c.get("/api/sightings", params={"person": "Nobody"}, headers=admin).status_code == 404
        # Blank names are refused everywhere a name is given.
        for blank in ("", "   ", "\t"):
            assert c.patch(f"/api/people/{one}", data={"name": blank}, headers=admin).status_code in (400, 422)
        assert c.post("/api/clusters/refresh", headers=admin).status_code == 200
        clusters = c.get("/api/clusters", params={"min_size": 1}, headers=admin).json()
        if clusters:
            r = c.post(f"/api/clusters/{clusters[0]['cluster_id']}/name", data={"name": "  ", "consent": "x"},
                       headers=admin)
            assert r.status_code in (400, 422), r.text
        # Pages link to people by id: a name with / # or ? does not break its link.
        assert c.patch(f"/api/people/{barack}", data={"name": "A/B #1?"}, headers=admin).status_code == 200
        csrf = login(c, tokens["admin"])
        assert csrf
        page = c.get("/people").text
        assert f'href="/people/{barack}"' in page and "A/B #1?" in page
        assert "A/B #1?" in c.get(f"/people/{barack}").text
        # Deleting by id erases that person only.
        assert c.delete(f"/api/people/{one}", headers=admin).status_code == 200
        assert [p["name"] for p in c.get("/api/people", headers=admin).json()] == ["A/B #1?"]


def test_errors_name_no_server_path_and_pages_404_as_html(client: tuple[TestClient, dict[str, str], Target],
                                                         tmp_path: Path) -> None:
    c, tokens, _ = client
    from PIL import Image

    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    r = c.post("/api/search", headers=auth(tokens["read"]), files={"photo": jpeg(blank)})
    assert r.status_code == 422 and "no face" in r.json()["detail"]
    assert tempfile.gettempdir() not in r.text and "/tmp" not in r.text, r.text
    login(c, tokens["read"])
    page = c.get("/people/424242", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "no person with id 424242" in page.text and 'href="/"' in page.text
    assert c.get("/nowhere", headers={"Accept": "text/html"}).headers["content-type"].startswith("text/html")
    api = c.get("/api/sightings/424242/crop", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.headers["content-type"] == "application/json", "the API stays JSON"
