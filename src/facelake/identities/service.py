"""The identities service functions in one place, for the CLI, the API and the other triggers.

The work lives in the modules by job: ``people`` (enrollment, naming, corrections, erasure),
``clusters`` (groups of unknown faces; the algorithms themselves are in ``cluster``),
``search`` (the face index) and ``stages`` (what ingest runs around each image).
"""

from __future__ import annotations

from .clusters import (
    ClusterResult,
    ClusterRow,
    cluster,
    dismiss_cluster,
    list_clusters,
    merge_clusters,
    name_cluster,
    split_cluster,
)
from .people import (
    ENROLLMENT_CAMERA,
    Enrollment,
    IdentifyResult,
    confirm,
    enroll_person,
    forget,
    gallery_gap,
    identify,
    import_people,
    list_people,
    load_gallery,
    load_namer,
    purge,
    remove_person,
    rename_person,
    unname,
)
from .search import IndexSync, SearchHit, search, sync_index
from .stages import ClusterStage, NamingStage, PurgeStage

__all__ = [
    "ENROLLMENT_CAMERA", "ClusterResult", "ClusterRow", "ClusterStage", "Enrollment", "IdentifyResult", "IndexSync",
    "NamingStage", "PurgeStage", "SearchHit", "cluster", "confirm", "dismiss_cluster", "enroll_person", "forget",
    "gallery_gap", "identify", "import_people", "list_clusters", "list_people", "load_gallery", "load_namer", "merge_clusters",
    "name_cluster", "purge", "remove_person", "rename_person", "search", "split_cluster", "sync_index", "unname",
]
