"""Running the pipeline on more than one machine's workers (Ray), and picking the executor by name."""

from __future__ import annotations

from ..config import Settings
from ..pipeline.executors import Executor, local_executor
from .raydata import RayExecutor

__all__ = ["ENGINES", "RayExecutor", "executor_for"]

ENGINES = ("local", "ray")


def executor_for(settings: Settings, engine: str = "local", workers: int | None = None,
                 address: str | None = None) -> Executor:
    """The executor ``--engine`` names: local worker processes, or Ray Data actors (``address``: a cluster)."""
    if engine == "local":
        return local_executor(settings, workers)
    if engine == "ray":
        return RayExecutor(settings, address, workers)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
