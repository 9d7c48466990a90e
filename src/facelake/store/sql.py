"""What both engines share: ``SqlStore``, the :class:`~.base.Store` written once in SQL both dialects run.

An engine subclass (``DuckStore``, ``PgStore``) opens its connection, wraps it in its
:class:`~.connection.Sql` handle (PostgreSQL's takes row and advisory locks), and answers
the few things SQL cannot say the same way on both (vectors, the owner's read-only SQL,
bulk copies, Parquet). The handle stays private to ``store/``: the query modules get it,
callers get the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ..errors import ConnectionLost
from ..sources.base import readable
from .base import ImageRecord, SightingRecord, Store
from .clusters import Clusters
from .connection import Sql, marks, utcnow, value_rows
from .erasures import Erasures
from .exports import Exports
from .people import People
from .reports import Reports
from .schema import TABLES
from .sightings import Sightings
from .tokens import Tokens
from .tracks import Tracks
from .visits import Visits


class SqlStore(Store):
    """A store over one SQL connection; the engine subclass supplies the handle and the vectors."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self.people = People(sql)
        self.clusters = Clusters(sql, self.people)
        self.sightings = Sightings(sql)
        self.tokens = Tokens(sql)
        self.reports = Reports(sql)
        self.visits = Visits(sql)
        self.exports = Exports(sql)
        self.erasures = Erasures(sql)
        self.tracks = Tracks(sql)

    def close(self) -> None:
        self._sql.con.close()

    def transaction(self) -> AbstractContextManager[None]:
        return self._sql.transaction()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """No lock: where one process writes (DuckDB), nothing else can cluster meanwhile;
        a server engine overrides this (``PgStore``: an advisory lock)."""
        yield

    def audit(self, actor: str, action: str, subject: str) -> None:
        self._sql.audit(actor, action, subject)

    # --- ingest ---

    def image_status(self, image_id: str) -> str | None:
        row = self._sql.one("SELECT status FROM images WHERE image_id = ?", [image_id])
        return row[0] if row else None

    def known_ok(self) -> set[str]:
        return {r[0] for r in self._sql.all("SELECT image_id FROM images WHERE status = 'ok'")}

    def image_ids(self) -> set[str]:
        return {r[0] for r in self._sql.all("SELECT image_id FROM images")}

    def known_objects(self) -> set[tuple[str, str]]:
        rows = self._sql.all(
            """SELECT o.uri, o.version FROM source_objects o JOIN images i USING (image_id)
               WHERE i.status = 'ok'""")
        return {(r[0], r[1]) for r in rows}

    def objects_stored(self, uris: Sequence[str], chunk: int = 500) -> set[tuple[str, str]]:
        """One query per ``chunk`` uris: a run of a few hundred files asked per file spent ~2 ms
        of the ingesting process's CPU on each."""
        found: set[tuple[str, str]] = set()
        unique = sorted({readable(u) for u in uris})
        for at in range(0, len(unique), chunk):
            part = unique[at : at + chunk]
            found |= {(r[0], r[1]) for r in self._sql.all(
                f"""SELECT o.uri, o.version FROM source_objects o JOIN images i USING (image_id)
                    WHERE i.status = 'ok' AND o.uri IN ({marks(len(part))})""", part)}
        return found

    def remember_object(self, uri: str, version: str | None, image_id: str) -> None:
        if version is not None:
            self._sql.execute("INSERT INTO source_objects VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              [readable(uri), version, image_id, utcnow()])

    def write_images(
        self, items: Sequence[tuple[ImageRecord, Sequence[SightingRecord], str | None]], actor: str = "ingest",
    ) -> list[list[int] | None]:
        """Several images in one transaction: each statement costs the writing process a
        millisecond or so whatever its size, and ingest writes from one process while the
        workers analyse on every core. Two faces an image, DuckDB: 7.7 ms of CPU an image
        written one by one, 1.6 ms in batches of 8. The batch commits or rolls back as one,
        so a server that dropped the connection mid-batch (a restart) gets it again whole.
        """
        for attempt in range(3):
            try:
                return self._write_batch(items, actor)
            except ConnectionLost:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_batch(
        self, items: Sequence[tuple[ImageRecord, Sequence[SightingRecord], str | None]], actor: str,
    ) -> list[list[int] | None]:
        sql = self._sql
        out: list[list[int] | None] = [None] * len(items)
        with sql.transaction():
            ids = [image.image_id for image, _, _ in items]
            for image_id in sorted(set(ids)):  # one order for every writer: no deadlock between them
                sql.lock_image(image_id)
            status = dict(sql.all(f"SELECT image_id, status FROM images WHERE image_id IN ({marks(len(ids))})", ids))
            revised = {image.image_id for image, _, _ in items if image.revision > 0 and status.get(image.image_id) == "ok"}
            if revised:
                dropped = self._drop_for_revision(sorted(revised))
                status = {k: v for k, v in status.items() if k not in dropped}
            if any(v != "ok" for v in status.values()):
                stale = [k for k, v in status.items() if v != "ok"]
                sql.execute(f"DELETE FROM images WHERE image_id IN ({marks(len(stale))})", stale)
            # The place's earlier error rows go: one read while the bucket was down (id from
            # the uri) or the bytes it held before it was fixed (id from those bytes).
            uris = sorted({image.uri for image, _, _ in items})
            sql.execute(f"""DELETE FROM images WHERE status = 'error' AND uri IN ({marks(len(uris))})
                            AND image_id NOT IN ({marks(len(ids))})""", uris + ids)
            new: list[int] = []  # the items to insert: not stored ok, and each id once
            taken = {k for k, v in status.items() if v == "ok"}
            for i, (image, _, _) in enumerate(items):
                if image.image_id not in taken:
                    taken.add(image.image_id)
                    new.append(i)
            now = utcnow()
            if new:
                sql.execute(
                    f"""INSERT INTO images (image_id, uri, camera, taken_at, taken_at_source, gps_lat, gps_lon,
                            camera_make, camera_model, format, width, height, bytes, ingested_at, status, error,
                            uri_bytes)
                        VALUES {value_rows(len(new), 17)}""",
                    [v for i in new for v in _image_row(items[i][0], now)],
                )
            named = {int(s.person_id) for i in new for s in items[i][1] if s.person_id is not None}
            alive = sql.live_people(named)
            faces = [(items[i][0], s, s.person_id is not None and int(s.person_id) not in alive)
                     for i in new for s in items[i][1]]
            track_ids = self._insert_tracks(items, new)
            sighting_ids: dict[tuple[str, int], int] = {}
            if faces:
                returned = sql.all(
                    f"""INSERT INTO sightings (image_id, face_index, box, landmarks, det_score, quality,
                            embedding, model, thumb, person_id, match_score, track_id, offset_s, seen_at, camera,
                            recognisability)
                        VALUES {value_rows(len(faces), 16)} RETURNING image_id, face_index, sighting_id""",
                    [v for image, s, erased in faces for v in _sighting_row(image, s, erased, track_ids, now)],
                )
                sighting_ids = {(r[0], int(r[1])): int(r[2]) for r in returned}
            if track_ids:
                self._finish_tracks(faces, track_ids, sighting_ids)
            contexts = [(sighting_ids[(image.image_id, s.face_index)], s.context)
                        for image, s, erased in faces if s.context is not None and not erased]
            if contexts:
                sql.execute(f"INSERT INTO face_contexts VALUES {value_rows(len(contexts), 4)}",
                            [v for sid, (jpeg, box, lm) in contexts
                             for v in (sid, jpeg, [float(x) for x in box], np.asarray(lm, np.float32).tolist())])
            audits = [(now, actor, "identify", f"sighting:{sighting_ids[(image.image_id, s.face_index)]} person:{s.person_id}")
                      for image, s, erased in faces if s.person_id is not None and not erased]
            if audits:
                sql.execute(f'INSERT INTO audit ("at", actor, action, subject) VALUES {value_rows(len(audits), 4)}',
                            [v for row in audits for v in row])
            objects = {(readable(image.uri), version): image.image_id for image, _, version in items
                       if version is not None and (image.status == "ok" or status.get(image.image_id) == "ok")}
            if objects:
                sql.execute(f"INSERT INTO source_objects VALUES {value_rows(len(objects), 4)} ON CONFLICT DO NOTHING",
                            [v for (uri, version), image_id in objects.items() for v in (uri, version, image_id, now)])
            for i in new:
                image = items[i][0]
                out[i] = [sighting_ids[(image.image_id, s.face_index)] for s in items[i][1]]
        return out

    def _drop_for_revision(self, image_ids: list[str]) -> set[str]:
        """Inside :meth:`write_images`: remove stream segments' rows before their next revision goes
        in (their track has ended since the first write); returns the ids removed. A segment one of
        whose faces was enrolled or corrected meanwhile is kept as it is: the owner's act outranks
        the update."""
        sql = self._sql
        held = {r[0] for r in sql.all(
            f"""SELECT DISTINCT s.image_id FROM sightings s WHERE s.image_id IN ({marks(len(image_ids))})
                AND (s.sighting_id IN (SELECT sighting_id FROM enrollments)
                     OR s.sighting_id IN (SELECT sighting_id FROM rejections))""", image_ids)}
        drop = [i for i in image_ids if i not in held]
        if drop:
            faces = f"SELECT sighting_id FROM sightings WHERE image_id IN ({marks(len(drop))})"
            sql.execute(f"DELETE FROM face_contexts WHERE sighting_id IN ({faces})", drop)
            for table in ("sightings", "tracks", "images"):
                sql.execute(f"DELETE FROM {table} WHERE image_id IN ({marks(len(drop))})", drop)
        return set(drop)

    def _insert_tracks(self, items: Sequence[tuple[ImageRecord, Sequence[SightingRecord], str | None]],
                       new: list[int]) -> dict[tuple[str, int], int]:
        """The new clips' tracks (inside :meth:`write_images`' transaction): ``(image_id, index) → track_id``."""
        rows = [(items[i][0], n, t) for i in new for n, t in enumerate(items[i][0].tracks)]
        if not rows:
            return {}
        returned = self._sql.all(
            f"""INSERT INTO tracks (image_id, track_index, camera, started_at, ended_at, start_s, end_s, frames,
                    template, model, still) VALUES {value_rows(len(rows), 11)}
                RETURNING image_id, track_index, track_id""",
            [v for image, n, t in rows
             for v in (image.image_id, n, image.camera, t.started_at, t.ended_at, float(t.start_s), float(t.end_s),
                       int(t.frames), None if t.template is None else np.asarray(t.template, dtype=np.float32).tolist(),
                       t.model, t.still)])
        return {(r[0], int(r[1])): int(r[2]) for r in returned}

    def _finish_tracks(self, faces: list[tuple[ImageRecord, SightingRecord, bool]],
                       track_ids: dict[tuple[str, int], int], sighting_ids: dict[tuple[str, int], int]) -> None:
        """Each track's best sighting, and the name its sightings were given (a track is named once,
        so they all carry the same); a person erased meanwhile leaves the track unnamed, as its faces."""
        per_track: dict[int, tuple[int, SightingRecord, bool]] = {}
        for image, s, erased in faces:
            if s.track is None:
                continue
            tid = track_ids[(image.image_id, s.track)]
            best = per_track.get(tid)
            if best is None or s.quality > best[1].quality:
                per_track[tid] = (sighting_ids[(image.image_id, s.face_index)], s, erased)
        for tid, (sid, s, erased) in per_track.items():
            self._sql.execute("UPDATE tracks SET best_sighting_id = ?, person_id = ?, match_score = ? WHERE track_id = ?",
                              [sid, None if erased else s.person_id, None if erased else s.match_score, tid])

    # --- bulk ---

    def table_counts(self) -> dict[str, int]:
        return {table: self._sql.count(f"SELECT count(*) FROM {table}") for table in TABLES}

    def stream(self, table: str, batch: int = 2_000) -> Iterator[tuple[list[str], list[Any]]]:
        if table not in TABLES:
            raise ValueError(f"table must be one of {TABLES}, got {table!r}")
        return self._batches(f"SELECT * FROM {table}", batch)

    def embeddings(self, batch: int = 2_000) -> Iterator[list[tuple[int, str, Any]]]:
        for _, rows in self._batches("SELECT sighting_id, model, embedding FROM sightings WHERE embedding IS NOT NULL "
                                     "ORDER BY sighting_id", batch):
            yield rows

    def _batches(self, sql: str, batch: int) -> Iterator[tuple[list[str], list[Any]]]:
        """Rows of ``sql`` in batches, with the column names (the engine's cursor fetches them as asked)."""
        cur = self._sql.execute(sql)
        columns = [d[0] for d in cur.description or []]
        while rows := cur.fetchmany(batch):
            yield columns, rows


def _image_row(image: ImageRecord, now: datetime) -> list[Any]:
    return [image.image_id, image.uri, image.camera, image.taken_at, image.taken_at_source, image.gps_lat,
            image.gps_lon, image.camera_make, image.camera_model, image.format, image.width, image.height,
            image.bytes, now, image.status, image.error, image.uri_bytes]


def _sighting_row(image: ImageRecord, s: SightingRecord, erased: bool,
                  track_ids: dict[tuple[str, int], int], now: datetime) -> list[Any]:
    """The sighting's values; ``seen_at`` and ``camera`` are its image's (capture time, else the
    time it was stored), kept on the sighting so listings need no join (see the schema). A clip's
    face is seen ``offset_s`` into the clip: an hour-long recording's faces are listed, filtered
    by day and counted by hour at the moment they were filmed, not all at the clip's start."""
    seen_at = image.taken_at or now
    if s.offset_s is not None:
        seen_at = seen_at + timedelta(seconds=float(s.offset_s))
    return [image.image_id, s.face_index, [float(v) for v in s.box], np.asarray(s.landmarks, dtype=np.float32).tolist(),
            float(s.det_score), float(s.quality),
            None if erased or s.embedding is None else np.asarray(s.embedding, dtype=np.float32).tolist(),
            s.model, None if erased else s.thumb, None if erased else s.person_id,
            None if erased else s.match_score, None if s.track is None else track_ids[(image.image_id, s.track)],
            s.offset_s, seen_at, image.camera,
            None if s.recognisability is None else float(s.recognisability)]
