"""The cloud path when things fail: an object that cannot be read now, a fixed object resent, a bad
event, a bucket outage under `ingest`, Ctrl-C while a bucket is down. Every server is real: the GCS
emulator behind a proxy that injects the failures (tests/servers.FaultyProxy), functions-framework
serving the function, and the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from facelake import load_settings
from facelake.pipeline import ingest
from facelake.store.base import Target
from facelake.store.lake import Lake

from .dbs import NewDb, rows
from .servers import BIN, FaultyProxy, free_port, server
from .test_cloud import ROOT, cloud_event, gcs_bucket
from .test_ingest import cli


@pytest.fixture
def proxy(gcs: str) -> Iterator[FaultyProxy]:
    p = FaultyProxy(gcs)
    yield p
    p.close()


@pytest.fixture
def faulty_function(tmp_path: Path, proxy: FaultyProxy) -> Iterator[tuple[str, object, Path]]:
    """functions-framework serving the function, its storage client going through ``proxy``."""
    bucket = gcs_bucket()
    port = free_port()
    env = {"FACELAKE_LAKE_URI": f"gs://{bucket.name}/lake", "FACELAKE_WORKERS": "1",
           "STORAGE_EMULATOR_HOST": proxy.url, "FACELAKE_FUNCTION_PREFIX": "cams"}
    cmd = [str(BIN / "functions-framework"), "--source", str(ROOT / "deploy" / "cloud-function" / "main.py"),
           "--target", "on_object_finalized", "--signature-type", "cloudevent", "--host", "127.0.0.1",
           "--port", str(port)]
    log = tmp_path / "function.log"
    with server(cmd, port, "functions-framework", log, env=env):
        yield f"http://127.0.0.1:{port}/", bucket, log


def post(url: str, bucket: object, name: str, **extra: str) -> requests.Response:
    blob = bucket.get_blob(name)  # type: ignore[attr-defined]
    headers, body = cloud_event(blob.bucket.name, name, blob.size, blob.generation)
    data = {**json.loads(body), "updated": blob.updated.isoformat(), **extra}
    return requests.post(url, headers=headers, data=json.dumps(data), timeout=90)


def lake_rows(bucket: object) -> list[tuple[str, str | None, str]]:
    lake = Lake(f"gs://{bucket.name}/lake")  # type: ignore[attr-defined]
    return sorted((lake.read(i)[0].status, lake.read(i)[0].camera, lake.read(i)[0].uri.rsplit("/", 1)[-1])
                  for i in lake.image_ids())


def test_an_object_that_cannot_be_read_now_fails_the_delivery_and_its_redelivery_stores_it(
    samples: Path, faulty_function: tuple[str, object, Path], proxy: FaultyProxy
) -> None:
    url, bucket, log = faulty_function
    bucket.blob("cams/door/a.jpg").upload_from_filename(samples / "obama.jpg")  # type: ignore[attr-defined]
    for status in (503, 403):
        proxy.status, proxy.failing = status, {"cams/door/a.jpg"}
        answer = post(url, bucket, "cams/door/a.jpg")
        assert answer.status_code == 503, (status, answer.status_code, answer.text)
        assert proxy.hits > 0
    assert lake_rows(bucket) == [], "nothing is stored for a read that failed: the redelivery reads it"
    proxy.failing = set()
    assert post(url, bucket, "cams/door/a.jpg").status_code == 200
    assert lake_rows(bucket) == [("ok", "door", "a.jpg")]
    text = log.read_text()
    assert "retry later" in text and "Traceback" not in text, text[-3000:]


def test_a_fixed_object_resent_replaces_its_error_row_and_import_has_one_image(
    new_db: NewDb, samples: Path, faulty_function: tuple[str, object, Path]
) -> None:
    url, bucket, _ = faulty_function
    blob = bucket.blob("cams/door/b.jpg")  # type: ignore[attr-defined]
    blob.upload_from_string((samples / "biden.jpg").read_bytes()[:15_000])
    assert post(url, bucket, "cams/door/b.jpg").status_code == 200, "a bad image is stored, not retried"
    assert post(url, bucket, "cams/door/b.jpg").status_code == 200
    assert lake_rows(bucket) == [("error", "door", "b.jpg")]
    db = new_db("lake")
    assert cli(db, "import", f"gs://{bucket.name}/lake")[0] == 0  # type: ignore[attr-defined]
    blob.upload_from_filename(samples / "biden.jpg")  # fixed
    assert post(url, bucket, "cams/door/b.jpg").status_code == 200
    assert lake_rows(bucket) == [("ok", "door", "b.jpg")]
    assert cli(db, "import", f"gs://{bucket.name}/lake")[0] == 0  # type: ignore[attr-defined]
    assert rows(db, "SELECT status, camera FROM images") == [("ok", "door")], "the good row replaced the error row"


def test_an_event_without_a_bucket_is_a_clear_400(faulty_function: tuple[str, object, Path]) -> None:
    url, _, log = faulty_function
    headers, _ = cloud_event("x", "cams/door/a.jpg", 1, 1)
    for data in ({"name": "cams/door/a.jpg"}, {"bucket": "x"}, {"bucket": "x", "name": "cams/a.jpg", "size": "many"}):
        answer = requests.post(url, headers=headers, data=json.dumps(data), timeout=30)
        assert answer.status_code == 400, (data, answer.status_code)
    assert "bucket" in requests.post(url, headers=headers, data=json.dumps({"name": "a.jpg"}), timeout=30).text
    assert "Traceback" not in log.read_text()


def test_the_function_names_cameras_and_dates_images_as_ingest_does(
    new_db: NewDb, tmp_path: Path, samples: Path, faulty_function: tuple[str, object, Path]
) -> None:
    from PIL import Image

    url, bucket, _ = faulty_function
    plain = tmp_path / "plain.jpg"  # no EXIF: the object's time dates it
    Image.open(samples / "obama.jpg").save(plain, "JPEG", quality=92)
    for name in ("cams/frontdoor/2024-05-01/a.jpg", "elsewhere/x/b.jpg"):
        bucket.blob(name).upload_from_filename(plain)  # type: ignore[attr-defined]
        assert post(url, bucket, name).status_code == 200
    assert lake_rows(bucket) == [("ok", "frontdoor", "a.jpg")], "outside function_prefix: ignored"
    db = new_db("lake")
    assert cli(db, "import", f"gs://{bucket.name}/lake")[0] == 0  # type: ignore[attr-defined]
    from_function = rows(db, "SELECT camera, taken_at, taken_at_source FROM images")
    folder_db = new_db("ingest")
    assert cli(folder_db, "ingest", f"gs://{bucket.name}/cams/", "--workers", "1")[0] == 0  # type: ignore[attr-defined]
    from_ingest = rows(folder_db, "SELECT camera, taken_at, taken_at_source FROM images")
    assert from_function == from_ingest and from_function[0][1] is not None and from_function[0][2] == "mtime", (
        from_function, from_ingest)
    updated = bucket.get_blob("cams/frontdoor/2024-05-01/a.jpg").updated  # type: ignore[attr-defined]
    assert from_function[0][1] == datetime.fromtimestamp(updated.timestamp())


def test_a_lake_file_event_loads_no_model(tmp_path: Path, samples: Path, gcs: str) -> None:
    from facelake.sources.buckets import LocalBucket
    from facelake.triggers.cloud_function import FunctionRuntime, handle_event

    bucket = gcs_bucket()
    lake = Lake(str(tmp_path / "lake"), bucket=LocalBucket(tmp_path / "lake"))
    runtime = FunctionRuntime(load_settings(db=tmp_path / "x.duckdb"), sink=lake)
    event = "google.cloud.storage.object.v1.finalized"
    for name in ("lake/images/ab.parquet", "lake/sightings/ab.parquet", "gallery.npz", "door/"):
        assert handle_event(event, {"bucket": bucket.name, "name": name}, runtime).outcome == "ignored"
    assert not runtime.models_loaded
    bucket.blob("door/a.jpg").upload_from_filename(samples / "obama.jpg")
    assert handle_event(event, {"bucket": bucket.name, "name": "door/a.jpg"}, runtime).outcome == "new"
    assert runtime.models_loaded


def _upload(bucket: object, samples: Path, n: int) -> list[str]:
    names = [f"cams/door/{i:02d}.jpg" for i in range(n)]
    photos = ["obama.jpg", "biden.jpg", "obama2.jpg"]
    for i, name in enumerate(names):  # each object its own bytes (one after the JPEG's end), so its own image
        data = (samples / photos[i % 3]).read_bytes() + bytes([i])
        bucket.blob(name).upload_from_string(data, content_type="image/jpeg")  # type: ignore[attr-defined]
    return names


def test_after_a_bucket_outage_the_next_ingest_replaces_every_error_row(
    db: Target, samples: Path, proxy: FaultyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = gcs_bucket()
    names = _upload(bucket, samples, 8)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    proxy.failing = {"/download/"}  # the listing answers, every download fails: an outage mid-run
    settings = load_settings(db=db, bucket_read_threads=1)
    down = ingest([f"gs://{bucket.name}/cams"], settings, workers=1)
    assert (down.new, down.failed) == (0, 8)
    assert all("now" in error for _, error in down.errors), down.errors
    # The first object spends the retry budget (a dozen tries, jittered); the 7 others are tried
    # once each. Retrying each for the budget would be about 8 x 12.
    assert proxy.hits < 8 * 6, proxy.hits
    proxy.failing = set()
    up = ingest([f"gs://{bucket.name}/cams"], settings, workers=1)
    assert (up.new, up.failed) == (8, 0)
    assert rows(db, "SELECT status, count(*) FROM images GROUP BY 1") == [("ok", len(names))]


def test_ctrl_c_stops_an_ingest_whose_bucket_is_down_and_it_says_what_it_waits_for(
    tmp_path: Path, samples: Path, proxy: FaultyProxy
) -> None:
    bucket = gcs_bucket()
    _upload(bucket, samples, 12)
    proxy.failing = {"/download/"}
    env = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(BIN / "facelake"), "--db", str(tmp_path / "f.duckdb"), "ingest",
                             f"gs://{bucket.name}/cams", "--workers", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # the first retry is said as it happens
        seen.append(line)
        if "retrying" in line:
            break
    assert any("503" in line and "retrying" in line for line in seen), seen
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("ingest still running 30 s after Ctrl-C (it waited out every object's retries)")
    assert proc.returncode != 0


def test_the_clients_retry_budget_is_well_under_the_functions_timeout() -> None:
    from facelake.sources import buckets

    text = (ROOT / "docs" / "cloud.md").read_text()
    timeout = int(text.split("--timeout=")[1].split("s")[0])
    worst = buckets.READ_BUDGET_S + sum(buckets.REQUEST_TIMEOUT_S)
    assert worst * 2 <= timeout, (worst, timeout)
    assert buckets.S3_ATTEMPTS * sum(buckets.REQUEST_TIMEOUT_S) * 2 <= timeout



PEAK = '''
import sys
from facelake import load_settings
from facelake.sources.buckets import LocalBucket
from facelake.store.lake import Lake
from facelake.triggers.cloud_function import FunctionRuntime

bucket, name, lake, pixels = sys.argv[1:5]
runtime = FunctionRuntime(load_settings(db=lake + "/x.duckdb", max_pixels=int(pixels)),
                          sink=Lake(lake, bucket=LocalBucket(lake)))
outcome = runtime.handle(bucket, name)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count the forking test process.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(outcome.outcome, outcome.faces, peak * 1024)
'''


def memory_table() -> list[tuple[int, int]]:
    """docs/cloud.md's memory table: (bytes of --memory, FACELAKE_MAX_PIXELS) per row."""
    import re

    found = re.findall(r"^\| `--memory=(\d+)Gi` \| (\d[\d_]*)", (ROOT / "docs" / "cloud.md").read_text(), re.MULTILINE)
    return [(int(gi) << 30, int(px.replace("_", ""))) for gi, px in found]


