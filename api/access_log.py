"""The web server's own log lines, scrubbed like every other.

uvicorn logs through its own loggers (``uvicorn``, ``uvicorn.error``, ``uvicorn.access``), whose
handlers do not propagate to the root's, so the redaction the CLI installs on the root's
handlers never saw them. :func:`log_config` is uvicorn's logging config with a filter on each
of its handlers: error lines lose URL credentials and secret parameters
(:class:`~gridworker.streams.redact.RedactingFilter`); access lines lose secret query
parameters and the receipt code of a report's status page (``/report/status/<code>``: whoever
has it reads the report's progress).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from gridworker.streams.redact import REDACTED, redact_text

__all__ = ["AccessLogFilter", "log_config", "redact_path"]

_RECEIPT = re.compile(r"(/report/(?:receipts|status)/)[^/?#\s]+")


def redact_path(path: str) -> str:
    """A request's path and query as the access log may show it.

    Example:
        >>> redact_path("/report/status/Zx9_k2Lq?lang=en")
        '/report/status/***?lang=en'
        >>> redact_path("/snapshots/7.jpg?sign=0f1e2d&w=320")
        '/snapshots/7.jpg?sign=***&w=320'
    """
    return _RECEIPT.sub(lambda m: f"{m.group(1)}{REDACTED}", redact_text(path))


class AccessLogFilter(logging.Filter):
    """Scrubs the path of uvicorn's access records in place (their arguments are
    ``(client, method, path, http_version, status)``, which uvicorn's formatter unpacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            record.args = (args[0], args[1], redact_path(str(args[2])), args[3], args[4])
        else:  # not the shape uvicorn logs: scrub the whole message
            message = record.getMessage()
            record.msg, record.args = redact_text(message), None
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging config, every handler filtered (pass as ``log_config``)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {}).update(
        {
            "gw_redact": {"()": "gridworker.streams.redact.RedactingFilter"},
            "gw_access": {"()": "gridworker.api.access_log.AccessLogFilter"},
        }
    )
    for name, handler in config["handlers"].items():
        handler.setdefault("filters", []).append("gw_access" if name == "access" else "gw_redact")
    return config
