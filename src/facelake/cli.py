"""The ``facelake`` command: a thin shell over the service functions in ``facelake``."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from . import errors
from . import identities as people_service
from .config import Settings, load_settings
from .pipeline import embed_paths
from .redact import mask_url
from .service import (
    QueryResult,
    export_bigquery,
    export_gallery,
    export_parquet,
    import_lake,
    ingest,
    run_report,
    run_sql,
    stats,
)
from .sources.base import readable
from .store import describe_target

if TYPE_CHECKING:
    from .triggers.watch import WatchSummary

EXIT_CODES: dict[type[errors.FacelakeError], int] = {
    errors.ConfigError: 2,
    errors.ReadOnlyViolation: 3,
    errors.StoreError: 4,
    errors.ModelLoadError: 5,
    errors.ImageUnreadable: 6,
    errors.NoFaceFound: 7,
    errors.SourceError: 8,
}
"""Exit code per error class (the most specific class listed wins); other errors exit 1."""

app = typer.Typer(
    help="facelake: find faces in camera images and keep them as sightings in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
)
# Never markup or emoji codes: every message and table cell holds data (a person's name "Joe [/]",
# a consent note "[red]yes[/red] :x:", the hint "pip install 'facelake[mtcnn]'"), which rich would
# otherwise render, swallow or fail on. Colour is given as styles (_styled), never in the text.
console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


def _styled(label: str, style: str, rest: str) -> Text:
    """``label`` in ``style``, then ``rest`` as plain text."""
    return Text.assemble((label, style), rest)


def _whole(table: Table) -> Table:
    """A table whose cells wrap instead of being cut with "…": a file name or an id cut short at
    80 columns is a wrong answer, not a shorter one."""
    for column in table.columns:
        column.overflow = "fold"
    return table


class _State:
    db: str | None = None
    config: Path | None = None


def _count(n: int, thing: str) -> str:
    """``n`` things, in English: "1 face", "3 faces" (not "1 faces")."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _settings(**overrides: Any) -> Settings:
    return load_settings(_State.config, db=_State.db, **overrides)


def _fail(exc: errors.FacelakeError) -> typer.Exit:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            code = EXIT_CODES[cls]  # type: ignore[index]
            break
    else:
        code = 1
    console.print(_styled("error:", "bold red", f" {exc}"))
    return typer.Exit(code)


def _reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn facelake's own errors into a one-line message and the exit code of EXIT_CODES."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except errors.FacelakeError as exc:
            raise _fail(exc) from exc

    return run


def _one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (a newline as ``\\n``): a file may be
    named with one, and a line per image must stay one line."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _print_version(value: bool) -> None:
    """``--version``: eager, so it answers before any database or setting is looked at."""
    if value:
        from . import __version__

        out.print(f"facelake {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    db: Annotated[str | None, typer.Option(
        "--db", envvar="FACELAKE_DB", help="DuckDB database file, or a postgresql:// URL.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", envvar="FACELAKE_CONFIG", help="TOML settings file.")
    ] = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print facelake's version and exit.")] = False,
) -> None:
    _State.db = db
    _State.config = config


def _warn(message: str) -> None:
    console.print(_styled("warning:", "yellow", f" {message}"), highlight=False)


def _warn_gallery_gap(settings: Settings) -> None:
    """Say so when enrolled people cannot be named by the configured embedder (see gallery_gap)."""
    gap = people_service.gallery_gap(settings)
    if gap:
        _warn(gap)


