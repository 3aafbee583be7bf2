"""A worker's ``/health`` and ``/metrics`` over HTTP, served by uvicorn as the API is.

Monitoring scrapes a worker from other machines, so its port is open to the network and must
stay bounded whatever a client does. uvicorn runs on one asyncio loop in a thread of its own:
an idle or slow connection costs a socket, never a thread, and is closed when its request head
is not complete ``timeout_s`` after it opened (:mod:`gridworker.api.http_protocol`); a request
head still incomplete past ``HEAD_MAX_BYTES`` is refused (uvicorn reads up to 64 KiB at a
time); past ``max_connections`` open connections new requests get 503 at once; a keep-alive
connection is closed after ``timeout_s`` without a request. The listening socket
is bound in :meth:`HealthHttp.start`, so a port in use fails the start, not a thread later.

Example::

    http = HealthHttp("0.0.0.0", 9101, health=worker.health, metrics=worker.metrics.render)
    http.start()        # OSError at once if the port is taken
    http.port           # 9101 (the port bound, when 0 was asked for)
    http.stop()
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gridworker.api.http_protocol import head_deadline_protocol

__all__ = ["HEAD_MAX_BYTES", "HealthHttp"]

#: Most bytes of a request line and its headers (h11 refuses a longer head).
HEAD_MAX_BYTES = 16 * 1024
#: Prometheus' text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class HealthHttp:
    """Serves ``GET /health`` (``health()`` as JSON) and ``GET /metrics`` (``metrics()``, the
    Prometheus text) on ``host:port``; any other path is 404.

    Args:
        host, port: where to listen (port 0: any free port; :attr:`port` tells which).
        health: the worker's health, a JSON-able mapping; called per request.
        metrics: the Prometheus exposition; called per request.
        max_connections: open connections at most; a request past them is answered 503.
        timeout_s: an idle keep-alive connection, or one whose request head is not complete, is closed after this.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], Mapping[str, object]],
        metrics: Callable[[], bytes],
        max_connections: int = 64,
        timeout_s: float = 5.0,
    ) -> None:
        self._address = (host, port)
        self._health = health
        self._metrics = metrics
        self._config = uvicorn.Config(
            Starlette(routes=[Route("/health", self._get_health), Route("/metrics", self._get_metrics)]),
            log_level="warning",
            access_log=False,
            lifespan="off",
            limit_concurrency=max_connections,
            timeout_keep_alive=max(1, round(timeout_s)),
            timeout_graceful_shutdown=max(1, round(timeout_s)),
            h11_max_incomplete_event_size=HEAD_MAX_BYTES,
            http=head_deadline_protocol(timeout_s),
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = port

    @property
    def port(self) -> int:
        """The port listened on (the one bound, once started)."""
        return self._port

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve. Raises ``OSError`` when the address cannot be bound."""
        if self._thread is not None:
            return
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._address)
            sock.listen(self._config.backlog)
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        server = uvicorn.Server(self._config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="worker-health", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close the socket; waits up to ``timeout`` for the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server, self._thread = None, None

    async def _get_health(self, request: Request) -> Response:
        return JSONResponse(dict(self._health()))

    async def _get_metrics(self, request: Request) -> Response:
        return Response(self._metrics(), media_type=METRICS_CONTENT_TYPE)
