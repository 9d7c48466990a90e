"""People, enrollments, identification links, erasure and retention, in SQL.

Every function that changes several tables runs in one transaction, so an erasure or a
purge is never half done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ..errors import NotFound, StoreError
from .base import Store, utcnow


@dataclass(frozen=True)
class PersonRow:
    person_id: int
    name: str
    consent_note: str
    created_at: datetime
    enrolled_faces: int
    sightings: int
    last_seen: datetime | None


def person_id(store: Store, who: str) -> int:
    """The id of the person named ``who`` (or whose id is ``who``); raises if there is none."""
    row = store.con.execute(
        "SELECT person_id FROM people WHERE name = ? OR CAST(person_id AS VARCHAR) = ?", [who, who]
    ).fetchone()
    if row is None:
        raise NotFound(f"no enrolled person called {who!r} (see `facelake people list`)")
    return int(row[0])


def add_person(store: Store, name: str, consent_note: str) -> int:
    if store.con.execute("SELECT 1 FROM people WHERE name = ?", [name]).fetchone():
        raise StoreError(f"a person called {name!r} is already enrolled; pick another name or add photos")
    row = store.con.execute(
        "INSERT INTO people (name, consent_note, created_at) VALUES (?, ?, ?) RETURNING person_id",
        [name, consent_note, utcnow()],
    ).fetchone()
    assert row is not None
    return int(row[0])


def enroll(store: Store, person: int, sighting: int, actor: str) -> None:
    """Link an existing sighting to ``person`` as one of their reference faces."""
    store.con.execute("INSERT INTO enrollments VALUES (?, ?) ON CONFLICT DO NOTHING", [person, sighting])
    store.con.execute("UPDATE sightings SET person_id = ?, match_score = 1.0 WHERE sighting_id = ?",
                      [person, sighting])
    store.audit(actor, "enroll", f"sighting:{sighting} person:{person}")


def list_people(store: Store) -> list[PersonRow]:
    rows = store.con.execute(
        """SELECT p.person_id, p.name, p.consent_note, p.created_at,
                  (SELECT count(*) FROM enrollments e WHERE e.person_id = p.person_id),
                  (SELECT count(*) FROM sightings s WHERE s.person_id = p.person_id),
                  (SELECT max(i.taken_at) FROM sightings s JOIN images i USING (image_id)
                    WHERE s.person_id = p.person_id)
           FROM people p ORDER BY p.name"""
    ).fetchall()
    return [PersonRow(*r) for r in rows]


def rename_person(store: Store, who: str, new_name: str, actor: str) -> int:
    pid = person_id(store, who)
    if store.con.execute("SELECT 1 FROM people WHERE name = ? AND person_id <> ?", [new_name, pid]).fetchone():
        raise StoreError(f"a person called {new_name!r} is already enrolled")
    with store.transaction():
        store.con.execute("UPDATE people SET name = ? WHERE person_id = ?", [new_name, pid])
        store.audit(actor, "rename", f"person:{pid}")
    return pid


def enrolled_embeddings(store: Store, model: str, dim: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Every enrolled face's embedding of ``model`` and its person id (the gallery's training data)."""
    rows = store.con.execute(
        """SELECT e.person_id, s.embedding FROM enrollments e JOIN sightings s USING (sighting_id)
           WHERE s.embedding IS NOT NULL AND s.model = ? ORDER BY e.person_id, s.sighting_id""", [model]
    ).fetchall()
    if not rows:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return (np.array([r[1] for r in rows], dtype=np.float32), np.array([r[0] for r in rows], dtype=np.int64))


