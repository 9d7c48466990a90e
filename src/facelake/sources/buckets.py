"""Object stores: Google Cloud Storage and S3 (and S3-compatible servers), through their official clients.

Why the official clients (google-cloud-storage, boto3) rather than one library for both:
they read credentials from each cloud's standard chain (ADC, the AWS profile/env/IMDS chain)
and honour the standard emulator variables (``STORAGE_EMULATOR_HOST``, ``AWS_ENDPOINT_URL``)
with no facelake-specific settings, and a Cloud Function already has google-cloud-storage.
The measured listing/download throughput is in docs/cloud.md.

facelake never handles a secret itself: nothing here reads, prints or stores credentials.
The clients are imported lazily: they belong to the ``cloud`` extra.

A read that fails says whose fault it is. The object's own fault (gone, a range it cannot
serve: HTTP 4xx other than 401, 403, 408 and 429) is :class:`ImageUnreadable`, a verdict
on the image. Anything else (the network, a timeout, HTTP 5xx, throttling, permissions
being fixed) is :class:`SourceUnavailable`: ingest's next run reads it again and the Cloud
Function fails the invocation so that it is redelivered. The clients' own retries are
bounded by ``READ_BUDGET_S`` (the libraries' defaults wait 120 s or more per object, as long
as the function's whole timeout), say what they wait for, and give up at once after
:func:`stop_reads`.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, ImageTooLarge, ImageUnreadable, SourceError, SourceUnavailable
from .base import Entry, Writable, camera_from_key, is_image_name, write_bounded

log = logging.getLogger(__name__)

CHUNK = 1 << 20
READ_BUDGET_S = 20.0
"""Seconds one object's read may spend in the client's retries before it is given up (then
retried by the next run or the next delivery): well under the Cloud Function's 120-s timeout."""
REQUEST_TIMEOUT_S = (5.0, 15.0)
"""Connect and read timeouts of one request: a server that stops answering mid-stream costs
at most this, not the libraries' 60 s."""
S3_ATTEMPTS = 3
"""Attempts botocore makes per request ("standard" retry mode): 3 x 20 s at most."""

_stopping = threading.Event()


def stop_reads() -> None:
    """Make every read in flight give up at its next retry instead of waiting out its budget
    (Ctrl-C of an ingest whose bucket is down: seconds, not minutes)."""
    _stopping.set()


def _transient_http(code: object) -> bool:
    """Whether an HTTP status says "not now" rather than "not this object"."""
    return not isinstance(code, int) or code >= 500 or code in (401, 403, 408, 429) or code < 400


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    version: str
    mtime: float | None


class Bucket(Protocol):
    """The few object-store operations facelake needs."""

    uri: str
    """``gs://name``, ``s3://name`` or a local folder path."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def read(self, key: str, max_bytes: int) -> bytes: ...
    def download(self, key: str, out: Writable, max_bytes: int) -> None: ...
    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


def split_uri(uri: str) -> tuple[str, str, str]:
    """``gs://bucket/some/prefix`` → ``("gs", "bucket", "some/prefix")``."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("gs", "s3"):
        raise ConfigError(f"not a bucket URI (expected gs://BUCKET/PREFIX or s3://BUCKET/PREFIX): {uri!r}")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"bucket name missing in {uri!r}")
    return scheme, bucket, prefix


def is_bucket_uri(value: str) -> bool:
    return value.startswith(("gs://", "s3://"))


def _missing_extra(exc: ImportError) -> ConfigError:
    return ConfigError(f"bucket sources need the cloud extra: pip install 'facelake[cloud]' ({exc})")


