"""People, the orchestration side: enrollment (with consent), open-set naming of stored faces,
corrections, erasure. Each function is one unit of work on the :class:`~facelake.store.Store`
it is handed; the SQL is ``store.people`` (``store/people.py``), the naming rule ``matching``.

Naming happens only against people the owner enrolled, with a consent note, on the owner's
own images; nothing is looked up anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..errors import ConfigError, NotFound, StoreError, UnclearFace
from ..pipeline import records
from ..store import Store
from ..store.sightings import FaceToName
from ..store.tracks import TrackToName
from ..vision.models import EMBEDDER_MODELS
from ..vision.recognisability import clearest, recognisable
from .index import sync_index
from .matching import Match, Namer, dim_of, load_namer, model_of, overlapping, thresholds
from .photos import Photo

ENROLLMENT_CAMERA = "enrollment"


def gallery_gap(store: Store, settings: Settings) -> str | None:
    """A warning when enrolled people have no embedding of the configured model, else None.

    Vectors of two models are never compared, so after a change of embedder (an upgrade
    whose default moved, or ``embedder`` set by hand) people enrolled under the old one are
    silently never named, until ``reembed`` gives their faces the new model's embedding.
    """
    model = model_of(settings)
    rows = store.people.model_gaps(model)
    if not rows:
        return None
    people = sum(n for _, n in rows)
    others = ", ".join(m for m, _ in rows)
    embedder = next((name for name, m in EMBEDDER_MODELS.items() if m == model), model)
    return (f"{people} enrolled {'person has' if people == 1 else 'people have'} no {model} embedding "
            f"(enrolled with {others}), so they cannot be named: run `facelake reembed --model {embedder}`, "
            "or set embedder to the model they were enrolled with")


@dataclass(frozen=True)
class Enrollment:
    person_id: int
    name: str
    sightings: list[int]


def check_name(name: str) -> None:
    """Refuse a blank name (nobody can find or tell apart a person called "   "), or one of
    control characters or over 200 characters."""
    if not name.strip():
        raise ConfigError("the person's name must not be empty")
    if len(name.strip()) > 200 or any(ord(c) < 32 for c in name):
        raise ConfigError("the person's name must be at most 200 characters, without control characters")


def check_enrollment(name: str, consent: str) -> None:
    """Refuse an enrollment without a consent note or a name, before any photo is read."""
    if not consent.strip():
        raise ConfigError("--consent is required: note how and when this person agreed to be recognised")
    check_name(name)


def enroll(store: Store, name: str, photos: Sequence[Photo], consent: str, extend: bool = False,
           actor: str = "cli") -> Enrollment:
    """Enroll ``name`` from photos already analysed (every one checked before anything is written).

    With ``extend``, photos of a person already enrolled under ``name`` are added to theirs
    (several photos per person: front, profile, glasses; each helps naming).
    """
    existing = store.people.find(name.strip())
    with store.transaction():
        if existing is not None and extend:
            person = existing
            store.audit(actor, "add_photos", f"person:{person} photos:{len(photos)}")
        else:
            person = store.people.add(name.strip(), consent.strip())
            store.audit(actor, "add_person", f"person:{person}")
    linked = []
    for job, meta, faces, chosen in photos:
        image, sightings = records(job, meta, faces)
        store.write_image(image, sightings, actor="enroll")
        sighting = store.sightings.id_of(image.image_id, chosen)
        assert sighting is not None
        with store.transaction():
            store.people.enroll(person, sighting, actor=actor)
        linked.append(sighting)
    return Enrollment(person, name.strip(), linked)


@dataclass(frozen=True)
class NameChange:
    """One face whose name changed: ``was`` and ``now`` are person ids (``None``: unknown)."""

    sighting_id: int
    was: int | None
    now: int | None


@dataclass(frozen=True)
class IdentifyResult:
    checked: int
    named: int
    changed: int
    changes: tuple[NameChange, ...] = ()
    """Every face whose name changed, so that ``identify`` says which (a name taken back included)."""


REACH_MAX_IMAGES = 20_000
"""Past this many images within reach of an enrollment, ``identify`` re-matches every image
(one ordered pass is then cheaper than that many look-ups by image)."""


def identify(store: Store, settings: Settings, enrolled: Sequence[int] | None = None,
             renamed: Sequence[int] = ()) -> IdentifyResult:
    """Re-match the stored faces against the current enrollments (after people change).

    Image by image, so two faces of one image never get the same person, nor the person
    whose enrollment photo the image is. A clip's faces are named with their track, by its
    template, as at ingest: every face of a track keeps the track's one name. A batch of
    images at a time: memory holds one batch and the changes, never every embedding.

    With ``enrolled`` (the sightings just added to one person's enrollments, the only change
    to the gallery) and ``renamed`` (faces the same edit gave that person's name), only the
    images those can change are matched again (:func:`_reach`): naming a cluster of 20 faces
    at a million sightings reads the embeddings once, unordered, instead of re-deciding them all
    — unless the edit made a new person in a gallery whose bars rise with its size
    (:func:`_new_person_raised_bars`): then every image is.
    """
    namer = load_namer(store, settings)
    model = model_of(settings)
    tracks = store.tracks.to_name(model)
    changes: list[tuple[int, int | None, float | None, int | None]] = []
    track_changes: list[tuple[int, int | None, float | None]] = []
    named = checked = 0
    images = None if enrolled is None or _new_person_raised_bars(store, namer, enrolled) else \
        _reach(store, settings, enrolled, renamed, tracks)
    for batch in store.sightings.to_name(model, images):
        by_image: dict[str, list[FaceToName]] = {}
        for f in batch:
            by_image.setdefault(f.image_id, []).append(f)
        photo = [f for f in batch if f.enrolled_as is None and f.track_id not in tracks]
        matches = dict(zip((f.sighting_id for f in photo), namer.gallery.match(
            np.stack([f.embedding for f in photo]).astype(np.float32)))) if photo else {}
        for faces in by_image.values():
            named_here, checked_here = _identify_image(namer, faces, tracks, changes, track_changes, matches)
            named += named_here
            checked += checked_here
    store.people.set_identities(changes, actor="identify")
    store.tracks.set_names(track_changes)
    return IdentifyResult(checked, named, len(changes),
                          tuple(NameChange(sighting, was, person) for sighting, person, _, was in changes))


def _new_person_raised_bars(store: Store, namer: Namer, enrolled: Sequence[int]) -> bool:
    """Whether ``enrolled`` made a new person in a gallery past ``gallery_reference`` people.

    Every bar rises with the number of people (:meth:`Namer.gallery_extra`), so a new person can
    take a name from a face anywhere, not only near the new enrollments: ``identify`` then
    matches every image again. A person whose every enrolled face is among ``enrolled`` is new
    (a face enrolled twice, byte for byte, counts as new too: the safe side).
    """
    if not enrolled or namer.gallery_extra() == 0.0:
        return False
    _, vectors = store.sightings.embeddings_of(list(enrolled))
    gallery = namer.gallery
    if not len(vectors) or vectors.shape[1] != gallery.embeddings_.shape[1]:
        return False
    mine = (gallery.embeddings_ @ vectors.T).max(axis=1) >= 1.0 - 1e-5
    return any(bool(mine[gallery.labels_ == person].all()) for person in np.unique(gallery.labels_[mine]))


def _reach(store: Store, settings: Settings, enrolled: Sequence[int], renamed: Sequence[int],
           tracks: dict[int, TrackToName]) -> list[str] | None:
    """The images whose names new enrollments of one person can change, or None past
    ``REACH_MAX_IMAGES`` (then every image is matched again).

    A new enrollment raises only its person's score, and only for faces at least as alike to
    it as to their old closest face of that person. A face less alike to every new enrollment
    than ``identify - margin`` cannot change: were that person its best, it scores under the
    threshold (and nobody better named it before); were they second, the named face keeps a
    margin above ``margin``. A little slack is taken below that bound, so a namer's rule for
    a particular face (e.g. raised for low quality) only ever widens what is looked at.
    The images of the enrolled and renamed faces themselves are always in (an enrollment
    keeps its person from the rest of its image; a renamed face is decided anew).
    """
    _, vectors = store.sightings.embeddings_of(list(enrolled)) if enrolled else (None, np.zeros((0, 0), np.float32))
    if len(vectors) and vectors.shape[1] != dim_of(settings):
        return None  # enrolled from another model's embedding: every image, to be safe
    images = store.sightings.images_of([*enrolled, *renamed])
    if len(images) > REACH_MAX_IMAGES:
        return None
    if len(vectors):
        t = thresholds(settings)
        limit = t.identify - t.margin - 0.02
        for image_ids, X in store.sightings.embedded(model_of(settings)):
            for i in np.nonzero((X @ vectors.T).max(axis=1) >= limit)[0].tolist():
                images.add(image_ids[i])
            if len(images) > REACH_MAX_IMAGES:
                return None
        images |= {track.image_id for track in tracks.values()
                   if float((vectors @ track.template).max()) >= limit}
    return sorted(images)


def _identify_image(namer: Namer, faces: list[FaceToName], tracks: dict[int, TrackToName],
                    changes: list[tuple[int, int | None, float | None, int | None]],
                    track_changes: list[tuple[int, int | None, float | None]],
                    matches: dict[int, Match]) -> tuple[int, int]:
    """Name one image's faces (appending what changed); returns how many were named and checked.
    ``matches``: the gallery's match of each photo face (not of a clip's), made for the batch at once."""
    named = checked = 0
    taken = {f.enrolled_as for f in faces if f.enrolled_as is not None}
    free = [f for f in faces if f.enrolled_as is None]
    photo = [f for f in free if f.track_id not in tracks]
    members: dict[int, list[FaceToName]] = {}
    for f in free:
        if f.track_id in tracks:
            members.setdefault(f.track_id, []).append(f)
    checked += len(free)
    if photo:
        decisions = namer.name_image(np.array([f.embedding for f in photo], dtype=np.float32),
                                     [f.quality for f in photo], taken, [f.recognisability for f in photo],
                                     [matches[f.sighting_id] for f in photo])
        for f, (person, score) in zip(photo, decisions):
            named += person is not None
            if person != f.person_id:
                changes.append((int(f.sighting_id), person, score, f.person_id))
    # A track with an enrolled face is that person (the owner said so); the others are named by
    # their templates, never as a person enrolled from a track seen at the same time.
    owned = {f.track_id: f.enrolled_as for f in faces if f.enrolled_as is not None and f.track_id in tracks}
    ids = sorted(set(members) | set(owned))
    for group in overlapping([(tracks[t].start_s, tracks[t].end_s) for t in ids]):
        chosen = [ids[g] for g in group if ids[g] in members and ids[g] not in owned]
        beside = {owned[ids[g]] for g in group if ids[g] in owned}
        decisions = namer.name_image(np.stack([tracks[t].template for t in chosen]),
                                     [max(f.quality for f in members[t]) for t in chosen],
                                     beside, [clearest(f.recognisability for f in members[t]) for t in chosen]) if chosen else []
        fixed = [(t, (owned[t], None)) for t in (ids[g] for g in group) if t in owned and t in members]
        for t, (person, score) in [*zip(chosen, decisions), *fixed]:
            named += len(members[t]) if person is not None else 0
            changes += [(int(f.sighting_id), person, score, f.person_id) for f in members[t]
                        if person != f.person_id]
            if person != tracks[t].person_id:
                track_changes.append((t, person, score))
    return named, checked


@dataclass(frozen=True)
class Unnamed:
    """What ``sightings unname`` changed: the face, the person, and the near-duplicates that went with it."""

    sighting_id: int
    person: int
    near_duplicates: tuple[int, ...]
    """Other faces named as ``person`` that are near-duplicates of this one (cosine at least
    ``duplicate``): the rejection vetoes the name for them too, so they lose it now, audited,
    rather than silently at the next naming."""
    name: str | None = None
    """The person's name, to say whose name went."""


