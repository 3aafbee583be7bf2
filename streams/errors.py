"""Exceptions raised by the stream readers.

Hierarchy (catch at the level you care about)::

    StreamError            any failure of a camera stream
    ├── StreamOpenError    the source could not be opened (refused, 401/404, no video, bad file)
    ├── StreamTimeout      nothing arrived within the open/read timeout (dead or hung camera)
    └── StreamEnded        the source ended (live: the server closed the stream = a disconnect)

Messages never contain credentials: URLs are passed through
:func:`gridworker.streams.redact.redact_url` before they are put into a message.

Example:
    >>> try:
    ...     raise StreamTimeout("no data for 5.0 s from rtsp://***@10.0.0.7/live")
    ... except StreamError as exc:
    ...     print(type(exc).__name__)
    StreamTimeout
"""

from __future__ import annotations

__all__ = ["StreamEnded", "StreamError", "StreamOpenError", "StreamTimeout"]


class StreamError(Exception):
    """Base class of every stream failure."""


class StreamOpenError(StreamError):
    """The source could not be opened (connection refused, auth failed, not found, no video)."""


class StreamTimeout(StreamError):
    """No answer or no data within the configured open/read timeout."""


class StreamEnded(StreamError):
    """The source reached its end. For a live source this is a disconnect."""
