"""Server-sent events over a real uvicorn server: live events, ``Last-Event-ID`` resume,
keep-alive comments, roles (no key: 401; unit handlers: their unit's cases only)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.incidents import IncidentStore
from gridworker.incidents.forwarding import ForwardingConfig, build_forwarding
from gridworker.incidents.workflow import OPERATOR, Actor, Workflow

from tests.forwarding.helpers import T0, open_incident

OP = Actor("op-li", OPERATOR)


@dataclass
class _Service:
    store: Any
    workorders: Any
    forwarding: Any = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def server(sqlite_orders):
    orders = sqlite_orders
    disp = build_forwarding(ForwardingConfig(sse_keepalive_s=1.0), orders.db, orders=orders)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    app = create_app(lambda: _Service(IncidentStore(orders.db), orders, disp))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    end = time.monotonic() + 10
    while not srv.started and time.monotonic() < end:
        time.sleep(0.02)
    assert srv.started
    keys = {role: create_key(orders, name=role, role=role)[1] for role in ("viewer", "admin")}
    keys["grid"] = create_key(orders, name="grid 3", role="unit_handler", unit="community-grid")[1]
    yield orders, f"http://127.0.0.1:{port}", keys
    srv.should_exit = True
    t.join(10)


class Stream:
    """Reads SSE blocks from a streaming response in a thread."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self.cm = self.client.stream("GET", url, headers=headers)
        self.response = self.cm.__enter__()
        self.blocks: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        if self.response.status_code == 200:
            self.thread.start()

    def _read(self) -> None:
        block: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if block:
                        self.blocks.append(block)
                    block = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    field, _, value = line.partition(":")
                    block[field] = value[1:] if value.startswith(" ") else value
        except (httpx.HTTPError, RuntimeError):
            pass

    def events(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if "data" in b]

    def wait(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while len(self.events()) < n and time.monotonic() < end:
            time.sleep(0.02)
        return self.events()

    def close(self) -> None:
        self.cm.__exit__(None, None, None)
        self.client.close()


def test_live_events_resume_and_keepalive(server):
    orders, base, keys = server
    a = open_incident(orders, camera="cam-a")
    hv = {"X-API-Key": keys["viewer"]}
    # no Last-Event-ID and no ?after: from now on
    live = Stream(f"{base}/events", hv)
    full = Stream(f"{base}/events?after=0", hv)
    try:
        assert live.response.status_code == 200 and live.response.headers["content-type"].startswith("text/event-stream")
        assert [json.loads(e["data"])["idempotency_key"] for e in full.wait(1)] == [f"{a.incident_id}:1"]
        b = open_incident(orders, camera="cam-b")
        Workflow(orders).dispatch(a.incident_id, OP, at=T0 + 5)
        got = full.wait(3)
        assert [json.loads(e["data"])["idempotency_key"] for e in got] == [f"{a.incident_id}:1", f"{b.incident_id}:1", f"{a.incident_id}:2"]
        assert [int(e["id"]) for e in got] == [json.loads(e["data"])["event_id"] for e in got]
        assert [json.loads(e["data"])["idempotency_key"] for e in live.wait(2)] == [f"{b.incident_id}:1", f"{a.incident_id}:2"]
        assert "event" not in got[0]  # every message arrives on onmessage
        assert full.blocks[0].get("retry") == "3000"
        time.sleep(1.6)
        assert "keep-alive" in full.comments
        # the console drops and comes back with the last id it saw: only what it missed
        seen = got[1]["id"]
    finally:
        live.close()
        full.close()
    Workflow(orders).reject(b.incident_id, OP, note="a shadow", at=T0 + 9)
    again = Stream(f"{base}/events?after=0", {**hv, "Last-Event-ID": seen})  # the header wins over ?after
    try:
        got = again.wait(2)
        keys_ = [json.loads(e["data"])["idempotency_key"] for e in got]
        assert keys_ == [f"{a.incident_id}:2", f"{b.incident_id}:2"]
        assert json.loads(got[1]["data"])["change"]["reason"] == "a shadow"
    finally:
        again.close()


def test_auth_and_unit_handlers(server):
    orders, base, keys = server
    with httpx.Client(timeout=5) as c:
        assert c.get(f"{base}/events?max_s=1").status_code == 401
        assert c.get(f"{base}/events?max_s=1", headers={"X-API-Key": keys["viewer"], "Last-Event-ID": "abc"}).status_code == 422
    mine = open_incident(orders, type="street_vending", camera="cam-m")  # routed to the community grid
    other = open_incident(orders, type="wrong_way", camera="cam-w")
    assert mine.unit == "community-grid" and other.unit != "community-grid", (mine.unit, other.unit)
    s = Stream(f"{base}/events?after=0&max_s=3", {"X-API-Key": keys["grid"]})
    try:
        time.sleep(1.0)
        keys_ = [json.loads(e["data"])["incident_id"] for e in s.events()]
        assert keys_ == [mine.incident_id]
    finally:
        s.close()
    # a stream ends by itself after max_s
    with httpx.Client(timeout=10) as c:
        t = time.monotonic()
        r = c.get(f"{base}/events?after=0&max_s=1", headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 200 and time.monotonic() - t < 5
        assert r.text.count("data: ") == 2
