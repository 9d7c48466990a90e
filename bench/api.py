"""API latency under a bounded local load: a real `facelake serve` on this machine.

Builds a database of N images (re-encoded copies of the sample photos, so every one is its own
image), starts `facelake serve`, then measures, from C client threads:
- GET /api/sightings?limit=50 (the timeline's first page), and with a camera filter;
- POST /api/recognize (one sample photo, not stored), which runs detection and embedding.
Prints p50 / p99 / max in ms and requests per second.

Usage: python bench/api.py [--images 200] [--requests 400] [--recognize 40] [--clients 4]
"""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, wait_healthy


def timed(fn, n: int, clients: int) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    def one(_: int) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = np.array(list(pool.map(one, range(n))))
    return times * 1000, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--recognize", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    from facelake.samples import sample_photos

    photos = sorted(sample_photos().glob("*.jpg"))
    work = Path(tempfile.mkdtemp(prefix="facelake-api-"))
    for i in range(args.images):
        cam = work / "cams" / f"cam{i % 4}"
        cam.mkdir(parents=True, exist_ok=True)
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        img.thumbnail((640, 640))
        img.putpixel((i % img.width, 0), (i % 256, 0, 0))  # every file its own bytes, so its own image
        img.save(cam / f"{i:04d}.jpg", quality=85)
    db = work / "f.duckdb"
    fl = [sys.executable, "-m", "facelake.cli", "--db", str(db)]
    subprocess.run([*fl, "ingest", str(work / "cams")], check=True, capture_output=True)
    token = subprocess.run([*fl, "tokens", "create", "--scope", "read"], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*fl, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        buf = io.BytesIO()
        Image.open(photos[0]).save(buf, "JPEG", quality=90)
        upload = buf.getvalue()
        client.post("/api/recognize", files={"photo": ("a.jpg", upload, "image/jpeg")}).raise_for_status()  # warm
        cases = {
            "GET /api/sightings?limit=50": (lambda: client.get("/api/sightings", params={"limit": 50}).raise_for_status(),
                                            args.requests),
            "GET /api/sightings?camera=cam1&limit=50": (
                lambda: client.get("/api/sightings", params={"camera": "cam1", "limit": 50}).raise_for_status(),
                args.requests),
            "POST /api/recognize (1 face, 0.3 MP)": (
                lambda: client.post("/api/recognize", files={"photo": ("a.jpg", upload, "image/jpeg")}).raise_for_status(),
                args.recognize),
        }
        n_images = httpx.get(f"{base}/api/stats", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        total = sum(r["images"] for r in n_images["per_camera"])
        print(f"{total} images in the database, {args.clients} client threads, one server process (2 cores)")
        print(f"{'request':42} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>7}")
        for name, (fn, n) in cases.items():
            ms, rate = timed(fn, n, args.clients)
            print(f"{name:42} {n:5d} {np.percentile(ms, 50):8.1f} {np.percentile(ms, 99):8.1f} {ms.max():8.1f} {rate:7.1f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
