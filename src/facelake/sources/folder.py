"""Local sources: a folder (recursive) or files named one by one.

Listing never raises on a bad entry: an unreadable directory or file becomes an
:class:`Entry` carrying its error, so the ingest records it and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".pgm", ".ppm"}
)


@dataclass(frozen=True)
class Entry:
    """One thing found in a source: an image path, or a place that could not be read."""

    path: Path
    camera: str
    error: str | None = None


def camera_for(path: Path, root: Path | None) -> str:
    """The camera id of ``path``: the first folder under ``root``, else the parent folder's name.

    Recorders write ``<camera>/<date>/<file>.jpg``; a file directly in the root takes the
    root's own name, and a file given by itself its parent folder's name.
    """
    if root is not None:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = ()
        if len(parts) > 1:
            return parts[0]
        return root.resolve().name or "default"
    return path.resolve().parent.name or "default"


def _walk(root: Path, folder: Path, camera: str | None) -> Iterator[Entry]:
    try:
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Entry(folder, camera or camera_for(folder / "_", root), f"cannot read directory: {exc.strerror or exc}")
        return
    for child in children:
        path = Path(child.path)
        try:
            is_dir = child.is_dir()
        except OSError as exc:
            yield Entry(path, camera or camera_for(path, root), f"cannot stat: {exc.strerror or exc}")
            continue
        if is_dir:
            yield from _walk(root, path, camera)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield Entry(path, camera or camera_for(path, root))


def list_sources(sources: list[Path], camera: str | None = None) -> Iterator[Entry]:
    """Every image under the given folders and files, in a stable (sorted) order.

    Files given explicitly are taken whatever their suffix (the decoder decides); inside
    folders only image suffixes are listed, so sidecar files are not reported as errors.
    """
    for src in sources:
        if src.is_dir():
            yield from _walk(src, src, camera)
        elif src.exists() or src.is_symlink():
            yield Entry(src, camera or camera_for(src, None))
        else:
            yield Entry(src, camera or camera_for(src, None), "no such file or directory")
