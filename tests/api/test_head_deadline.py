"""A request head and body must come in time (api/http_protocol.py), on a real uvicorn over real
sockets: a connection that never sends, dribbles its headers or trickles its body is closed; a
body sent at a modest pace for longer than the head deadline, and a second request on a
keep-alive connection, are served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gridworker.api.http_protocol import head_deadline_protocol
from gridworker.settings import Settings
from tests.factories import live_server

DEADLINE_S = 0.6
MIN_RATE = 100.0  # bytes a second a body must average after its first DEADLINE_S


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)}")


@pytest.fixture
def port() -> Iterator[int]:
    app = Starlette(routes=[Route("/echo", _echo, methods=["GET", "POST"])])
    with live_server(app, lifespan="off", timeout_keep_alive=30, http=head_deadline_protocol(DEADLINE_S, body_min_rate=MIN_RATE)) as url:
        yield int(url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (None: still open after ``seconds``)."""
    sock.settimeout(seconds)
    began = time.monotonic()
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    assert data == b""
    return time.monotonic() - began


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and its Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_never_sends_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        took = _closed_within(sock, 5)
    assert took is not None and took < DEADLINE_S + 1.0


def test_a_head_dribbled_a_byte_at_a_time_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        began = time.monotonic()
        head = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            if time.monotonic() - began > 5:
                break
        assert closed and time.monotonic() - began < DEADLINE_S + 1.0


def test_a_body_at_a_modest_pace_and_a_second_request_are_served(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n")
        for _ in range(5):  # 100 bytes every DEADLINE_S / 2: 2.5 times the head deadline, above MIN_RATE
            time.sleep(DEADLINE_S / 2)
            sock.sendall(b"x" * 100)
        sock.settimeout(5)
        first = _response(sock)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"got 500")
        time.sleep(DEADLINE_S / 3)
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        second = _response(sock)
        assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"got 0")
        # and once idle again, the next head is under the deadline too (keep-alive here is 30 s)
        took = _closed_within(sock, 5)
        assert took is not None and took < DEADLINE_S + 1.0


@pytest.mark.parametrize("pause_s", [DEADLINE_S / 4, DEADLINE_S * 2], ids=["trickled", "stalled"])
def test_a_trickled_or_stalled_body_is_closed(port, pause_s):
    """A byte every pause: under MIN_RATE (trickled), or a pause longer than the deadline (stalled)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
        began = time.monotonic()
        closed = False
        while time.monotonic() - began < 5 and not closed:
            time.sleep(pause_s)
            try:
                sock.sendall(b"x")
                sock.settimeout(0.01)
                closed = sock.recv(4096) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
        assert closed and time.monotonic() - began < DEADLINE_S * 2 + 1.0


def test_the_deadline_is_a_server_setting_with_a_bounded_default():
    assert Settings().server.request_head_timeout_s == 10.0
    with pytest.raises(ValueError):
        Settings(server={"request_head_timeout_s": 0})
