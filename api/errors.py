"""Error responses that can always be rendered, and never echo what was sent.

FastAPI's 422 echoes each invalid ``input``: a camera posted with a bad field would come
back with its URL, password and all, and a body of any size would be copied into the
answer. This handler drops ``input`` (the ``loc`` and ``msg`` name the problem) and scrubs
URL credentials and secret query parameters from the message and its context.

Before it dropped the echo, it also had to cope with this: Python's JSON parser accepts ``NaN``,
``Infinity`` and numbers like ``1e400`` (infinite), and a response with a non-finite float
cannot be written as JSON: the default handler then fails and the caller gets a 500 instead of
the 422 that names the problem. This handler writes such values as strings (``"nan"``,
``"inf"``).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette import status

from gridworker.streams.redact import redact_text

__all__ = ["Responses", "json_safe", "validation_error"]

#: A route's ``responses=`` table as FastAPI takes it: status → OpenAPI response object.
Responses = dict[int | str, dict[str, Any]]


def json_safe(value: Any) -> Any:
    """A copy of ``value`` (lists, dicts, scalars) with every non-finite float as a string.

    Iterative: an echoed input can nest as deep as the parser allows (about 1000 levels).

    Example:
        >>> json_safe({"input": [1.5, float("inf")]})
        {'input': [1.5, 'inf']}
    """
    root = [value]
    stack: list[tuple[list[Any] | dict[Any, Any], Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, float) and not math.isfinite(item):
            container[key] = str(item)
        elif isinstance(item, dict):
            copy = dict(item)
            container[key] = copy
            stack.extend((copy, k) for k in copy)
        elif isinstance(item, (list, tuple)):
            seq = list(item)
            container[key] = seq
            stack.extend((seq, i) for i in range(len(seq)))
    return root[0]


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """The 422 of an invalid request, as FastAPI writes it, but always valid JSON."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": [_scrubbed(e) for e in errors]})


def _scrubbed(error: Any) -> Any:
    """One pydantic error without its ``input``; strings in ``msg`` and ``ctx`` redacted."""
    if not isinstance(error, dict):
        return redact_text(str(error))
    out = {k: v for k, v in error.items() if k not in ("input", "url")}
    if isinstance(out.get("msg"), str):
        out["msg"] = redact_text(out["msg"])
    if "ctx" in out:
        out["ctx"] = {str(k): redact_text(str(v)) for k, v in dict(out["ctx"]).items()} if isinstance(out["ctx"], dict) else redact_text(str(out["ctx"]))
    return json_safe(jsonable_encoder(out))