def rejected_embeddings(store: Store, model: str, dim: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Faces the owner said are *not* a person: their embeddings of ``model`` and that person's id."""
    rows = store.con.execute(
        """SELECT r.person_id, s.embedding FROM rejections r JOIN sightings s USING (sighting_id)
           WHERE s.embedding IS NOT NULL AND s.model = ? ORDER BY 1, r.sighting_id""", [model]).fetchall()
    if not rows:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.array([r[1] for r in rows], dtype=np.float32), np.array([r[0] for r in rows], dtype=np.int64)


def reject(store: Store, sighting: int, actor: str) -> int:
    """Record that ``sighting`` is not the person it was named as, and unname it; returns that person."""
    row = store.con.execute("SELECT person_id FROM sightings WHERE sighting_id = ?", [sighting]).fetchone()
    if row is None:
        raise NotFound(f"no sighting {sighting}")
    if row[0] is None:
        raise StoreError(f"sighting {sighting} has no name to take back")
    if store.con.execute("SELECT 1 FROM enrollments WHERE sighting_id = ?", [sighting]).fetchone():
        raise StoreError(f"sighting {sighting} is an enrollment photo: use `facelake people remove` instead")
    person = int(row[0])
    with store.transaction():
        store.con.execute("INSERT INTO rejections VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                          [sighting, person, utcnow()])
        store.con.execute("UPDATE sightings SET person_id = NULL, match_score = NULL WHERE sighting_id = ?",
                          [sighting])
        store.audit(actor, "unname", f"sighting:{sighting} person:{person}")
    return person


def forget_person(store: Store, who: str, actor: str) -> dict[str, int]:
    """Erase a person completely; returns what was removed, per kind.

    Removed: the person, their enrollments, the enrollment photos (every face in them, so a
    group photo given for enrollment leaves nothing behind), and on every other sighting
    named as them the link, the face crop and the embedding.
    """
    pid = person_id(store, who)
    con = store.con
    with store.transaction():
        store.lock_person(pid)  # a writer naming a face as them now waits, then finds them gone
        enrolled_images = [r[0] for r in con.execute(
            """SELECT DISTINCT s.image_id FROM enrollments e JOIN sightings s USING (sighting_id)
               WHERE e.person_id = ?""", [pid]).fetchall()]
        counts = {"enrollments": int(con.execute(
            "SELECT count(*) FROM enrollments WHERE person_id = ?", [pid]).fetchone()[0])}  # type: ignore[index]
        con.execute("DELETE FROM enrollments WHERE person_id = ?", [pid])
        counts["enrollment photos"] = len(enrolled_images)
        counts["enrollment faces"] = 0
        for image_id in enrolled_images:
            n = con.execute("SELECT count(*) FROM sightings WHERE image_id = ?", [image_id]).fetchone()
            counts["enrollment faces"] += int(n[0]) if n else 0
            con.execute("DELETE FROM enrollments WHERE sighting_id IN "
                        "(SELECT sighting_id FROM sightings WHERE image_id = ?)", [image_id])
            con.execute("DELETE FROM face_contexts WHERE sighting_id IN "
                        "(SELECT sighting_id FROM sightings WHERE image_id = ?)", [image_id])
            con.execute("DELETE FROM sightings WHERE image_id = ?", [image_id])
            con.execute("DELETE FROM images WHERE image_id = ?", [image_id])
        linked = con.execute("SELECT count(*) FROM sightings WHERE person_id = ?", [pid]).fetchone()
        counts["sightings unlinked (crop and embedding erased)"] = int(linked[0]) if linked else 0
        con.execute("DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings WHERE person_id = ?)",
                    [pid])
        con.execute("""UPDATE sightings SET person_id = NULL, match_score = NULL, thumb = NULL, embedding = NULL
                       WHERE person_id = ?""", [pid])
        con.execute("DELETE FROM rejections WHERE person_id = ?", [pid])
        con.execute("DELETE FROM people WHERE person_id = ?", [pid])
        counts["people"] = 1
        store.audit(actor, "forget", f"person:{pid}")
    return counts


def purge_unknown(store: Store, retention_days: int, actor: str, now: datetime | None = None) -> int:
    """Erase embeddings and crops of unknown faces stored before the retention period; returns how many.

    The clock is when facelake stored the face, not the capture time: ingesting an old
    photo archive must not erase its unknown faces on the spot. The sighting rows stay
    (counts and statistics keep working) without the biometric data.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    with store.transaction():
        where = """person_id IS NULL
                   AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)
                   AND (embedding IS NOT NULL OR thumb IS NOT NULL)
                   AND image_id IN (SELECT image_id FROM images WHERE ingested_at < ?)"""
        row = store.con.execute(f"SELECT count(*) FROM sightings WHERE {where}", [cutoff]).fetchone()
        n = int(row[0]) if row else 0
        if n:
            store.con.execute(f"DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings "
                              f"WHERE {where})", [cutoff])
            store.con.execute(f"UPDATE sightings SET embedding = NULL, thumb = NULL WHERE {where}", [cutoff])
            store.audit(actor, "purge", f"sightings:{n} before:{cutoff.isoformat(timespec='seconds')}")
    return n


def set_identities(store: Store, changes: list[tuple[int, int | None, float | None]], actor: str) -> None:
    """Apply ``(sighting_id, person_id, match_score)`` changes and audit each new name."""
    with store.transaction():
        for sighting, person, score in changes:
            store.con.execute("UPDATE sightings SET person_id = ?, match_score = ? WHERE sighting_id = ?",
                              [person, score, sighting])
            if person is not None:
                store.audit(actor, "identify", f"sighting:{sighting} person:{person}")