class GcsBucket:
    """A Google Cloud Storage bucket (``STORAGE_EMULATOR_HOST`` points the client at an emulator)."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        try:
            from google.api_core import exceptions
            from google.cloud import storage  # type: ignore[attr-defined]
        except ImportError as exc:
            raise _missing_extra(exc) from exc
        self._errors = exceptions
        self.name, self.uri = name, f"gs://{name}"
        if client is None:
            try:
                client = storage.Client()
            except Exception as exc:
                raise SourceError(f"cannot open {self.uri}: no Google Cloud credentials found "
                                  f"(run `gcloud auth application-default login`): {type(exc).__name__}") from exc
        self._client = client
        self._bucket = client.bucket(name)
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._retry = DEFAULT_RETRY
        self._down = threading.Event()
        """Set when a read spent its whole budget: the next reads are tried once each (a bucket
        that is down costs one budget per run, not one per object), until one succeeds."""

    def _read_retry(self, where: str) -> Any:
        """The library's retry policy (which errors are worth a retry), within READ_BUDGET_S,
        saying what it waits for, and giving up at once after :func:`stop_reads`."""
        base = self._retry

        def worth_retrying(exc: Exception) -> bool:
            return not _stopping.is_set() and bool(base._predicate(exc))

        def waiting(exc: Exception) -> None:
            log.warning("%s: %s, retrying (for up to %.0f s)", where, _reason(exc), READ_BUDGET_S)

        return type(base)(predicate=worth_retrying, initial=0.5, maximum=4.0, multiplier=2.0,
                          timeout=READ_BUDGET_S, on_error=waiting)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for blob in self._client.list_blobs(self.name, prefix=prefix or None, page_size=1000):
                updated = blob.updated.timestamp() if blob.updated else None
                yield ObjectInfo(blob.name, int(blob.size or 0), str(blob.generation), updated)
        except self._errors.GoogleAPIError as exc:
            raise SourceError(f"cannot list {self.uri}/{prefix}: {exc}") from exc

    def read(self, key: str, max_bytes: int) -> bytes:
        """A download into memory: one place handles the range, the retries and the errors."""
        out = io.BytesIO()
        self.download(key, out, max_bytes)
        return out.getvalue()

    def download(self, key: str, out: Writable, max_bytes: int) -> None:
        where = f"gs://{self.name}/{key}"
        retry = None if self._down.is_set() else self._read_retry(where)
        try:
            # The client streams the (ranged) response into ``out`` in chunks.
            self._bucket.blob(key).download_to_file(out, start=0, end=max_bytes, timeout=REQUEST_TIMEOUT_S,
                                                    retry=retry)
        except self._errors.GoogleAPIError as exc:
            if _transient_http(getattr(exc, "code", None)):
                raise self._unavailable(where, exc) from exc
            raise ImageUnreadable(f"cannot read {where}: {_reason(exc)}") from exc
        except (OSError, ValueError) as exc:  # requests' and google-auth's transport errors derive from these
            raise self._unavailable(where, exc) from exc
        self._down.clear()
        if out.tell() > max_bytes:
            raise ImageTooLarge(f"{where}: more than {max_bytes / 1e6:.0f} MB, over the limit")

    def _unavailable(self, where: str, exc: BaseException) -> SourceUnavailable:
        if not self._down.is_set():
            log.warning("%s could not be read within %.0f s; the next objects of gs://%s are tried once each "
                        "until one reads", where, READ_BUDGET_S, self.name)
            self._down.set()
        return SourceUnavailable(f"cannot read {where} now: {_reason(exc)}")

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._bucket.blob(key).upload_from_string(data, content_type=content_type)
        except self._errors.GoogleAPIError as exc:
            raise SourceError(f"cannot write gs://{self.name}/{key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return bool(self._bucket.blob(key).exists())

    def mtime(self, key: str) -> float | None:
        """The object's last update, as its listing gives it (``ingest gs://`` uses that time)."""
        try:
            blob = self._bucket.get_blob(key, timeout=REQUEST_TIMEOUT_S, retry=self._read_retry(f"gs://{self.name}/{key}"))
        except (self._errors.GoogleAPIError, OSError, ValueError) as exc:
            raise SourceUnavailable(f"cannot read gs://{self.name}/{key} now: {_reason(exc)}") from exc
        return blob.updated.timestamp() if blob is not None and blob.updated else None

    def delete(self, key: str) -> None:
        try:
            self._bucket.blob(key).delete()
        except self._errors.NotFound:
            pass


