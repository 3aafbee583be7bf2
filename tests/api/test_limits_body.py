"""The request-body cap (api/limits.py) against a real uvicorn: a huge body is refused with 413
while it streams in, before authentication or parsing reads it, and memory stays flat."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import MIB, Settings
from tests.factories import BackgroundLoop, ParkedCarDetector, free_port, live_server

HUGE = 300 * 1000 * 1000
CHUNK = b"x" * MIB


@dataclass(frozen=True)
class Live:
    base: str
    admin: dict[str, str]
    service: Service


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    db = tmp_path_factory.mktemp("limits") / "limits.db"
    settings = Settings(database={"url": f"sqlite:///{db}"}, limits={"body_bytes_by_path": {"/patrol": 4 * MIB}})
    service = Service(settings, ParkedCarDetector())
    _, key = create_key(service.keys, name="ops", role="admin")  # keys exist: an anonymous caller gets 401
    with live_server(create_app(lambda: service)) as base:
        yield Live(base, {"X-API-Key": key}, service)


def _camera(cam_id: str) -> dict[str, object]:
    # patrol only: never streamed, so the test opens no connection to this address
    return {"id": cam_id, "url": f"rtsp://127.0.0.1:{free_port()}/x", "watch": "patrol"}


class PeakRss(BackgroundLoop):
    """Samples this process's RSS (uvicorn runs in a thread of it) every 10 ms while active."""

    join_s = None

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        super().__init__("peak-rss")

    def loop(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def close(self) -> None:
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def _stream(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = CHUNK[: min(len(CHUNK), total - sent)]
        sent += len(chunk)
        yield chunk


def test_streamed_300mb_without_key_is_413_and_memory_stays_flat(live):
    # a generator body has no length: httpx sends it chunked, so only the running count can stop it
    with PeakRss() as rss, httpx.Client(timeout=60) as c:
        t0 = time.monotonic()
        r = c.post(f"{live.base}/cameras", content=_stream(HUGE), headers={"Content-Type": "application/json"})
        took = time.monotonic() - t0
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert "limit of 1048576 bytes" in r.json()["detail"]
    assert rss.grown_mb < 50, f"RSS grew {rss.grown_mb:.0f} MB while a 300 MB body was refused"
    assert took < 60


def _read_response(s: socket.socket) -> str:
    """Status line, headers and body of one response with a Content-Length (or up to EOF)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data.decode("latin-1")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None)
    while length is not None and len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_lying_content_length_is_refused_before_a_byte_is_read(live):
    # claims 300 MB, sends 10 bytes and waits: the answer must come from the header alone
    host, port = urlsplit(live.base).hostname, urlsplit(live.base).port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            f"POST /cameras HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {HUGE}\r\n\r\n{{\"id\": \"x\"".encode()
        )
        t0 = time.monotonic()
        head = _read_response(s)
        took = time.monotonic() - t0
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert f"request body of {HUGE} bytes is over the limit of {MIB} bytes" in head
    assert took < 5


def test_malformed_content_length_is_400(live):
    host, port = urlsplit(live.base).hostname, urlsplit(live.base).port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"POST /cameras HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: -5\r\n\r\n".encode())
        head = _read_response(s)
    assert head.startswith("HTTP/1.1 400"), head[:200]


def test_per_route_cap_and_normal_posts_still_work(live):
    with httpx.Client(timeout=30) as c:
        # 2 MiB streamed: over the default cap (cameras) but under the 4 MiB of the routes under /patrol
        json_ = {**live.admin, "Content-Type": "application/json"}
        assert c.post(f"{live.base}/cameras", content=_stream(2 * MIB), headers=json_).status_code == 413
        r = c.put(f"{live.base}/patrol/plans/p", content=_stream(2 * MIB), headers=json_)
        assert r.status_code == 422, r.text[:200]  # read whole and parsed: not JSON
        assert c.put(f"{live.base}/patrol/plans/p", content=_stream(5 * MIB), headers=json_).status_code == 413
        # ordinary requests: with a length, and chunked
        assert c.post(f"{live.base}/cameras", json=_camera("ok-1"), headers=live.admin).status_code == 201
        chunked = iter([b'{"id": "ok-2", "url": "rtsp://127.0.0.1:', f'{free_port()}/x", "watch": "patrol"}}'.encode()])
        r = c.post(f"{live.base}/cameras", content=chunked, headers=json_)
        assert r.status_code == 201, r.text
        # no key: the cap lets a small body through, and authentication answers
        assert c.post(f"{live.base}/cameras", json=_camera("nokey")).status_code == 401
        assert {v.config.id for v in live.service.cameras()} == {"ok-1", "ok-2"}
        # the connection that got a 413 did not poison the server: a fresh GET works
        assert c.get(f"{live.base}/health").status_code == 200
