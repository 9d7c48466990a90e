"""``facelake report``: one self-contained HTML file — charts, map and tables, no network.

Everything is inside the file: charts are inline SVG, face crops are ``data:`` URIs, there
is no script and no external stylesheet, so it opens from an e-mail attachment or a USB
stick on a machine with no internet, and it never phones anywhere.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..config import Settings
from ..errors import ConfigError
from ..store import open_store, utcnow
from ..store.reports import days as per_day
from ..store.reports import weekday_hours
from . import charts, views
from .visits import list_visits, visit_totals

_env = Environment(loader=PackageLoader("facelake.reports", "templates"), autoescape=select_autoescape(["html"]))


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``12h``, ``30m`` or an ISO date → the start of the window (``None``: everything)."""
    if not value:
        return None
    m = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]
        return (now or utcnow()) - delta
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--since must look like 7d, 12h, 30m or 2024-05-01, got {value!r}") from exc


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    bytes: int
    sightings: int


def build_report(settings: Settings, out: Path, since: str | None = None, camera: str | None = None,
                 faces: bool = True) -> ReportSummary:
    start = parse_since(since)
    with open_store(settings.db, read_only=True) as store:
        reports = store.reports
        hours = reports.hours(camera, start)
        recent = reports.sightings(camera=camera, since=start, limit=60)
        total = reports.totals(camera, start)
        people = reports.people_seen(camera, start)
        per_camera = reports.per_camera(camera, start)
        points = views.gps_labels(reports.gps_points(camera, start))
        visits = list_visits(store, settings, camera=camera, since=start, limit=30)
        totals = {t.person: t for t in visit_totals(store, settings, camera, start).values()}
        shown = [r.sighting_id for r in recent] + [v.best_sighting_id for v in visits if v.best_sighting_id]
        crops = {sid: base64.b64encode(c).decode() for sid in dict.fromkeys(shown) if faces
                 for c in [store.sightings.crop(sid)] if c}
        html = _env.get_template("report.html").render(
            generated=utcnow(), since=start, camera=camera, total=total, people=people, per_camera=per_camera,
            recent=recent, crops=crops, visits=visits, totals=totals, gap_s=settings.visit_gap_s,
            who=views.who, duration=views.duration_text, visits_text=views.visits_text,
            days=charts.bars(per_day(hours), "Sightings per day"),
            heat=charts.heatmap(weekday_hours(hours), "Sightings by hour and weekday"),
            map=charts.gps_map(points, "GPS-tagged sightings"), points=points,
        )
    _write(out, lambda: out.write_text(html, encoding="utf-8"))
    return ReportSummary(out, out.stat().st_size, total[0])


def build_png(settings: Settings, out: Path, since: str | None = None, camera: str | None = None) -> ReportSummary:
    """One summary image: counts, sightings per day and the hour × weekday heat map (Pillow only)."""
    from PIL import Image, ImageDraw

    start = parse_since(since)
    with open_store(settings.db, read_only=True) as store:
        hours = store.reports.hours(camera, start)
        days, heat = per_day(hours), weekday_hours(hours)
        people = store.reports.top_people(camera, start, limit=8)
        totals = {t.person: t for t in visit_totals(store, settings, camera, start).values()}
    total = sum(n for _, n in days)
    img = Image.new("RGB", (900, 560), "white")
    draw = ImageDraw.Draw(img)
    ink = (29, 35, 48)
    draw.text((20, 15), f"facelake - {camera or 'all cameras'} - "
                        f"{'since ' + start.strftime('%Y-%m-%d') if start else 'all time'}", fill=ink)
    draw.text((20, 35), f"{total} sightings on {len(days)} days; generated {utcnow():%Y-%m-%d %H:%M} UTC", fill=ink)
    top = max((n for _, n in days), default=0) or 1
    width = max(1.0, 840 / max(len(days), 1))
    for k, (_, n) in enumerate(days):
        h = 140 * n / top
        draw.rectangle([30 + k * width, 220 - h, 30 + (k + 0.8) * width, 220], fill=(74, 111, 216))
    draw.text((30, 225), "sightings per day", fill=ink)
    hottest = max(heat.values(), default=0) or 1
    for d in range(7):
        draw.text((20, 262 + d * 26), ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d], fill=ink)
        for hour in range(24):
            shade = 245 - int(200 * heat.get((d, hour), 0) / hottest)
            draw.rectangle([60 + hour * 26, 258 + d * 26, 84 + hour * 26, 282 + d * 26], fill=(shade, shade, 255))
    draw.text((60, 445), "sightings by hour (0-23) and weekday", fill=ink)
    for k, (name, n) in enumerate(people):
        draw.text((620, 60 + k * 18), views.visits_text(totals[name]) if name in totals else f"{name}: {n}", fill=ink)
    _write(out, lambda: img.save(out, "PNG"))
    return ReportSummary(out, out.stat().st_size, total)


def _write(out: Path, write: Callable[[], object]) -> None:
    """Write the report, a place it cannot go being a usage mistake (exit 2), not a traceback."""
    try:
        write()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the report there ({exc.strerror or exc}); pick another place") from exc
