"""People: enrollment (with consent), open-set naming of stored faces, corrections, erasure.

Naming happens only against people the owner enrolled, with a consent note, on the owner's
own images; nothing is looked up anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ConfigError, StoreError
from ..pipeline import analyzer_options, records
from ..store import people as sql
from ..store.base import Store, open_store
from ..vision.analyzer import FaceAnalyzer
from ..vision.models import EMBEDDER_MODELS
from .calibration import dim_of, model_of, thresholds
from .gallery import Gallery
from .naming import Namer
from .photos import photo_faces
from .search import sync_index

ENROLLMENT_CAMERA = "enrollment"


def load_gallery(store: Store, settings: Settings) -> Gallery:
    X, y = sql.enrolled_embeddings(store, model_of(settings), dim_of(settings))
    t = thresholds(settings)
    return Gallery(t.identify, t.margin).fit(X, y)


def load_namer(store: Store, settings: Settings) -> Namer:
    """The naming rule with the current enrollments and the owner's "not this person" feedback."""
    rejected, rejected_people = sql.rejected_embeddings(store, model_of(settings), dim_of(settings))
    return Namer(load_gallery(store, settings), thresholds(settings), settings.identify_min_quality,
                 rejected=rejected, rejected_people=rejected_people)


def gallery_gap(settings: Settings) -> str | None:
    """A warning when enrolled people have no embedding of the configured model, else None.

    Vectors of two models are never compared, so after a change of embedder (an upgrade
    whose default moved, or ``embedder`` set by hand) people enrolled under the old one are
    silently never named, until ``reembed`` gives their faces the new model's embedding.
    """
    model = model_of(settings)
    with open_store(settings.db) as store:
        rows = store.con.execute(
            """SELECT s.model, count(DISTINCT e.person_id) FROM enrollments e JOIN sightings s USING (sighting_id)
               WHERE s.embedding IS NOT NULL AND s.model <> ? AND e.person_id NOT IN (
                   SELECT e2.person_id FROM enrollments e2 JOIN sightings s2 USING (sighting_id)
                   WHERE s2.model = ? AND s2.embedding IS NOT NULL)
               GROUP BY s.model ORDER BY s.model""", [model, model]).fetchall()
    if not rows:
        return None
    people = sum(int(n) for _, n in rows)
    others = ", ".join(str(m) for m, _ in rows)
    embedder = next((name for name, m in EMBEDDER_MODELS.items() if m == model), model)
    return (f"{people} enrolled {'person has' if people == 1 else 'people have'} no {model} embedding "
            f"(enrolled with {others}), so they cannot be named: run `facelake reembed --model {embedder}`, "
            "or set embedder to the model they were enrolled with")


@dataclass(frozen=True)
class Enrollment:
    person_id: int
    name: str
    sightings: list[int]


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
    prepared = [photo_faces(path, ENROLLMENT_CAMERA, face, settings, analyzer) for path in photos]
    with open_store(settings.db) as store:
        existing = store.con.execute("SELECT person_id FROM people WHERE name = ?", [name.strip()]).fetchone()
        with store.transaction():
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
            with store.transaction():
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
            photo_faces(photo, ENROLLMENT_CAMERA, None, settings, analyzer)
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
    with open_store(settings.db) as store:
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
    with open_store(settings.db) as store:
        return sql.reject(store, sighting, actor=actor)


def confirm(settings: Settings, sighting: int, actor: str = "cli") -> int:
    """Add a named sighting to its person's enrollment examples (the owner confirms it is them)."""
    with open_store(settings.db) as store:
        row = store.con.execute("SELECT person_id FROM sightings WHERE sighting_id = ? AND embedding IS NOT NULL",
                                [sighting]).fetchone()
        if row is None or row[0] is None:
            raise StoreError(f"sighting {sighting} has no name to confirm (name it first, or enroll a photo)")
        with store.transaction():
            sql.enroll(store, int(row[0]), sighting, actor=actor)
        return int(row[0])


def list_people(settings: Settings) -> list[sql.PersonRow]:
    with open_store(settings.db, read_only=True) as store:
        return sql.list_people(store)


def rename_person(settings: Settings, who: str, new_name: str, actor: str = "cli") -> int:
    if not new_name.strip():
        raise ConfigError("the new name must not be empty")
    with open_store(settings.db) as store:
        return sql.rename_person(store, who, new_name.strip(), actor=actor)


def remove_person(settings: Settings, who: str, actor: str = "cli") -> dict[str, int]:
    """Un-enroll a person: their faces become unknown again (and expire like any unknown face)."""
    with open_store(settings.db) as store:
        pid = sql.person_id(store, who)
        with store.transaction():
            store.lock_person(pid)
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
    with open_store(settings.db) as store:
        counts = sql.forget_person(store, who, actor=actor)
        synced = sync_index(store, settings)
        if synced.index is not None:  # pgvector's index follows the table: nothing of ours to clean
            counts["index entries"] = synced.removed
    return counts


def purge(settings: Settings) -> int:
    """Erase embeddings and crops of unknown faces older than ``retention_days``."""
    with open_store(settings.db) as store:
        n = sql.purge_unknown(store, settings.retention_days, actor="cli")
        sync_index(store, settings)
    return n
