"""Image → faces → sightings: records, workers, executors, the image line and ingest.

``records`` (the values), ``worker`` (the models of one process), ``executors`` (where the
workers run), ``line`` (stages around a writer: the one line every front end runs) and
``ingest`` (the ingestor that drives them over listed sources).
"""

from __future__ import annotations

from .executors import Executor, InProcessExecutor, PoolExecutor, default_workers, local_executor
from .ingest import EmbedOutcome, Ingestor, OnImage, embed_paths, ingest
from .line import ImageLine, Stage, StoreWriter, Writer, Written
from .records import ImageResult, IngestSummary, Job, image_id_of, make_job, records
from .worker import Worker, analyzer_options

__all__ = [
    "EmbedOutcome", "Executor", "ImageLine", "ImageResult", "InProcessExecutor", "IngestSummary", "Ingestor", "Job",
    "OnImage", "PoolExecutor", "Stage", "StoreWriter", "Worker", "Writer", "Written", "analyzer_options",
    "default_workers", "embed_paths", "image_id_of", "ingest", "local_executor", "make_job", "records",
]