def unname(store: Store, settings: Settings, sighting: int, actor: str = "cli") -> Unnamed:
    """"Not this person": take the name back from the face and from its near-duplicates, saying which."""
    person = store.people.reject(sighting, actor=actor)
    model = model_of(settings)
    faces = dict(store.people.named_faces(person, model, include=sighting))
    veto = faces.pop(sighting, None)
    limit = thresholds(settings).duplicate
    also = [] if veto is None else [
        sid for sid, emb in faces.items()
        if float(np.asarray(emb, dtype=np.float32) @ np.asarray(veto, dtype=np.float32)) >= limit]
    if also:
        store.people.set_identities([(sid, None, None, person) for sid in also], actor=actor)
    return Unnamed(sighting, person, tuple(also), store.people.name_of(person))


def _check_template(store: Store, settings: Settings, sighting: int) -> None:
    """Refuse to make a stored face an enrollment example when it is below the recognisability gate:
    a masked, turned-away or heavily blurred face the owner knows is someone would sit among the
    unrecognisable faces as that person's template."""
    found = store.reports.sighting(sighting)
    score = found[0].recognisability if found is not None else None
    if not recognisable(score, settings.min_recognisability):
        raise UnclearFace(f"sighting {sighting} cannot be recognised well enough to be someone's example "
                          f"(recognisability {score:.2f}, needs {settings.min_recognisability:.2f}: covered, turned "
                          "away or blurred); it is stored and shown as unclear, name a clearer face of them instead")


