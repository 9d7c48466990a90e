"""Faces become people: enrollment, open-set naming at ingest, re-identification, erasure.

These are the service functions the CLI calls. Naming happens only against people the
owner enrolled, with a consent note, on the owner's own images; nothing is looked up
anywhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ConfigError, FacelakeError, NoFaceFound, NotFound, StoreError
from ..pipeline import IngestSummary, Job, Stage, analyzer_options, make_job, records
from ..sources.decode import ImageMeta, decode_image
from ..sources.folder import FolderSource, file_entry
from ..store import people as sql
from ..store.duck import ImageRecord, SightingRecord, Store, utcnow
from ..vision.analyzer import FaceAnalyzer
from ..vision.types import Face
from .calibration import dim_of, model_of, thresholds
from .cluster import CentroidClustering
from .gallery import Gallery
from .index import FaceIndex
from .naming import Namer

ENROLLMENT_CAMERA = "enrollment"


def load_gallery(store: Store, settings: Settings) -> Gallery:
    X, y = sql.enrolled_embeddings(store, model_of(settings), dim_of(settings))
    return Gallery(thresholds(settings).identify, settings.match_margin).fit(X, y)


def load_namer(store: Store, settings: Settings) -> Namer:
    """The naming rule with the current enrollments and the owner's "not this person" feedback."""
    rejected, rejected_people = sql.rejected_embeddings(store, model_of(settings), dim_of(settings))
    return Namer(load_gallery(store, settings), thresholds(settings), settings.match_margin,
                 settings.identify_min_quality, rejected=rejected, rejected_people=rejected_people)