@app.command("ingest")
@_reports_errors
def ingest_cmd(
    sources: Annotated[list[str], typer.Argument(help="Folders (searched recursively), image files, video clips (MP4, MOV, MKV, AVI, WebM, TS, MJPEG), "
                                                       "gs://BUCKET/PREFIX or s3://BUCKET/PREFIX.")],
    camera: Annotated[str | None, typer.Option(help="Camera id for every image and clip (default: first folder under the source).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes (default: one per core).")] = None,
    detector: Annotated[str | None, typer.Option(help="Face detector: retinaface (default), hog or mtcnn.")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="Alert rules file (TOML); see the README.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print one line per image.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local (worker processes) or ray (Ray Data actors).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray).")] = None,
) -> None:
    """Find every face in SOURCES (photos and video clips) and store images, sightings and tracks in the database."""
    if engine not in ("local", "ray"):
        raise errors.ConfigError(f"--engine must be local or ray, got {engine!r}")
    settings = _settings(detector=detector, alerts_file=alerts)
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("listing", total=None)

        def listed(total: int) -> None:
            progress.update(task, total=total, description="ingesting")

        clips: dict[str, TaskID] = {}

        def done(uri: str, outcome: str, faces: int, error: str | None) -> None:
            progress.advance(task)
            if uri in clips:
                progress.remove_task(clips.pop(uri))
            if verbose:  # a skipped image's faces are stored already: no count to give
                detail = f" error: {error}" if error else "" if outcome == "skipped" else f" faces={faces}"
                console.print(_one_line(f"{outcome} {uri}{detail}"), highlight=False)

        def clip(uri: str, seconds: float, duration: float | None) -> None:
            # An hour-long clip is minutes of work: a bar of its own, in seconds of footage read.
            if uri not in clips:
                name = escape(PurePosixPath(uri).name)
                clips[uri] = progress.add_task(f"  {name} (s of video)", total=duration)
            progress.update(clips[uri], completed=seconds)

        summary = ingest(sources, settings, camera=camera, workers=workers, on_listed=listed, on_image=done,
                         engine=engine, ray_address=address, on_warning=_warn, on_clip=clip)
    table = Table(title=f"ingest into {describe_target(settings.db)}", show_header=True)
    for col in ("new", "skipped", "failed", "faces", "named", "purged", "images/s"):
        table.add_column(col, justify="right")
    table.add_row(str(summary.new), str(summary.skipped), str(summary.failed), str(summary.faces),
                  str(summary.named), str(summary.purged), f"{summary.images_per_second:.2f}")
    out.print(table)
    if summary.alerts or summary.alerts_undelivered:
        out.print(f"alerts: {summary.alerts} raised, {summary.alerts_undelivered} not delivered")
    if verbose:  # each failed image had its line already
        return
    for uri, error in summary.errors[:20]:
        out.print(_styled("failed", "red", _one_line(f" {uri}: {error}")), highlight=False)
    if len(summary.errors) > 20:
        out.print(f"... and {len(summary.errors) - 20} more (see images.status = 'error')")


CLIP_REPORT_S = 300.0
"""``watch`` prints a long clip's progress every five minutes of footage."""


def _stopped(summary: WatchSummary) -> str:
    """What ``watch`` and ``serve --watch`` say when they stop, the alerts no output took among it."""
    return (f"stopped: {summary.new} new, {summary.skipped} skipped, {summary.failed} failed, "
            f"{summary.faces} faces, {summary.named} named, {summary.alerts} alerts"
            + (f" ({summary.alerts_undelivered} not delivered)" if summary.alerts_undelivered else ""))


@app.command("serve")
@_reports_errors
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the dashboard on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8470,
    watch: Annotated[list[str] | None, typer.Option("--watch", help="Folder, bucket, live stream URL or configured camera name to follow (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Ingest worker processes.")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="Alert rules file (TOML).")] = None,
) -> None:
    """Watcher + HTTP API + dashboard in one process that owns the database (Ctrl-C or SIGTERM stops)."""
    try:
        from .api.serve import check_port, serve
    except ImportError as exc:
        raise errors.ConfigError(f"serve needs the serve extra: pip install 'facelake[serve]' ({exc})") from exc
    from .sources import require_present
    from .triggers.streams import plan_streams

    settings = _settings(alerts_file=alerts)
    # What watch refuses, serve --watch refuses too, before it says it serves anything.
    if watch:
        require_present(plan_streams(list(watch), None, settings)[1])
    check_port(host, port)
    console.print(f"facelake serving {describe_target(settings.db)} on http://{host}:{port} (dashboard at /, API at /api, docs at /docs)"
                  + (f"; watching {', '.join(map(mask_url, watch))}" if watch else ""), markup=False)
    summary = serve(settings, host, port, watch or [], workers)
    if summary is not None:
        out.print(_stopped(summary))


