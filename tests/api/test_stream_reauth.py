"""Open event streams check their caller again (api/feeds.py, api/auth.py: ``StreamCaller``), over a
real uvicorn on a real SQLite service: a person disabled or logged out, an API key revoked, keys
required after the stream opened without one — the stream ends within
``limits.event_stream_recheck_s`` and sends nothing raised after that; the same streams of callers
still allowed go on. And, on the feed itself: each message is rendered for the caller as checked
last, and a check that fails ends the stream (fail closed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.feeds import ACCESS_ENDED, Feeds
from gridworker.api.routers.events import format_event, outbox_source
from gridworker.cases.people import PersonIn
from gridworker.cases.workflow import UNIT_HANDLER, VIEWER, Actor
from gridworker.cases.workorders import WorkOrders
from gridworker.delivery.outbox import Outbox, OutboxEvent
from gridworker.incidents import IncidentStore
from gridworker.service import Service
from gridworker.settings import LimitsConfig, Settings
from tests.api import test_sse_caps as sse_caps
from tests.factories import ParkedCarDetector, live_server, wait_until
from tests.forwarding.helpers import open_incident

RECHECK_S = 1.0
SLACK_S = 2.0  # a loaded CI machine: the stream ends within RECHECK_S + this
PW = "a long enough password"


@dataclass
class Live:
    base: str
    service: Service
    keys: dict[str, str]
    key_ids: dict[str, int]
    people: dict[str, int]

    def h(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}


@contextlib.contextmanager
def _live(tmp_path: Any, keyed: bool = True) -> Iterator[Live]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'reauth.db'}"},
        evidence={"clips": False},
        people={"password_memory_kib": 19_456, "password_time_cost": 1},
        limits={"event_stream_recheck_s": RECHECK_S},
    )
    service = Service(settings, ParkedCarDetector())
    keys: dict[str, str] = {}
    key_ids: dict[str, int] = {}
    if keyed:
        for name, role, unit in [("admin", "admin", None), ("operator", "operator", None), ("viewer", "viewer", None),
                                 ("viewer2", "viewer", None), ("grid", "unit_handler", "community-grid")]:
            stored, keys[name] = create_key(service.keys, name=name, role=role, unit=unit)
            key_ids[name] = stored.id
    people = {}
    for username in ("east1", "east2"):
        [p] = service.people.add([PersonIn(username=username, name=username, unit="community-grid", role=UNIT_HANDLER, password=PW)])
        people[username] = p.id
    with live_server(create_app(lambda: service)) as base:
        yield Live(base, service, keys, key_ids, people)


class Stream(sse_caps.Stream):
    """One open SSE stream, read line by line in a thread: the ids and comments it got, when it
    ended (``close`` as in test_sse_caps)."""

    def __init__(self, client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> None:
        # a client of its own, with the caller's cookies (a session) if any
        self.client = httpx.Client(base_url=client.base_url, cookies=client.cookies, timeout=httpx.Timeout(10, read=60))
        self._cm = self.client.stream("GET", path, headers=headers or {})
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200, self.response.read()
        self.ids: list[int] = []
        self.comments: list[str] = []
        self.ended_at: float | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line.startswith("id: "):
                    self.ids.append(int(line[4:]))
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()


def _client(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.base, timeout=httpx.Timeout(10, read=60))


def _login(client: httpx.Client, username: str) -> dict[str, str]:
    r = client.post("/auth/login", json={"username": username, "password": PW})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def _case_of(live: Live, admin: httpx.Client, username: str) -> int:
    """A new case, dispatched to ``username`` of community-grid; its id."""
    order = open_incident(live.service.workorders, camera=f"cam-{username}")
    r = admin.post(f"/workorders/{order.incident_id}/dispatch", headers=live.h("operator"),
                   json={"unit": "community-grid", "assignee": live.people[username]})
    assert r.status_code == 200, r.text
    return order.incident_id


def _redispatch(live: Live, admin: httpx.Client, case: int, username: str) -> int:
    """Dispatch ``case`` to ``username`` again (a new audit row); the audit id."""
    r = admin.post(f"/workorders/{case}/dispatch", headers=live.h("operator"),
                   json={"unit": "community-grid", "assignee": live.people[username], "note": "again"})
    assert r.status_code == 200, r.text
    return max(a.id for a in live.service.workorders.audit(case))


def _reject(live: Live, admin: httpx.Client, case: int) -> int:
    """Reject ``case`` (admin; it stays with its person); the audit id."""
    r = admin.post(f"/workorders/{case}/reject", headers=live.h("admin"), json={"note": "not ours"})
    assert r.status_code == 200, r.text
    return max(a.id for a in live.service.workorders.audit(case))


def _ends_in_time(stream: Stream, since: float) -> None:
    assert stream.ended.wait(RECHECK_S + SLACK_S + 5), "the stream stayed open"
    assert stream.ended_at is not None
    assert stream.ended_at - since <= RECHECK_S + SLACK_S, stream.ended_at - since


def test_a_disabled_persons_stream_ends_and_gets_nothing_raised_after(tmp_path):
    with _live(tmp_path) as live, _client(live) as person, _client(live) as admin:
        case = _case_of(live, admin, "east1")
        _login(person, "east1")
        mine = Stream(person, "/console/events")
        control = Stream(admin, "/console/events", live.h("viewer"))  # a key still allowed
        try:
            before = _redispatch(live, admin, case, "east1")
            wait_until(lambda: before in mine.ids and before in control.ids, timeout=10, interval=0.05)  # both streams live
            r = admin.patch(f"/people/{live.people['east1']}", headers=live.h("admin"), json={"disabled": True})
            assert r.status_code == 200, r.text
            disabled_at = time.monotonic()
            after = _reject(live, admin, case)  # at once: before the next periodic check is due
            wait_until(lambda: after in control.ids, timeout=10, interval=0.05)  # it was raised and went out
            time.sleep(0.3)  # time enough to reach the disabled person's stream as well, if it were sent
            assert all(i < after for i in mine.ids), (mine.ids, after)
            _ends_in_time(mine, disabled_at)
            assert "access ended" in mine.comments
            assert not control.ended.is_set()
            assert person.get("/console/events").status_code == 401  # a reconnect is refused
        finally:
            mine.close()
            control.close()


def test_a_stream_ends_at_logout_within_the_recheck_interval(tmp_path):
    with _live(tmp_path) as live, _client(live) as person, _client(live) as other, _client(live) as admin:
        case = _case_of(live, admin, "east1")
        csrf = _login(person, "east1")
        _login(other, "east1")  # another session of the same person stays in
        mine, theirs = Stream(person, "/console/events"), Stream(other, "/console/events")
        try:
            before = _redispatch(live, admin, case, "east1")
            wait_until(lambda: before in mine.ids and before in theirs.ids, timeout=10, interval=0.05)
            assert person.post("/auth/logout", headers=csrf).status_code == 204
            out_at = time.monotonic()
            _ends_in_time(mine, out_at)  # nothing is sent: the periodic check ends it
            after = _redispatch(live, admin, case, "east1")
            wait_until(lambda: after in theirs.ids, timeout=10, interval=0.05)
            assert all(i < after for i in mine.ids)
            assert not theirs.ended.is_set()
        finally:
            mine.close()
            theirs.close()


def test_a_revoked_keys_events_stream_ends_and_gets_nothing_raised_after(tmp_path):
    with _live(tmp_path) as live, _client(live) as c:
        orders = live.service.workorders
        revoked, kept = Stream(c, "/events", live.h("viewer")), Stream(c, "/events", live.h("viewer2"))
        grid = Stream(c, "/events", live.h("grid"))  # a unit handler's key: community-grid's cases only
        try:
            open_incident(orders, camera="cam-1")
            before = Outbox(orders.db).last_id()
            wait_until(lambda: before in revoked.ids and before in kept.ids, timeout=10, interval=0.05)
            assert c.delete(f"/keys/{live.key_ids['viewer']}", headers=live.h("admin")).status_code == 204
            revoked_at = time.monotonic()
            open_incident(orders, camera="cam-2")  # at once: the check before the batch stops it
            after = Outbox(orders.db).last_id()
            assert after > before
            wait_until(lambda: after in kept.ids, timeout=10, interval=0.05)
            time.sleep(0.3)  # time enough to reach the revoked key's stream as well, if it were sent
            assert all(i < after for i in revoked.ids), (revoked.ids, after)
            _ends_in_time(revoked, revoked_at)
            assert not kept.ended.is_set() and not grid.ended.is_set()
            assert c.get("/events", headers=live.h("viewer")).status_code == 401
        finally:
            for s in (revoked, kept, grid):
                s.close()


def test_a_keyless_loopback_stream_ends_once_keys_are_required(tmp_path):
    with _live(tmp_path, keyed=False) as live, _client(live) as c:
        anon = Stream(c, "/console/events")  # the loopback admin: no key exists yet
        try:
            time.sleep(RECHECK_S + 0.5)
            assert not anon.ended.is_set()  # still allowed: it stays open across checks
            create_key(live.service.keys, name="first admin", role="admin")
            keyed_at = time.monotonic()
            _ends_in_time(anon, keyed_at)
        finally:
            anon.close()


# -- the feed's side (api/feeds.py), with a caller whose answer the test sets ----------------------
class SwitchingCaller:
    """A stream's caller whose re-check answers ``now`` (an Actor, None, or an exception to raise)."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.now: Actor | None | Exception = actor
        self.checks = 0

    def recheck(self) -> Actor | None:
        self.checks += 1
        if isinstance(self.now, Exception):
            raise self.now
        return self.now