class NamingStage(Stage):
    """Names the faces of enrolled people as they are stored (open-set: the rest stay unknown).

    The gallery is loaded once when the ingest starts; ``watch`` reloads it after each
    batch so people enrolled meanwhile are recognised from then on.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namer: Namer | None = None

    def start(self, store: Store) -> None:
        self.namer = load_namer(store, self.settings)

    def use_gallery(self, gallery: Gallery | None) -> None:
        """Name with ``gallery`` (the Cloud Function's gallery file) instead of the store's."""
        self.namer = None if gallery is None else Namer(
            gallery, thresholds(self.settings), self.settings.match_margin, self.settings.identify_min_quality)

    def annotate(self, image: ImageRecord, sightings: list[SightingRecord]) -> list[SightingRecord]:
        if not sightings or self.namer is None:
            return sightings
        decisions = self.namer.name_image(np.stack([s.embedding for s in sightings]), [s.quality for s in sightings])
        return [replace(s, person_id=p, match_score=score) for s, (p, score) in zip(sightings, decisions)]

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        self.namer = load_namer(store, self.settings)


class PurgeStage(Stage):
    """Erases expired unknown faces and brings the search index up to date after a run.

    A long-running watcher calls it after every small batch; the purge itself runs at most
    every ``every_s`` seconds (the index sync is cheap and always runs).
    """

    def __init__(self, settings: Settings, every_s: float = 3600.0) -> None:
        self.settings, self.every_s = settings, every_s
        self._last = float("-inf")

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            summary.purged = sql.purge_unknown(store, self.settings.retention_days, actor="ingest")
            self._last = now
        if summary.new or summary.purged:
            sync_index(store, self.settings)


class ClusterStage(Stage):
    """Groups new unknown faces after each run, so a long-running watcher keeps clusters current.

    Used by ``watch`` and ``serve`` (an owner looking at the dashboard expects strangers to
    appear as groups by themselves); a batch ``ingest`` leaves it to ``facelake cluster``.
    Incremental: existing groups keep their ids, so names given meanwhile stay attached.
    """

    def __init__(self, settings: Settings, every_s: float = 30.0) -> None:
        self.settings, self.every_s = settings, every_s
        self._last = float("-inf")
        self._pending = False

    def after_run(self, store: Store, summary: IngestSummary) -> None:
        self._pending = self._pending or summary.new > 0
        if self._pending and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._pending = False
            cluster(self.settings, actor="watch")


@dataclass(frozen=True)
class Enrollment:
    person_id: int
    name: str
    sightings: list[int]


def _pick_face(path: Path, faces: list[Face], face: int | None) -> int:
    """The face a command means: the only one, or the one ``--face`` names."""
    if not faces:
        raise NoFaceFound(f"{path}: no face found; the photo must show the person's face")
    if face is None:
        if len(faces) > 1:
            sizes = ", ".join(f"{i}: {f.detection.box[2]:.0f} px wide" for i, f in enumerate(faces))
            raise ConfigError(f"{path}: {len(faces)} faces ({sizes}); pick one with --face N (0 = largest)")
        return 0
    if not 0 <= face < len(faces):
        raise ConfigError(f"{path}: --face must be between 0 and {len(faces) - 1}, got {face}")
    return face


def _photo_faces(
    path: Path, camera: str, face: int | None, settings: Settings, analyzer: FaceAnalyzer
) -> tuple[Job, ImageMeta, list[Face], int]:
    """Read, decode and analyse a photo given on the command line; returns the chosen face's index too."""
    job = make_job(file_entry(path, camera), FolderSource(path, camera), int(settings.max_file_mb * 1e6))
    if job.data is None:
        raise FacelakeError(f"{path}: {job.error}")
    decoded = decode_image(job.data, settings.max_pixels)
    faces = analyzer.analyze(decoded.pixels)
    return job, decoded.meta, faces, _pick_face(path, faces, face)


def enroll_person(
    settings: Settings, name: str, photos: list[Path], consent: str, face: int | None = None,
    analyzer: FaceAnalyzer | None = None, extend: bool = False, actor: str = "cli",
) -> Enrollment:
    """Enroll ``name`` from ``photos``; every photo must show exactly one face (or ``face`` picks one).

    All photos are checked before anything is written: a bad photo enrolls nothing. With
    ``extend``, photos of a person already enrolled under ``name`` are added to theirs
    (several photos per person: front, profile, glasses; each helps naming).
    """
    if not consent.strip():
        raise ConfigError("--consent is required: note how and when this person agreed to be recognised")
    if not name.strip():
        raise ConfigError("the person's name must not be empty")
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    prepared = [_photo_faces(path, ENROLLMENT_CAMERA, face, settings, analyzer) for path in photos]
    with Store(settings.db) as store:
        existing = store.con.execute("SELECT person_id FROM people WHERE name = ?", [name.strip()]).fetchone()
        with sql.transaction(store):
            if existing is not None and extend:
                person = int(existing[0])
                store.audit(actor, "add_photos", f"person:{person} photos:{len(prepared)}")
            else:
                person = sql.add_person(store, name.strip(), consent.strip())
                store.audit(actor, "add_person", f"person:{person}")
        linked = []
        for job, meta, faces, chosen in prepared:
            image, sightings = records(job, meta, faces)
            store.write_image(image, sightings, actor="enroll")
            row = store.con.execute("SELECT sighting_id FROM sightings WHERE image_id = ? AND face_index = ?",
                                    [image.image_id, chosen]).fetchone()
            assert row is not None
            with sql.transaction(store):
                sql.enroll(store, person, int(row[0]), actor=actor)
            linked.append(int(row[0]))
    return Enrollment(person, name.strip(), linked)


def import_people(settings: Settings, folder: Path, consent: str) -> list[Enrollment]:
    """Enroll a folder of people: ``folder/<name>/*.jpg``, each photo showing one face.

    Every photo of every person is checked before anything is written; a person already
    enrolled gets the new photos added.
    """
    from ..sources.base import IMAGE_SUFFIXES

    people = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    if not people:
        raise ConfigError(f"{folder}: expected one folder per person (FOLDER/<name>/*.jpg)")
    analyzer = FaceAnalyzer(analyzer_options(settings))
    plan = []
    for person in people:
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise ConfigError(f"{person}: no photos")
        for photo in photos:  # fail before writing anything: every photo must show exactly one face
            _photo_faces(photo, ENROLLMENT_CAMERA, None, settings, analyzer)
        plan.append((person.name, photos))
    return [enroll_person(settings, name, photos, consent, analyzer=analyzer, extend=True) for name, photos in plan]


@dataclass(frozen=True)
class IdentifyResult:
    checked: int
    named: int
    changed: int


def identify(settings: Settings) -> IdentifyResult:
    """Re-match every stored face against the current enrollments (after people change).

    Image by image, so two faces of one image never get the same person, nor the person
    whose enrollment photo the image is.
    """
    with Store(settings.db) as store:
        namer = load_namer(store, settings)
        rows = store.con.execute(
            """SELECT s.sighting_id, s.image_id, s.embedding, s.quality, s.person_id, e.person_id
               FROM sightings s LEFT JOIN enrollments e USING (sighting_id)
               WHERE s.embedding IS NOT NULL AND s.model = ? ORDER BY s.image_id, s.face_index""",
            [model_of(settings)]).fetchall()
        changes: list[tuple[int, int | None, float | None]] = []
        named = checked = 0
        by_image: dict[str, list[tuple[int, list[float], float, int | None, int | None]]] = {}
        for sid, image_id, emb, quality, current, enrolled in rows:
            by_image.setdefault(image_id, []).append((sid, emb, quality, current, enrolled))
        for faces in by_image.values():
            taken = {f[4] for f in faces if f[4] is not None}
            free = [f for f in faces if f[4] is None]
            if not free:
                continue
            checked += len(free)
            decisions = namer.name_image(np.array([f[1] for f in free], dtype=np.float32), [f[2] for f in free], taken)
            for (sid, _, _, current, _), (person, score) in zip(free, decisions):
                named += person is not None
                if person != current:
                    changes.append((int(sid), person, score))
        sql.set_identities(store, changes, actor="identify")
    return IdentifyResult(checked, named, len(changes))


def unname(settings: Settings, sighting: int, actor: str = "cli") -> int:
    """"Not this person": take the name back and never give it to this face or its near-duplicates again."""
    with Store(settings.db) as store:
        return sql.reject(store, sighting, actor=actor)


def confirm(settings: Settings, sighting: int, actor: str = "cli") -> int:
    """Add a named sighting to its person's enrollment examples (the owner confirms it is them)."""
    with Store(settings.db) as store:
        row = store.con.execute("SELECT person_id FROM sightings WHERE sighting_id = ? AND embedding IS NOT NULL",
                                [sighting]).fetchone()
        if row is None or row[0] is None:
            raise StoreError(f"sighting {sighting} has no name to confirm (name it first, or enroll a photo)")
        with sql.transaction(store):
            sql.enroll(store, int(row[0]), sighting, actor=actor)
        return int(row[0])


def list_people(settings: Settings) -> list[sql.PersonRow]:
    with Store(settings.db, read_only=True) as store:
        return sql.list_people(store)


def rename_person(settings: Settings, who: str, new_name: str, actor: str = "cli") -> int:
    if not new_name.strip():
        raise ConfigError("the new name must not be empty")
    with Store(settings.db) as store:
        return sql.rename_person(store, who, new_name.strip(), actor=actor)


def remove_person(settings: Settings, who: str, actor: str = "cli") -> dict[str, int]:
    """Un-enroll a person: their faces become unknown again (and expire like any unknown face)."""
    with Store(settings.db) as store:
        pid = sql.person_id(store, who)
        with sql.transaction(store):
            n_enr = store.con.execute("SELECT count(*) FROM enrollments WHERE person_id = ?", [pid]).fetchone()
            n_sig = store.con.execute("SELECT count(*) FROM sightings WHERE person_id = ?", [pid]).fetchone()
            store.con.execute("DELETE FROM enrollments WHERE person_id = ?", [pid])
            store.con.execute("DELETE FROM rejections WHERE person_id = ?", [pid])
            store.con.execute("UPDATE sightings SET person_id = NULL, match_score = NULL WHERE person_id = ?", [pid])
            store.con.execute("DELETE FROM people WHERE person_id = ?", [pid])
            store.audit(actor, "remove_person", f"person:{pid}")
    return {"people": 1, "enrollments": int(n_enr[0]) if n_enr else 0,
            "sightings unlinked": int(n_sig[0]) if n_sig else 0}


def forget(settings: Settings, who: str, actor: str = "cli") -> dict[str, int]:
    """Erase a person completely (see ``store.people.forget_person``)."""
    with Store(settings.db) as store:
        counts = sql.forget_person(store, who, actor=actor)
        counts["index entries"] = sync_index(store, settings).removed
    return counts


def purge(settings: Settings) -> int:
    """Erase embeddings and crops of unknown faces older than ``retention_days``."""
    with Store(settings.db) as store:
        n = sql.purge_unknown(store, settings.retention_days, actor="cli")
        sync_index(store, settings)
    return n


# --- clusters of unknown faces -----------------------------------------------------------------


@dataclass(frozen=True)
class ClusterResult:
    faces: int
    """Unknown faces of good enough quality that were clustered."""
    clusters: int
    """Clusters with at least two faces."""
    new_faces: int


def _eligible(store: Store, settings: Settings) -> list[tuple[int, list[float], int | None, str, float]]:
    return store.con.execute(
        """SELECT sighting_id, embedding, cluster_id, image_id, quality FROM sightings
           WHERE person_id IS NULL AND embedding IS NOT NULL AND quality >= ? AND model = ?
             AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)
           ORDER BY sighting_id""",
        [settings.identify_min_quality, model_of(settings)],
    ).fetchall()


def cluster(settings: Settings, full: bool = False, actor: str = "cli") -> ClusterResult:
    """Group unknown faces into candidate identities.

    By default only faces without a cluster move: they join the group most of their similar
    neighbours belong to, or start new ones, and existing clusters keep their ids (names the
    owner already gave stay attached). ``full`` regroups everything from scratch.
    Low-quality faces are left out: their embeddings are too unreliable to group.
    """
    with Store(settings.db) as store:
        rows = _eligible(store, settings)
        if not rows:
            return ClusterResult(0, 0, 0)
        X = np.array([r[1] for r in rows], dtype=np.float32)
        previous = np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64)
        top = store.con.execute("SELECT coalesce(max(cluster_id), 0) FROM sightings").fetchone()
        base = int(top[0]) if top else 0
        fixed = np.full(len(rows), -1, dtype=np.int64) if full else previous
        found = CentroidClustering(thresholds(settings).cluster).fit(
            X, fixed, groups=[r[3] for r in rows], quality=np.array([r[4] for r in rows], dtype=np.float32)).labels_
        # Groups that did not grow out of an existing cluster get ids above every id in use.
        kept = {int(v) for v in fixed[fixed >= 0]}
        fresh: dict[int, int] = {}
        labels = []
        for value in map(int, found):
            if value not in kept and value not in fresh:
                fresh[value] = base + 1 + len(fresh)
            labels.append(value if value in kept else fresh[value])
        with sql.transaction(store):
            for (sid, _, old, _, _), new in zip(rows, labels):
                if old != int(new):
                    store.con.execute("UPDATE sightings SET cluster_id = ? WHERE sighting_id = ?", [int(new), sid])
            store.audit(actor, "cluster", f"faces:{len(rows)}")
        sizes = np.unique(np.array(labels), return_counts=True)[1]
        return ClusterResult(len(rows), int((sizes >= 2).sum()), int((previous < 0).sum()))


