"""Assemble the Cloud Function's source folder: only what the function runs, every version pinned.

    python scripts/build_function.py OUT      (scripts/build-function.sh runs it with .venv)

What goes in, and why:
- ``main.py`` and facelake's own source (``facelake/``), copied, not installed from a wheel:
  a wheel would bring facelake's every dependency (the CLI's, video export's, the ONNX
  converters', boto3) into the instance;
- two of dlib's weight files, in a ``face_recognition_models/models/`` folder where facelake
  looks for them: the 5-point landmark predictor and the ResNet. The package itself also
  ships a 99.7 MB 68-point predictor that facelake never loads;
- ``cache/``: the ONNX graphs facelake converts the dlib and MobileFaceNet weights into,
  made here once, so a cold instance neither converts (seconds) nor needs ``onnx``/``tflite``;
- ``requirements.txt``: the distributions the function imports (``RUNTIME``) and everything
  they require, each pinned (``==``) to the version this environment runs and was tested
  with; tests/test_function_build.py runs the folder with every other distribution blocked.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = [
    "functions-framework", "google-cloud-storage", "google-cloud-bigquery", "numpy", "pillow", "pillow-heif",
    "opencv-python-headless", "onnxruntime", "dlib-bin", "duckdb", "pydantic", "pydantic-settings", "av", "scipy",
    "typer", "rich", "jinja2",
]
"""What the function imports (found by running it on a photo and a clip with the rest blocked)."""
DLIB_FILES = ["shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"]


def _name(requirement: str) -> tuple[str, str]:
    """A requirement string's distribution name and its environment marker ('' if none)."""
    spec, _, marker = requirement.partition(";")
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
    assert match, requirement
    return match.group(0), marker.strip()


def _applies(marker: str) -> bool:
    """Whether a requirement's marker holds here, for no extra (extras are not installed)."""
    if not marker:
        return True
    if "extra" in marker:
        return False
    from packaging.markers import Marker

    return Marker(marker).evaluate()


def closure(names: list[str]) -> dict[str, str]:
    """Each distribution in ``names`` and everything it requires here, with its installed version."""
    pinned: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pinned:
            continue
        dist = md.distribution(name)
        pinned[key] = dist.version
        for req in dist.requires or []:
            dep, marker = _name(req)
            if _applies(marker):
                todo.append(dep)
    return dict(sorted(pinned.items()))


def installed_bytes(pins: dict[str, str]) -> int:
    """What installing ``pins`` puts on disk (the RECORD sizes of this environment's copies)."""
    total = 0
    for name in pins:
        for f in md.distribution(name).files or []:
            total += int(f.size or 0)
    return total


def build(out: Path) -> dict[str, str]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "cloud-function" / "main.py", out / "main.py")
    shutil.copytree(ROOT / "src" / "facelake", out / "facelake", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    from facelake.vision.models import dlib_model_path

    models = out / "face_recognition_models" / "models"
    models.mkdir(parents=True)
    # A regular package (empty __init__), so that it wins over an installed face-recognition-models.
    (models.parent / "__init__.py").write_text('"""dlib\'s two weight files facelake loads (see build_function.py)."""\n')
    for name in DLIB_FILES:
        shutil.copy(dlib_model_path(name), models / name)
    # The converted graphs, made with the folder's own weights, into the folder's cache.
    env = {**os.environ, "FACELAKE_CACHE": str(out / "cache"), "PYTHONPATH": str(out)}
    load = ("from facelake import load_settings\nfrom facelake.pipeline.worker import Worker\n"
            "Worker.from_settings(load_settings()).load()")
    subprocess.run([sys.executable, "-c", load], check=True, env=env, cwd=out)
    pins = closure(RUNTIME)
    (out / "requirements.txt").write_text("".join(f"{k}=={v}\n" for k, v in pins.items()))
    return pins


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "cloud-function"
    pins = build(out)
    folder = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"function source ready in {out}: {len(pins)} pinned distributions, "
          f"{installed_bytes(pins) / 1e6:.0f} MB installed, {folder / 1e6:.0f} MB of source and weights")


if __name__ == "__main__":
    main()
