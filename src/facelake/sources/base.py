"""What every source is: a listing of entries and a way to read one entry's bytes.

The pipeline sees only :class:`Source` and :class:`Entry`; whether the bytes come from a
folder, a GCS bucket or an S3 bucket is the source's business. Each entry carries a
``version`` (a file's mtime and size, a GCS generation, an S3 ETag): the store remembers
which ``(uri, version)`` it has already stored, so re-listing a bucket downloads nothing it
has seen, and the image id (the sha256 of the bytes) still makes the same bytes one image
wherever they were found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from ..errors import ImageTooLarge

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".pgm", ".ppm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".avi", ".mjpeg", ".mjpg", ".ts", ".webm"})
"""Clips accepted wherever an image is: recorders export MP4/MKV/MOV/AVI, IP cameras MJPEG and MPEG-TS."""
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


class Writable(Protocol):
    """Where a download goes: a file, or a file that hashes on the way (``pipeline.records``)."""

    def write(self, data: bytes, /) -> int: ...
    def tell(self) -> int: ...


@dataclass(frozen=True)
class Entry:
    """One thing a source listed: an image to read, or a place that could not be read."""

    uri: str
    camera: str
    size: int | None = None
    version: str | None = None
    """Changes whenever the bytes may have changed (mtime+size, generation, ETag)."""
    mtime: float | None = None
    """Seconds since the epoch; the capture time of images without EXIF."""
    error: str | None = None


@runtime_checkable
class Source(Protocol):
    """A place images come from."""

    uri: str
    read_threads: int
    """How many reads may run at once (1 for local disks, more for network round trips)."""

    def entries(self) -> Iterator[Entry]:
        """Every image entry, in a stable order; never raises for one bad entry."""
        ...

    def read(self, entry: Entry, max_bytes: int) -> bytes:
        """The entry's bytes; raises ImageTooLarge past ``max_bytes`` without reading them all."""
        ...

    def local_path(self, entry: Entry) -> Path | None:
        """The entry as a file on this machine, when it is one (a clip is then decoded in place), else None."""
        ...

    def download(self, entry: Entry, out: Writable, max_bytes: int) -> None:
        """Write the entry's bytes to ``out`` chunk by chunk (a clip is spooled, never held whole);
        raises ImageTooLarge once more than ``max_bytes`` arrived."""
        ...


def readable(text: str) -> str:
    """``text`` as valid Unicode, to store, print or send: unchanged when it already is.

    A Linux file name is bytes; Python carries the bytes that are not UTF-8 as lone
    surrogates (``caf\\udce9.jpg``, PEP 383), which no database, JSON file or terminal
    takes. Those bytes are written as ``\\xNN`` (``caf\\xe9.jpg``): readable, and the same
    name always gives the same text. The exact bytes are kept apart (:func:`raw_name`).
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte stands for (from JSON, say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def raw_name(text: str) -> bytes | None:
    """The exact bytes of a file name that is not valid UTF-8 (None for every other name).

    Stored beside :func:`readable`'s form, so the name is kept losslessly:
    ``os.fsdecode(raw)`` is the path again.
    """
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # not a file name's bytes at all
        return None


def camera_from_key(key: str, prefix: str, fallback: str) -> str:
    """The camera of an object ``key`` listed under ``prefix``, by the folder rule.

    Recorders write ``<camera>/<date>/<file>.jpg``: the first path part under the prefix is
    the camera; an object directly under the prefix takes the prefix's last part (or
    ``fallback``, the bucket name, when the prefix is empty).
    """
    rest = key[len(prefix):].lstrip("/") if key.startswith(prefix) else key
    parts = PurePosixPath(rest).parts
    if len(parts) > 1:
        return parts[0]
    name = PurePosixPath(prefix.rstrip("/")).name
    return name or fallback or "default"


def is_image_name(name: str) -> bool:
    """Whether a file or object name is one the pipeline takes: an image or a video clip."""
    return PurePosixPath(name).suffix.lower() in MEDIA_SUFFIXES


def is_video_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in VIDEO_SUFFIXES


def write_bounded(chunks: Iterator[bytes], out: Writable, max_bytes: int, where: str) -> None:
    """Copy a stream of chunks into ``out``, stopping with ImageTooLarge as soon as it passes ``max_bytes``.

    A listing's size can be stale or wrong (an object rewritten since); the stream is the
    truth, so the limit is enforced on what actually arrives, one chunk in memory at a time.
    """
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise ImageTooLarge(f"{where}: more than {max_bytes / 1e6:.0f} MB, over the limit")
        out.write(chunk)
