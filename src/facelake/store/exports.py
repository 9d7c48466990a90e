"""How far each table was exported to a warehouse (``store.exports``): incremental exports' watermarks."""

from __future__ import annotations

from .connection import Sql, utcnow

_TOP = {
    "images": "SELECT CAST(max(ingested_at) AS VARCHAR) FROM images",
    "sightings": "SELECT CAST(max(sighting_id) + 1 AS VARCHAR) FROM sightings",
    "tracks": "SELECT CAST(max(track_id) + 1 AS VARCHAR) FROM tracks",
}
"""The watermark a table has reached now: images by ``ingested_at``, sightings and tracks by id."""


class Exports:
    """The ``exports`` table."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def high_water(self, target: str, table: str) -> str | None:
        """Where the last export of ``table`` to ``target`` stopped (``None``: never exported)."""
        row = self._sql.one("SELECT high_water FROM exports WHERE target = ? AND table_name = ?", [target, table])
        return None if row is None else row[0]

    def top(self, table: str) -> str | None:
        """The watermark ``table`` has reached (``None`` when it is empty)."""
        row = self._sql.one(_TOP[table])
        return None if row is None else row[0]

    def advance(self, target: str, table: str, high_water: str) -> None:
        self._sql.execute("""INSERT INTO exports VALUES (?, ?, ?, ?) ON CONFLICT (target, table_name)
                             DO UPDATE SET high_water = excluded.high_water, exported_at = excluded.exported_at""",
                          [target, table, high_water, utcnow()])