@dataclass(frozen=True)
class ClusterRow:
    cluster_id: int
    faces: int
    first_seen: object
    last_seen: object
    cameras: str


def list_clusters(settings: Settings, min_size: int = 2) -> list[ClusterRow]:
    with Store(settings.db, read_only=True) as store:
        rows = store.con.execute(
            """SELECT s.cluster_id, count(*), min(i.taken_at), max(i.taken_at),
                      string_agg(DISTINCT i.camera, ', ' ORDER BY i.camera)
               FROM sightings s JOIN images i USING (image_id)
               WHERE s.cluster_id IS NOT NULL AND s.person_id IS NULL
               GROUP BY 1 HAVING count(*) >= ? ORDER BY 2 DESC, 1""",
            [min_size],
        ).fetchall()
    return [ClusterRow(*r) for r in rows]


def _cluster_members(store: Store, cluster_id: int) -> list[tuple[int, float]]:
    members = store.con.execute(
        "SELECT sighting_id, quality FROM sightings WHERE cluster_id = ? AND person_id IS NULL ORDER BY quality DESC",
        [cluster_id],
    ).fetchall()
    if not members:
        raise NotFound(f"no cluster {cluster_id} (see `facelake clusters`)")
    return [(int(s), float(q)) for s, q in members]


def name_cluster(settings: Settings, cluster_id: int, name: str, consent: str, max_faces: int = 5,
                 actor: str = "cli") -> Enrollment:
    """Enroll a cluster as a person: its best faces become enrollments, all its faces get the name."""
    if not consent.strip():
        raise ConfigError("--consent is required: note how and when this person agreed to be recognised")
    with Store(settings.db) as store:
        members = _cluster_members(store, cluster_id)
        with sql.transaction(store):
            person = sql.add_person(store, name.strip(), consent.strip())
            store.audit(actor, "add_person", f"person:{person} from cluster:{cluster_id}")
            for sid, _ in members[:max_faces]:
                sql.enroll(store, person, sid, actor=actor)
            store.con.execute("UPDATE sightings SET person_id = ?, cluster_id = NULL WHERE cluster_id = ?",
                              [person, cluster_id])
    identify(settings)
    return Enrollment(person, name.strip(), [s for s, _ in members[:max_faces]])


