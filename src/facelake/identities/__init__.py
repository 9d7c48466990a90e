"""Identities: who the stored faces are. The facade the CLI, the API and the triggers call.

Each function here opens the database once, hands the store to the module doing the job,
and closes it: one unit of work per call. The modules, by job:

    matching    the open-set rule: calibrated thresholds, gallery, namer, gallery file
    clustering  the grouping algorithm (pure arithmetic over embeddings)
    index       the usearch face index beside the database, and keeping it in sync
    people      enrollment, naming stored faces, corrections, erasure   (SQL: store/people.py)
    clusters    grouping, naming, merging, splitting clusters           (SQL: store/clusters.py)
    search      "where else was this face seen"                         (SQL: store/sightings.py)
    reembed     recomputing stored embeddings with another model
    stages      what ingest runs around each image (naming, purging, clustering)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError
from ..pipeline import analyzer_options
from ..sources.base import IMAGE_SUFFIXES
from ..store import open_store
from ..store.clusters import ClusterRow
from ..store.people import PersonRow
from ..vision.analyzer import FaceAnalyzer
from . import clusters as _clusters
from . import people as _people
from . import reembed as _reembed
from .clusters import ClusterResult
from .index import IndexSync, sync_index
from .matching import load_gallery, load_namer
from .people import ENROLLMENT_CAMERA, Enrollment, IdentifyResult, NameChange, Unnamed
from .photos import check_enrollable, photo_faces
from .reembed import ReembedSummary
from .search import Searched, SearchHit, search_face
from .search import search_live as _search_live
from .stages import ClusterStage, NamingStage, PurgeStage


def enroll_person(
    settings: Settings, name: str, photos: list[Path], consent: str, face: int | None = None,
    analyzer: FaceAnalyzer | None = None, extend: bool = False, actor: str = "cli",
) -> Enrollment:
    """Enroll ``name`` from ``photos``; every photo must show exactly one face (or ``face`` picks one).

    All photos are checked before anything is written: a bad photo enrolls nothing. With
    ``extend``, photos of a person already enrolled under ``name`` are added to theirs.
    """
    _people.check_enrollment(name, consent)
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    prepared = [photo_faces(path, ENROLLMENT_CAMERA, face, settings, analyzer) for path in photos]
    for path, (_, _, faces, chosen) in zip(photos, prepared):
        check_enrollable(path, faces, chosen, settings)
    with open_store(settings.db) as store:
        return _people.enroll(store, name, prepared, consent, extend, actor)


def import_people(settings: Settings, folder: Path, consent: str) -> list[Enrollment]:
    """Enroll a folder of people: ``folder/<name>/*.jpg``, each photo showing one face.

    Every photo of every person is checked before anything is written (and analysed once); a
    person already enrolled gets the new photos added. A photo outside the people's folders
    is refused rather than skipped: it is the owner's photo of someone, and a silent import
    without it looks complete.
    """
    people = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    if not people:
        raise ConfigError(f"{folder}: expected one folder per person (FOLDER/<name>/*.jpg)")
    loose = sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise ConfigError(f"{folder}: {', '.join(loose[:5])}{' …' if len(loose) > 5 else ''} outside the people's "
                          "folders; put each photo in a folder named after its person (FOLDER/<name>/*.jpg)")
    for person in people:  # every name before any photo is analysed, saying whose folder it is
        try:
            _people.check_name(person.name)
        except ConfigError as exc:
            raise ConfigError(f"{person}: {exc}") from exc
    _people.check_enrollment(people[0].name, consent)
    analyzer = FaceAnalyzer(analyzer_options(settings))
    plan = []
    for person in people:
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise ConfigError(f"{person}: no photos")
        prepared = []
        for photo in photos:  # fail before writing anything: every photo must show exactly one clear face
            prepared.append(photo_faces(photo, ENROLLMENT_CAMERA, None, settings, analyzer))
            check_enrollable(photo, prepared[-1][2], prepared[-1][3], settings)
        plan.append((person.name, prepared))
    with open_store(settings.db) as store:
        return [_people.enroll(store, name, prepared, consent, extend=True) for name, prepared in plan]


def identify(settings: Settings) -> IdentifyResult:
    """Re-match every stored face against the current enrollments (after people change)."""
    with open_store(settings.db) as store:
        return _people.identify(store, settings)


def gallery_gap(settings: Settings) -> str | None:
    """A warning when enrolled people have no embedding of the configured model, else None."""
    with open_store(settings.db) as store:
        return _people.gallery_gap(store, settings)


def unname(settings: Settings, sighting: int, actor: str = "cli") -> Unnamed:
    """"Not this person": take the name back from the face and its near-duplicates (each listed and
    audited), and never give it to them again."""
    with open_store(settings.db) as store:
        return _people.unname(store, settings, sighting, actor)


def confirm(settings: Settings, sighting: int, actor: str = "cli") -> int:
    """Add a named sighting to its person's enrollment examples (the owner confirms it is them)."""
    with open_store(settings.db) as store:
        return _people.confirm(store, settings, sighting, actor)


def list_people(settings: Settings) -> list[PersonRow]:
    with open_store(settings.db, read_only=True) as store:
        return store.people.listing()


def rename_person(settings: Settings, who: str | int, new_name: str, actor: str = "cli") -> int:
    """Rename the person ``who`` (an id, or a name: ``store.people.id_of``)."""
    _people.check_name(new_name)
    with open_store(settings.db) as store:
        return store.people.rename(who, new_name.strip(), actor=actor)


def remove_person(settings: Settings, who: str | int, actor: str = "cli") -> dict[str, int]:
    """Un-enroll a person: their faces become unknown again (and expire like any unknown face)."""
    with open_store(settings.db) as store:
        return _people.remove(store, settings, who, actor)


def forget(settings: Settings, who: str | int, actor: str = "cli", lake: str | None = None) -> dict[str, int]:
    """Erase a person completely: enrollments, photos, links, crops, embeddings, index entries,
    and their faces in the Cloud Function's lake (``lake``, else ``lake_uri``) when there is one."""
    with open_store(settings.db) as store:
        counts = _people.forget(store, settings, who, actor)
    uri = lake or settings.lake_uri
    if uri:
        counts.update(_erase_lake(settings, uri, actor, retention=False))
    return counts


def purge(settings: Settings, lake: str | None = None, actor: str = "cli") -> dict[str, int]:
    """Erase embeddings and crops of unknown faces older than ``retention_days``, in the database
    and in the lake (``lake``, else ``lake_uri``) when there is one."""
    with open_store(settings.db) as store:
        counts = {"faces": _people.purge(store, settings, actor)}
    uri = lake or settings.lake_uri
    if uri:
        counts.update(_erase_lake(settings, uri, actor, retention=True))
    return counts


def _erase_lake(settings: Settings, uri: str, actor: str, retention: bool) -> dict[str, int]:
    """The lake step of ``forget`` and ``purge``, after the database's (which stands if the lake
    cannot be reached: the keys wait in ``erased`` for the next run, and ``import`` refuses them)."""
    from ..errors import FacelakeError, SourceError
    from ..store.lake import Lake, erase_from_lake

    try:
        with open_store(settings.db) as store:
            done = erase_from_lake(store, Lake(uri), settings.retention_days if retention else None, actor)
    except FacelakeError as exc:
        raise SourceError(f"erased from the database, but not yet from the lake {uri}: {exc} "
                        f"(run `facelake purge --lake {uri}` to finish)") from exc
    return {"lake images deleted": done.images, "lake faces erased": done.faces}


def cluster(settings: Settings, full: bool = False, actor: str = "cli") -> ClusterResult:
    """Group unknown faces into candidate identities (see ``clusters.cluster``)."""
    with open_store(settings.db) as store:
        return _clusters.cluster(store, settings, full, actor)


def list_clusters(settings: Settings, min_size: int = 2, limit: int | None = None, offset: int = 0) -> list[ClusterRow]:
    """Groups of unknown faces, largest first (``limit`` from ``offset``: a page; None: all)."""
    with open_store(settings.db, read_only=True) as store:
        return store.clusters.listing(min_size, limit, offset)


def name_cluster(settings: Settings, cluster_id: int, name: str, consent: str, max_faces: int = 5,
                 actor: str = "cli") -> Enrollment:
    """Enroll a cluster as a person: its best faces become enrollments, all its faces get the name."""
    with open_store(settings.db) as store:
        return _clusters.name_cluster(store, settings, cluster_id, name, consent, max_faces, actor)


def assign_cluster(settings: Settings, cluster_id: int, person: int, max_faces: int = 5,
                   actor: str = "cli") -> Enrollment:
    """Give a cluster to the person ``person`` (an id) already enrolled: their name on all its faces."""
    with open_store(settings.db) as store:
        return _clusters.assign_cluster(store, settings, cluster_id, person, max_faces, actor)


def name_face(settings: Settings, sighting: int, name: str | None = None, consent: str | None = None,
              person: int | None = None, actor: str = "cli") -> Enrollment:
    """Name one face: enroll a new person ``name`` from it, or add it to the person ``person`` (an id)."""
    with open_store(settings.db) as store:
        return _people.name_face(store, settings, sighting, name, consent, person, actor)


def merge_clusters(settings: Settings, keep: int, other: int, actor: str = "cli") -> int:
    """Move every face of cluster ``other`` into ``keep``; returns how many moved."""
    with open_store(settings.db) as store:
        return _clusters.merge_clusters(store, keep, other, actor)


def dismiss_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> int:
    """"Not a face": erase a cluster's embeddings and crops and keep them out of every group."""
    with open_store(settings.db) as store:
        return _clusters.dismiss_cluster(store, settings, cluster_id, actor)


def split_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> list[int]:
    """Re-cluster one cluster with ever stricter thresholds until it falls apart; returns the ids."""
    with open_store(settings.db) as store:
        return _clusters.split_cluster(store, settings, cluster_id, actor)


def search(settings: Settings, photo: Path, top: int = 10, face: int | None = None,
           analyzer: FaceAnalyzer | None = None, actor: str = "cli") -> list[SearchHit]:
    """Past sightings of the face in ``photo``, most similar first (an audited query)."""
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    job, _, faces, chosen = photo_faces(photo, "search", face, settings, analyzer)
    with open_store(settings.db) as store:
        return search_face(store, settings, faces[chosen].embedding, job.image_id, top, actor)


def search_live(settings: Settings, photo: Path, top: int = 10, face: int | None = None,
                analyzer: FaceAnalyzer | None = None, actor: str = "api") -> Searched:
    """:func:`search` for a server: never waits for the index (``search.search_live``)."""
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    job, _, faces, chosen = photo_faces(photo, "search", face, settings, analyzer)
    with open_store(settings.db) as store:
        return _search_live(store, settings, faces[chosen].embedding, job.image_id, top, actor)


def reembed(settings: Settings, embedder: str, on_total: Callable[[int], None] | None = None,
            on_image: Callable[[str, int], None] | None = None) -> ReembedSummary:
    """Give every stored face an embedding of ``embedder`` ("fusion", "dlib" or "mobilefacenet")."""
    _reembed.target_model(embedder)
    with open_store(settings.db) as store:
        return _reembed.reembed(store, settings, embedder, on_total, on_image)


__all__ = [
    "ENROLLMENT_CAMERA",
    "ClusterResult",
    "ClusterRow",
    "ClusterStage",
    "Enrollment",
    "IdentifyResult",
    "IndexSync",
    "NameChange",
    "NamingStage",
    "PersonRow",
    "PurgeStage",
    "ReembedSummary",
    "SearchHit",
    "Searched",
    "Unnamed",
    "assign_cluster",
    "cluster",
    "confirm",
    "dismiss_cluster",
    "enroll_person",
    "forget",
    "gallery_gap",
    "identify",
    "import_people",
    "list_clusters",
    "list_people",
    "load_gallery",
    "load_namer",
    "merge_clusters",
    "name_cluster",
    "name_face",
    "purge",
    "reembed",
    "remove_person",
    "rename_person",
    "search",
    "search_live",
    "split_cluster",
    "sync_index",
    "unname",
]
