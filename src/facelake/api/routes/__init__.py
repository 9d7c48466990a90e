"""The API's routes, one router per area: sightings, photos (recognize, search), people, clusters,
visits (and tracks), tokens."""

from __future__ import annotations

from . import clusters, people, photos, sightings, tokens, visits

ROUTERS = (sightings.router, photos.router, people.router, clusters.router, visits.router, tokens.router)

__all__ = ["ROUTERS"]
