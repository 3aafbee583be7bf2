"""uvicorn's HTTP/1.1 protocol with deadlines on every request head and body.

uvicorn times out an idle keep-alive connection only after a first response, and any byte
resets that timer: a client that connects and never sends, or sends its request line a byte
every few seconds, holds a socket for ever, and enough of them exhaust the process's file
descriptors (slowloris). And FastAPI reads a JSON body before the route's key check runs, so
a client without a key could trickle a body for weeks. :class:`HeadDeadlineProtocol` closes
a connection

* whose request line and headers are not complete ``head_timeout_s`` after it opened or
  after its previous response, or
* whose request body, once the head is in, stalls for ``body_timeout_s`` without a byte, or
  averages less than ``body_min_rate`` bytes a second after its first ``body_timeout_s``
  (as Apache's mod_reqtimeout does: a phone on a slow network sends far more).

Pass it to uvicorn as the ``http`` protocol::

    uvicorn.run(app, http=head_deadline_protocol(10.0))
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["DEFAULT_BODY_MIN_RATE", "DEFAULT_HEAD_TIMEOUT_S", "HeadDeadlineProtocol", "head_deadline_protocol"]

#: Seconds a client has to send a complete request head (and the longest pause inside a body).
DEFAULT_HEAD_TIMEOUT_S = 10.0
#: Bytes a second a request body must average once its first ``head_timeout_s`` are over.
DEFAULT_BODY_MIN_RATE = 500.0


def _cancelled(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel ``timer`` if there is one; returns None, for the attribute that held it."""
    if timer is not None:
        timer.cancel()
    return None


class HeadDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head is late (see the module)."""

    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S
    body_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S
    body_min_rate: float = DEFAULT_BODY_MIN_RATE

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None  # the request cycle current when the deadline was armed
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_began = 0.0  # loop time the body's head came in
        self._body_last = 0.0  # loop time of its latest bytes
        self._body_bytes = 0

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _cancel_head_deadline(self) -> None:
        self._head_timer = _cancelled(self._head_timer)

    def _head_late(self) -> None:
        self._head_timer = None
        self._hang_up()

    def _hang_up(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _body_deadline(self) -> float:
        """Loop time at which the body in progress is too slow: a pause of ``body_timeout_s``,
        or fewer than ``body_min_rate`` bytes a second after its first ``body_timeout_s``."""
        stalled = self._body_last + self.body_timeout_s
        starved = self._body_began + self.body_timeout_s + self._body_bytes / self.body_min_rate
        return min(stalled, starved)

    def _watch_body(self, received: int) -> None:
        """After bytes came in: (re)arm the body deadline while the client is sending a body."""
        if self.conn.their_state is not h11.SEND_BODY:
            self._cancel_body_deadline()
            return
        now = self.loop.time()
        if self._body_timer is None:
            self._body_began, self._body_bytes = now, 0
        else:
            _cancelled(self._body_timer)
            self._body_bytes += received
        self._body_last = now
        self._body_timer = self.loop.call_at(self._body_deadline(), self._body_late)

    def _cancel_body_deadline(self) -> None:
        self._body_timer = _cancelled(self._body_timer)

    def _body_late(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow.read_paused:  # the app is not taking the body yet: not the client's delay, start again
            self._body_began = self._body_last = self.loop.time()
            self._body_bytes = 0
            self._body_timer = self.loop.call_at(self._body_deadline(), self._body_late)
            return
        self._hang_up()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the type
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        self._cancel_body_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._watch_body(len(data))

    def handle_events(self) -> None:
        super().handle_events()  # runs from data_received, and after a response for pipelined requests
        if self._head_timer is not None and self.cycle is not self._waiting_after:
            self._cancel_head_deadline()  # a new request's head is in: its cycle began

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request on this keep-alive connection
        super().on_response_complete()


def head_deadline_protocol(
    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S, body_min_rate: float = DEFAULT_BODY_MIN_RATE
) -> type[HeadDeadlineProtocol]:
    """The protocol class with its deadlines set (uvicorn builds one instance per connection);
    a body's longest pause is ``head_timeout_s`` too."""
    settings = {"head_timeout_s": float(head_timeout_s), "body_timeout_s": float(head_timeout_s), "body_min_rate": float(body_min_rate)}
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), settings)
