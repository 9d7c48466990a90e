"""Local sources: a folder (recursive) or a file named by itself.

Listing never raises on a bad entry: an unreadable directory or file becomes an
:class:`Entry` carrying its error, so the ingest records it and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ImageTooLarge, ImageUnreadable
from .base import IMAGE_SUFFIXES, MEDIA_SUFFIXES, Entry, Writable, write_bounded

CHUNK = 1 << 20

__all__ = ["IMAGE_SUFFIXES", "FolderSource", "camera_for", "file_entry"]


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


def file_entry(path: Path, camera: str) -> Entry:
    """An entry for one file, with the version that tells a rewritten file from the old one."""
    try:
        st = path.stat()
    except OSError as exc:
        return Entry(str(path), camera, error=f"cannot stat: {exc.strerror or exc}")
    return Entry(str(path), camera, size=st.st_size, version=f"{st.st_mtime_ns}:{st.st_size}", mtime=st.st_mtime)


class FolderSource:
    """A folder searched recursively, or a single file (taken whatever its suffix)."""

    read_threads = 1

    def __init__(self, path: Path, camera: str | None = None, within: Path | None = None) -> None:
        self.path = Path(path)
        self.uri = str(self.path)
        self.camera = camera
        self.within = Path(within) if within is not None else self.path
        """The source whose links are judged (:meth:`_inside`): ``watch`` lists a folder that
        appeared in the one it watches."""

    def __repr__(self) -> str:
        return f"FolderSource({self.uri!r})"

    def entries(self) -> Iterator[Entry]:
        src = self.path
        if src.is_dir():
            yield from self._walk(src)
        elif src.exists() or src.is_symlink():
            yield file_entry(src, self.camera or camera_for(src, None))
        else:
            yield Entry(str(src), self.camera or camera_for(src, None), error="no such file or directory")

    def _walk(self, top: Path) -> Iterator[Entry]:
        """Every media file under ``top``, depth first in name order, as it is found.

        Symbolic links to folders are followed (a camera's folder may be one), except a link below
        a camera's folder back inside the source, whose files are listed under their own folder
        and camera; and each real folder (device, inode) once:
        a link back up the tree would otherwise list the same files again at every level
        (one loop: each file ~40 times) or never end (two loops). An explicit stack, not
        recursion, so a deep tree cannot hit Python's recursion limit, and the listing is
        streamed: the ingest starts on the first files while the rest are still being found.
        """
        seen: set[tuple[int, int]] = set()
        stack = [self._children(top, seen)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, Path):
                stack.append(self._children(item, seen))
            else:
                yield item

    def _children(self, folder: Path, seen: set[tuple[int, int]]) -> Iterator[Entry | Path]:
        """One folder's media files (entries) and subfolders (paths), in name order; nothing for a
        folder already listed under another name."""
        root, camera = self.path, self.camera
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Entry(str(folder), camera or camera_for(folder / "_", root),
                        error=f"cannot read directory: {exc.strerror or exc}")
            return
        for child in children:
            path = Path(child.path)
            try:
                is_dir = child.is_dir()
            except OSError as exc:
                yield Entry(str(path), camera or camera_for(path, root), error=f"cannot stat: {exc.strerror or exc}")
                continue
            if is_dir:
                # A camera's own folder may be a link (cams/frontdoor -> /mnt/nvr/cam01, or to a folder
                # beside it): its name is the camera, so it is always followed. Deeper down, a link
                # back inside the source only leads to files listed under their own folder.
                if not (child.is_symlink() and path.parent != self.within and self._inside(path)):
                    yield path
            elif path.suffix.lower() in MEDIA_SUFFIXES:
                yield file_entry(path, camera or camera_for(path, root))

    def _inside(self, link: Path) -> bool:
        """Whether a link to a folder leads back inside the source: its files are listed where they
        are, under their own camera (cam1/cam3link -> cam3 stored cam3's clips as cam1's)."""
        try:
            return link.resolve().is_relative_to(self.within.resolve())
        except (OSError, RuntimeError):  # a loop resolve gives up on: not followed either
            return True

    def read(self, entry: Entry, max_bytes: int) -> bytes:
        return read_file(Path(entry.uri), max_bytes)

    def local_path(self, entry: Entry) -> Path | None:
        return Path(entry.uri)

    def download(self, entry: Entry, out: Writable, max_bytes: int) -> None:
        try:
            with Path(entry.uri).open("rb") as f:
                write_bounded(iter(lambda: f.read(CHUNK), b""), out, max_bytes, entry.uri)
        except OSError as exc:
            raise ImageUnreadable(f"cannot read file: {exc.strerror or exc}") from exc


def read_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, refusing it by its size before reading it."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        if not path.is_file():
            raise ImageUnreadable("not a regular file")
        return path.read_bytes()
    except OSError as exc:
        raise ImageUnreadable(f"cannot read file: {exc.strerror or exc}") from exc
