"""Sample face photos a fresh machine can get: those shipped in face_recognition 1.3.0's sdist.

Used by the quick-start demo and the test suite. The sdist comes from PyPI through pip (the
only outside source facelake ever touches, and only here) and is cached, so the download
happens once per machine. Run ``python -m facelake.samples DIR`` to copy them into DIR.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from .vision.models import cache_dir

SDIST = "face_recognition==1.3.0"
PHOTOS = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
)


def sample_photos() -> Path:
    """A folder holding the sample photos, downloading the sdist on first use."""
    target = cache_dir() / "samples"
    if all((target / name).is_file() for name in PHOTOS):
        return target
    download = cache_dir() / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    archives = list(download.glob("face_recognition-1.3.0.tar.gz"))
    if not archives:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             SDIST, "-d", str(download)],
            check=True,
        )
        archives = list(download.glob("face_recognition-1.3.0.tar.gz"))
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if "/tests/test_images/" in member.name and name in PHOTOS and member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                (target / name).write_bytes(src.read())
    missing = [n for n in PHOTOS if not (target / n).is_file()]
    if missing:
        raise RuntimeError(f"sample photos missing from {SDIST}: {missing}")
    return target


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("samples")
    dest.mkdir(parents=True, exist_ok=True)
    for photo in sample_photos().iterdir():
        shutil.copy2(photo, dest / photo.name)
    print(dest)


if __name__ == "__main__":
    main()
