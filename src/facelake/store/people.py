"""People, enrollments, identification links, erasure and retention, in SQL (``store.people``).

Every method that changes several tables runs in one transaction, so an erasure or a
purge is never half done. Methods documented as *part of the caller's transaction* open
none themselves: orchestration that enrolls several faces wraps them in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ..errors import NotFound, StoreError
from .connection import Sql, utcnow
from .erasures import Erasures


@dataclass(frozen=True)
class PersonRow:
    person_id: int
    name: str
    consent_note: str
    created_at: datetime
    enrolled_faces: int
    sightings: int
    last_seen: datetime | None
    cameras: tuple[str, ...] = ()
    """The cameras that saw them, by name (enrollment photos aside)."""


def _embeddings(rows: list[tuple[object, ...]], dim: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``(person_id, embedding)`` rows as the arrays a gallery is fitted on."""
    if not rows:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.array([r[1] for r in rows], dtype=np.float32), np.array([r[0] for r in rows], dtype=np.int64)


class People:
    """The ``people``, ``enrollments`` and ``rejections`` tables, and the links to them."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self._erasures = Erasures(sql)

    def _lookup(self, column: str, who: str | int) -> str | None:
        """``column`` of the person ``who``: an int is an id, a string a name (or, when nobody has
        that name, the digits of an id: the CLI's ``forget 3``). Never both at once: a person
        named "1" must not shadow person 1."""
        if isinstance(who, int):
            row = self._sql.one(f"SELECT {column} FROM people WHERE person_id = ?", [who])
        else:
            row = self._sql.one(f"SELECT {column} FROM people WHERE name = ?", [who])
            if row is None and who.isdigit() and len(who) < 19:
                row = self._sql.one(f"SELECT {column} FROM people WHERE person_id = ?", [int(who)])
        return None if row is None else str(row[0])

    def id_of(self, who: str | int) -> int:
        """The id of the person ``who`` (see :meth:`_lookup`); raises if there is none."""
        found = self._lookup("person_id", who)
        if found is None:
            what = f"with id {who}" if isinstance(who, int) else f"called {who!r}"
            raise NotFound(f"no enrolled person {what} (listed by `facelake people list` and GET /api/people)")
        return int(found)

    def find(self, name: str) -> int | None:
        """The id of the person called exactly ``name``, or ``None``."""
        row = self._sql.one("SELECT person_id FROM people WHERE name = ?", [name])
        return None if row is None else int(row[0])

    def name_of(self, who: str | int) -> str | None:
        """The name of the person ``who`` (see :meth:`_lookup`), or ``None``."""
        return self._lookup("name", who)

    def names(self) -> dict[int, str]:
        """Every person's name by id."""
        return {int(r[0]): str(r[1]) for r in self._sql.all("SELECT person_id, name FROM people")}

    def add(self, name: str, consent_note: str) -> int:
        """A new person (part of the caller's transaction); refuses a name already enrolled."""
        if self._sql.one("SELECT 1 FROM people WHERE name = ?", [name]):
            raise StoreError(f"a person called {name!r} is already enrolled; pick another name or add photos")
        row = self._sql.one("INSERT INTO people (name, consent_note, created_at) VALUES (?, ?, ?) RETURNING person_id",
                            [name, consent_note, utcnow()])
        assert row is not None
        return int(row[0])

    def enroll(self, person: int, sighting: int, actor: str) -> None:
        """Link an existing sighting to ``person`` as one of their reference faces (part of the
        caller's transaction)."""
        self._sql.execute("INSERT INTO enrollments VALUES (?, ?) ON CONFLICT DO NOTHING", [person, sighting])
        self._sql.execute("UPDATE sightings SET person_id = ?, match_score = 1.0 WHERE sighting_id = ?",
                          [person, sighting])
        self._sql.audit(actor, "enroll", f"sighting:{sighting} person:{person}")

    def listing(self) -> list[PersonRow]:
        """Every person with their counts and cameras, by name.

        The counts come from one pass over the named sightings, grouped by person and camera:
        one subquery per person read the whole table once per person, and the people page then
        asked for each one's cameras (54 + 180 ms for one person at a million sightings, in
        DuckDB; the pass takes 5-10 ms whatever the number of people).
        """
        seen = self._seen()
        rows = self._sql.all(
            """SELECT p.person_id, p.name, p.consent_note, p.created_at, coalesce(e.n, 0)
               FROM people p
               LEFT JOIN (SELECT person_id, count(*) AS n FROM enrollments GROUP BY person_id) e
                      ON e.person_id = p.person_id
               ORDER BY p.name""")
        out = []
        for r in rows:
            count, latest, cameras = seen.get(int(r[0]), (0, None, []))
            out.append(PersonRow(int(r[0]), r[1], r[2], r[3], int(r[4]), count, latest, tuple(sorted(cameras))))
        return out

    def _seen(self) -> dict[int, tuple[int, datetime | None, list[str]]]:
        """Each named person's sightings, last capture time and cameras (enrollment aside)."""
        seen: dict[int, tuple[int, datetime | None, list[str]]] = {}
        for person, camera, n, last in self._sql.all(
                """SELECT person_id, camera, count(*), max(seen_at) FROM sightings
                   WHERE person_id IS NOT NULL GROUP BY person_id, camera"""):
            count, latest, cameras = seen.get(int(person), (0, None, []))
            if camera != "enrollment" and camera is not None:
                cameras.append(str(camera))
            seen[int(person)] = (count + int(n), max((t for t in (latest, last) if t is not None), default=None),
                                 cameras)
        return seen

    def ids(self) -> set[int]:
        """Every enrolled person's id."""
        return {int(r[0]) for r in self._sql.all("SELECT person_id FROM people")}

    def rename(self, who: str | int, new_name: str, actor: str) -> int:
        pid = self.id_of(who)
        if self._sql.one("SELECT 1 FROM people WHERE name = ? AND person_id <> ?", [new_name, pid]):
            raise StoreError(f"a person called {new_name!r} is already enrolled")
        with self._sql.transaction():
            self._sql.execute("UPDATE people SET name = ? WHERE person_id = ?", [new_name, pid])
            self._sql.audit(actor, "rename", f"person:{pid}")
        return pid

    def enrolled_embeddings(self, model: str, dim: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Every enrolled face's embedding of ``model`` and its person id (the gallery's training data)."""
        return _embeddings(self._sql.all(
            """SELECT e.person_id, s.embedding FROM enrollments e JOIN sightings s USING (sighting_id)
               WHERE s.embedding IS NOT NULL AND s.model = ? ORDER BY e.person_id, s.sighting_id""", [model]), dim)

    def rejected_embeddings(self, model: str, dim: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Faces the owner said are *not* a person: their embeddings of ``model`` and that person's id."""
        return _embeddings(self._sql.all(
            """SELECT r.person_id, s.embedding FROM rejections r JOIN sightings s USING (sighting_id)
               WHERE s.embedding IS NOT NULL AND s.model = ? ORDER BY 1, r.sighting_id""", [model]), dim)

    def model_gaps(self, model: str) -> list[tuple[str, int]]:
        """``(other model, people)``: enrolled people with embeddings of other models only."""
        return [(str(m), int(n)) for m, n in self._sql.all(
            """SELECT s.model, count(DISTINCT e.person_id) FROM enrollments e JOIN sightings s USING (sighting_id)
               WHERE s.embedding IS NOT NULL AND s.model <> ? AND e.person_id NOT IN (
                   SELECT e2.person_id FROM enrollments e2 JOIN sightings s2 USING (sighting_id)
                   WHERE s2.model = ? AND s2.embedding IS NOT NULL)
               GROUP BY s.model ORDER BY s.model""", [model, model])]

    def named_as(self, sighting: int) -> int | None:
        """The person an embedded sighting is named as (``None``: unnamed, erased or no such sighting)."""
        row = self._sql.one("SELECT person_id FROM sightings WHERE sighting_id = ? AND embedding IS NOT NULL",
                            [sighting])
        return None if row is None or row[0] is None else int(row[0])

    def reject(self, sighting: int, actor: str) -> int:
        """Record that ``sighting`` is not the person it was named as, and unname it; returns that person."""
        row = self._sql.one("SELECT person_id FROM sightings WHERE sighting_id = ?", [sighting])
        if row is None:
            raise NotFound(f"no sighting {sighting}")
        if row[0] is None:
            raise StoreError(f"sighting {sighting} has no name to take back")
        # A face of an enrollment photo is the owner's own reference: taken back by removing the person.
        # A camera's face that naming a group made an example is only an example: it stops being one.
        if self._sql.one("""SELECT 1 FROM enrollments e JOIN sightings s USING (sighting_id)
                            JOIN images i USING (image_id) WHERE e.sighting_id = ? AND i.camera = 'enrollment'""",
                         [sighting]):
            raise StoreError(f"sighting {sighting} is an enrollment photo: use `facelake people remove` instead")
        person = int(row[0])
        with self._sql.transaction():
            self._sql.execute("DELETE FROM enrollments WHERE sighting_id = ?", [sighting])
            self._sql.execute("INSERT INTO rejections VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                              [sighting, person, utcnow()])
            self._sql.execute("UPDATE sightings SET person_id = NULL, match_score = NULL WHERE sighting_id = ?",
                              [sighting])
            self._sql.audit(actor, "unname", f"sighting:{sighting} person:{person}")
        return person

    def erase(self, who: str | int, actor: str, forget: bool) -> dict[str, int]:
        """Take a person out of the database; returns what was removed, per kind.

        Both ways lock the person first (a writer naming a face as them waits, then finds
        them gone) and remove the person, their enrollments, their "not this person" feedback
        and every sighting's link to them, in one transaction.

        - ``forget=False`` (``people remove``, un-enroll): their faces stay, as unknown faces
          that expire like any other.
        - ``forget=True`` (``facelake forget``, erasure): the enrollment photos go too (every
          face in them, so a group photo given for enrollment leaves nothing behind), and every
          other sighting named as them loses its face crop, context and embedding.
        """
        pid = self.id_of(who)
        sql = self._sql
        with sql.transaction():
            sql.lock_person(pid)
            enrollments = sql.count("SELECT count(*) FROM enrollments WHERE person_id = ?", [pid])
            if forget:
                sql.erasing()
                counts = {"enrollments": enrollments, **self._drop_enrollment_photos(pid)}
                counts["sightings unlinked (crop and embedding erased)"] = sql.count(
                    "SELECT count(*) FROM sightings WHERE person_id = ?", [pid])
                self._erasures.record_faces("person_id = ?", [pid])
                sql.execute("DELETE FROM face_contexts WHERE sighting_id IN "
                            "(SELECT sighting_id FROM sightings WHERE person_id = ?)", [pid])
                # Their faces leave their clusters too: a cluster is a group of one person's faces,
                # and naming it later would link the erased faces to whoever it is named as.
                sql.execute("""UPDATE sightings SET person_id = NULL, match_score = NULL, thumb = NULL,
                               embedding = NULL, cluster_id = NULL WHERE person_id = ?""", [pid])
                counts["tracks unlinked (template erased)"] = sql.count(
                    "SELECT count(*) FROM tracks WHERE person_id = ?", [pid])
                sql.execute("""UPDATE tracks SET person_id = NULL, match_score = NULL, template = NULL, still = NULL,
                               cluster_id = NULL WHERE person_id = ?""", [pid])
                counts["audit links"] = self._drop_audit_links(pid)
                counts["people"] = 1
            else:
                counts = {"people": 1, "enrollments": enrollments, "sightings unlinked": sql.count(
                    "SELECT count(*) FROM sightings WHERE person_id = ?", [pid])}
                sql.execute("UPDATE sightings SET person_id = NULL, match_score = NULL WHERE person_id = ?", [pid])
                sql.execute("UPDATE tracks SET person_id = NULL, match_score = NULL WHERE person_id = ?", [pid])
            sql.execute("DELETE FROM enrollments WHERE person_id = ?", [pid])
            sql.execute("DELETE FROM rejections WHERE person_id = ?", [pid])
            sql.execute("DELETE FROM people WHERE person_id = ?", [pid])
            self._erased(pid)
            sql.audit(actor, "forget" if forget else "remove_person", f"person:{pid}")
        return counts

    def _erased(self, person_id: int) -> None:
        """What an engine keeps about a person beside the tables above, removed with them (none here)."""

    def _drop_audit_links(self, pid: int) -> int:
        """Delete the audit rows that name the person (inside :meth:`erase`); returns how many.

        Why: rows like ``identify sighting:N person:P`` are a record of where the person was
        seen, the very thing the erasure removes. What stays is the ``forget person:P`` row
        written after this (who erased, when: the proof that the erasure was done), and rows
        that name no person (searches, clustering runs, tokens). docs/privacy.md lists them.
        """
        link = [f"% person:{pid} %"]
        n = self._sql.count("SELECT count(*) FROM audit WHERE ' ' || subject || ' ' LIKE ?", link)
        self._sql.execute("DELETE FROM audit WHERE ' ' || subject || ' ' LIKE ?", link)
        return n

    def _drop_enrollment_photos(self, pid: int) -> dict[str, int]:
        """Delete every photo the owner enrolled the person from, with all its faces (inside :meth:`erase`).

        Only the owner's own reference photos (camera ``enrollment``) go whole: a camera frame one
        of whose faces became the person's example (naming a group or a face) keeps its other
        faces, and loses only the person's, with every other face of theirs.
        """
        sql = self._sql
        images = [r[0] for r in sql.all(
            """SELECT DISTINCT s.image_id FROM enrollments e JOIN sightings s USING (sighting_id)
               JOIN images i ON i.image_id = s.image_id WHERE e.person_id = ? AND i.camera = 'enrollment'""",
            [pid])]
        sql.execute("DELETE FROM enrollments WHERE person_id = ?", [pid])
        self._erasures.record_images(images)
        faces = 0
        for image_id in images:
            faces += sql.count("SELECT count(*) FROM sightings WHERE image_id = ?", [image_id])
            for table in ("enrollments", "face_contexts"):
                sql.execute(f"DELETE FROM {table} WHERE sighting_id IN "
                            "(SELECT sighting_id FROM sightings WHERE image_id = ?)", [image_id])
            sql.execute("DELETE FROM sightings WHERE image_id = ?", [image_id])
            sql.execute("DELETE FROM tracks WHERE image_id = ?", [image_id])
            sql.execute("DELETE FROM images WHERE image_id = ?", [image_id])
        return {"enrollment photos": len(images), "enrollment faces": faces}

    def purge_unknown(self, retention_days: int, actor: str, now: datetime | None = None) -> int:
        """Erase embeddings and crops of unknown faces stored before the retention period; returns how many.

        The clock is when facelake stored the face, not the capture time: ingesting an old
        photo archive must not erase its unknown faces on the spot. The sighting rows stay
        (counts and statistics keep working) without the biometric data.
        """
        cutoff = (now or utcnow()) - timedelta(days=retention_days)
        with self._sql.transaction():
            where = """person_id IS NULL
                       AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)
                       AND (embedding IS NOT NULL OR thumb IS NOT NULL)
                       AND image_id IN (SELECT image_id FROM images WHERE ingested_at < ?)"""
            n = self._sql.count(f"SELECT count(*) FROM sightings WHERE {where}", [cutoff])
            if n:
                self._sql.erasing()
                self._erasures.record_faces(where, [cutoff])
                self._sql.execute(f"DELETE FROM face_contexts WHERE sighting_id IN (SELECT sighting_id FROM sightings "
                                  f"WHERE {where})", [cutoff])
                # An expired face leaves its cluster: a cluster of faces without embeddings or crops
                # could still be named, linking the expired sightings to a person.
                self._sql.execute(f"UPDATE sightings SET embedding = NULL, thumb = NULL, cluster_id = NULL "
                                  f"WHERE {where}", [cutoff])
                self._sql.audit(actor, "purge", f"sightings:{n} before:{cutoff.isoformat(timespec='seconds')}")
            # An unknown track's template is as biometric as its faces' embeddings: it expires with them.
            self._sql.execute("""UPDATE tracks SET template = NULL, still = NULL, cluster_id = NULL
                                 WHERE person_id IS NULL AND (template IS NOT NULL OR still IS NOT NULL)
                                 AND image_id IN (SELECT image_id FROM images WHERE ingested_at < ?)""", [cutoff])
        return n

    def set_identities(self, changes: list[tuple[int, int | None, float | None, int | None]], actor: str) -> None:
        """Apply ``(sighting_id, person_id, match_score, was)`` changes; audit each new name, and each
        name taken back (``unname``, by ``actor``), so that no change of a name goes unrecorded."""
        with self._sql.transaction():
            for sighting, person, score, was in changes:
                self._sql.execute("UPDATE sightings SET person_id = ?, match_score = ? WHERE sighting_id = ?",
                                  [person, score, sighting])
                if was is not None and was != person:
                    self._sql.audit(actor, "unname", f"sighting:{sighting} person:{was}")
                if person is not None:
                    self._sql.audit(actor, "identify", f"sighting:{sighting} person:{person}")

    def named_faces(self, person: int, model: str, include: int | None = None) -> list[tuple[int, list[float]]]:
        """``(sighting_id, embedding)`` of the faces of ``model`` named as ``person`` (enrollments
        aside), and of the sighting ``include`` whatever its name."""
        return [(int(r[0]), r[1]) for r in self._sql.all(
            """SELECT sighting_id, embedding FROM sightings WHERE model = ? AND embedding IS NOT NULL
               AND (sighting_id = ? OR (person_id = ? AND sighting_id NOT IN (SELECT sighting_id FROM enrollments)))
               ORDER BY sighting_id""", [model, include, person])]
