"""The dashboard: server-rendered pages with one small script, all served by facelake itself.

No CDN, no web font, no map tiles by default: every byte comes from this process, so the
pages work on a network with no internet (a browser test checks that no request leaves
127.0.0.1). Forms post to the same JSON API with the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import identities as people
from ..config import Settings
from ..reports import charts, views
from ..reports.visits import VisitRow, list_tracks, list_visits, visit_totals
from ..store import Store, open_store
from ..store.reports import SightingRow, weekday_hours
from ..store.reports import days as per_day
from .auth import SESSION_COOKIE, check_csrf, identify_caller
from .deps import Int64

_env = Environment(loader=PackageLoader("facelake.api", "templates"), autoescape=select_autoescape(["html"]))
_env.globals.update(who=views.who, duration=views.duration_text, visits_text=views.visits_text)
# How the pages word who a face is and how long a visit lasted: the same words as the report's.


API_PATHS = ("/api/", "/openapi.json", "/docs/assets/", "/static/")


def wants_html(request: Request) -> bool:
    """Whether an error should be a page: a browser route, asked for by something that takes HTML."""
    return not request.url.path.startswith(API_PATHS) and "text/html" in request.headers.get("accept", "")


def error_page(status: int, detail: str, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """An error as a page of the dashboard's look, with the way back (not raw JSON in a browser tab)."""
    html = _env.get_template("error.html").render(status=status, detail=detail)
    return HTMLResponse(html, status_code=status, headers=headers)


PAGE = 60
"""Faces per page on the timeline and a person's page (``Older`` pages on by capture time)."""


VISITS_PAGE = 50
"""Visits per page on a person's page (``Older visits`` pages on by start time)."""
CLUSTERS_PAGE = 24
"""Groups on a page of /clusters, largest first: each is a read of its best faces and a dozen crops."""

PageSize = Annotated[int, Query(ge=1, le=200, description="faces per page")]


def warm(store: Store) -> None:
    """Compile every page's template and read the first page's rows once, before the first visitor.

    A fresh process's first timeline at a million sightings took 136 ms against 24 ms for the
    next ones: DuckDB reading the columns into its cache, and Jinja compiling the templates.
    ``serve`` calls this before it listens, so nobody pays that.
    """
    for name in _env.list_templates():
        _env.get_template(name)
    store.reports.timeline(limit=PAGE)
    store.reports.sightings(limit=50)


def older(request: Request, rows: list[SightingRow], n: int) -> str | None:
    """The link to the next page of a time-ordered listing, or ``None`` on its last page.

    ``rows`` is the page read with one more than ``n``: only that one more says a next page
    exists (an exactly full last page linked to an empty one)."""
    if len(rows) <= n:
        return None
    rows = rows[:n]
    if rows[-1].taken_at is None:
        return None
    query = {k: v for k, v in request.query_params.items() if k not in ("before", "before_id")}
    query.update(before=rows[-1].taken_at.isoformat(), before_id=str(rows[-1].sighting_id))
    return f"{request.url.path}?{urlencode(query)}"


def older_visits(request: Request, rows: list[VisitRow], n: int) -> str | None:
    """The link to a person's next page of visits, or ``None`` on the last one (the faces' cursor is kept).

    ``rows`` is the page read with one more than ``n``: only that one more says a next page exists."""
    if len(rows) <= n:
        return None
    rows = rows[:n]
    query = {k: v for k, v in request.query_params.items() if k not in ("visits_before", "visits_before_track")}
    query.update(visits_before=rows[-1].started_at.isoformat(), visits_before_track=str(rows[-1].first_track_id))
    return f"{request.url.path}?{urlencode(query)}#visits"


