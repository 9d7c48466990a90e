"""Service functions over the store: what the CLI (and later the API and reports) call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .alerts.service import alert_stage
from .config import Settings
from .errors import ConfigError
from .identities import ClusterStage, NamingStage, PurgeStage
from .pipeline import IngestSummary, OnImage, Stage
from .pipeline import ingest as run_ingest
from .pipeline.records import OnClip
from .reports.visits import VisitRow, list_visits
from .scale import executor_for
from .sources import Source, require_present
from .sources.buckets import is_bucket_uri
from .store import Target, describe_target, open_store
from .store.copy import CopyResult
from .store.tokens import SCOPES, Token


def default_stages(settings: Settings, purge_every_s: float = 3600.0, cluster: bool = False,
                   on_warning: Callable[[str], None] | None = None) -> list[Stage]:
    """The line every trigger runs: name enrolled people → alert by the rules → purge expired faces
    (→ group new unknown faces, for the long-running ``watch`` and ``serve``). ``on_warning`` hears
    what the owner should know before the first image (people the embedder cannot name)."""
    alerts = alert_stage(settings)
    stages: list[Stage] = [NamingStage(settings, on_warning)]
    if alerts is not None:
        stages.append(alerts)
    stages.append(PurgeStage(settings, purge_every_s))
    if cluster:
        stages.append(ClusterStage(settings))
    return stages


def ingest(
    sources: Sequence[str | Path | Source],
    settings: Settings,
    camera: str | None = None,
    workers: int | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_image: OnImage | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_clip: OnClip | None = None,
) -> IngestSummary:
    """The whole job on folders, files, video clips or ``gs://``/``s3://`` prefixes: store faces, name,
    alert, purge; the database is opened once.

    ``engine="ray"`` runs the models as Ray Data actors (local Ray, or the cluster at ``ray_address``).
    """
    require_present(sources)  # before any worker or Ray starts
    return run_ingest(sources, settings, default_stages(settings, on_warning=on_warning), camera, workers,
                      on_listed, on_image, executor_for(settings, engine, workers, ray_address), on_clip=on_clip)


@dataclass(frozen=True)
class QueryResult:
    """Rows of a read-only query (``facelake sql``, ``stats``) with their column names."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_sql(settings: Settings, sql: str) -> QueryResult:
    """Run read-only SQL against the database; writes raise :class:`ReadOnlyViolation`."""
    with open_store(settings.db, read_only=True) as store:
        columns, rows = store.query(sql)
    return QueryResult(columns, rows)


def run_report(settings: Settings, name: str) -> QueryResult:
    """A shipped report query, with each ``person_id`` named beside it.

    The queries run unchanged on BigQuery, where the warehouse holds no names, so they give
    ids; at home the owner reads names, added here from the database's own people.
    """
    from .reports.queries import report_sql

    with open_store(settings.db, read_only=True) as store:
        columns, rows = store.query(report_sql(name))
        if "person_id" not in columns or "person" in columns:
            return QueryResult(columns, rows)
        names = store.people.names()
    at = columns.index("person_id") + 1
    return QueryResult([*columns[:at], "person", *columns[at:]],
                       [(*r[:at], names.get(r[at - 1]) if r[at - 1] is not None else None, *r[at:]) for r in rows])


def export_parquet(settings: Settings, directory: Path) -> dict[str, int]:
    """Write the images and sightings tables as Parquet files into ``directory``."""
    with open_store(settings.db, read_only=True) as store:
        return store.export_parquet(directory)


def stats(settings: Settings) -> dict[str, QueryResult]:
    """Counts per camera and per day (images ok/failed, faces), and faces per embedding model."""
    with open_store(settings.db, read_only=True) as store:
        return {
            "store": QueryResult(["engine", "database", "vectors"],
                                 [(store.engine, describe_target(store.target), store.vectors())]),
            **{name: QueryResult(*table) for name, table in store.reports.stats().items()},
        }


