"""The exceptions facelake raises, in one tree.

    FacelakeError                 base of everything facelake raises on purpose
    ├── ConfigError               a setting or option has a value outside what is allowed
    │   └── BadEvent              an event the Cloud Function cannot act on (HTTP 400)
    ├── ModelLoadError            shipped weights missing, unreadable or of the wrong shape
    ├── ImageUnreadable           the bytes are not an image we can decode safely
    │   └── ImageTooLarge         file or pixel count over the configured limit
    ├── NoFaceFound               an operation that needs a face got none
    │   └── UnclearFace           ... or only one too doubtful to enroll (a cat, a mask, heavy blur)
    ├── SourceError               a source or sink cannot be listed or written (bucket, credentials)
    │   └── SourceUnavailable     an object could not be read now (network, 5xx, 403): try again later
    └── StoreError                the database refused an operation
        ├── ConnectionLost        the server dropped the connection mid-transaction (retried)
        ├── NotFound              no such person, cluster, sighting or token
        └── ReadOnlyViolation     a write was attempted through the read-only SQL command

The CLI maps these to exit codes in one place (`cli.EXIT_CODES`); anything else is a bug
and surfaces as a traceback.
"""

from __future__ import annotations


class FacelakeError(Exception):
    """Base class of every error facelake raises deliberately."""


class ConfigError(FacelakeError, ValueError):
    """A setting has a value outside what is allowed."""


class BadEvent(ConfigError):
    """A Cloud Function event that lacks what it must name (a bucket, an object), or is of
    another type: the sender's mistake, answered with HTTP 400, never retried."""


class ModelLoadError(FacelakeError):
    """Model weights could not be found or loaded."""


class ImageUnreadable(FacelakeError):
    """The input could not be decoded as an image (corrupt, truncated, not an image, unreadable)."""


class ImageTooLarge(ImageUnreadable):
    """The input is over the file-size or pixel limit (decompression-bomb guard)."""


class NoFaceFound(FacelakeError):
    """An operation that needs a face found none."""


class UnclearFace(NoFaceFound):
    """The face found is too doubtful to enroll: a low detector score, or below the recognisability gate."""


class SourceError(FacelakeError):
    """A source cannot be listed, or a sink written (missing bucket, no credentials, network)."""


class SourceUnavailable(SourceError):
    """An object could not be read *now* (network error, timeout, HTTP 5xx, 429, or 403 while
    permissions are being fixed), whatever its bytes are.

    Not a verdict on the image: ingest stores an error row that the next run retries and
    replaces, and the Cloud Function fails the invocation so that ``--retry`` redelivers it.
    """


class StoreError(FacelakeError):
    """The database refused an operation."""


class ConnectionLost(StoreError):
    """The database server dropped the connection inside a transaction: nothing of it was
    committed, and the writer may run it again on a new connection."""


class NotFound(StoreError):
    """The person, cluster, sighting or token named does not exist."""


class ReadOnlyViolation(StoreError):
    """A statement tried to write through the read-only SQL command."""
