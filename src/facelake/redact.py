"""Secrets out of everything facelake prints or stores: one masking rule for every URL.

Camera stream URLs carry passwords (``rtsp://admin:pw@…``) and so do PostgreSQL URLs
(``postgresql://postgres:pw@…``); both pass through :func:`mask_url` before any log line,
message, table title or audit row names them. It lives here, below every layer, so the
store, the sources and the CLI share it.
"""

from __future__ import annotations

import re

_SECRET_KEYS = re.compile(r"^(password|passwd|pass|pwd|token|secret|key|auth|apikey|api_key|sig|signature)$", re.IGNORECASE)


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``(scheme://, userinfo or None, rest)``; the userinfo ends at the authority's last ``@``
    so a password holding ``@`` or ``/`` is still found whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at < 0:
        return scheme + sep, None, rest
    return scheme + sep, rest[:at], rest[at + 1:]


def mask_url(url: str) -> str:
    """The URL with its password (and secret-looking query values) replaced by ``***``.

    ``rtsp://admin:hunter2@10.0.0.5/stream`` → ``rtsp://admin:***@10.0.0.5/stream``. Used for
    every log line and error message about a stream, so a camera password never reaches a log
    file or the database. Errs on the side of masking when the URL is ambiguous."""
    prefix, userinfo, rest = split_userinfo(url)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{rest}" if colon else f"{userinfo}@{rest}"
    path, qmark, query = rest.partition("?")
    if qmark:
        fragment = ""
        if "#" in query:
            query, fragment = query.split("#", 1)
            fragment = "#" + fragment
        parts = []
        for item in query.split("&"):
            key, eq, _ = item.partition("=")
            parts.append(f"{key}=***" if eq and _SECRET_KEYS.match(key) else item)
        rest = f"{path}?{'&'.join(parts)}{fragment}"
    return prefix + rest