def _feed_run(tmp_path: Any, scenario: Any) -> Any:
    store = IncidentStore(f"sqlite:///{tmp_path / 'feed.db'}")
    orders = WorkOrders(store.db)
    outbox = Outbox(orders.db).attach(orders)
    try:
        return asyncio.run(scenario(orders, outbox))
    finally:
        store.close()


async def _next(it: Any, timeout: float = 10.0) -> str:
    return str(await asyncio.wait_for(it.__anext__(), timeout))


def test_each_message_is_rendered_for_the_caller_as_checked_last(tmp_path):
    """A caller whose unit changes while the stream is open: the next batch is filtered with the
    new scope (not the one the stream opened with)."""

    async def scenario(orders: WorkOrders, outbox: Outbox) -> tuple[list[tuple[int, str | None]], int]:
        caller = SwitchingCaller(Actor("key:k:grid", UNIT_HANDLER, unit="traffic-squad"))
        seen: list[tuple[int, str | None]] = []

        def render(ev: OutboxEvent, user: Actor) -> str | None:
            seen.append((ev.id, user.unit))
            return format_event(ev)

        feeds = Feeds(fallback_poll_s=0.1)
        response = await feeds.stream(outbox_source(outbox), caller, LimitsConfig(event_stream_recheck_s=30.0), start=None,
                                      render=render, keepalive_s=60.0, max_s=20.0)
        it = response.body_iterator
        assert "retry:" in await _next(it)
        await asyncio.to_thread(open_incident, orders, camera="cam-1")
        await _next(it)
        caller.now = Actor("key:k:grid", UNIT_HANDLER, unit="community-grid")
        await asyncio.to_thread(open_incident, orders, camera="cam-2")
        await _next(it)
        await it.aclose()  # type: ignore[attr-defined]
        await feeds.close()
        return seen, caller.checks

    seen, checks = _feed_run(tmp_path, scenario)
    assert [unit for _, unit in seen] == ["traffic-squad", "community-grid"]
    assert checks == 2  # one check before each batch (the periodic one is 30 s away)


