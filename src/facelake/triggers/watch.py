"""``facelake watch``: follow folders and poll buckets, ingesting images as they arrive.

Why it is built this way:
- **A file counts once it is completely written.** Cameras and FTP uploads write a frame
  in pieces; a file is queued only after its size and mtime have stayed the same for
  ``settle_s`` seconds, so a slowly written frame is ingested once, whole, instead of as a
  truncated error followed by the real image.
- **A bounded queue** sits between the followers and the ingest: when the models fall
  behind, the followers wait instead of holding an unbounded backlog in memory.
- **Nothing half-written on SIGTERM/Ctrl-C.** Stopping makes the ingestor take no new image
  and finish the ones in hand; every image is one transaction, and whatever was still
  queued is found again by the rescan the next start begins with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import ConnectionLost
from ..pipeline import ImageResult, Ingestor, IngestSummary, OnImage, Stage
from ..pipeline.records import OnClip
from ..sources import BucketSource, Entry, FolderSource, Source
from ..sources.base import MEDIA_SUFFIXES, is_video_name, readable
from ..sources.folder import camera_for, file_entry
from ..store.base import is_postgres
from ..store.duck import watching
from .streams import StreamFollower, StreamSpec

log = logging.getLogger(__name__)

Item = tuple[Source, Entry]


@dataclass
class WatchSummary:
    """Totals over a watcher's life."""

    new: int = 0
    skipped: int = 0
    failed: int = 0
    faces: int = 0
    named: int = 0
    alerts: int = 0
    alerts_undelivered: int = 0
    """Alerts an output never took (still queued when the watcher stopped, or dropped from a full queue)."""
    runs: int = 0

    def add(self, run: IngestSummary) -> None:
        self.new += run.new
        self.skipped += run.skipped
        self.failed += run.failed
        self.faces += run.faces
        self.named += run.named
        self.alerts += run.alerts
        self.runs += 1