def visits(settings: Settings, person: str | None = None, camera: str | None = None,
           since: datetime | None = None, limit: int = 500) -> list[VisitRow]:
    """Visits, newest first: tracks of one person (or cluster) on one camera less than
    ``visit_gap_s`` apart; ``person`` is a name or id, ``since`` keeps visits going on at or after it."""
    with open_store(settings.db, read_only=True) as store:
        return list_visits(store, settings, person, camera, since, limit=limit)


def export_gallery(settings: Settings, uri: str) -> int:
    """Write the enrolled people's gallery file (for the Cloud Function); returns the people count."""
    from .identities.matching import GalleryFile, dim_of, model_of, thresholds, write_gallery
    with open_store(settings.db) as store:
        X, y = store.people.enrolled_embeddings(model_of(settings), dim_of(settings))
        names = store.people.names()
        t = thresholds(settings)
        write_gallery(GalleryFile(X, y, {int(i): names[int(i)] for i in set(y.tolist())}, model_of(settings),
                                  t.identify, t.margin), uri)
        store.audit("cli", "export_gallery", f"{uri} people:{len(set(y.tolist()))}")
    return len(set(y.tolist()))


def import_lake(settings: Settings, uri: str, on_image: Callable[[str, str], None] | None = None) -> dict[str, int]:
    """Bring a Parquet lake (what the Cloud Function wrote) into the database, then name and index it."""
    from .identities import identify, sync_index
    from .store.lake import Lake
    from .store.lake import import_lake as run_import

    if not is_bucket_uri(uri) and not Path(uri).is_dir():
        raise ConfigError(f"no lake at {uri}: no such folder (nothing was imported)")
    lake = Lake(uri)
    with open_store(settings.db) as store:
        summary = run_import(store, lake, on_image, settings.retention_days)
        sync_index(store, settings)
    named = identify(settings).named if summary.imported else 0
    return {"imported": summary.imported, "skipped": summary.skipped, "faces": summary.faces, "named": named,
            "erased": summary.erased}


def export_bigquery(settings: Settings, dataset: str) -> dict[str, int]:
    """Send images and sightings not exported yet to BigQuery ``PROJECT.DATASET``."""
    from .store import bigquery

    project, name = bigquery.parse_dataset(dataset)
    bq = bigquery.client(project, settings.bigquery_endpoint)
    with open_store(settings.db) as store:
        return bigquery.export(store, bq, project, name, settings.retention_days)


def copy_database(source: Target, target: Target,
                  on_rows: Callable[[str, int], None] | None = None) -> CopyResult:
    """Copy every table of ``source`` into the empty ``target`` (DuckDB ⇄ PostgreSQL) and verify it.

    The source is opened read-only; the target gets one audit row saying where its data came
    from, written after the verification (so the counts compared are the copied ones).
    """
    from .store.copy import copy_database as run_copy

    if describe_target(source) == describe_target(target):
        raise ConfigError("--from and --to are the same database")
    with open_store(source, read_only=True) as src, open_store(target) as dst:
        result = run_copy(src, dst, on_rows)
        dst.audit("cli", "copy", f"from {describe_target(source)}")
    return result


def create_token(settings: Settings, scope: str, name: str | None = None) -> tuple[Token, str]:
    """A new API token of ``scope``; returns its record and the token itself (shown only now)."""
    if scope not in SCOPES:
        raise ConfigError(f"--scope must be one of {SCOPES}, got {scope!r}")
    with open_store(settings.db) as store:
        return store.tokens.create(scope, name, actor="cli")


def list_tokens(settings: Settings) -> list[Token]:
    with open_store(settings.db) as store:
        return store.tokens.listing()


def revoke_token(settings: Settings, who: str) -> Token:
    """Revoke a token by name or id: requests with it get 401 from then on."""
    with open_store(settings.db) as store:
        return store.tokens.revoke(who, actor="cli")
