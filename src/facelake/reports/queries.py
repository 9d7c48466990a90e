"""The report queries of the original design, as SQL files that run unchanged on DuckDB and BigQuery.

They use only what both dialects share (``CAST(… AS DATE)``, ``EXTRACT(HOUR FROM …)``,
``CASE`` instead of ``FILTER``/``COUNTIF``, positional ``GROUP BY``) and unqualified table
names: DuckDB runs them on the database, BigQuery with the dataset as the default
(``bq query --use_legacy_sql=false --dataset_id=PROJECT:DATASET < file.sql``).
"""

from __future__ import annotations

from importlib import resources

from ..errors import ConfigError


def report_names() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files(__package__).joinpath("queries").iterdir()
                  if p.name.endswith(".sql"))


def report_sql(name: str) -> str:
    if name not in report_names():
        raise ConfigError(f"no report called {name!r}; choose one of: {', '.join(report_names())}")
    return resources.files(__package__).joinpath("queries", f"{name}.sql").read_text()