def merge_clusters(settings: Settings, keep: int, other: int, actor: str = "cli") -> int:
    """Move every face of cluster ``other`` into ``keep``; returns how many moved."""
    with Store(settings.db) as store:
        _cluster_members(store, keep)
        moved = len(_cluster_members(store, other))
        with sql.transaction(store):
            store.con.execute("UPDATE sightings SET cluster_id = ? WHERE cluster_id = ?", [keep, other])
            store.audit(actor, "merge_clusters", f"cluster:{other} into cluster:{keep}")
    return moved


def dismiss_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> int:
    """"Not a face": erase the embeddings and crops of a cluster's detections and keep them out of every group."""
    with Store(settings.db) as store:
        members = [m[0] for m in _cluster_members(store, cluster_id)]
        with sql.transaction(store):
            for sid in members:
                store.con.execute("INSERT INTO not_faces VALUES (?, ?) ON CONFLICT DO NOTHING", [sid, utcnow()])
            store.con.execute("DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings "
                              "WHERE cluster_id = ? AND person_id IS NULL)", [cluster_id])
            store.con.execute("UPDATE sightings SET embedding = NULL, thumb = NULL, cluster_id = NULL "
                              "WHERE cluster_id = ? AND person_id IS NULL", [cluster_id])
            store.audit(actor, "dismiss_cluster", f"cluster:{cluster_id} faces:{len(members)}")
        sync_index(store, settings)
    return len(members)


