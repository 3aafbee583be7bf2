"""Server-sent events over a real uvicorn server: live events, ``Last-Event-ID`` resume,
keep-alive comments, roles (no key: 401; unit handlers: their unit's cases only)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.deps import CaseParts
from gridworker.api.feeds import Feeds
from gridworker.api.auth import create_key
from gridworker.incidents import IncidentStore
from gridworker.delivery import ForwardingConfig, build_forwarding
from gridworker.incidents.db import Database
from gridworker.delivery.outbox import Outbox
from gridworker.cases.workflow import OPERATOR, Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.keystore import KeyStore

from tests.factories import live_server, wait_until
from tests.forwarding.helpers import T0, open_incident

OP = Actor("op-li", OPERATOR)


@contextlib.contextmanager
def _serve(orders: WorkOrders, fallback_poll_s: float = 2.0) -> Iterator[tuple[str, dict[str, str]]]:
    """The app around real parts (the work orders, forwarding wired with no destination) on a
    real uvicorn; yields its URL and keys for viewer, admin and a unit handler."""
    disp = build_forwarding(ForwardingConfig(sse_keepalive_s=1.0), orders.db, orders=orders)
    app = CaseParts.of(IncidentStore(orders.db), orders, disp).serve(create_app(feeds=Feeds(fallback_poll_s=fallback_poll_s)))
    keys = {role: create_key(KeyStore(orders.db), name=role, role=role)[1] for role in ("viewer", "admin")}
    keys["grid"] = create_key(KeyStore(orders.db), name="grid 3", role="unit_handler", unit="community-grid")[1]
    with live_server(app) as base:
        yield base, keys


@pytest.fixture
def server(sqlite_orders):
    with _serve(sqlite_orders) as (base, keys):
        yield sqlite_orders, base, keys


class Stream:
    """Reads SSE blocks from a streaming response in a thread."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self.cm = self.client.stream("GET", url, headers=headers)
        self.response = self.cm.__enter__()
        self.blocks: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # time.monotonic() at each message with data
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
                        if "data" in block:
                            self.arrived.append(time.monotonic())
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
        assert wait_until(lambda: "keep-alive" in full.comments, timeout=5, interval=0.05)  # ~1 s after the last message
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
        s.thread.join(10.0)  # the stream ends by itself after max_s: everything it would send is in
        assert not s.thread.is_alive()
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


def _arrival(stream: Stream, n: int, since: float) -> float:
    """Seconds from ``since`` until ``stream`` had ``n`` messages."""
    assert len(stream.wait(n, timeout=10)) >= n, stream.blocks
    return stream.arrived[n - 1] - since


def test_a_commit_wakes_both_feeds_long_before_the_fallback_poll(sqlite_orders):
    """The feeds read when the writer in this process commits, not on a timer: with the fallback
    poll at 30 s, a new case and a dispatch reach /events and /console/events within a second."""
    orders = sqlite_orders
    with _serve(orders, fallback_poll_s=30.0) as (base, keys):
        events = Stream(f"{base}/events", {"X-API-Key": keys["viewer"]})
        console = Stream(f"{base}/console/events", {"X-API-Key": keys["admin"]})
        try:
            assert (events.response.status_code, console.response.status_code) == (200, 200)
            assert events.wait(0) == [] and console.wait(0) == []
            time.sleep(0.5)  # both pollers have read once and now wait for a commit (or 30 s)
            t0 = time.monotonic()
            order = open_incident(orders, camera="cam-wake")
            assert _arrival(events, 1, t0) < 1.0 and _arrival(console, 1, t0) < 1.0
            time.sleep(0.5)
            t1 = time.monotonic()
            Workflow(orders).dispatch(order.incident_id, OP, at=T0 + 5)
            assert _arrival(events, 2, t1) < 1.0 and _arrival(console, 2, t1) < 1.0
            got = [json.loads(e["data"]) for e in events.events()]
            assert [(e["incident_id"], e["version"]) for e in got] == [(order.incident_id, 1), (order.incident_id, 2)]
            assert [json.loads(e["data"])["action"] for e in console.events()] == ["detect", "dispatch"]
        finally:
            events.close()
            console.close()


def test_writes_of_another_process_arrive_by_the_fallback_poll(sqlite_orders, tmp_path):
    """A change committed through another ``Database`` on the same file (as another process
    would: this app's commit signals never hear of it) reaches the streams at the fallback poll."""
    orders = sqlite_orders
    other_db = Database(orders.db.url)
    other = WorkOrders(other_db)
    Outbox(other_db).attach(other)  # the other writer's own outbox hook (and commit signal)
    try:
        with _serve(orders, fallback_poll_s=0.5) as (base, keys):
            events = Stream(f"{base}/events", {"X-API-Key": keys["viewer"]})
            console = Stream(f"{base}/console/events", {"X-API-Key": keys["admin"]})
            try:
                time.sleep(0.3)
                t0 = time.monotonic()
                order = open_incident(other, camera="cam-elsewhere")
                assert _arrival(events, 1, t0) < 3.0 and _arrival(console, 1, t0) < 3.0
                assert json.loads(events.events()[0]["data"])["incident_id"] == order.incident_id
            finally:
                events.close()
                console.close()
    finally:
        other_db.close()