def _offer(out: queue.Queue[Item], item: Item, stop: threading.Event) -> None:
    """Put ``item`` on the bounded queue, waiting while it is full, unless the watcher stops."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.25)
            return
        except queue.Full:
            continue


class FolderFollower(threading.Thread):
    """Turns file-system events under one folder into settled entries on the queue."""

    def __init__(self, source: FolderSource, out: queue.Queue[Item], stop: threading.Event, settle_s: float,
                 clip_settle_s: float | None = None) -> None:
        super().__init__(name=f"watch:{source.uri}", daemon=True)
        self.source, self.out, self.stop, self.settle_s = source, out, stop, settle_s
        self.clip_settle_s = settle_s if clip_settle_s is None else max(settle_s, clip_settle_s)
        self.pending: dict[Path, tuple[tuple[int, int], float]] = {}
        self.ready = threading.Event()
        self._adopted: queue.SimpleQueue[Path] = queue.SimpleQueue()

    def _as_listed(self, path: Path) -> Path:
        """The path as the folder's listing spells it, so one file has one uri whoever found it."""
        try:
            return self.source.path / path.relative_to(self.source.path.resolve())
        except ValueError:
            return path

    def adopt(self, path: Path) -> None:
        """Follow ``path`` as if an event had named it (a file still being written at the rescan)."""
        self._adopted.put(path)

    def _note(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            self.pending.pop(path, None)
            return
        stamp = (st.st_size, st.st_mtime_ns)
        previous = self.pending.get(path)
        if previous is None or previous[0] != stamp:
            self.pending[path] = (stamp, time.monotonic())

    def _settled(self) -> None:
        now = time.monotonic()
        for path in list(self.pending):
            before = self.pending[path][0]
            self._note(path)
            if path not in self.pending:
                continue
            stamp, since = self.pending[path]
            settle = self.clip_settle_s if is_video_name(path.name) else self.settle_s
            if stamp == before and now - since >= settle:
                del self.pending[path]
                camera = self.source.camera or camera_for(path, self.source.path)
                _offer(self.out, (self.source, file_entry(path, camera)), self.stop)

    def run(self) -> None:
        import watchfiles
        from watchfiles._rust_notify import WatchfilesRustInternalError

        root = self.source.path
        again: list[tuple[Path, float]] = []
        while not self.stop.is_set():
            since = time.time()
            try:
                for changes in watchfiles.watch(root, stop_event=self.stop, debounce=200, step=50, rust_timeout=250,
                                                yield_on_timeout=True, raise_interrupt=False):
                    self.ready.set()  # the first yield means the notifier is running
                    while again:  # once the new notifier runs, so nothing falls between the two
                        self._look_again(*again.pop())
                    since = time.time()
                    while not self._adopted.empty():
                        self._note(self._adopted.get())
                    for change, name in changes:
                        path = self._as_listed(Path(name))
                        if change == watchfiles.Change.deleted:
                            continue
                        if _is_media(path):
                            self._note(path)
                        elif change == watchfiles.Change.added and path.is_dir():
                            self._scan(path)
                    self._settled()
                return
            except WatchfilesRustInternalError as exc:
                # watchfiles cannot hand over a name that is not UTF-8 and drops the whole batch of
                # events with it: look again at the folder it names, for what changed since the
                # last batch, and follow on with a fresh notifier.
                folder = _undecodable_folder(str(exc))
                if folder is None:
                    raise
                log.info("watchfiles could not decode a name in %s; looking at the folder", readable(str(folder)))
                again.append((self._as_listed(folder), since - 1.0))

    def _scan(self, folder: Path) -> None:
        """Note every file under a folder that appeared: a folder moved in brings its files with
        no event of their own, and files written into a folder created at the same moment come
        before the notifier watches it (``cams/frontdoor/2024-05-01/x.jpg``, a recorder's new day)."""
        # The folder source's walk: each real folder once, so a link loop moved in ends.
        for entry in FolderSource(folder, within=self.source.path).entries():
            path = Path(entry.uri)
            if entry.error is None and _is_media(path):
                self._note(path)

    def _look_again(self, folder: Path, since: float) -> None:
        """Follow every media file in ``folder`` created, written or renamed since ``since``."""
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError:
            return
        for child in children:
            path = Path(child.path)
            try:
                changed = child.is_file() and child.stat().st_ctime >= since
            except OSError:
                continue
            if changed and _is_media(path):
                self._note(path)


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES and not path.name.startswith(".")


_UNDECODABLE = re.compile(r'Unable to decode path "(.*)" to string', re.DOTALL)
_RUST_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'"}


def _undecodable_folder(message: str) -> Path | None:
    """The folder of the path in watchfiles' "Unable to decode path" error, or None for another error.

    The path is printed as Rust's ``Debug`` writes it: the bytes that are not UTF-8 as ``\\xNN``,
    a few characters backslash-escaped, the rest as they are.
    """
    match = _UNDECODABLE.search(message)
    if match is None:
        return None
    text, out, i = match.group(1), bytearray(), 0
    try:
        while i < len(text):
            if text[i] != "\\":
                out += text[i].encode()
                i += 1
            elif text[i + 1] == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
            elif text[i + 1] == "u":
                end = text.index("}", i)
                out += chr(int(text[i + 3 : end], 16)).encode()
                i = end + 1
            else:
                out += _RUST_ESCAPES[text[i + 1]]
                i += 2
    except (IndexError, KeyError, ValueError):
        return None
    return Path(os.fsdecode(bytes(out))).parent

    def _scan(self, folder: Path) -> None:
        """Note every file under a folder that appeared: a folder moved in brings its files with
        no event of their own, and files written into a folder created at the same moment come
        before the notifier watches it (``cams/frontdoor/2024-05-01/x.jpg``, a recorder's new day)."""
        try:
            found = [p for p in folder.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES
                     and not p.name.startswith(".") and p.is_file()]
        except OSError as exc:
            log.warning("cannot list new folder %s: %s", folder, exc)
            return
        for path in sorted(found):
            self._note(path)


class BucketPoller(threading.Thread):
    """Lists a bucket prefix every ``poll_s`` seconds and queues object versions not seen before."""

    def __init__(self, source: BucketSource, out: queue.Queue[Item], stop: threading.Event, poll_s: float) -> None:
        super().__init__(name=f"poll:{source.uri}", daemon=True)
        self.source, self.out, self.stop, self.poll_s = source, out, stop, poll_s
        self.seen: set[tuple[str, str | None]] = set()
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            self.seen = {(e.uri, e.version) for e in self.source.entries()}
        except Exception as exc:  # noqa: BLE001 - the rescan reports a bucket that cannot be listed
            log.warning("listing %s failed: %s", self.source.uri, exc)
        finally:
            self.ready.set()
        while not self.stop.wait(self.poll_s):
            try:
                for entry in self.source.entries():
                    key = (entry.uri, entry.version)
                    if key not in self.seen:
                        self.seen.add(key)
                        _offer(self.out, (self.source, entry), self.stop)
            except Exception as exc:  # noqa: BLE001 - a network blip must not end the watch
                log.warning("listing %s failed, retrying in %.0f s: %s", self.source.uri, self.poll_s, exc)


class Watcher:
    """Rescans the sources, then follows them until :meth:`stop` is called."""

    def __init__(self, sources: Sequence[Source], settings: Settings, stages: Sequence[Stage],
                 workers: int | None = None, on_image: OnImage | None = None,
                 on_ready: Callable[[], None] | None = None, streams: Sequence[StreamSpec] = (),
                 on_clip: OnClip | None = None) -> None:
        self.sources = list(sources)
        self.streams = list(streams)
        self.segments: queue.Queue[ImageResult] = queue.Queue()
        self.cameras: dict[str, dict[str, int | str]] = {}
        """Per stream, once :meth:`run` returns: frames received and dropped, reconnects, segments, error."""
        self.settings = settings
        self.on_image, self.on_ready, self.on_clip = on_image, on_ready, on_clip
        self.queue: queue.Queue[Item] = queue.Queue(maxsize=settings.watch_queue)
        self._stop = threading.Event()
        self.ingestor = Ingestor(settings, stages, workers)
        self.summary = WatchSummary()

    def stop(self) -> None:
        """Finish the images in hand and return from :meth:`run` (safe from a signal handler)."""
        self._stop.set()
        self.ingestor.stop()

    def _followers(self) -> list[FolderFollower | BucketPoller]:
        threads: list[FolderFollower | BucketPoller] = []
        for src in self.sources:
            if isinstance(src, FolderSource) and src.path.is_dir():
                threads.append(FolderFollower(src, self.queue, self._stop, self.settings.watch_settle_s,
                                              self.settings.watch_clip_settle_s))
            elif isinstance(src, BucketSource):
                threads.append(BucketPoller(src, self.queue, self._stop, self.settings.watch_poll_s))
        return threads

    def _rescan(self, followers: Sequence[FolderFollower | BucketPoller]) -> list[Item]:
        """Everything that arrived while no watcher ran; files still being written go to their follower."""
        by_source = {id(t.source): t for t in followers if isinstance(t, FolderFollower)}
        now = time.time()
        settle = self.settings.watch_settle_s
        clip_settle = max(settle, self.settings.watch_clip_settle_s)
        items: list[Item] = []
        for src in self.sources:
            follower = by_source.get(id(src))
            for entry in src.entries():
                wait = clip_settle if is_video_name(entry.uri) else settle
                if follower is not None and entry.error is None and (entry.mtime or 0) > now - wait:
                    follower.adopt(Path(entry.uri))
                else:
                    items.append((src, entry))
        return items

    def _ingest(self, items: list[Item]) -> None:
        """One run over ``items``; a database connection lost mid-run (a server restart) runs
        them again on a new one: what was stored is skipped by its id, the rest is written."""
        for attempt in range(3):
            try:
                self.summary.add(self.ingestor.run([], on_image=self.on_image, entries=items, on_clip=self.on_clip))
                return
            except ConnectionLost as exc:
                if attempt == 2:
                    raise
                log.warning("%s; running the last %d files again", exc, len(items))

    def _write_segments(self) -> None:
        """Write what the stream followers handed over (in this thread: it owns the store)."""
        batch: list[ImageResult] = []
        while True:
            try:
                batch.append(self.segments.get_nowait())
            except queue.Empty:
                break
        if batch:
            self.summary.add(self.ingestor.put(batch, on_image=self.on_image))

    def run(self) -> WatchSummary:
        lends = not is_postgres(self.settings.db) and self.settings.watch_lend_s > 0
        with watching(Path(self.settings.db)) if lends else contextlib.nullcontext(), self.ingestor:
            cameras = [StreamFollower(spec, self.settings, self.segments, self._stop) for spec in self.streams]
            for c in cameras:
                c.start()
            followers = self._followers()
            for t in followers:
                t.start()
            for t in followers:
                t.ready.wait(timeout=30)
            self._ingest(self._rescan(followers))
            if self.on_ready:
                self.on_ready()
            batch = max(1, self.settings.batch_images)
            busy_at = time.monotonic()
            lend = self.settings.watch_lend_s
            while not self._stop.is_set():
                if not self.segments.empty():
                    busy_at = time.monotonic()
                self._write_segments()
                try:
                    items = [self.queue.get(timeout=0.25)]
                except queue.Empty:
                    if lend and time.monotonic() - busy_at >= lend:
                        self.ingestor.lend()  # idle: let `facelake sql` and the reports read the file
                    continue
                busy_at = time.monotonic()
                while len(items) < batch:
                    try:
                        items.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                self._ingest(items)
                busy_at = time.monotonic()
            for t in followers:
                t.join(timeout=5)
            for c in cameras:  # each closes its open tracks and hands them over as it ends
                c.join(timeout=30)
            self._write_segments()
            self.cameras = {c.spec.camera: c.counters | ({"error": c.error} if c.error else {}) for c in cameras}
        # The alert stage counts what its outputs never took when the ingestor closes, above.
        self.summary.alerts_undelivered = self.ingestor.last_summary.alerts_undelivered
        return self.summary
