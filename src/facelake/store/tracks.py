"""The tracks' SQL: a clip's faces followed across frames, named once by their template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .connection import Sql


@dataclass(frozen=True)
class TrackToName:
    """A stored track as naming sees it (its template, its span in the clip, its current name)."""

    track_id: int
    image_id: str
    start_s: float
    end_s: float
    template: NDArray[np.float32]
    person_id: int | None


class TrackOfFace(NamedTuple):
    """Where a clip's face sits in its track (:meth:`Tracks.of_sighting`)."""

    track_id: int
    offset_s: float | None
    is_best: bool
    """The track's still is this face's frame."""
    has_still: bool
    """False once the still was erased (forget, purge, "not a face")."""


class Tracks:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def to_name(self, model: str) -> dict[int, TrackToName]:
        """Every track of ``model`` that still has its template, by id (what ``identify`` re-matches)."""
        return {int(r[0]): TrackToName(int(r[0]), r[1], float(r[2]), float(r[3]), np.asarray(r[4], np.float32),
                                       None if r[5] is None else int(r[5]))
                for r in self._sql.all(
                    """SELECT track_id, image_id, start_s, end_s, template, person_id FROM tracks
                       WHERE template IS NOT NULL AND model = ?""", [model])}

    def still(self, track_id: int) -> bytes | None:
        """The JPEG of the frame at the track's best face, or None (unknown track, none kept, or erased)."""
        row = self._sql.one("SELECT still FROM tracks WHERE track_id = ?", [track_id])
        return bytes(row[0]) if row and row[0] is not None else None

    def of_sighting(self, sighting_id: int) -> TrackOfFace | None:
        """A clip's face: its track, its time in the clip, whether it is the face the track's still
        shows and whether a still is kept; ``None`` for a photo's face (a page about one face shows
        its photo, or else this)."""
        row = self._sql.one("""SELECT s.track_id, s.offset_s, t.best_sighting_id = s.sighting_id, t.still IS NOT NULL
                               FROM sightings s JOIN tracks t ON t.track_id = s.track_id
                               WHERE s.sighting_id = ?""", [sighting_id])
        if row is None:
            return None
        return TrackOfFace(int(row[0]), None if row[1] is None else float(row[1]), bool(row[2]), bool(row[3]))

    def set_names(self, changes: Sequence[tuple[int, int | None, float | None]]) -> None:
        """Apply ``(track_id, person_id, match_score)``: the name its sightings were given with it."""
        with self._sql.transaction():
            for track, person, score in changes:
                self._sql.execute("UPDATE tracks SET person_id = ?, match_score = ? WHERE track_id = ?",
                                  [person, score, track])