@app.command("watch")
@_reports_errors
def watch_cmd(
    sources: Annotated[list[str] | None, typer.Argument(help="Folders to follow, gs://BUCKET/PREFIX or s3://BUCKET/PREFIX to poll, live streams (rtsp://, http://, /dev/videoN) or camera names from \\[cameras.NAME]; none: every configured camera.")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera id for every image, or the name of the one stream (default: first folder under the source; a stream's \\[cameras] name or host).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes (default: one per core).")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="Alert rules file (TOML); see the README.")] = None,
    settle: Annotated[float | None, typer.Option(help="Seconds a new file must stay unchanged before it is read.")] = None,
    poll: Annotated[float | None, typer.Option(help="Seconds between two listings of a bucket.")] = None,
) -> None:
    """Ingest images and clips as they arrive (folders followed, buckets polled) and follow live
    cameras, until SIGTERM or Ctrl-C.

    Starts with a rescan, so what arrived while no watcher ran is ingested first. Stopping
    finishes the images in hand and closes the cameras' open tracks; nothing is half-written.
    """
    import signal

    from .service import default_stages
    from .sources import open_source, require_present
    from .triggers.streams import plan_streams
    from .triggers.watch import Watcher

    settings = _settings(alerts_file=alerts, watch_settle_s=settle, watch_poll_s=poll)
    streams, places = plan_streams(sources or [], camera, settings)
    require_present(places)
    opened = [open_source(s, camera) for s in places]

    def done(uri: str, outcome: str, faces: int, error: str | None) -> None:
        if outcome != "skipped":
            detail = f"error: {error}" if error else f"faces={faces}"
            out.print(f"{outcome} {uri} {detail}", highlight=False)

    said: dict[str, float] = {}

    def clip(uri: str, seconds: float, duration: float | None) -> None:
        # A long clip says how far it got every CLIP_REPORT_S of footage, so watch never looks stuck.
        if seconds - said.get(uri, 0.0) >= CLIP_REPORT_S:
            said[uri] = seconds
            of = f" of {duration / 60:.0f} min" if duration else ""
            out.print(f"reading {uri}: {seconds / 60:.0f} min{of}", markup=False, highlight=False)

    shown = [*places, *(f"{s.camera} ({mask_url(s.url)})" for s in streams)]
    watcher = Watcher(opened, settings, default_stages(settings, cluster=True, on_warning=_warn), workers, on_image=done,
                      on_ready=lambda: console.print(f"watching {', '.join(shown)} (Ctrl-C or SIGTERM stops)"),
                      streams=streams, on_clip=clip)

    def stop(signum: int, frame: object) -> None:
        console.print(f"{signal.Signals(signum).name}: finishing the images in hand and closing open tracks")
        watcher.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print(_stopped(summary))
    for name, counts in watcher.cameras.items():
        out.print(f"camera {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)


@app.command("capture")
@_reports_errors
def capture_cmd(
    source: Annotated[str, typer.Argument(help="A live stream (rtsp://, http://, /dev/videoN) or a camera name from \\[cameras.NAME].")],
    to: Annotated[str, typer.Option("--to", help="Where frames go: gs://BUCKET/PREFIX, s3://BUCKET/PREFIX or a folder.")],
    camera: Annotated[str | None, typer.Option(help="Camera name (folder under --to; default: the \\[cameras] name or the host).")] = None,
    per_track: Annotated[int, typer.Option("--per-track", min=1, max=10, help="Frames uploaded per track, best first.")] = 1,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: until SIGTERM or Ctrl-C).")] = None,
) -> None:
    """Follow a camera on its own small computer and upload only each track's best frames.

    Detection, embedding and tracking run here on one thread; the frames land under
    TO/CAMERA/DATE/ with their capture time in EXIF, where the bucket → Cloud Function path
    (or `facelake ingest`/`watch`) names them.
    """
    import signal

    from .triggers.capture import Capture
    from .triggers.streams import plan_streams

    settings = _settings()
    streams, places = plan_streams([source], camera, settings)
    if places or len(streams) != 1:
        raise errors.ConfigError(f"capture reads one live stream (rtsp://, http://, /dev/videoN or a [cameras] name), "
                                 f"got {source!r}")
    spec = streams[0]
    run = Capture(spec.url, spec.camera, to, settings if spec.fps is None else settings.model_copy(
        update={"video_fps": spec.fps}), per_track)
    console.print(f"capturing {spec.camera} ({mask_url(spec.url)}) to {to} (Ctrl-C or SIGTERM stops)")

    def stop(signum: int, frame: object) -> None:
        console.print(f"{signal.Signals(signum).name}: closing open tracks and uploading their frames")
        run.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run.run(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print(f"captured: {summary.analysed} frames analysed, {summary.tracks} tracks, {summary.uploaded} frames "
              f"uploaded ({summary.bytes / 1e3:.0f} kB) in {summary.seconds:.1f} s; "
              + ", ".join(f"{k} {v}" for k, v in summary.reader.items()), highlight=False)
    if summary.error:
        raise errors.SourceError(summary.error)


def _detection_json(face: Any) -> dict[str, Any]:
    det = face.detection
    return {
        "box": [round(v, 2) for v in det.box],
        "score": round(det.score, 5),
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in det.landmarks],
        "embedding": [round(float(v), 7) for v in face.embedding],
        "recognisability": None if face.recognisability is None else round(face.recognisability, 4),
    }


@app.command("embed")
@_reports_errors
def embed_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per image (the machine interface).")] = False,
    detector: Annotated[str | None, typer.Option(help="Face detector: retinaface (default), hog or mtcnn.")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", min=0.01, max=0.99,
                         help="Report detections down to this score (default: det_threshold), e.g. 0.01 for "
                              "precision/recall curves; ingest, naming and alerts keep their own threshold.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Worker processes (default: one per core "
                       "for 8 images or more, else this process).")] = None,
) -> None:
    """Detect and embed faces without storing anything; --jsonl is the stable machine interface."""
    missing = [p for p in paths if not (p.exists() or p.is_symlink())]
    if missing:  # a usage mistake, as for ingest: before any model loads
        raise errors.ConfigError(f"{missing[0]}: no such file or folder")
    settings = _settings(detector=detector, det_threshold=min_score)
    results = embed_paths(paths, settings, workers=workers)
    table = _whole(Table("image", "faces", "largest box", "score", "error")) if not jsonl else None
    for r in results:
        if jsonl:
            record: dict[str, Any] = {"image": r.uri, "faces": len(r.faces)}
            if r.error is not None:
                record["error"] = r.error
            else:
                record["detections"] = [_detection_json(f) for f in r.faces]
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        else:
            assert table is not None
            top = r.faces[0].detection if r.faces else None
            table.add_row(
                readable(r.uri), str(len(r.faces)),
                " ".join(f"{v:.0f}" for v in top.box) if top else "",
                f"{top.score:.3f}" if top else "", r.error or "",
            )
    if table is not None:
        out.print(table)


