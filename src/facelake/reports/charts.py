"""Charts as inline SVG strings: no JavaScript library, no CDN, nothing fetched — they render
offline in the dashboard and inside a single self-contained report file alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def heatmap(counts: dict[tuple[int, int], int], title: str) -> str:
    """Hour × weekday activity: ``counts[(weekday 0=Mon, hour)]``."""
    cell, left, top = 22, 40, 28
    top_count = max(counts.values(), default=0) or 1
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 24 * cell + 10}" height="{top + 7 * cell + 30}" '
              f'viewBox="0 0 {left + 24 * cell + 10} {top + 7 * cell + 30}" role="img" aria-label="{escape(title)}"><text x="0" y="16" font-size="13">{escape(title)}</text>')]
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
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
              f'viewBox="0 0 {width} {height + 40}" role="img" '
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


def _mercator(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates (256-px tiles) of a point at ``zoom``."""
    import math

    scale = 256 * 2**zoom
    x = (lon + 180.0) / 360.0 * scale
    s = math.sin(math.radians(max(-85.0, min(85.0, lat))))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def tiled_map(points: Sequence[tuple[float, float, str]], title: str, tile_url: str,
              width: int = 640, height: int = 360) -> str:
    """GPS points over map tiles from a tile server the owner runs (``{z}/{x}/{y}`` URL template).

    Only used when ``map_tile_url`` is set: the browser then loads tiles from that server.
    """
    if not points:
        return gps_map(points, title, width, height)
    zoom = 18
    while zoom > 1:
        xs, ys = zip(*(_mercator(lat, lon, zoom) for lat, lon, _ in points))
        if max(xs) - min(xs) < width * 0.8 and max(ys) - min(ys) < height * 0.8:
            break
        zoom -= 1
    xs, ys = zip(*(_mercator(lat, lon, zoom) for lat, lon, _ in points))
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    x0, y0 = cx - width / 2, cy - height / 2
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'aria-label="{escape(title)}">')]
    for tx in range(int(x0 // 256), int((x0 + width) // 256) + 1):
        for ty in range(int(y0 // 256), int((y0 + height) // 256) + 1):
            href = tile_url.replace("{z}", str(zoom)).replace("{x}", str(tx)).replace("{y}", str(ty))
            parts.append(f'<image href="{escape(href)}" x="{tx * 256 - x0:.0f}" y="{ty * 256 - y0:.0f}" '
                         f'width="256" height="256"/>')
    for (lat, lon, label), x, y in zip(points, xs, ys):
        parts.append(f'<circle cx="{x - x0:.1f}" cy="{y - y0:.1f}" r="6" fill="#d84a4a" fill-opacity="0.8">'
                     f'<title>{escape(label)} ({lat:.5f}, {lon:.5f})</title></circle>')
    parts.append(f'<text x="6" y="16" font-size="13">{escape(title)}</text></svg>')
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


HEAT = ((255, 224, 130), (247, 150, 70), (214, 60, 50), (120, 20, 60))
"""Light to dark: the colours of the map's cells, from the fewest faces to the most."""


def _step(n: int, top: int) -> int:
    """The colour of a cell of ``n`` faces when the busiest has ``top``: logarithmic steps, so a
    few very busy places do not wash every other one out."""
    if top <= 1:
        return 0
    return min(len(HEAT) - 1, int(len(HEAT) * math.log(n) / math.log(top + 1)))


def _legend(top: int) -> list[tuple[int, int, int]]:
    """``(step, fewest, most)`` faces per colour that a cell can have (the inverse of :func:`_step`)."""
    if top <= 1:
        return [(0, 1, 1)]
    lows = [1] + [math.ceil(math.exp(k * math.log(top + 1) / len(HEAT)) - 1e-9) for k in range(1, len(HEAT))]
    out = []
    for k, lo in enumerate(lows):
        hi = lows[k + 1] - 1 if k + 1 < len(lows) else top
        if lo <= min(hi, top):
            out.append((k, lo, min(hi, top)))
    return out


def cell_map(cells: Sequence[tuple[float, float, int, int]], title: str, width: int = 640, height: int = 360) -> str:
    """GPS-tagged faces counted per cell (``(lat, lon, images, faces)``), on plain coordinates,
    each cell a dot coloured and sized by its count, with the legend: a year of sightings is a
    few hundred dots, not a million (works offline; no tiles)."""
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
              f'viewBox="0 0 {width} {height + 30}" role="img" aria-label="{escape(title)}">'
              f'<rect width="{width}" height="{height}" fill="#eef3f7"/>'
              f'<text x="6" y="16" font-size="13">{escape(title)}</text>')]
    if not cells:
        parts.append('<text x="6" y="40" font-size="12">no GPS-tagged sightings</text></svg>')
        return "".join(parts)
    lats, lons = [c[0] for c in cells], [c[1] for c in cells]
    pad_lat = max(0.001, (max(lats) - min(lats)) * 0.15)
    pad_lon = max(0.001, (max(lons) - min(lons)) * 0.15)
    lat0, lat1 = min(lats) - pad_lat, max(lats) + pad_lat
    lon0, lon1 = min(lons) - pad_lon, max(lons) + pad_lon
    top = max(c[3] for c in cells)
    for lat, lon, images, faces in sorted(cells, key=lambda c: c[3]):  # the busiest drawn last, on top
        x = 20 + (lon - lon0) / (lon1 - lon0) * (width - 40)
        y = 30 + (lat1 - lat) / (lat1 - lat0) * (height - 50)
        r = 4 + 8 * math.sqrt(faces / top)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="rgb{HEAT[_step(faces, top)]}" fill-opacity="0.85">'
                     f'<title>{faces} face(s) in {images} photo(s) near ({lat:.3f}, {lon:.3f})</title></circle>')
    parts.append(f'<text x="6" y="{height - 6}" font-size="10">lat {lat0:.3f}…{lat1:.3f}, lon {lon0:.3f}…{lon1:.3f}'
                 f' · cells of ~100 m</text>')
    for i, (k, lo, hi) in enumerate(_legend(top)):
        x = 6 + i * 120
        label = f"{lo} face{'' if lo == 1 else 's'}" if lo == hi else f"{lo}–{hi} faces"
        parts.append(f'<rect x="{x}" y="{height + 8}" width="14" height="14" fill="rgb{HEAT[k]}"/>'
                     f'<text x="{x + 18}" y="{height + 19}" font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
