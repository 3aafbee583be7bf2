"""Request-body cap, enforced while the body streams in, before anything reads it.

FastAPI reads and parses a request's whole body before it runs the route's dependencies
(authentication included), so without a cap a caller with no key could make the service
buffer any amount (a 300 MB ``POST /cameras``: +900 MB RSS, then 401). :class:`BodySizeLimit`
is a pure ASGI middleware placed outermost:

* a ``Content-Length`` above the cap is refused with 413 at once; the app never runs and
  no byte of the body is read (a malformed ``Content-Length``: 400);
* a body without a length (chunked) is counted as the app receives it; the moment the
  running total passes the cap the middleware answers 413 itself and the app's receive
  raises :class:`BodyTooLarge` (the app's own response, if any, is discarded). Nothing is
  buffered here: memory stays at one chunk.

The cap is ``limits.max_body_bytes`` (1 MiB by default), or the cap of the longest matching
prefix in ``limits.body_bytes_by_path`` (the routes that take photos). A route under a larger
cap must not declare a pydantic body: it reads the body itself, after its key dependency has
passed (``read_uploads`` in api/bodies.py; ``POST /reports`` in api/routers/reports.py), so a
caller with no key is refused before a byte of it is read.

Example:
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI()
    >>> app.add_middleware(BodySizeLimit, max_bytes=1 << 20, per_route={"/photos": 20 << 20})
    >>> @app.post("/notes")
    ... @app.post("/photos")
    ... def take() -> str:
    ...     return "ok"
    >>> two_mib = b"x" * (2 << 20)
    >>> with TestClient(app) as client:
    ...     client.post("/notes", content=two_mib).status_code, client.post("/photos", content=two_mib).status_code
    (413, 200)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridworker.settings import MIB, LimitsConfig

from .deps import limits_of

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodySizeLimit", "BodyTooLarge", "install_body_limit", "limits_of", "service_limits"]

DEFAULT_MAX_BODY_BYTES = MIB


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a streamed body passes its cap (the 413 is already sent)."""


def service_limits(scope: Scope) -> LimitsConfig:
    """:func:`limits_of` the app serving ``scope`` (Starlette puts it in ``scope["app"]``)."""
    return limits_of(scope.get("app"))


def _payload(status: int, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodySizeLimit:
    """ASGI middleware: 413 for a request body over its cap, decided before it is read.

    Args:
        app: the ASGI app.
        max_bytes: the cap of every route not in ``per_route``.
        per_route: path prefix → cap for the routes under it (the longest prefix wins).
        limits: where the caps come from at request time instead (e.g. :func:`service_limits`,
            the running service's ``limits:`` section); ``max_bytes``/``per_route`` are then unused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        per_route: Mapping[str, int] | None = None,
        limits: Callable[[Scope], LimitsConfig] | None = None,
    ) -> None:
        self.app = app
        self._static = LimitsConfig(max_body_bytes=max_bytes, body_bytes_by_path=dict(per_route or {}))
        self._limits = limits

    def limit_for(self, scope: Scope) -> int:
        limits = self._limits(scope) if self._limits is not None else self._static
        return limits.body_limit(str(scope.get("path", "")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await _respond(send, 400, "Content-Length is not a number of bytes")
                    return
        if declared is not None and declared > limit:
            await _respond(send, 413, f"request body of {declared} bytes is over the limit of {limit} bytes")
            return

        received = 0
        answered = False  # we sent the 413: what the app sends after is dropped
        started = False  # the app began its response: too late for a 413

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                raise BodyTooLarge(f"request body over {limit} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        answered = True
                        await _respond(send, 413, f"request body is over the limit of {limit} bytes")
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not answered:  # the response had begun: nothing more can be said; end it
                raise


async def _respond(send: Send, status: int, detail: str) -> None:
    start, body = _payload(status, detail)
    await send(start)
    await send(body)


def install_body_limit(app: FastAPI) -> None:
    """Add :class:`BodySizeLimit` with the running service's caps (call last: outermost)."""
    app.add_middleware(BodySizeLimit, limits=service_limits)