def confirm(store: Store, settings: Settings, sighting: int, actor: str = "cli") -> int:
    """Add a named sighting to its person's enrollment examples (the owner confirms it is them)."""
    person = store.people.named_as(sighting)
    if person is None:
        raise StoreError(f"sighting {sighting} has no name to confirm (name it first, or enroll a photo)")
    _check_template(store, settings, sighting)
    with store.transaction():
        store.people.enroll(person, sighting, actor=actor)
    return person


def name_face(store: Store, settings: Settings, sighting: int, name: str | None, consent: str | None,
              person: int | None = None, actor: str = "cli") -> Enrollment:
    """One face, clustered or not, becomes an enrollment example: of a new person ``name``
    (with a consent note), or of the person ``person`` already enrolled; then every stored
    face is matched again, so look-alikes of it get the name too."""
    if store.sightings.embeddings_of([sighting])[0].size == 0:
        raise NotFound(f"no face to name in sighting {sighting} (unknown id, or its embedding was erased)")
    _check_template(store, settings, sighting)
    with store.transaction():
        if person is None:
            check_enrollment(name or "", consent or "")
            assert name is not None and consent is not None
            person = store.people.add(name.strip(), consent.strip())
            store.audit(actor, "add_person", f"person:{person} from sighting:{sighting}")
        elif store.people.name_of(person) is None:
            raise NotFound(f"no enrolled person with id {person}")
        store.people.enroll(person, sighting, actor=actor)
    identify(store, settings, enrolled=[sighting])
    return Enrollment(person, store.people.name_of(person) or "", [sighting])


