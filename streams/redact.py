"""Keep camera passwords out of logs, errors and health snapshots.

Camera URLs usually embed credentials (``rtsp://admin:secret@10.0.0.7/stream1``) and
FFmpeg/PyAV error messages repeat the URL verbatim. Everything in ``streams/`` that turns
a URL or a library error into text goes through these helpers.

Policy: the whole user-info part is replaced by ``***`` (``rtsp://***@host/...``); neither
the user nor the password survives.

Example:
    >>> redact_url("rtsp://admin:secret@10.0.0.7:554/stream1")
    'rtsp://***@10.0.0.7:554/stream1'
    >>> redact_text("open failed: 'rtsp://admin:secret@10.0.0.7/s1' returned 401")
    "open failed: 'rtsp://***@10.0.0.7/s1' returned 401"
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "RedactingFilter", "get_logger", "redact_text", "redact_url", "url_secrets"]

REDACTED = "***"

# scheme://userinfo@  - userinfo runs to the last '@' before the first '/', whitespace or quote
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/'\"<>]*)@")


def redact_url(url: str) -> str:
    """Return ``url`` with any ``user:password@`` replaced by ``***@``.

    Works on URLs whose password contains reserved characters (``@``, ``:``); plain
    paths and URLs without credentials are returned unchanged.
    """
    if "@" not in url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return redact_text(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{REDACTED}@{host}", parts.path, parts.query, parts.fragment))


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of ``url`` in the spellings it may appear in (raw, decoded, encoded).

    Used to scrub text that mentions the password *without* the URL around it.
    Empty passwords and 1-2 character ones (which would redact random text) are skipped.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    _, sep, password = userinfo.partition(":")
    if not sep or len(password) < 3:
        return ()
    spellings = {password, unquote(password), quote(unquote(password), safe="")}
    return tuple(sorted(spellings, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact credentials of every URL inside ``text`` and every literal ``secrets`` string."""
    out = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, REDACTED)
    return out


class RedactingFilter(logging.Filter):
    """Logging filter that redacts URL credentials (and given secrets) from records.

    Attach it to a handler to scrub everything that handler emits (including FFmpeg's
    ``libav.*`` records), or to a logger to scrub what that logger creates.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.addFilter(RedactingFilter())
        >>> logging.getLogger().addHandler(handler)
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            message = str(record.msg)
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with a :class:`RedactingFilter` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
