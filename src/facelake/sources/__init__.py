"""Where images come from: folders, GCS and S3 buckets, all behind :class:`Source`."""

from __future__ import annotations

from pathlib import Path

from .base import Entry, Source
from .buckets import BucketSource, is_bucket_uri
from .folder import FolderSource


def open_source(spec: str | Path, camera: str | None = None) -> Source:
    """The source a command-line argument names: ``gs://…``, ``s3://…``, or a folder or file."""
    text = str(spec)
    if is_bucket_uri(text):
        return BucketSource(text, camera)
    return FolderSource(Path(spec), camera)


__all__ = ["BucketSource", "Entry", "FolderSource", "Source", "open_source"]
