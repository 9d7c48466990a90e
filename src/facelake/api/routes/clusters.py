"""Groups of unknown faces: list, refresh, name (enroll), give to someone enrolled, merge, split, dismiss."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query

from ... import identities
from ...store import open_store
from ..deps import ADMIN, READ, AdminForm, Cfg, Int64, plain

router = APIRouter()


@router.get("/api/clusters", dependencies=[READ])
def list_clusters(settings: Cfg, min_size: Annotated[int, Query(ge=1, le=1_000_000)] = 2,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> list[dict[str, Any]]:
    """A page of groups, largest first, each with its best faces' crops."""
    listing = identities.list_clusters(settings, min_size, limit, offset)
    with open_store(settings.db, read_only=True) as store:
        faces = store.clusters.best_faces_of([c.cluster_id for c in listing])
    return [{**{k: plain(v) for k, v in vars(c).items()},
             "crops": [f"/api/sightings/{s}/crop" for s in faces.get(c.cluster_id, [])]} for c in listing]


@router.post("/api/clusters/refresh", dependencies=[ADMIN])
def refresh_clusters(settings: Cfg, caller: AdminForm) -> dict[str, int]:
    result = identities.cluster(settings, actor=caller.actor)
    return {"faces": result.faces, "clusters": result.clusters, "new_faces": result.new_faces}


@router.post("/api/clusters/{cluster_id}/name", dependencies=[ADMIN])
def name_cluster(settings: Cfg, caller: AdminForm, cluster_id: Int64, name: Annotated[str, Form()],
                 consent: Annotated[str, Form()]) -> dict[str, Any]:
    """Enroll the cluster as a person: past and future sightings get the name."""
    result = identities.name_cluster(settings, cluster_id, name, consent, actor=caller.actor)
    return {"person_id": result.person_id, "name": result.name}


@router.post("/api/clusters/{cluster_id}/assign", dependencies=[ADMIN])
def assign_cluster(settings: Cfg, caller: AdminForm, cluster_id: Int64,
                   person_id: Annotated[Int64, Form()]) -> dict[str, Any]:
    """Give the cluster to a person already enrolled: their name on its past and future sightings."""
    result = identities.assign_cluster(settings, cluster_id, person_id, actor=caller.actor)
    return {"person_id": result.person_id, "name": result.name}


@router.post("/api/clusters/{cluster_id}/merge", dependencies=[ADMIN])
def merge(settings: Cfg, caller: AdminForm, cluster_id: Int64, into: Annotated[Int64, Form()]) -> dict[str, int]:
    return {"moved": identities.merge_clusters(settings, into, cluster_id, actor=caller.actor), "into": into}


@router.post("/api/clusters/{cluster_id}/split", dependencies=[ADMIN])
def split(settings: Cfg, caller: AdminForm, cluster_id: Int64) -> dict[str, Any]:
    return {"clusters": identities.split_cluster(settings, cluster_id, actor=caller.actor)}


@router.post("/api/clusters/{cluster_id}/dismiss", dependencies=[ADMIN])
def dismiss(settings: Cfg, caller: AdminForm, cluster_id: Int64) -> dict[str, int]:
    """"Not a face": erase the cluster's embeddings and crops."""
    return {"dismissed": identities.dismiss_cluster(settings, cluster_id, actor=caller.actor)}