def _cell(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, tuple | list):
        return [_cell(v) for v in value]
    if isinstance(value, Decimal):  # PostgreSQL's numeric (EXTRACT, sums): a JSON number as on DuckDB
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _print_result(result: QueryResult, fmt: str, title: str | None = None) -> None:
    if fmt == "json":
        rows = [{c: _cell(v) for c, v in zip(result.columns, row)} for row in result.rows]
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([json.dumps(c) if isinstance(c, list) else c for c in map(_cell, row)])
    else:
        table = _whole(Table(*result.columns, title=title))
        for row in result.rows:
            table.add_row(*("" if v is None else str(_cell(v)) for v in row))
        out.print(table)


@app.command("sql")
@_reports_errors
def sql_cmd(
    query: Annotated[str | None, typer.Argument(help="SQL over images, sightings, people, enrollments, audit.")] = None,
    report: Annotated[str | None, typer.Option("--report", help="Run a shipped report query instead: "
                      "sightings_per_camera_hour, people_per_day, unknown_faces_over_time, gps_points.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as a JSON array of objects.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print rows as CSV.")] = False,
    title: Annotated[str | None, typer.Option("--title", help="A title over the table (default: the report's name).")] = None,
) -> None:
    """Run read-only SQL against the database (writes are refused)."""
    if as_json and as_csv:
        raise errors.ConfigError("--json and --csv are exclusive: pick one output format")
    if (query is None) == (report is None):
        raise errors.ConfigError("give either a SQL query or --report NAME")
    result = run_sql(_settings(), query) if query is not None else run_report(_settings(), report or "")
    _print_result(result, "json" if as_json else "csv" if as_csv else "table", title=title or report)


@app.command("export")
@_reports_errors
def export_cmd(
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Folder to write images.parquet and sightings.parquet into.")] = None,
    bigquery: Annotated[str | None, typer.Option("--bigquery", help="PROJECT.DATASET to load new rows into (incremental).")] = None,
) -> None:
    """Export images and sightings: Parquet files, or an incremental load into BigQuery (docs/bigquery.md)."""
    if (parquet is None) == (bigquery is None):
        raise errors.ConfigError("give exactly one of --parquet FOLDER or --bigquery PROJECT.DATASET")
    if parquet is not None:
        counts = export_parquet(_settings(), parquet)
        for name, n in counts.items():
            out.print(f"{parquet / (name + '.parquet')}: {n} rows")
        out.print("these files hold face crops and embeddings that `facelake forget` and `purge` cannot reach: "
                  "keep them only as long as needed, and re-export after an erasure (docs/privacy.md)")
        return
    assert bigquery is not None
    sent = export_bigquery(_settings(), bigquery)
    out.print(f"{bigquery}: {sent['images']} images and {sent['sightings']} sightings sent ({sent['tracks']} tracks), "
              f"{sent['erased']} rows of erased people deleted, "
              f"{sent['embeddings erased']} rows of erased or expired faces emptied")


