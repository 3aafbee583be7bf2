"""A worker's /health and /metrics server (cluster/health_http.py, uvicorn) stays bounded
whatever its clients do: idle connections cost no thread and do not keep /health from
answering, an oversized request head is refused, past the connection cap requests get 503,
a taken port fails the start, and stop frees the port. No NATS needed: the server alone."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from gridworker.cluster.health_http import HEAD_MAX_BYTES, HealthHttp


@pytest.fixture
def served():
    calls = {"health": 0}

    def health() -> dict[str, object]:
        calls["health"] += 1
        return {"worker": "w1", "cameras": {}}

    http = HealthHttp("127.0.0.1", 0, health=health, metrics=lambda: b"gridworker_frames_analysed_total 3.0\n", max_connections=200)
    http.start()
    yield http, calls
    http.stop()


def test_health_metrics_and_404(served):
    http, calls = served
    base = f"http://127.0.0.1:{http.port}"
    r = httpx.get(base + "/health", timeout=5)
    assert r.status_code == 200 and r.json() == {"worker": "w1", "cameras": {}} and calls["health"] == 1
    m = httpx.get(base + "/metrics", timeout=5)
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert m.content == b"gridworker_frames_analysed_total 3.0\n"
    assert httpx.get(base + "/nope", timeout=5).status_code == 404
    assert httpx.post(base + "/health", timeout=5).status_code == 405


def test_idle_connections_take_no_thread_and_health_still_answers(served):
    http, _ = served
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", http.port)) for _ in range(100)]
    try:
        time.sleep(0.5)
        assert threading.active_count() <= before + 1  # the old ThreadingHTTPServer: one thread each (+100)
        started = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{http.port}/health", timeout=5)
        assert r.status_code == 200 and json.loads(r.content)["worker"] == "w1"
        assert time.monotonic() - started < 1.0
        assert threading.active_count() <= before + 1
    finally:
        for s in idle:
            s.close()


def test_an_oversized_request_head_is_refused(served):
    # (h11 judges the head it holds incomplete: one that arrives in a single read of up to 64 KiB is parsed)
    http, _ = served
    with socket.create_connection(("127.0.0.1", http.port), timeout=5) as big:
        try:
            big.sendall(b"GET /health HTTP/1.1\r\nHost: w\r\nX-Pad: " + b"a" * (HEAD_MAX_BYTES * 16) + b"\r\n\r\n")
        except OSError:
            return  # closed on us mid-send: refused
        answer = big.recv(1024)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]


def test_past_the_connection_cap_requests_get_503_at_once():
    http = HealthHttp("127.0.0.1", 0, health=lambda: {"ok": True}, metrics=lambda: b"", max_connections=3)
    http.start()
    idle = [socket.create_connection(("127.0.0.1", http.port)) for _ in range(3)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{http.port}/health", timeout=5)
        assert r.status_code == 503 and time.monotonic() - started < 1.0
    finally:
        for s in idle:
            s.close()
        http.stop()


def test_a_taken_port_fails_the_start_and_stop_frees_the_port():
    http = HealthHttp("127.0.0.1", 0, health=lambda: {}, metrics=lambda: b"")
    http.start()
    port = http.port
    other = HealthHttp("127.0.0.1", port, health=lambda: {}, metrics=lambda: b"")
    with pytest.raises(OSError):
        other.start()
    threads = threading.active_count()
    started = time.monotonic()
    http.stop()
    assert time.monotonic() - started < 5.0 and threading.active_count() == threads - 1
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