def split_cluster(settings: Settings, cluster_id: int, actor: str = "cli") -> list[int]:
    """Re-cluster one cluster with ever stricter thresholds until it falls apart; returns the ids."""
    with Store(settings.db) as store:
        members = [m[0] for m in _cluster_members(store, cluster_id)]
        rows = store.con.execute(
            f"SELECT sighting_id, embedding, image_id, quality FROM sightings "
            f"WHERE sighting_id IN ({','.join('?' * len(members))})",
            members,
        ).fetchall()
        X = np.array([r[1] for r in rows], dtype=np.float32)
        threshold = thresholds(settings).cluster
        labels = np.zeros(len(rows), dtype=np.int64)
        while threshold < 0.999 and len(np.unique(labels)) < 2:
            threshold += 0.005
            labels = CentroidClustering(threshold).fit(
                X, groups=[r[2] for r in rows], quality=np.array([r[3] for r in rows], dtype=np.float32)).labels_
        groups = np.unique(labels)
        if len(groups) < 2:
            return [cluster_id]
        top = store.con.execute("SELECT coalesce(max(cluster_id), 0) FROM sightings").fetchone()
        next_id = (int(top[0]) if top else 0) + 1
        ids = {int(groups[0]): cluster_id}
        for g in groups[1:]:
            ids[int(g)], next_id = next_id, next_id + 1
        with sql.transaction(store):
            for (sid, *_), label in zip(rows, labels):
                store.con.execute("UPDATE sightings SET cluster_id = ? WHERE sighting_id = ?", [ids[int(label)], sid])
            store.audit(actor, "split_cluster", f"cluster:{cluster_id} into {len(groups)}")
    return sorted(ids.values())


