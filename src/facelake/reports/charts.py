"""Charts as inline SVG strings: no JavaScript library, no CDN, nothing fetched — they render
offline in the dashboard and inside a single self-contained report file alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def heatmap(counts: dict[tuple[int, int], int], title: str) -> str:
    """Hour × weekday activity: ``counts[(weekday 0=Mon, hour)]``."""
    cell, left, top = 22, 40, 28
    top_count = max(counts.values(), default=0) or 1
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 24 * cell + 10}" height="{top + 7 * cell + 30}" '
              f'role="img" aria-label="{escape(title)}"><text x="0" y="16" font-size="13">{escape(title)}</text>')]
    for d in range(7):
        parts.append(f'<text x="0" y="{top + d * cell + 15}" font-size="11">{DAYS[d]}</text>')
        for h in range(24):
            n = counts.get((d, h), 0)
            shade = 245 - int(200 * n / top_count)
            parts.append(f'<rect x="{left + h * cell}" y="{top + d * cell}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="rgb({shade},{shade},255)"><title>{DAYS[d]} {h:02d}:00: {n}</title></rect>')
    for h in range(0, 24, 3):
        parts.append(f'<text x="{left + h * cell}" y="{top + 7 * cell + 14}" font-size="10">{h:02d}h</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(series: Sequence[tuple[date | str, int]], title: str, width: int = 640, height: int = 160) -> str:
    """A bar per day (or label)."""
    top_count = max((n for _, n in series), default=0) or 1
    n = max(len(series), 1)
    w = max(2.0, (width - 40) / n)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img" '
              f'aria-label="{escape(title)}"><text x="0" y="16" font-size="13">{escape(title)}</text>')]
    for i, (label, count) in enumerate(series):
        h = (height - 30) * count / top_count
        x = 30 + i * w
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{w * 0.8:.1f}" height="{h:.1f}" fill="#4a6fd8">'
                     f'<title>{escape(str(label))}: {count}</title></rect>')
    if series:
        parts.append(f'<text x="30" y="{height + 16}" font-size="10">{escape(str(series[0][0]))}</text>')
        parts.append(f'<text x="{width - 90}" y="{height + 16}" font-size="10">{escape(str(series[-1][0]))}</text>')
    parts.append(f'<text x="0" y="40" font-size="10">{top_count}</text></svg>')
    return "".join(parts)


def gps_map(points: Sequence[tuple[float, float, str]], title: str, width: int = 640, height: int = 360) -> str:
    """GPS points on plain longitude/latitude axes (works offline; no map tiles needed).

    The view is the points' bounding box with a margin, equirectangular, so nearby points
    spread out; each point's tooltip says its label and coordinates.
    """
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'aria-label="{escape(title)}"><rect width="{width}" height="{height}" fill="#eef3f7"/>'
              f'<text x="6" y="16" font-size="13">{escape(title)}</text>')]
    if points:
        lats = [p[0] for p in points]
        lons = [p[1] for p in points]
        pad_lat = max(0.001, (max(lats) - min(lats)) * 0.15)
        pad_lon = max(0.001, (max(lons) - min(lons)) * 0.15)
        lat0, lat1 = min(lats) - pad_lat, max(lats) + pad_lat
        lon0, lon1 = min(lons) - pad_lon, max(lons) + pad_lon
        for lat, lon, label in points:
            x = 20 + (lon - lon0) / (lon1 - lon0) * (width - 40)
            y = 30 + (lat1 - lat) / (lat1 - lat0) * (height - 50)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#d84a4a" fill-opacity="0.7">'
                         f'<title>{escape(label)} ({lat:.5f}, {lon:.5f})</title></circle>')
        parts.append(f'<text x="6" y="{height - 6}" font-size="10">lat {lat0:.4f}…{lat1:.4f}, '
                     f'lon {lon0:.4f}…{lon1:.4f}</text>')
    else:
        parts.append('<text x="6" y="40" font-size="12">no GPS-tagged sightings</text>')
    parts.append("</svg>")
    return "".join(parts)
