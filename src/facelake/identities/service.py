"""Faces become people: enrollment, open-set naming at ingest, re-identification, erasure.

These are the service functions the CLI calls. Naming happens only against people the
owner enrolled, with a consent note, on the owner's own images; nothing is looked up
anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ConfigError, FacelakeError, NoFaceFound
from ..pipeline import IngestSummary, Namer, analyzer_options, make_job, records
from ..pipeline import ingest as ingest_images
from ..sources.decode import decode_image
from ..sources.folder import Entry
from ..store import people as sql
from ..store.duck import Store
from ..vision.analyzer import FaceAnalyzer
from ..vision.types import Face
from .gallery import Gallery

ENROLLMENT_CAMERA = "enrollment"


def load_gallery(store: Store, settings: Settings) -> Gallery:
    X, y = sql.enrolled_embeddings(store)
    return Gallery(settings.match_threshold, settings.match_margin).fit(X, y)


def namer(gallery: Gallery, settings: Settings) -> Namer:
    """Names faces of good enough quality; tiny, blurred or doubtful faces stay unknown."""

    def name(faces: list[Face]) -> list[tuple[int | None, float | None]]:
        if not faces or len(gallery.people_) == 0:
            return [(None, None)] * len(faces)
        matches = gallery.match(np.stack([f.embedding for f in faces]))
        return [
            (m.person, m.score) if m.person is not None and f.quality >= settings.identify_min_quality
            else (None, None)
            for f, m in zip(faces, matches)
        ]

    return name


def ingest(
    sources: list[Path],
    settings: Settings,
    camera: str | None = None,
    workers: int | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_image: Callable[[str, str, int, str | None], None] | None = None,
) -> IngestSummary:
    """Ingest images, name the faces of enrolled people, then purge expired unknown faces."""
    with Store(settings.db) as store:
        gallery = load_gallery(store, settings)
    summary = ingest_images(sources, settings, camera=camera, workers=workers, on_listed=on_listed,
                            on_image=on_image, namer=namer(gallery, settings))
    with Store(settings.db) as store:
        summary.purged = sql.purge_unknown(store, settings.retention_days, actor="ingest")
    return summary


@dataclass(frozen=True)
class Enrollment:
    person_id: int
    name: str
    sightings: list[int]


def _enrollment_face(path: Path, faces: list[Face], face: int | None) -> int:
    if not faces:
        raise NoFaceFound(f"{path}: no face found; enrollment needs a photo with the person's face")
    if face is None:
        if len(faces) > 1:
            sizes = ", ".join(f"{i}: {f.detection.box[2]:.0f} px wide" for i, f in enumerate(faces))
            raise ConfigError(f"{path}: {len(faces)} faces ({sizes}); pick one with --face N (0 = largest)")
        return 0
    if not 0 <= face < len(faces):
        raise ConfigError(f"{path}: --face must be between 0 and {len(faces) - 1}, got {face}")
    return face


def enroll_person(
    settings: Settings, name: str, photos: list[Path], consent: str, face: int | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> Enrollment:
    """Enroll ``name`` from ``photos``; every photo must show exactly one face (or ``face`` picks one).

    All photos are checked before anything is written: a bad photo enrolls nothing.
    """
    if not consent.strip():
        raise ConfigError("--consent is required: note how and when this person agreed to be recognised")
    if not name.strip():
        raise ConfigError("the person's name must not be empty")
    analyzer = analyzer or FaceAnalyzer(analyzer_options(settings))
    max_bytes = int(settings.max_file_mb * 1e6)
    prepared = []
    for path in photos:
        job = make_job(Entry(path, ENROLLMENT_CAMERA), max_bytes)
        if job.data is None:
            raise FacelakeError(f"{path}: {job.error}")
        decoded = decode_image(job.data, settings.max_pixels)
        faces = analyzer.analyze(decoded.pixels)
        prepared.append((job, decoded.meta, faces, _enrollment_face(path, faces, face)))
    with Store(settings.db) as store:
        with sql.transaction(store):
            person = sql.add_person(store, name.strip(), consent.strip())
            store._audit("cli", "add_person", f"person:{person}")
        linked = []
        for job, meta, faces, chosen in prepared:
            image, sightings = records(job, meta, faces, None)
            store.write_image(image, sightings, actor="enroll")
            row = store.con.execute("SELECT sighting_id FROM sightings WHERE image_id = ? AND face_index = ?",
                                    [image.image_id, chosen]).fetchone()
            assert row is not None
            with sql.transaction(store):
                sql.enroll(store, person, int(row[0]), actor="cli")
            linked.append(int(row[0]))
    return Enrollment(person, name.strip(), linked)


@dataclass(frozen=True)
class IdentifyResult:
    checked: int
    named: int
    changed: int


def identify(settings: Settings) -> IdentifyResult:
    """Re-match every stored face against the current enrollments (after people change)."""
    with Store(settings.db) as store:
        gallery = load_gallery(store, settings)
        rows = store.con.execute(
            """SELECT sighting_id, embedding, quality, person_id FROM sightings
               WHERE embedding IS NOT NULL AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)
               ORDER BY sighting_id"""
        ).fetchall()
        changes: list[tuple[int, int | None, float | None]] = []
        named = 0
        if rows:
            X = np.array([r[1] for r in rows], dtype=np.float32)
            matches = gallery.match(X) if len(gallery.people_) else []
            for i, (sid, _, quality, current) in enumerate(rows):
                m = matches[i] if matches else None
                person = m.person if m is not None and quality >= settings.identify_min_quality else None
                score = m.score if person is not None and m is not None else None
                named += person is not None
                if person != current:
                    changes.append((int(sid), person, score))
        sql.set_identities(store, changes, actor="identify")
    return IdentifyResult(len(rows), named, len(changes))


def list_people(settings: Settings) -> list[sql.PersonRow]:
    with Store(settings.db, read_only=True) as store:
        return sql.list_people(store)


def rename_person(settings: Settings, who: str, new_name: str) -> int:
    if not new_name.strip():
        raise ConfigError("the new name must not be empty")
    with Store(settings.db) as store:
        return sql.rename_person(store, who, new_name.strip(), actor="cli")


def remove_person(settings: Settings, who: str) -> dict[str, int]:
    """Un-enroll a person: their faces become unknown again (and expire like any unknown face)."""
    with Store(settings.db) as store:
        pid = sql.person_id(store, who)
        with sql.transaction(store):
            n_enr = store.con.execute("SELECT count(*) FROM enrollments WHERE person_id = ?", [pid]).fetchone()
            n_sig = store.con.execute("SELECT count(*) FROM sightings WHERE person_id = ?", [pid]).fetchone()
            store.con.execute("DELETE FROM enrollments WHERE person_id = ?", [pid])
            store.con.execute("UPDATE sightings SET person_id = NULL, match_score = NULL WHERE person_id = ?", [pid])
            store.con.execute("DELETE FROM people WHERE person_id = ?", [pid])
            store._audit("cli", "remove_person", f"person:{pid}")
    return {"people": 1, "enrollments": int(n_enr[0]) if n_enr else 0,
            "sightings unlinked": int(n_sig[0]) if n_sig else 0}


def forget(settings: Settings, who: str) -> dict[str, int]:
    """Erase a person completely (see ``store.people.forget_person``)."""
    with Store(settings.db) as store:
        return sql.forget_person(store, who, actor="cli")


def purge(settings: Settings) -> int:
    """Erase embeddings and crops of unknown faces older than ``retention_days``."""
    with Store(settings.db) as store:
        return sql.purge_unknown(store, settings.retention_days, actor="cli")


__all__ = [
    "Enrollment", "IdentifyResult", "enroll_person", "forget", "identify", "ingest", "list_people",
    "purge", "remove_person", "rename_person",
]
