"""Where images come from: folders, GCS and S3 buckets, all behind :class:`Source`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .base import Entry, Source, readable
from .buckets import BucketSource, is_bucket_uri
from .folder import FolderSource


def open_source(spec: str | Path, camera: str | None = None) -> Source:
    """The source a command-line argument names: ``gs://…``, ``s3://…``, or a folder or file."""
    text = str(spec)
    if is_bucket_uri(text):
        return BucketSource(text, camera)
    return FolderSource(Path(spec), camera)


def require_present(sources: Sequence[str | Path | Source]) -> None:
    """Raise ConfigError (a usage error) naming every local source that does not exist.

    A mistyped folder is the user's mistake, not a bad input: it must not look like a run
    that found nothing (exit 0), nor leave a permanent error row under a camera made up from
    its parent folder. Checked before anything is opened, so nothing is written. A bucket is
    checked by listing it (a missing bucket is a SourceError).
    """
    missing = []
    for spec in sources:
        if isinstance(spec, FolderSource):
            path = spec.path
        elif isinstance(spec, str | Path) and not is_bucket_uri(str(spec)):
            path = Path(spec)
        else:
            continue
        if not (path.exists() or path.is_symlink()):
            missing.append(readable(str(path)))
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)} (nothing was ingested)")


__all__ = ["BucketSource", "Entry", "FolderSource", "Source", "open_source", "require_present"]