def add_dashboard(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    def page(request: Request, template: str, context: Callable[[], dict[str, Any]]) -> Response:
        """The page for a logged-in caller (``context`` is computed only then), else the login page."""
        caller = identify_caller(request, settings, app.state.sessions)
        if caller is None:
            return RedirectResponse("/login", status_code=303)
        html = _env.get_template(template).render(caller=caller, csrf=caller.csrf or "", **context())
        return HTMLResponse(html)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(error: str | None = None) -> str:
        return _env.get_template("login.html").render(error=error)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form(...)) -> Response:
        """Open a session for a valid token; every attempt, failed or not, is audited (never the token)."""
        client = request.client.host if request.client else "unknown"
        with open_store(settings.db) as store:
            known = store.tokens.check(token.strip())
            if known is None:
                store.audit("web", "login_failed", f"from:{client}")
            else:
                store.audit(f"token:{known.name}", "login", f"from:{client}")
        if known is None:
            return HTMLResponse(_env.get_template("login.html").render(error="unknown or revoked token"),
                                status_code=401)
        sid, _ = app.state.sessions.open(token.strip())
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/",
                            max_age=int(settings.session_hours * 3600), secure=request.url.scheme == "https")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str | None = Form(None)) -> Response:
        """End the session; the form carries its CSRF token, so no other page can log the owner out."""
        caller = identify_caller(request, settings, app.state.sessions)
        if caller is not None and caller.via_session:
            check_csrf(caller, csrf)
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            app.state.sessions.close(sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/", include_in_schema=False)
    def timeline(request: Request, camera: str | None = None, before: datetime | None = None,
                 before_id: Int64 | None = None, n: PageSize = PAGE) -> Response:
        """Faces by capture time, newest first, a page at a time (``before``: the last one shown)."""
        def context() -> dict[str, Any]:
            cursor = (before, before_id) if before is not None and before_id is not None else None
            with open_store(settings.db, read_only=True) as store:
                rows = store.reports.timeline(camera=camera, before=cursor, limit=n + 1)
                tracks = list_tracks(store, camera=camera, limit=30) if cursor is None else []
                latest = store.reports.sightings(camera=camera, limit=1)
            return {"rows": rows[:n], "camera": camera, "tracks": tracks, "live": cursor is None,
                    "newest": latest[0].sighting_id if latest else 0, "older": older(request, rows, n)}

        return page(request, "timeline.html", context)

    @app.get("/people", include_in_schema=False)
    def people_page(request: Request) -> Response:
        def context() -> dict[str, Any]:
            listing = people.list_people(settings)
            with open_store(settings.db, read_only=True) as store:
                totals = visit_totals(store, settings)
                faces = store.reports.person_faces()
            return {"people": listing, "totals": totals, "faces": faces}

        return page(request, "people.html", context)

    @app.get("/people/{person_id}", include_in_schema=False)
    def person_page(request: Request, person_id: Int64, before: datetime | None = None,
                    before_id: Int64 | None = None, n: PageSize = PAGE, visits_before: datetime | None = None,
                    visits_before_track: Int64 | None = None) -> Response:
        """A person: their visits and their faces, each newest first and a page at a time."""
        def context() -> dict[str, Any]:
            cursor = (before, before_id) if before is not None and before_id is not None else None
            since = ((visits_before, visits_before_track)
                     if visits_before is not None and visits_before_track is not None else None)
            with open_store(settings.db, read_only=True) as store:
                found = store.people.name_of(person_id)
                if found is None:
                    raise HTTPException(404, f"no person with id {person_id}")
                rows = store.reports.timeline(person=person_id, before=cursor, limit=n + 1)
                visits = list_visits(store, settings, person=person_id, limit=VISITS_PAGE + 1, before=since)
                total = visit_totals(store, settings).get(person_id)
                face = store.reports.person_faces().get(person_id)
            return {"name": found, "person_id": person_id, "rows": rows[:n], "visits": visits[:VISITS_PAGE],
                    "total": total, "gap_s": settings.visit_gap_s, "older": older(request, rows, n), "face": face,
                    "older_visits": older_visits(request, visits, VISITS_PAGE)}

        return page(request, "person.html", context)

    @app.get("/sightings/{sighting_id}", include_in_schema=False)
    def sighting_page(request: Request, sighting_id: Int64) -> Response:
        """One face: the photo behind it with its box, who it is, and what the owner can say about it."""
        def context() -> dict[str, Any]:
            with open_store(settings.db, read_only=True) as store:
                found = store.reports.sighting(sighting_id)
                if found is None:
                    raise HTTPException(404, f"no sighting {sighting_id}")
                everyone = store.people.names()
                track = store.tracks.of_sighting(sighting_id)
            row, width, height = found
            # The owner's own enrollment photo is taken back by forgetting the person, not face by face.
            return {"r": row, "width": width, "height": height, "enrolled": row.camera == "enrollment",
                    "track": track,
                    "everyone": sorted(everyone.items(), key=lambda kv: kv[1].lower())}

        return page(request, "sighting.html", context)

    @app.get("/clusters", include_in_schema=False)
    def clusters_page(request: Request, page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> Response:
        def context() -> dict[str, Any]:
            # One more than a page tells whether there is a next one.
            listing = people.list_clusters(settings, 2, CLUSTERS_PAGE + 1, (page_no - 1) * CLUSTERS_PAGE)
            more, listing = len(listing) > CLUSTERS_PAGE, listing[:CLUSTERS_PAGE]
            with open_store(settings.db, read_only=True) as store:
                faces = store.clusters.best_faces_of([c.cluster_id for c in listing])
                everyone = store.people.names()
            return {"clusters": listing, "faces": faces, "page_no": page_no,
                    "next": f"/clusters?page={page_no + 1}" if more else None,
                    "previous": f"/clusters?page={page_no - 1}" if page_no > 1 else None,
                    "everyone": sorted(everyone.items(), key=lambda kv: kv[1].lower())}

        return page(request, "clusters.html", context)

    @app.get("/activity", include_in_schema=False)
    def activity_page(request: Request, camera: str | None = None) -> Response:
        def context() -> dict[str, Any]:
            with open_store(settings.db, read_only=True) as store:
                cameras = store.reports.cameras()
                if camera is not None and camera not in cameras:  # a typo is not a camera that saw nobody
                    raise HTTPException(404, f"no camera called {camera!r}")
                hours = store.reports.hours(camera)
                heat = charts.heatmap(weekday_hours(hours), f"Sightings by hour and weekday — {camera or 'all cameras'}")
                days = charts.bars(per_day(hours), "Sightings per day")
                cells = store.reports.gps_cells(camera)
            if settings.map_tile_url:
                labelled = [(lat, lon, f"{faces} face(s) in {images} photo(s)") for lat, lon, images, faces in cells]
                drawn = charts.tiled_map(labelled, "GPS-tagged sightings", settings.map_tile_url)
            else:
                drawn = charts.cell_map(cells, "GPS-tagged sightings")
            zone = datetime.now().astimezone().tzname()
            return {"heat": heat, "days": days, "map": drawn, "cells": cells, "cameras": cameras, "zone": zone,
                    "camera": camera, "tile_url": settings.map_tile_url, "faces": sum(c[3] for c in cells)}

        return page(request, "activity.html", context)