# --- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSync:
    index: FaceIndex
    added: int
    removed: int


def sync_index(store: Store, settings: Settings, chunk: int = 50_000) -> IndexSync:
    """Bring the face index up to date with the database (or rebuild it if it was lost)."""
    model = model_of(settings)
    index = FaceIndex(settings.db, model, dim_of(settings))
    added = removed = 0
    last = index.synced_to
    while True:
        rows = store.con.execute(
            """SELECT sighting_id, embedding FROM sightings
               WHERE embedding IS NOT NULL AND model = ? AND sighting_id > ? ORDER BY sighting_id LIMIT ?""",
            [model, last, chunk],
        ).fetchall()
        if not rows:
            break
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        added += index.add(ids, np.array([r[1] for r in rows], dtype=np.float32))
        last = int(ids[-1])
    counted = store.con.execute(
        "SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model]).fetchone()
    if counted is not None and len(index) != int(counted[0]):
        # Embeddings erased by forget/purge leave keys behind; a crash between saving the
        # index and its state can leave the opposite. Either way the database decides.
        live = {r[0] for r in store.con.execute(
            "SELECT sighting_id FROM sightings WHERE embedding IS NOT NULL AND model = ?", [model]).fetchall()}
        keys = set(index.keys().tolist())
        removed = index.remove(np.array(sorted(keys - live), dtype=np.int64))
        missing = sorted(live - keys)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            rows = store.con.execute(
                f"SELECT sighting_id, embedding FROM sightings WHERE sighting_id IN ({','.join('?' * len(part))})",
                part).fetchall()
            added += index.add(np.array([r[0] for r in rows], dtype=np.int64),
                               np.array([r[1] for r in rows], dtype=np.float32))
    if added or removed or index.rebuilt or last != index.synced_to:
        index.synced_to = last
        index.save()
    return IndexSync(index, added, removed)


@dataclass(frozen=True)
class SearchHit:
    sighting_id: int
    score: float
    uri: str
    camera: str | None
    taken_at: object
    person: str | None


def search(settings: Settings, photo: Path, top: int = 10, face: int | None = None,
           analyzer: FaceAnalyzer | None = None, actor: str = "cli") -> list[SearchHit]:
    """Past sightings of the face in ``photo``, most similar first (an audited query)."""
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    job, _, faces, chosen_index = _photo_faces(photo, "search", face, settings, analyzer)
    chosen = faces[chosen_index]
    with Store(settings.db) as store:
        index = sync_index(store, settings).index
        hits = index.search(chosen.embedding, top)
        store.audit(actor, "search", f"photo:{job.image_id[:16]} top:{top}")
        if not hits:
            return []
        info = {r[0]: r[1:] for r in store.con.execute(
            f"""SELECT s.sighting_id, i.uri, i.camera, i.taken_at, p.name FROM sightings s
                JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
                WHERE s.sighting_id IN ({",".join("?" * len(hits))})""",
            [h.sighting_id for h in hits]).fetchall()}
    return [SearchHit(h.sighting_id, h.score, *info[h.sighting_id]) for h in hits if h.sighting_id in info]


__all__ = [
    "ClusterResult",
    "ClusterRow",
    "ClusterStage",
    "Enrollment",
    "IdentifyResult",
    "NamingStage",
    "PurgeStage",
    "cluster",
    "enroll_person",
    "forget",
    "identify",
    "list_clusters",
    "list_people",
    "merge_clusters",
    "name_cluster",
    "purge",
    "remove_person",
    "rename_person",
    "search",
    "split_cluster",
    "sync_index",
]
