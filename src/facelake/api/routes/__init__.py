"""The API's routes, one router per area: sightings, photos (recognize, search), people, clusters."""

from __future__ import annotations

from . import clusters, people, photos, sightings

ROUTERS = (sightings.router, photos.router, people.router, clusters.router)

__all__ = ["ROUTERS"]
