"""The Cloud Function's source folder (scripts/build_function.py): every requirement pinned, nothing
the function does not run, and the folder runs in functions-framework with every other
installed distribution blocked from import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .servers import BIN, free_port, server
from .test_cloud import ROOT, cloud_event, gcs_bucket

GUARD = '''
import importlib.abc, importlib.machinery, importlib.metadata as md, os, re, sys

_allowed = set(os.environ["FACELAKE_ALLOWED"].split(","))
_folder = os.environ["FACELAKE_FOLDER"]
_owners = md.packages_distributions()


class _Guard(importlib.abc.MetaPathFinder):
    """Refuse top-level imports from installed distributions the folder's requirements.txt lacks."""

    def find_spec(self, name, path, target=None):
        if "." in name:
            return None
        owners = {re.sub(r"[-_.]+", "-", d).lower() for d in _owners.get(name, [])}
        if not owners or owners & _allowed or name == "google":
            return None
        if importlib.machinery.PathFinder.find_spec(name, [_folder]) is not None:
            return None  # the folder's own copy (facelake, the two dlib weight files)
        raise ModuleNotFoundError(f"blocked: {name} comes from {sorted(owners)}, not in requirements.txt")


sys.meta_path.insert(0, _Guard())
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fn") / "cloud-function"
    env = {**os.environ, "PYTHONPATH": ""}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_function.py"), str(out)], check=True, env=env,
                   capture_output=True)
    return out


def pins(folder: Path) -> dict[str, str]:
    lines = (folder / "requirements.txt").read_text().split()
    assert all("==" in line for line in lines), lines
    return dict(line.split("==") for line in lines)


def test_requirements_are_pinned_and_trimmed(folder: Path) -> None:
    pinned = pins(folder)
    for unused in ("face-recognition-models", "boto3", "botocore", "onnx", "tflite", "ray", "usearch", "facelake"):
        assert unused not in pinned, unused
    assert {"functions-framework", "google-cloud-storage", "onnxruntime", "dlib-bin"} <= set(pinned)
    weights = sorted(p.name for p in (folder / "face_recognition_models" / "models").iterdir())
    assert weights == ["dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"]
    assert not list(folder.rglob("shape_predictor_68*")), "dlib's 68-point model is never loaded"


@pytest.fixture
def guarded(tmp_path: Path, folder: Path) -> dict[str, str]:
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    return {"PYTHONPATH": f"{tmp_path / 'guard'}:{folder}", "FACELAKE_FOLDER": str(folder),
            "FACELAKE_ALLOWED": ",".join(pins(folder)), "FACELAKE_CACHE": str(folder / "cache")}


def test_the_guard_blocks_what_the_folder_does_not_require(guarded: dict[str, str]) -> None:
    env = {**os.environ, **guarded}
    blocked = subprocess.run([sys.executable, "-c", "import boto3"], env=env, capture_output=True, text=True,
                             check=False)
    assert blocked.returncode != 0 and "blocked: boto3" in blocked.stderr
    show = "import facelake.vision.models as m; print(m.__file__); print(m.dlib_model_path('shape_predictor_5_face_landmarks.dat'))"
    ok = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert all(line.startswith(guarded["FACELAKE_FOLDER"]) for line in ok.stdout.split()), ok.stdout


@pytest.fixture
def built_function(tmp_path: Path, folder: Path, guarded: dict[str, str], gcs: str) -> Iterator[tuple[str, object]]:
    bucket = gcs_bucket()
    port = free_port()
    env = {**guarded, "FACELAKE_LAKE_URI": f"gs://{bucket.name}/lake"}
    cmd = [str(BIN / "functions-framework"), "--source", str(folder / "main.py"), "--target", "on_object_finalized",
           "--signature-type", "cloudevent", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "function.log"
    with server(cmd, port, "functions-framework", log, env=env, cwd=folder):
        yield f"http://127.0.0.1:{port}/", bucket
    assert "blocked:" not in log.read_text(), log.read_text()[-3000:]


def test_the_built_folder_runs_a_photo_and_a_clip_with_nothing_else_installed(
    tmp_path: Path, samples: Path, built_function: tuple[str, object]
) -> None:
    from facelake.store.lake import Lake

    from .test_video_ingest import clip, walker

    url, bucket = built_function
    bucket.blob("door/a.jpg").upload_from_filename(samples / "obama.jpg")  # type: ignore[attr-defined]
    bucket.blob("door/w.mp4").upload_from_filename(clip(tmp_path / "w.mp4", [walker("biden.jpg")]))  # type: ignore[attr-defined]
    for name in ("door/a.jpg", "door/w.mp4"):
        blob = bucket.get_blob(name)  # type: ignore[attr-defined]
        headers, body = cloud_event(bucket.name, name, blob.size, blob.generation)  # type: ignore[attr-defined]
        answer = requests.post(url, headers=headers, data=body, timeout=120)
        assert answer.status_code == 200, answer.text
    lake = Lake(f"gs://{bucket.name}/lake")  # type: ignore[attr-defined]
    assert sorted(lake.read(i)[0].status for i in lake.image_ids()) == ["ok", "ok"]