def remove(store: Store, settings: Settings, who: str | int, actor: str = "cli", forget: bool = False) -> dict[str, int]:
    """Take a person out (``store.people.erase``); in a gallery whose bars rise with its size
    (:meth:`~.matching.Namer.gallery_extra`), match every stored face again afterwards.

    Why: one person fewer lowers every bar, so a face left unknown under the stricter bar may
    now be named, as a full ``identify`` would name it (without this, only the next one did).
    """
    raised = load_namer(store, settings).gallery_extra() > 0.0
    counts = store.people.erase(who, actor, forget=forget)
    if raised:
        counts["faces named again (every bar fell)"] = identify(store, settings).changed
    return counts


def forget(store: Store, settings: Settings, who: str | int, actor: str = "cli") -> dict[str, int]:
    """Erase a person completely (``store.people.erase``), from the face index, and from the disk.

    The index is rebuilt without their faces and the database compacted (``Store.compact``),
    so the erased crops and embeddings cannot be carved back from the files either.
    """
    counts = remove(store, settings, who, actor, forget=True)
    synced = sync_index(store, settings)
    if synced.index is not None:  # pgvector's index follows the table: nothing of ours to clean
        counts["index entries"] = synced.removed
    store.compact()
    return counts


def purge(store: Store, settings: Settings, actor: str = "cli") -> int:
    """Erase embeddings and crops of unknown faces older than ``retention_days`` (from the index and the disk too)."""
    n = store.people.purge_unknown(settings.retention_days, actor=actor)
    sync_index(store, settings)
    if n:
        store.compact()
    return n
