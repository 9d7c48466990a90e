"""``facelake ingest --engine ray``: detection, alignment and embedding as Ray Data ``map_batches``.

Why this shape: the listing is small (uris, cameras, versions) and the images are not, so
the listing goes to the cluster and each worker reads its own images from the source — a
bucket or a shared folder every node can reach — instead of the driver shipping bytes. Each
worker is an actor that loads the models once. The driver keeps what must stay in one place:
skipping what is stored (object versions before anything is sent, image ids on return),
naming, alerts and the one transaction per image, through the same stages as the built-in
process pool. Results come back in completion order; nothing depends on the listing order.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from ..pipeline.executors import Keep, Listed, default_workers
from ..pipeline.records import ImageResult, Job, OnClip, make_job, release
from ..pipeline.worker import Worker
from ..sources import Entry, Source, open_source
from ..vision.models import require_installed

_WATCHDOG = r"""
import ctypes, os, signal, sys, time
parent = int(sys.argv[1])
marked = []

def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None

def finish(*_):
    for pid, start in marked:
        if start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    os._exit(0)

signal.signal(signal.SIGTERM, finish)
ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != parent:
    finish()
for line in sys.stdin:
    pid, start = line.split()
    marked.append((int(pid), start))
time.sleep(0.5)
if os.getppid() != parent:
    finish()
"""
"""Ray's local processes outlive a driver killed with ``kill -9``: the raylet and the GCS go,
but the DashboardAgent and RuntimeEnvAgent stay behind, reparented to init. This small
process, stopped by Linux when the driver dies (PR_SET_PDEATHSIG, as facelake's own pool
workers are), kills the processes the driver's ``ray.init`` started; a driver that ends
normally closes its input first, and ``ray.shutdown`` does the rest."""


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Every process under ``pid`` with its start time (so a reused pid is never killed), from /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, starts[child]))
        todo.extend(children.get(child, []))
    return found


def _watch_ray(before: set[int]) -> subprocess.Popen[str] | None:
    """Start the watchdog over the processes ``ray.init`` added under this one (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    started = [(pid, t) for pid, t in _descendants(os.getpid()) if pid not in before]
    dog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid())], stdin=subprocess.PIPE, text=True)
    assert dog.stdin is not None
    dog.stdin.write("".join(f"{pid} {t}\n" for pid, t in started))
    dog.stdin.flush()
    return dog


def _unwatch(dog: subprocess.Popen[str] | None) -> None:
    if dog is not None and dog.stdin is not None:
        dog.stdin.close()
        dog.wait(timeout=10)


class _Analyse:
    """A Ray actor: models loaded once, then batches of listing rows in, pickled results out."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.worker = Worker.from_settings(self.settings).load()
        self.sources: dict[str, Source] = {}
        self.max_bytes = int(self.settings.max_file_mb * 1e6)
        self.video_max_bytes = int(self.settings.video_max_file_mb * 1e6)

    def _source(self, spec: str) -> Source:
        if spec not in self.sources:
            self.sources[spec] = open_source(spec)
        return self.sources[spec]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        jobs: list[Job] = []
        for spec, uri, camera, size, version, mtime, error in zip(
            batch["source"], batch["uri"], batch["camera"], batch["size"], batch["version"], batch["mtime"],
            batch["error"],
        ):
            entry = Entry(str(uri), str(camera), None if size < 0 else int(size), version or None,
                          None if mtime < 0 else float(mtime), error or None)
            jobs.append(make_job(entry, self._source(str(spec)), self.max_bytes, self.video_max_bytes))
        try:
            results = self.worker.process(jobs)
        finally:
            for job in jobs:
                release(job)  # a clip spooled on this actor's machine is done with here
        return {"result": [pickle.dumps(r) for r in results]}


class RayExecutor:
    """The pipeline's :class:`~facelake.pipeline.executors.Executor` on Ray Data.

    ``keep`` is applied to what comes back: the images were read and hashed on the workers.
    """

    def __init__(self, settings: Settings, address: str | None = None, workers: int | None = None) -> None:
        require_installed(settings.detector)  # here, not in every actor's traceback
        self.settings, self.address = settings, address
        self.workers = workers or default_workers(settings)
        self.on_clip: OnClip | None = None
        """Not reported from Ray's actors: a clip there shows as done when it is."""

    def results(self, entries: Iterable[Listed], keep: Keep, total: int | None = None,
                read_threads: int = 1) -> Iterator[list[ImageResult]]:
        for result in ray_results(list(entries), self.settings, self.address, self.workers):
            if keep(result.job):
                yield [result]

    def close(self) -> None:
        """Nothing to stop: :func:`ray_results` shuts down a Ray instance it started when it ends."""

    def cancel(self) -> None:
        """Ray's actors finish their batches; the driver stops taking results when the run stops."""


def ray_results(listed: Sequence[tuple[Source, Entry]], settings: Settings, address: str | None = None,
                workers: int | None = None) -> Iterator[ImageResult]:
    """Analyse ``listed`` on Ray (a local instance, or the cluster at ``address``)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs the ray extra: pip install 'facelake[ray]' ({exc})") from exc
    if not listed:
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    started_here = not ray.is_initialized()
    dog = None
    if started_here:
        before = {pid for pid, _ in _descendants(os.getpid())} if sys.platform.startswith("linux") else set()
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
        if address is None:
            dog = _watch_ray(before)
    try:
        rows = [{"source": src.uri, "uri": e.uri, "camera": e.camera, "size": -1 if e.size is None else e.size,
                 "version": e.version or "", "mtime": -1.0 if e.mtime is None else e.mtime, "error": e.error or ""}
                for src, e in listed]
        actors = max(1, workers or int(ray.available_resources().get("CPU", 1)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        blocks = max(1, min(len(rows), actors * 4))  # enough blocks to keep every actor busy
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _Analyse, fn_constructor_args=(settings.model_dump_json(),), batch_size=settings.batch_images,
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
        )
        for row in dataset.iter_rows():
            yield pickle.loads(row["result"])
    finally:
        if started_here:
            ray.shutdown()
            _unwatch(dog)