@app.command("copy")
@_reports_errors
def copy_cmd(
    source: Annotated[str, typer.Option("--from", help="The database to copy: a DuckDB file or a postgresql:// URL.")],
    target: Annotated[str, typer.Option("--to", help="An empty database to copy into (DuckDB file or postgresql:// URL).")],
) -> None:
    """Move a whole database between DuckDB and PostgreSQL (either way), verified by counts and checksums."""
    from .service import copy_database
    from .store import as_target, describe_target

    with Progress(TextColumn("copying {task.description}"), MofNCompleteColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def on_rows(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=None)
            progress.advance(tasks[table], n)

        result = copy_database(as_target(source), as_target(target), on_rows)
    table = Table(title=f"{describe_target(source)} → {describe_target(target)}", show_header=True)
    for name in ("table", "source rows", "copied rows"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for name, n in result.source_counts.items():
        table.add_row(name, str(n), str(result.target_counts[name]))
    out.print(table)
    out.print(f"verified: every row count matches, embeddings sha256 {result.target_digest[:16]} on both sides")


@app.command("import")
@_reports_errors
def import_cmd(
    lake: Annotated[str, typer.Argument(help="The Cloud Function's lake: gs://BUCKET/lake, s3://BUCKET/lake or a folder.")],
) -> None:
    """Bring what the Cloud Function wrote (the Parquet lake) into the database; safe to repeat."""
    with Progress(TextColumn("importing"), MofNCompleteColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("import", total=None)
        counts = import_lake(_settings(), lake, lambda image_id, outcome: progress.advance(task))
    out.print(f"imported {counts['imported']} images ({counts['faces']} faces, {counts['named']} named), "
              f"{counts['skipped']} already here or erased")
    if counts["erased"]:
        out.print(f"{counts['erased']} faces came without crop and embedding: erased here or expired "
                  "(run `facelake purge` to erase them from the lake too)")


@app.command("report")
@_reports_errors
def report_cmd(
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    since: Annotated[str | None, typer.Option("--since", help="Window: 7d, 12h, 30m or a date (default: everything).")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="One camera only.")] = None,
    no_faces: Annotated[bool, typer.Option("--no-faces", help="Leave face crops out of the file.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="html (the full report) or png (one summary image).")] = "html",
) -> None:
    """One self-contained HTML report (charts, map, tables; no network needed to open it), or a PNG summary."""
    from .reports.html import build_png, build_report

    if fmt not in ("html", "png"):
        raise errors.ConfigError(f"--format must be html or png, got {fmt!r}")
    folder = out_file.parent  # checked before the work, not found as a traceback after it
    if not folder.is_dir():
        raise errors.ConfigError(f"--out {out_file}: the folder {folder} does not exist; create it or pick another")
    if out_file.is_dir():
        raise errors.ConfigError(f"--out {out_file} is a folder; give a file name, e.g. {out_file / 'report.html'}")
    summary = (build_report(_settings(), out_file, since, camera, faces=not no_faces) if fmt == "html"
               else build_png(_settings(), out_file, since, camera))
    out.print(f"wrote {summary.path} ({summary.bytes / 1e3:.0f} kB, {summary.sightings} sightings)")


@app.command("visits")
@_reports_errors
def visits_cmd(
    person: Annotated[str | None, typer.Option("--person", help="One enrolled person (name or id).")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="One camera only.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Window: 7d, 12h, 30m or a date (default: everything).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="How many visits to list, newest first.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Visits, newest first: tracks of one person (or group of unknown faces) on one camera closer than
    visit_gap_s (default 5 min) make one visit."""
    from .reports.html import parse_since
    from .reports.views import duration_text, visit_json, who
    from .service import visits

    rows = visits(_settings(), person, camera, parse_since(since), limit)
    if as_json:
        sys.stdout.write(json.dumps([visit_json(v) for v in rows]) + "\n")
        return
    table = _whole(Table("person", "camera", "start", "end", "duration", "tracks", "best sighting",
                         title=_count(len(rows), "visit")))
    for v in rows:
        table.add_row(who(v.person, v.cluster_id), v.camera or "", f"{v.started_at:%Y-%m-%d %H:%M:%S}",
                      f"{v.ended_at:%Y-%m-%d %H:%M:%S}", duration_text(v.seconds), str(v.tracks),
                      "" if v.best_sighting_id is None else str(v.best_sighting_id))
    out.print(table)


@app.command("stats")
@_reports_errors
def stats_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The database and how it keeps vectors; images and faces per camera, per day and per embedding model."""
    result = stats(_settings())
    if as_json:
        payload = {
            k: [{c: _cell(v) for c, v in zip(r.columns, row)} for row in r.rows] for k, r in result.items()
        }
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    _print_result(result["store"], "table", "database")
    _print_result(result["per_camera"], "table", "per camera")
    _print_result(result["per_day"], "table", "per day")
    _print_result(result["per_model"], "table", "faces per embedding model")


people_app = typer.Typer(help="Enrolled people: the only faces facelake ever names.", no_args_is_help=True)
app.add_typer(people_app, name="people")


@people_app.command("add")
@_reports_errors
def people_add(
    name: Annotated[str, typer.Argument(help="The person's name, as it will appear in reports and alerts.")],
    photos: Annotated[list[Path], typer.Argument(help="Photos showing the person's face (one face each).")],
    consent: Annotated[str, typer.Option("--consent", help="How and when the person agreed to be recognised.")],
    face: Annotated[int | None, typer.Option("--face", min=0, help="Which face to use in photos with several (0 = largest).")] = None,
    more: Annotated[bool, typer.Option("--more", help="Add these photos to a person already enrolled under NAME.")] = False,
) -> None:
    """Enroll a person from their photos; a consent note is required."""
    result = people_service.enroll_person(_settings(), name, photos, consent, face, extend=more)
    people_service.identify(_settings())
    out.print(f"enrolled {result.name} (person {result.person_id}) from {len(result.sightings)} photo(s)")


@people_app.command("import")
@_reports_errors
def people_import(
    folder: Annotated[Path, typer.Argument(help="A folder per person: FOLDER/<name>/*.jpg, one face per photo.")],
    consent: Annotated[str, typer.Option("--consent", help="How and when these people agreed to be recognised.")],
) -> None:
    """Enroll many people at once (photos of people already enrolled are added to theirs)."""
    done = people_service.import_people(_settings(), folder, consent)
    people_service.identify(_settings())
    for e in done:
        out.print(f"enrolled {e.name} (person {e.person_id}) from {len(e.sightings)} photo(s)")


@people_app.command("list")
@_reports_errors
def people_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Enrolled people with their consent notes and how often they were seen."""
    rows = people_service.list_people(_settings())
    columns = ["person_id", "name", "consent_note", "created_at", "enrolled_faces", "sightings", "last_seen"]
    _print_result(QueryResult(columns, [tuple(getattr(r, c) for c in columns) for r in rows]),
                  "json" if as_json else "table")


@people_app.command("export")
@_reports_errors
def people_export(
    target: Annotated[str, typer.Argument(help="Where to write the gallery: gs://BUCKET/gallery.npz, s3://… or a file.")],
) -> None:
    """Write the enrolled people's gallery file, which the Cloud Function names faces with."""
    n = export_gallery(_settings(), target)
    out.print(f"wrote the gallery of {n} enrolled people to {target}")


@people_app.command("rename")
@_reports_errors
def people_rename(
    person: Annotated[str, typer.Argument(help="Current name (or person id).")],
    new_name: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename an enrolled person."""
    pid = people_service.rename_person(_settings(), person, new_name)
    out.print(f"person {pid} is now {new_name}")


@people_app.command("remove")
@_reports_errors
def people_remove(
    person: Annotated[str, typer.Argument(help="Name (or person id).")],
) -> None:
    """Un-enroll a person; their faces become unknown (use `facelake forget` to erase them)."""
    counts = people_service.remove_person(_settings(), person)
    out.print("removed " + ", ".join(f"{n} {k}" for k, n in counts.items()))


tokens_app = typer.Typer(help="API tokens for `facelake serve` (only a hash is stored).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
@_reports_errors
def tokens_create(
    scope: Annotated[str, typer.Option("--scope", help="read (sees everything, changes nothing) or admin.")],
    name: Annotated[str | None, typer.Option("--name", help="A name for the token (shown in the audit log).")] = None,
) -> None:
    """Create a token; it is printed once, alone on the last line of stdout."""
    from .service import create_token

    token, secret = create_token(_settings(), scope, name)
    console.print(f"token {token.name!r} ({token.scope}) created; it is shown only this once:")
    sys.stdout.write(secret + "\n")


@tokens_app.command("list")
@_reports_errors
def tokens_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Tokens with their scope and state (never the tokens themselves)."""
    from .service import list_tokens

    rows = list_tokens(_settings())
    columns = ["token_id", "name", "scope", "created_at", "revoked_at"]
    _print_result(QueryResult(columns, [tuple(getattr(t, c) for c in columns) for t in rows]),
                  "json" if as_json else "table")


@tokens_app.command("revoke")
@_reports_errors
def tokens_revoke(who: Annotated[str, typer.Argument(help="Token name or id.")]) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    from .service import revoke_token

    token = revoke_token(_settings(), who)
    out.print(f"token {token.name!r} revoked")


sightings_app = typer.Typer(help="Single sightings: correct or confirm a name.", no_args_is_help=True)
app.add_typer(sightings_app, name="sightings")


@sightings_app.command("unname")
@_reports_errors
def sightings_unname(
    sighting: Annotated[int, typer.Argument(help="Sighting id (see `facelake sql` or `search`).")],
) -> None:
    """"Not this person": remove the name, and never give it to this face or its near-duplicates again."""
    done = people_service.unname(_settings(), sighting)
    who = f"{done.name} (person {done.person})" if done.name else f"person {done.person}"
    out.print(f"sighting {sighting} is no longer named as {who}; the correction is remembered")
    if done.near_duplicates:
        out.print(f"its near-duplicates lost the name too: sightings {', '.join(map(str, done.near_duplicates))}")


@sightings_app.command("confirm")
@_reports_errors
def sightings_confirm(
    sighting: Annotated[int, typer.Argument(help="A named sighting that is right.")],
) -> None:
    """Add a named sighting to its person's enrollment examples."""
    person = people_service.confirm(_settings(), sighting)
    out.print(f"sighting {sighting} is now an example of person {person}")


@app.command("identify")
@_reports_errors
def identify_cmd() -> None:
    """Re-match every stored face against the enrolled people (after enrollment changes)."""
    settings = _settings()
    _warn_gallery_gap(settings)
    result = people_service.identify(settings)
    out.print(f"checked {_count(result.checked, 'face')}: {result.named} named, {result.changed} changed")
    for change in result.changes:
        was = "unknown" if change.was is None else f"person {change.was}"
        now = "unknown" if change.now is None else f"person {change.now}"
        out.print(f"  sighting {change.sighting_id}: {was} -> {now}")


@app.command("eval")
@_reports_errors
def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder per person (FOLDER/<name>/*.jpg): your own labelled photos.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Measure naming and clustering on your own photos: TAR@FAR, rank-1, strangers named, BCubed."""
    from .identities.evaluation import evaluate

    report = evaluate(_settings(), folder).as_dict()
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    table = Table("measure", "value", title=f"facelake eval {folder}")
    for key, value in report.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command("reembed")
@_reports_errors
def reembed_cmd(
    model: Annotated[str, typer.Option("--model", help="Embedder to recompute every stored face with: fusion, dlib or mobilefacenet.")],
) -> None:
    """Recompute every stored face's embedding with another model (resumable; names and clusters stay).

    Then set `embedder` to the same model (config file or FACELAKE_EMBEDDER) so new faces match them.
    """
    from .identities import reembed

    settings = _settings()
    with Progress(TextColumn("re-embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("reembed", total=None)
        summary = reembed(settings, model, lambda n: progress.update(task, total=n),
                          lambda uri, faces: progress.advance(task))
    out.print(f"re-embedded {summary.faces} faces in {summary.images} images with {model} "
              f"({summary.from_context} from the kept face context, their source image being gone or changed); "
              f"{summary.unavailable} faces kept their old embedding (no source image, no context)")
    if settings.embedder != model:
        out.print(f"now set embedder = \"{model}\" (config file) or FACELAKE_EMBEDDER={model}")


@app.command("forget")
@_reports_errors
def forget_cmd(
    person: Annotated[str, typer.Argument(help="Name (or person id) to erase.")],
    lake: Annotated[str | None, typer.Option(
        "--lake", help="The Cloud Function's lake to erase them from too (default: the lake_uri setting).")] = None,
) -> None:
    """Erase a person completely: enrollments, enrollment photos, links, face crops, embeddings, and the lake's copies."""
    settings = _settings()
    counts = people_service.forget(settings, person, lake=lake)
    out.print("erased " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    _warn_copies(settings, lake)


@app.command("purge")
@_reports_errors
def purge_cmd(
    lake: Annotated[str | None, typer.Option(
        "--lake", help="The Cloud Function's lake to purge too (default: the lake_uri setting).")] = None,
) -> None:
    """Erase embeddings and crops of unknown faces older than the retention period (in the lake too)."""
    settings = _settings()
    counts = people_service.purge(settings, lake=lake)
    out.print(f"purged the embeddings and crops of {counts['faces']} unknown faces")
    if "lake faces erased" in counts:
        out.print(f"lake: {counts['lake faces erased']} faces erased, {counts['lake images deleted']} images deleted")
    _warn_copies(settings, lake)


def _warn_copies(settings: Settings, lake: str | None) -> None:
    """Say which copies an erasure did not reach (docs/privacy.md): the owner must act on them."""
    if not (lake or settings.lake_uri):
        out.print("no lake given (--lake or lake_uri): if the Cloud Function writes one, run this again with "
                  "--lake URI; `facelake import` never brings erased faces back meanwhile")
    out.print("BigQuery: the next `facelake export --bigquery` erases them there; Parquet files written by "
              "`facelake export --parquet` still hold them: delete or re-export those (docs/privacy.md)")


@app.command("search")
@_reports_errors
def search_cmd(
    photo: Annotated[Path, typer.Argument(help="A photo of the face to look for.")],
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="How many sightings to list.")] = 10,
    face: Annotated[int | None, typer.Option("--face", min=0, help="Which face in a photo with several (0 = largest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List past sightings of the face in PHOTO (image, camera, time, score); the query is audited."""
    hits = people_service.search(_settings(), photo, top, face)
    columns = ["sighting_id", "score", "uri", "camera", "taken_at", "person"]
    _print_result(QueryResult(columns, [(h.sighting_id, round(h.score, 4), h.uri, h.camera, h.taken_at, h.person)
                                        for h in hits]), "json" if as_json else "table",
                  title=f"the {len(hits)} sightings most like the face in {photo}")


@app.command("cluster")
@_reports_errors
def cluster_cmd(
    full: Annotated[bool, typer.Option("--full", help="Regroup every unknown face from scratch.")] = False,
) -> None:
    """Group unknown faces into candidate identities (new faces join or start groups)."""
    result = people_service.cluster(_settings(), full=full)
    out.print(f"clustered {_count(result.faces, 'unknown face')} ({result.new_faces} new): "
              f"{_count(result.clusters, 'group')} of 2 or more")


clusters_app = typer.Typer(help="Candidate identities among unknown faces.", invoke_without_command=True)
app.add_typer(clusters_app, name="clusters")


@clusters_app.callback()
@_reports_errors
def clusters_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    min_size: Annotated[int, typer.Option("--min-size", min=1, help="Smallest group to list.")] = 2,
) -> None:
    """List clusters with their size and first/last seen (run `facelake cluster` first)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = people_service.list_clusters(_settings(), min_size)
    columns = ["cluster_id", "faces", "first_seen", "last_seen", "cameras"]
    _print_result(QueryResult(columns, [tuple(getattr(r, c) for c in columns) for r in rows]),
                  "json" if as_json else "table")


@clusters_app.command("name")
@_reports_errors
def clusters_name(
    cluster_id: Annotated[int, typer.Argument(help="Cluster id (see `facelake clusters`).")],
    name: Annotated[str, typer.Argument(help="The person's name.")],
    consent: Annotated[str, typer.Option("--consent", help="How and when the person agreed to be recognised.")],
) -> None:
    """Enroll a cluster as a person (its best faces become the enrollment)."""
    result = people_service.name_cluster(_settings(), cluster_id, name, consent)
    out.print(f"enrolled {result.name} (person {result.person_id}) from {len(result.sightings)} faces")


@clusters_app.command("merge")
@_reports_errors
def clusters_merge(
    keep: Annotated[int, typer.Argument(help="Cluster that stays.")],
    other: Annotated[int, typer.Argument(help="Cluster merged into it.")],
) -> None:
    """Merge two clusters that are the same person."""
    moved = people_service.merge_clusters(_settings(), keep, other)
    out.print(f"moved {_count(moved, 'face')} from cluster {other} into {keep}")


@clusters_app.command("split")
@_reports_errors
def clusters_split(
    cluster_id: Annotated[int, typer.Argument(help="Cluster to split.")],
) -> None:
    """Split a cluster that mixes people (re-grouped with a stricter threshold)."""
    ids = people_service.split_cluster(_settings(), cluster_id)
    if len(ids) == 1:
        out.print(f"cluster {cluster_id} holds one tight group; nothing to split")
    else:
        out.print(f"cluster {cluster_id} split into {', '.join(map(str, ids))}")


if __name__ == "__main__":
    app()