def test_a_failing_check_ends_the_stream_without_its_message_in_the_log(tmp_path, caplog):
    async def scenario(orders: WorkOrders, outbox: Outbox) -> list[str]:
        caller = SwitchingCaller(Actor("viewer-k", VIEWER))
        feeds = Feeds(fallback_poll_s=0.1)
        response = await feeds.stream(outbox_source(outbox), caller, LimitsConfig(event_stream_recheck_s=0.2), start=None,
                                      render=lambda ev, user: format_event(ev), keepalive_s=60.0, max_s=20.0)
        it = response.body_iterator
        got = [await _next(it)]
        caller.now = RuntimeError("db down: password=hunter2")
        with contextlib.suppress(StopAsyncIteration):
            while True:
                got.append(await _next(it, timeout=5))
        await feeds.close()
        return got

    with caplog.at_level(logging.INFO, logger="gridworker.api.feeds"):
        got = _feed_run(tmp_path, scenario)
    assert got[-1] == ACCESS_ENDED
    assert "RuntimeError" in caplog.text and "hunter2" not in caplog.text


@pytest.mark.parametrize("bad", [0.1, 61.0])
def test_the_recheck_interval_is_bounded(bad):
    with pytest.raises(ValueError):
        LimitsConfig(event_stream_recheck_s=bad)
