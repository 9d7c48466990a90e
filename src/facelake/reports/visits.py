"""Visits, the unit reports count where video exists: service functions over a handed store.

A camera seeing Alice walk past for ten seconds gives one track; Alice stepping out of view and
back a minute later gives a second track, but she came once. Reports therefore count *visits*
("Alice: 3 visits, 14 min in all"): tracks of one person (or one group of unknown faces) on one
camera, less than ``visit_gap_s`` apart (the SQL and the grouping rules: ``store/visits.py``).
Photos have no tracks and count as before, as sightings.
"""

from __future__ import annotations

from datetime import datetime

from ..config import Settings
from ..store import Store
from ..store.visits import TrackRow, VisitRow, VisitTotal

__all__ = ["TrackRow", "VisitRow", "VisitTotal", "list_tracks", "list_visits", "visit_totals"]


def list_visits(store: Store, settings: Settings, person: int | str | None = None, camera: str | None = None,
                since: datetime | None = None, cluster: int | None = None, limit: int = 500,
                before: tuple[datetime, int] | None = None) -> list[VisitRow]:
    """Visits, newest first, under the configured gap; ``person`` is an id, or a name (see
    ``store.people.id_of``); ``before`` pages on (see ``store.visits``).

    An unknown ``person`` is an error, not an empty list: a typo must not read as "never came".
    """
    pid = None if person is None else store.people.id_of(person)
    return store.visits.listing(settings.visit_gap_s, pid, camera, cluster, since, limit, before)


def visit_totals(store: Store, settings: Settings, camera: str | None = None,
                 since: datetime | None = None) -> dict[int, VisitTotal]:
    """Per named person seen on video: visits and time in all (people seen only in photos are absent)."""
    return {t.person_id: t for t in store.visits.totals(settings.visit_gap_s, camera, since)}


def list_tracks(store: Store, person: int | None = None, camera: str | None = None, since: datetime | None = None,
                limit: int = 50) -> list[TrackRow]:
    """Tracks, newest first, each with its kept faces (the dashboard's timeline strip)."""
    return store.visits.tracks(person, camera, since, limit)
