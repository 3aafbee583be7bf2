"""uvicorn's HTTP/1.1 protocol with a deadline on every request head.

uvicorn times out an idle keep-alive connection only after a first response, and any byte
resets that timer: a client that connects and never sends, or sends its request line a byte
every few seconds, holds a socket for ever, and enough of them exhaust the process's file
descriptors (slowloris). :class:`HeadDeadlineProtocol` closes a connection whose request line
and headers are not complete ``head_timeout_s`` after it opened or after its previous
response; a body, once the head is in, is not under this deadline (its size is capped by the
app). Pass it to uvicorn as the ``http`` protocol::

    uvicorn.run(app, http=head_deadline_protocol(10.0))
"""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["DEFAULT_HEAD_TIMEOUT_S", "HeadDeadlineProtocol", "head_deadline_protocol"]

#: Seconds a client has to send a complete request head.
DEFAULT_HEAD_TIMEOUT_S = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head is late (see the module)."""

    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S

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

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _cancel_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the type
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()  # runs from data_received, and after a response for pipelined requests
        if self._head_timer is not None and self.cycle is not self._waiting_after:
            self._cancel_head_deadline()  # a new request's head is in: its cycle began

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request on this keep-alive connection
        super().on_response_complete()

def head_deadline_protocol(head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S) -> type[HeadDeadlineProtocol]:
    """The protocol class with its deadline set (uvicorn builds one instance per connection)."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout_s": float(head_timeout_s)})