def test_the_function_fits_the_memory_the_docs_give_for_the_largest_image_allowed(
    tmp_path: Path, samples: Path, gcs: str
) -> None:
    """Peak RSS (VmHWM) of the function's process on a JPEG of max_pixels (a face on a flat canvas),
    against each documented --memory / max_pixels pair, with a quarter left for the server."""
    from PIL import Image

    table = memory_table()
    assert table and table[0][1] == load_settings(db=tmp_path / "x.duckdb").max_pixels, table
    bucket = gcs_bucket()
    face = Image.open(samples / "obama.jpg").convert("RGB")
    for limit, pixels in table:
        width = int((pixels * 4 / 3) ** 0.5)
        height = pixels // width
        canvas = Image.new("RGB", (width, height), (120, 130, 140))
        canvas.paste(face.resize((face.width * 4, face.height * 4)), (width // 3, height // 3))
        canvas.save(tmp_path / "big.jpg", "JPEG", quality=90)
        del canvas
        bucket.blob(f"door/{pixels}.jpg").upload_from_filename(tmp_path / "big.jpg")
        (tmp_path / str(pixels)).mkdir()
        run = subprocess.run([str(BIN / "python"), "-c", PEAK, bucket.name, f"door/{pixels}.jpg",
                              str(tmp_path / str(pixels)), str(pixels)], capture_output=True, text=True, check=True)
        outcome, faces, peak = run.stdout.split()
        assert (outcome, faces) == ("new", "1"), run.stdout
        assert int(peak) * 1.25 <= limit, f"{pixels} px peaked at {int(peak) >> 20} MiB, over 80% of {limit >> 20} MiB"
