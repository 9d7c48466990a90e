"""``facelake report``: one self-contained HTML file — charts, map and tables, no network.

Everything is inside the file: charts are inline SVG, face crops are ``data:`` URIs, there
is no script and no external stylesheet, so it opens from an e-mail attachment or a USB
stick on a machine with no internet, and it never phones anywhere.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..config import Settings
from ..errors import ConfigError
from ..store.duck import Store, utcnow
from . import charts, views

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
    with Store(settings.db, read_only=True) as store:
        recent = views.sightings(store, camera=camera, since=start, limit=60)
        total = store.con.execute(
            """SELECT count(*), count(DISTINCT s.person_id), count(DISTINCT i.camera) FROM sightings s
               JOIN images i USING (image_id) WHERE i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?)
                 AND (? IS NULL OR i.taken_at >= ?)""", [camera, camera, start, start]).fetchone()
        people = store.con.execute(
            """SELECT p.name, count(*), max(i.taken_at), string_agg(DISTINCT i.camera, ', ')
               FROM sightings s JOIN images i USING (image_id) JOIN people p ON p.person_id = s.person_id
               WHERE i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?) AND (? IS NULL OR i.taken_at >= ?)
               GROUP BY 1 ORDER BY 2 DESC""", [camera, camera, start, start]).fetchall()
        per_camera = store.con.execute(
            """SELECT i.camera, count(*), count(s.person_id), min(i.taken_at), max(i.taken_at)
               FROM sightings s JOIN images i USING (image_id)
               WHERE i.camera <> 'enrollment' AND (? IS NULL OR i.camera = ?) AND (? IS NULL OR i.taken_at >= ?)
               GROUP BY 1 ORDER BY 1""", [camera, camera, start, start]).fetchall()
        crops = {r.sighting_id: base64.b64encode(c).decode() for r in recent if faces
                 for c in [views.crop(store, r.sighting_id)] if c}
        html = _env.get_template("report.html").render(
            generated=utcnow(), since=start, camera=camera, total=total, people=people, per_camera=per_camera,
            recent=recent, crops=crops,
            days=charts.bars(views.per_day(store, camera, start), "Sightings per day"),
            heat=charts.heatmap(views.activity(store, camera, start), "Sightings by hour and weekday"),
            map=charts.gps_map(views.gps_points(store, camera, start), "GPS-tagged sightings"),
            points=views.gps_points(store, camera, start),
        )
    out.write_text(html, encoding="utf-8")
    return ReportSummary(out, out.stat().st_size, int(total[0]) if total else 0)
