"""The keys of erased faces (``store.erasures``): what copies outside the database must erase too.

``forget``, ``purge`` and "not a face" erase crops and embeddings in the database, but the
Cloud Function's Parquet lake and BigQuery hold copies the database cannot rewrite in the
same transaction. So each erasure writes the ``(image_id, face_index)`` keys it erased into
``erased`` (``face_index`` NULL: the whole image went), in the erasure's own transaction, and
the lake and BigQuery steps erase by those keys later (each remembers how far it got in
``exports``, like an incremental export). ``facelake import`` reads the same keys, so a lake
not cleaned yet still cannot bring an erased face back. The table holds keys and times only:
no crop, no embedding, no person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .connection import Sql, marks, utcnow


@dataclass
class ErasedKeys:
    """Erased keys grouped by image: whole images, and the erased faces of the others."""

    images: set[str] = field(default_factory=set)
    faces: dict[str, set[int]] = field(default_factory=dict)

    def add(self, image_id: str, face_index: int | None) -> None:
        if face_index is None:
            self.images.add(image_id)
        else:
            self.faces.setdefault(image_id, set()).add(face_index)

    def __bool__(self) -> bool:
        return bool(self.images or self.faces)


class Erasures:
    """The ``erased`` table, and the people ``forget`` erased (from the audit row it keeps)."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def record_faces(self, where: str, params: Sequence[Any]) -> int:
        """Note the keys of the sightings ``where`` selects, before their biometric data goes
        (part of the caller's transaction); returns how many."""
        n = self._sql.count(f"SELECT count(*) FROM sightings WHERE {where}", list(params))
        if n:
            self._sql.execute(f"INSERT INTO erased SELECT image_id, face_index, ? FROM sightings WHERE {where}",
                              [utcnow(), *params])
        return n

    def record_images(self, image_ids: Sequence[str]) -> None:
        """Note images removed whole, every face with them (part of the caller's transaction)."""
        now = utcnow()
        for image_id in image_ids:
            self._sql.execute("INSERT INTO erased VALUES (?, NULL, ?)", [image_id, now])

    def top(self) -> str | None:
        """The time of the latest erasure (``None``: none yet), as a watermark for ``since``."""
        row = self._sql.one('SELECT CAST(max("at") AS VARCHAR) FROM erased')
        return None if row is None else row[0]

    def since(self, mark: str | None) -> ErasedKeys:
        """Keys erased at or after ``mark`` (every key when ``None``). The mark's own rows come
        again: erasing a key twice is harmless, missing one is not."""
        rows = self._sql.all("SELECT image_id, face_index FROM erased") if mark is None else self._sql.all(
            'SELECT image_id, face_index FROM erased WHERE "at" >= CAST(? AS TIMESTAMP)', [mark])
        keys = ErasedKeys()
        for image_id, face_index in rows:
            keys.add(str(image_id), None if face_index is None else int(face_index))
        return keys

    def of(self, image_ids: Sequence[str]) -> ErasedKeys:
        """The erased keys of ``image_ids``."""
        keys = ErasedKeys()
        for start in range(0, len(image_ids), 500):
            chunk = list(image_ids[start:start + 500])
            for image_id, face_index in self._sql.all(
                    f"SELECT image_id, face_index FROM erased WHERE image_id IN ({marks(len(chunk))})", chunk):
                keys.add(str(image_id), None if face_index is None else int(face_index))
        return keys

    def forgotten_people(self) -> set[int]:
        """Ids of the people ``forget`` erased: its ``forget person:P`` audit row is kept as proof."""
        return {int(str(r[0]).removeprefix("person:")) for r in self._sql.all(
            "SELECT subject FROM audit WHERE action = 'forget' AND subject LIKE 'person:%'")}
