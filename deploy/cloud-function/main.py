"""Cloud Functions (2nd gen) entry point: ``on_object_finalized`` for a bucket's finalize events.

Deploy with ``gcloud functions deploy facelake --gen2 --trigger-bucket=BUCKET
--entry-point=on_object_finalized ...`` (see docs/cloud.md); run locally with
``functions-framework --source deploy/cloud-function/main.py --target on_object_finalized
--signature-type cloudevent``.
"""

from __future__ import annotations

import functools
import logging

import functions_framework
from cloudevents.http import CloudEvent

from facelake.triggers.cloud_function import FunctionRuntime, handle_event

logging.basicConfig(level=logging.INFO)


@functools.cache
def runtime() -> FunctionRuntime:
    """Models, sink and gallery, built on an instance's first event and kept while it is warm."""
    return FunctionRuntime()


@functions_framework.cloud_event
def on_object_finalized(cloud_event: CloudEvent) -> None:
    outcome = handle_event(cloud_event["type"], cloud_event.data, runtime())
    logging.info("%s %s image=%s faces=%d named=%d in %.0f ms", outcome.outcome, outcome.uri, outcome.image_id,
                 outcome.faces, outcome.named, outcome.seconds * 1000)