class S3Bucket:
    """An S3 bucket, or any S3-compatible server (``AWS_ENDPOINT_URL`` points boto3 at it)."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        try:
            import boto3
            import botocore.exceptions
        except ImportError as exc:
            raise _missing_extra(exc) from exc
        self._errors = botocore.exceptions
        self.name, self.uri = name, f"s3://{name}"
        if client is None:
            from botocore.config import Config

            client = boto3.client("s3", config=Config(
                retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
                connect_timeout=REQUEST_TIMEOUT_S[0], read_timeout=REQUEST_TIMEOUT_S[1]))
        self._client = client

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"], int(obj["Size"]), obj["ETag"].strip('"'),
                                     obj["LastModified"].timestamp())
        except (self._errors.BotoCoreError, self._errors.ClientError) as exc:
            raise SourceError(f"cannot list {self.uri}/{prefix}: {exc}") from exc

    def read(self, key: str, max_bytes: int) -> bytes:
        """A download into memory (see :meth:`GcsBucket.read`)."""
        out = io.BytesIO()
        self.download(key, out, max_bytes)
        return out.getvalue()

    def download(self, key: str, out: Writable, max_bytes: int) -> None:
        where = f"s3://{self.name}/{key}"
        try:
            body = self._client.get_object(Bucket=self.name, Key=key)["Body"]
            try:
                write_bounded(body.iter_chunks(CHUNK), out, max_bytes, where)
            finally:
                body.close()
        except self._errors.ClientError as exc:
            code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if _transient_http(code):
                raise SourceUnavailable(f"cannot read {where} now: {_reason(exc)}") from exc
            raise ImageUnreadable(f"cannot read {where}: {_reason(exc)}") from exc
        except (self._errors.BotoCoreError, OSError) as exc:  # connection, timeout, a stream cut short
            raise SourceUnavailable(f"cannot read {where} now: {_reason(exc)}") from exc

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(Bucket=self.name, Key=key, Body=data, ContentType=content_type)
        except (self._errors.BotoCoreError, self._errors.ClientError) as exc:
            raise SourceError(f"cannot write s3://{self.name}/{key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.name, Key=key)
            return True
        except self._errors.ClientError:
            return False

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.name, Key=key)


class LocalBucket:
    """A folder used like a bucket (a lake on local disk or a mounted share); writes are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root
        if not base.is_dir():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            key = path.relative_to(base).as_posix()
            if key.startswith(prefix) and not path.name.startswith(".tmp-"):
                st = path.stat()
                yield ObjectInfo(key, st.st_size, f"{st.st_mtime_ns}:{st.st_size}", st.st_mtime)

    def read(self, key: str, max_bytes: int) -> bytes:
        from .folder import read_file

        return read_file(self.root / key, max_bytes)

    def download(self, key: str, out: Writable, max_bytes: int) -> None:
        from .folder import FolderSource

        FolderSource(self.root).download(Entry(str(self.root / key), ""), out, max_bytes)

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """An error's first line: the clients append whole response bodies."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def open_bucket(uri: str) -> tuple[Bucket, str]:
    """The bucket and key prefix named by ``gs://…``, ``s3://…`` or a local folder path."""
    if not is_bucket_uri(uri):
        return LocalBucket(Path(uri)), ""
    scheme, name, prefix = split_uri(uri)
    bucket: Bucket = GcsBucket(name) if scheme == "gs" else S3Bucket(name)
    return bucket, prefix


def open_object(uri: str) -> tuple[Bucket, str]:
    """The bucket and key of one object: ``gs://b/k``, ``s3://b/k`` or a local file path."""
    if not is_bucket_uri(uri):
        path = Path(uri)
        return LocalBucket(path.parent), path.name
    scheme, name, key = split_uri(uri)
    if not key:
        raise ConfigError(f"{uri!r} names a bucket, not an object: add the object's name")
    bucket: Bucket = GcsBucket(name) if scheme == "gs" else S3Bucket(name)
    return bucket, key


class BucketSource:
    """Every image object under ``gs://BUCKET/PREFIX`` or ``s3://BUCKET/PREFIX``."""

    read_threads = 64
    """Network reads overlap well; ``Settings.bucket_read_threads`` sets how many actually run."""

    def __init__(self, uri: str, camera: str | None = None, bucket: Bucket | None = None) -> None:
        scheme, name, prefix = split_uri(uri)
        self.uri = uri
        self.prefix = prefix
        self.camera = camera
        self.bucket: Bucket = bucket or (GcsBucket(name) if scheme == "gs" else S3Bucket(name))
        self._name = name

    def __repr__(self) -> str:
        return f"BucketSource({self.uri!r})"

    def entries(self) -> Iterator[Entry]:
        for obj in self.bucket.list(self.prefix):
            if obj.key.endswith("/") or not is_image_name(obj.key):
                continue
            camera = self.camera or camera_from_key(obj.key, self.prefix, self._name)
            yield Entry(f"{self.bucket.uri}/{obj.key}", camera, obj.size, obj.version, obj.mtime)

    def read(self, entry: Entry, max_bytes: int) -> bytes:
        if entry.size is not None and entry.size > max_bytes:
            raise ImageTooLarge(f"object is {entry.size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        key = entry.uri[len(self.bucket.uri) + 1:]
        return self.bucket.read(key, max_bytes)

    def download(self, entry: Entry, out: Writable, max_bytes: int) -> None:
        if entry.size is not None and entry.size > max_bytes:
            raise ImageTooLarge(f"object is {entry.size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        self.bucket.download(entry.uri[len(self.bucket.uri) + 1:], out, max_bytes)

    def local_path(self, entry: Entry) -> Path | None:
        return None
