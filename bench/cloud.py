"""The cloud path, measured against local emulators (GCS: gcp-storage-emulator, S3: moto server).

1. Listing and download throughput over N objects through facelake's bucket classes (the
   official clients), reading with 1, 4 (the default ``bucket_read_threads``) and 8 threads.
2. Ingest of the N objects, then the re-run that must download nothing (a re-listing).
3. The same photos through folder, GCS, S3 and the Cloud Function (lake → import): the
   sightings of each path, digested (image ids, boxes, embeddings) — they must be identical.
4. The Cloud Function in a real functions-framework server: time to listen, first event
   (models load on it), and warm events.

Usage: python bench/cloud.py [--objects 1000] [--photos DIR] [--workers 2]
(run from the repository root, with the test extra installed: scripts/test.sh does that.)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import BIN, free_port, gcs_emulator, s3_server, server
from tests.test_buckets import new_bucket as make_bucket


def small_jpegs(photos: list[Path], n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct JPEGs (random crops of real photos, 240 px) so every object is its own image."""
    rng = np.random.default_rng(seed)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    out = []
    for i in range(n):
        rgb = images[i % len(images)]
        h, w = rgb.shape[:2]
        side = int(min(h, w) * rng.uniform(0.7, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        buf = io.BytesIO()
        Image.fromarray(rgb[y:y + side, x:x + side]).resize((240, 240)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def digest(db: Path) -> tuple[int, int, str]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        faces = con.execute("""SELECT s.image_id, s.face_index, s.box, s.embedding FROM sightings s
                               JOIN images i USING (image_id) WHERE i.status = 'ok'
                               ORDER BY 1, 2""").fetchall()
        images = con.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]  # type: ignore[index]
    h = hashlib.sha256()
    for image_id, index, box, emb in faces:
        h.update(image_id.encode())
        h.update(np.array([index, *box], dtype=np.float32).tobytes())
        h.update(np.asarray(emb, dtype=np.float32).tobytes())
    return int(images), len(faces), h.hexdigest()[:16]


def throughput(scheme: str, blobs: list[bytes], workers: int, work: Path) -> dict[str, float]:
    from facelake import load_settings
    from facelake.pipeline import ingest
    from facelake.pipeline.executors import prefetched
    from facelake.sources import BucketSource

    bucket = make_bucket(scheme)
    t0 = time.perf_counter()
    for i, data in enumerate(blobs):
        bucket.write(f"cams/cam{i % 4}/{i:05d}.jpg", data, "image/jpeg")
    upload = time.perf_counter() - t0
    source = BucketSource(f"{bucket.uri}/cams")
    t0 = time.perf_counter()
    entries = list(source.entries())
    listing = time.perf_counter() - t0
    result = {"objects": len(entries), "upload/s": len(blobs) / upload, "list/s": len(entries) / listing}
    for threads in (1, 4, 8):
        t0 = time.perf_counter()
        got = list(prefetched(entries, lambda e: source.read(e, 100_000_000), threads, 32))
        seconds = time.perf_counter() - t0
        result[f"download/s ({threads} thr)"] = len(got) / seconds
        result[f"MB/s ({threads} thr)"] = sum(map(len, got)) / 1e6 / seconds
    db = work / f"{scheme}.duckdb"
    first = ingest([source], load_settings(db=db), workers=workers)
    second = ingest([source], load_settings(db=db), workers=workers)
    result["ingest img/s"] = first.images_per_second
    result["re-run s"] = second.seconds
    result["re-run skipped"] = second.skipped
    return result


def same_sightings(photos: list[Path], workers: int, work: Path) -> dict[str, tuple[int, int, str]]:
    from facelake import load_settings
    from facelake.pipeline import ingest
    from facelake.service import import_lake
    from facelake.store.lake import Lake
    from facelake.triggers.cloud_function import FunctionRuntime

    folder = work / "same" / "door"
    folder.mkdir(parents=True)
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    out = {}
    ingest([folder.parent], load_settings(db=work / "same-folder.duckdb"), workers=workers)
    out["folder"] = digest(work / "same-folder.duckdb")
    for scheme in ("gs", "s3"):
        bucket = make_bucket(scheme)
        for p in photos:
            bucket.write(f"site/door/{p.name}", p.read_bytes())
        ingest([f"{bucket.uri}/site"], load_settings(db=work / f"same-{scheme}.duckdb"), workers=workers)
        out[scheme] = digest(work / f"same-{scheme}.duckdb")
    bucket = make_bucket("gs")
    for p in photos:
        bucket.write(f"door/{p.name}", p.read_bytes())
    lake = f"{bucket.uri}/lake"
    settings = load_settings(db=work / "same-function.duckdb", lake_uri=lake)
    runtime = FunctionRuntime(settings, Lake(lake))
    for p in photos:
        runtime.handle(bucket.name, f"door/{p.name}")  # type: ignore[attr-defined]
    import_lake(settings, lake)
    out["function → lake → import"] = digest(work / "same-function.duckdb")
    return out


def tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def function_timing(photos: list[Path], work: Path) -> dict[str, float]:
    import requests

    bucket = make_bucket("gs")
    for p in photos:
        bucket.write(f"door/{p.name}", p.read_bytes())
    port = free_port()
    env = {"FACELAKE_LAKE_URI": f"{bucket.uri}/lake"}
    cmd = [str(BIN / "functions-framework"), "--source", str(ROOT / "deploy" / "cloud-function" / "main.py"),
           "--target", "on_object_finalized", "--signature-type", "cloudevent", "--host", "127.0.0.1",
           "--port", str(port)]
    t0 = time.perf_counter()
    times = []
    with server(cmd, port, "functions-framework", work / "function.log", env=env) as proc:
        listening = time.perf_counter() - t0
        for p in photos:
            headers = {"ce-id": uuid.uuid4().hex, "ce-specversion": "1.0", "ce-source": "bench",
                       "ce-type": "google.cloud.storage.object.v1.finalized", "Content-Type": "application/json"}
            body = {"bucket": bucket.name, "name": f"door/{p.name}"}  # type: ignore[attr-defined]
            t1 = time.perf_counter()
            r = requests.post(f"http://127.0.0.1:{port}/", headers=headers, data=json.dumps(body), timeout=300)
            r.raise_for_status()
            times.append(time.perf_counter() - t1)
        peak_mb = tree_peak_rss_mb(proc.pid)
    return {"peak RSS MB (all processes)": peak_mb, "listening s": listening, "first event s": times[0], "cold start s": listening + times[0],
            "warm event ms (median)": 1000 * float(np.median(times[1:])), "warm events": len(times) - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "facedata")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from facelake.samples import sample_photos

    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if args.photos.is_dir() else []
    if not photos:
        photos = sorted(sample_photos().glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with gcs_emulator(work) as gcs_host, s3_server(work) as s3_url:
            os.environ.update({"STORAGE_EMULATOR_HOST": gcs_host, "AWS_ENDPOINT_URL": s3_url,
                               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                               "AWS_DEFAULT_REGION": "us-east-1"})
            blobs = small_jpegs(photos, args.objects)
            print(f"## listing and download, {args.objects} objects of ~{np.mean([len(b) for b in blobs]) / 1e3:.0f} kB")
            table = {scheme: throughput(scheme, blobs, args.workers, work) for scheme in ("gs", "s3")}
            keys = list(table["gs"])
            print("| measure | GCS emulator | S3 (moto) |\n|---|---|---|")
            for k in keys:
                print(f"| {k} | {table['gs'][k]:.1f} | {table['s3'][k]:.1f} |")
            chosen = photos[:12]
            print(f"\n## the same {len(chosen)} photos by every path (images, faces, digest of ids+boxes+embeddings)")
            print("| path | images | faces | digest |\n|---|---|---|---|")
            for path, (n_img, n_faces, dig) in same_sightings(chosen, args.workers, work).items():
                print(f"| {path} | {n_img} | {n_faces} | {dig} |")
            print("\n## Cloud Function (functions-framework, one instance, this machine)")
            for k, v in function_timing(chosen, work).items():
                print(f"- {k}: {v:.2f}")


if __name__ == "__main__":
    main()
