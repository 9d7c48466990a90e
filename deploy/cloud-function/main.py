"""Cloud Functions (2nd gen) entry point: ``on_object_finalized`` for a bucket's finalize events.

Deploy with ``gcloud functions deploy facelake --gen2 --trigger-bucket=BUCKET
--entry-point=on_object_finalized ...`` (see docs/cloud.md); run locally with
``functions-framework --source deploy/cloud-function/main.py --target on_object_finalized
--signature-type cloudevent``.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

# The folder scripts/build_function.py makes holds the converted models: a cold instance reuses them.
if (Path(__file__).parent / "cache").is_dir():
    os.environ.setdefault("FACELAKE_CACHE", str(Path(__file__).parent / "cache"))

import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from facelake.errors import BadEvent, SourceUnavailable
from facelake.triggers.cloud_function import FunctionRuntime, handle_event

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("facelake.function")


@functools.cache
def runtime() -> FunctionRuntime:
    """Models, sink and gallery, built on an instance's first event and kept while it is warm."""
    return FunctionRuntime()


@functions_framework.cloud_event
def on_object_finalized(cloud_event: CloudEvent) -> None:
    """Answers 2xx for an image stored (or stored as a bad image), 400 for an event that names
    no object, and 503 for an object that could not be read now, which ``--retry`` redelivers;
    each failure is one log line, not a traceback."""
    try:
        outcome = handle_event(cloud_event["type"], cloud_event.data, runtime())
    except BadEvent as exc:
        log.error("bad event %s: %s", cloud_event["id"], exc)
        raise BadRequest(str(exc)) from None
    except SourceUnavailable as exc:
        log.error("retry later: %s", exc)
        raise ServiceUnavailable(str(exc)) from None
    log.info("%s %s image=%s faces=%d named=%d in %.0f ms", outcome.outcome, outcome.uri, outcome.image_id,
                 outcome.faces, outcome.named, outcome.seconds * 1000)
