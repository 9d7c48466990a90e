"""Shared fixtures: real sample photos (fetched once from PyPI into a cache) and composed images."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelake.samples import sample_photos
from facelake.store.base import Target
from facelake.vision.analyzer import FaceAnalyzer

from .dbs import NewDb, PostgresServers, make_factory, release


@pytest.fixture(scope="session")
def samples() -> Path:
    """face_recognition 1.3.0's test photos: obama ×3, biden, two partial faces, a 32-bit PNG."""
    return sample_photos()


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut(), dtype=np.uint8)


@pytest.fixture(scope="session")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def face_patch(analyzer: FaceAnalyzer, rgb: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The largest face of ``rgb`` cut out with some margin (for composing group photos)."""
    det = analyzer.detect(rgb)[0]
    x, y, w, h = det.box
    m = margin * max(w, h)
    x0, y0 = max(0, int(x - m)), max(0, int(y - m))
    x1, y1 = min(rgb.shape[1], int(x + w + m)), min(rgb.shape[0], int(y + h + m))
    return rgb[y0:y1, x0:x1].copy()


@pytest.fixture(scope="session")
def patches(samples: Path, astronaut_rgb: np.ndarray, analyzer: FaceAnalyzer) -> dict[str, np.ndarray]:
    """Face cut-outs of three different people."""
    return {
        "obama": face_patch(analyzer, load_rgb(samples / "obama.jpg")),
        "biden": face_patch(analyzer, load_rgb(samples / "biden.jpg")),
        "astronaut": face_patch(analyzer, astronaut_rgb),
    }


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, width: int) -> None:
    """Paste ``patch`` resized to ``width`` px wide at (x, y) on ``canvas`` (in place)."""
    height = round(patch.shape[0] * width / patch.shape[1])
    small = np.asarray(Image.fromarray(patch).resize((width, height), Image.LANCZOS))
    canvas[y : y + height, x : x + width] = small


@pytest.fixture
def cams(tmp_path: Path, samples: Path) -> Iterator[Path]:
    """A recorder-style tree: cams/<camera>/<day>/<file>."""
    root = tmp_path / "cams"
    (root / "frontdoor" / "2024-05-01").mkdir(parents=True)
    (root / "garden").mkdir(parents=True)
    shutil.copy(samples / "obama.jpg", root / "frontdoor" / "2024-05-01" / "a.jpg")
    shutil.copy(samples / "biden.jpg", root / "frontdoor" / "2024-05-01" / "b.jpg")
    shutil.copy(samples / "obama2.jpg", root / "garden" / "c.jpg")
    yield root


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real GCS emulator for the whole session; sets ``STORAGE_EMULATOR_HOST`` for the clients."""
    from .servers import gcs_emulator

    with gcs_emulator(tmp_path_factory.mktemp("gcs")) as host:
        mp = pytest.MonkeyPatch()
        mp.setenv("STORAGE_EMULATOR_HOST", host)
        yield host
        mp.undo()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server (moto) for the whole session; sets ``AWS_ENDPOINT_URL`` and dummy keys."""
    from .servers import s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as endpoint:
        mp = pytest.MonkeyPatch()
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield endpoint
        mp.undo()


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[PostgresServers]:
    servers = PostgresServers()
    yield servers
    release()
    servers.close()


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    """The store under test: every store test runs on both (PostgreSQL with pgvector here;
    tests/test_postgres.py runs the plain-PostgreSQL path)."""
    return str(request.param)


@pytest.fixture
def new_db(engine: str, tmp_path: Path, pg_servers: PostgresServers) -> Iterator[NewDb]:
    """A factory of empty databases of the engine under test."""
    yield make_factory(engine, tmp_path, pg_servers)
    if engine != "duckdb":
        release()


@pytest.fixture
def db(new_db: NewDb) -> Target:
    """One empty database of the engine under test."""
    return new_db("f")
