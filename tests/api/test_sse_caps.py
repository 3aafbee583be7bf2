"""Server-sent event streams over a real uvicorn: one shared poller per feed however many
streams are open, caps per key and in total (429), a slow subscriber dropped, not buffered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.feeds import FeedPoller, FeedSource
from gridworker.incidents import IncidentStore
from gridworker.delivery.outbox import Outbox
from gridworker.cases.workorders import WorkOrders
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, live_server, wait_until
from tests.forwarding.helpers import open_incident


@dataclass(frozen=True)
class Live:
    base: str
    service: Service
    keys: dict[str, str]


@contextlib.contextmanager
def _live(tmp_path, **limits: int) -> Iterator[Live]:
    service = Service(Settings(database={"url": f"sqlite:///{tmp_path / 'sse.db'}"}, limits=limits), ParkedCarDetector())
    keys = {name: create_key(service.keys, name=name, role="viewer")[1] for name in ("a", "b", "c")}
    keys["admin"] = create_key(service.keys, name="admin", role="admin")[1]
    with live_server(create_app(lambda: service)) as base:
        yield Live(base, service, keys)


class Stream:
    """One open SSE stream, read line by line in a thread."""

    def __init__(self, url: str, key: str, **headers: str) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._cm = self.client.stream("GET", url, headers={"X-API-Key": key, **headers})
        self.response = self._cm.__enter__()
        self.status = self.response.status_code
        self.ids: list[int] = []
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read().decode()
            self.ended.set()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line.startswith("id: "):
                    self.ids.append(int(line[4:]))
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        # shut the socket down first: a reader thread blocked in recv() would otherwise keep it
        # open (close() alone sends no FIN while another thread is inside recv on it)
        sock = self.response.extensions["network_stream"].get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.ended.wait(5)
        try:
            self._cm.__exit__(None, None, None)
        except (httpx.HTTPError, RuntimeError):
            pass
        self.client.close()


@pytest.fixture
def capped(tmp_path) -> Iterator[Live]:
    with _live(tmp_path, max_event_streams=3, max_event_streams_per_key=2) as live:
        yield live


def test_streams_over_the_caps_get_429_and_a_closed_stream_frees_its_slot(capped):
    base, keys = capped.base, capped.keys
    opened: list[Stream] = []
    try:
        a1, a2 = Stream(f"{base}/events", keys["a"]), Stream(f"{base}/console/events", keys["a"])
        opened += [a1, a2]
        assert (a1.status, a2.status) == (200, 200)
        a3 = Stream(f"{base}/events", keys["a"])  # a third of the same key
        assert a3.status == 429 and "max_event_streams_per_key = 2" in json.loads(a3.body)["detail"]
        assert a3.response.headers["Retry-After"] == "5"
        b1 = Stream(f"{base}/events", keys["b"])
        opened.append(b1)
        assert b1.status == 200
        for path in ("/events", "/console/events"):  # the total counts both feeds
            c1 = Stream(f"{base}{path}", keys["c"])
            assert c1.status == 429 and "limits.max_event_streams = 3" in json.loads(c1.body)["detail"], c1.body
        a1.close()  # the server notices the disconnect and gives the slot back
        opened.remove(a1)

        def c_gets_in() -> Stream | None:
            s = Stream(f"{base}/events", keys["c"])
            if s.status == 200:
                return s
            s.close()
            return None

        opened.append(wait_until(c_gets_in, timeout=10, interval=0.1))
    finally:
        for s in opened:
            s.close()


def _median_ms(client: httpx.Client, url: str, headers: dict[str, str], n: int = 15) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert client.get(url, headers=headers).status_code == 200
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def test_fifty_streams_share_one_poller_per_feed(tmp_path):
    with _live(tmp_path, max_event_streams=60, max_event_streams_per_key=60) as live:
        base, keys, orders = live.base, live.keys, live.service.workorders
        admin = {"X-API-Key": keys["admin"]}
        for i in range(5):
            open_incident(orders, camera=f"cam-{i}")
        with httpx.Client(timeout=10) as c:
            c.get(f"{base}/workorders", headers=admin)  # warm up
            baseline = _median_ms(c, f"{base}/workorders", admin)
        queries: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            queries.append(statement)

        streams = [Stream(f"{base}/events", keys["a"]) for _ in range(25)]
        streams += [Stream(f"{base}/console/events", keys["b"]) for _ in range(25)]
        try:
            assert [s.status for s in streams] == [200] * 50
            time.sleep(0.5)  # every stream past its start
            event.listen(orders.engine, "before_cursor_execute", count)
            try:
                time.sleep(2.5)
            finally:
                event.remove(orders.engine, "before_cursor_execute", count)
            outbox_reads = sum("ORDER BY outbox.id" in q for q in queries)
            audit_reads = sum("ORDER BY incident_audit.id" in q for q in queries)
            # nothing is written: one poller per feed reads only at its 2 s fallback (not 25 streams × anything)
            assert 1 <= outbox_reads <= 2, outbox_reads
            assert 1 <= audit_reads <= 2, audit_reads
            # every stream still gets every event
            open_incident(orders, camera="cam-new")
            wait_until(lambda: all(s.ids for s in streams), timeout=10, interval=0.05)
            outbox_id = Outbox(orders.db).last_id()
            assert {s.ids[-1] for s in streams[:25]} == {outbox_id}
            assert all(len(s.ids) == 1 for s in streams), "a stream got an event twice or one from before it opened"
            with httpx.Client(timeout=10) as c:
                loaded = _median_ms(c, f"{base}/workorders", admin)
            # coarse on purpose (a shared CI machine): the query count above is the sharp check
            assert loaded < max(2 * baseline, baseline + 10), (baseline, loaded)
        finally:
            for s in streams:
                s.close()


def test_a_slow_subscriber_is_dropped_and_resumes_by_id(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'slow.db'}")
    orders = WorkOrders(store.db)
    outbox = Outbox(orders.db).attach(orders)

    async def scenario() -> tuple[bool, int, list[int], int]:
        feed: FeedPoller[Any] = FeedPoller(FeedSource("outbox", outbox.events_after, outbox.last_id), poll_s=0.05, queue_size=3)
        slow = await feed.subscribe()
        fast = await feed.subscribe()
        got: list[int] = []
        for i in range(5):
            await asyncio.to_thread(open_incident, orders, camera=f"cam-{i}")
            row = await fast.get(timeout=5)
            assert row is not None
            got.append(row.id)
        ended = await slow.get(timeout=5)  # queue of 3: it overflowed at the 4th event
        left = feed.subscribers
        await feed.close()
        return slow.dropped and ended is None, left, got, slow.queue.qsize()

    try:
        dropped, left, got, queued = asyncio.run(scenario())
    finally:
        store.close()
    assert dropped and queued == 0  # its backlog was freed, not kept
    assert left == 1  # the fast one stays
    assert got == sorted(got) and len(got) == 5
    assert [e.id for e in outbox.events_after(got[2], 10)] == got[3:]  # what the dropped one resumes with
