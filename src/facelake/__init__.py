"""facelake: a self-hosted, privacy-first face recognition pipeline.

The public surface is small: settings, the service functions below, and the exception
tree. The CLI is a thin shell over exactly these.
"""

from __future__ import annotations

from .config import Settings, load_settings
from .errors import (
    BadEvent,
    ConfigError,
    ConnectionLost,
    FacelakeError,
    ImageTooLarge,
    ImageUnreadable,
    ModelLoadError,
    NoFaceFound,
    NotFound,
    ReadOnlyViolation,
    SourceError,
    SourceUnavailable,
    StoreError,
    UnclearFace,
)
from .identities import cluster, enroll_person, forget, identify, purge, search
from .pipeline import EmbedOutcome, IngestSummary, embed_paths
from .service import QueryResult, export_parquet, ingest, run_sql, stats, visits

__version__ = "0.1.0"

__all__ = [
    "BadEvent",
    "ConfigError",
    "ConnectionLost",
    "EmbedOutcome",
    "FacelakeError",
    "ImageTooLarge",
    "ImageUnreadable",
    "IngestSummary",
    "ModelLoadError",
    "NoFaceFound",
    "NotFound",
    "QueryResult",
    "ReadOnlyViolation",
    "Settings",
    "SourceError",
    "SourceUnavailable",
    "StoreError",
    "UnclearFace",
    "cluster",
    "embed_paths",
    "enroll_person",
    "export_parquet",
    "forget",
    "identify",
    "ingest",
    "load_settings",
    "purge",
    "run_sql",
    "search",
    "stats",
    "visits",
]
