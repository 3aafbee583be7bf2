"""Bounded memory and storage: sessions (in all and per person, in the database), the login limiter's keys, the
idempotency keys (age and count); all with a clock passed in, no sleeping."""

import time

import pytest

from sqlalchemy import func, select

from gridworker.api.ratelimit import RateLimiter
from gridworker.api.sessions import Sessions
from gridworker.cases.idempotency import IdempotencyLog, IdempotencyRow
from gridworker.cases.people import LoginSessionRow
from gridworker.incidents.db import Database
from gridworker.cases.workflow import Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.incidents import IncidentStore
from tests.people.conftest import people_config


def test_sessions_are_capped_in_all_and_per_person(db_url):
    db = Database.open(db_url)
    now = [0.0]
    sessions = Sessions(db, people_config(max_sessions=3, max_sessions_per_person=2), clock=lambda: now[0])
    step = sessions.touch_every_s  # uses this far apart are each written down (the LRU order's precision)
    try:
        a1, _ = sessions.create(1)
        now[0] += step
        a2, _ = sessions.create(1)
        now[0] += step
        a3, _ = sessions.create(1)  # person 1's third: their oldest (a1) ends
        assert sessions.get(a1) is None and sessions.get(a2) and sessions.get(a3) and len(sessions) == 2
        now[0] += step
        b1, _ = sessions.create(2)
        now[0] += step
        assert sessions.get(a2) and sessions.get(a3)  # touched: b1 is now the least recently used
        now[0] += step
        c1, _ = sessions.create(3)  # 4 > 3 in all: the least recently used (b1) ends
        assert sessions.get(b1) is None and len(sessions) == 3 and sessions.get(c1)
        assert sessions.end_person(1) == 2 and len(sessions) == 1
        assert sessions.get("") is None and sessions.get("x" * 10_000) is None
        with db.transaction() as s:  # the table holds what is left, no more
            assert s.scalar(select(func.count()).select_from(LoginSessionRow)) == 1
    finally:
        db.close()


def test_rate_limiter_window_and_bounded_keys():
    limiter = RateLimiter(limit=2, window_s=60.0, max_keys=3)
    assert limiter.hit("a", 0.0) is None and limiter.hit("a", 10.0) is None
    assert limiter.hit("a", 20.0) == pytest.approx(40.0)  # refused: not recorded
    assert limiter.hit("a", 60.0) is None  # the first hit left the window
    for key in ("b", "c", "d"):
        limiter.hit(key, 61.0)
    assert len(limiter) == 3 and limiter.retry_after("a", 61.0) is None  # "a" was the least recently hit: forgotten
    with pytest.raises(ValueError):
        RateLimiter(limit=0, window_s=1)


def test_idempotency_keys_are_bounded_by_age_and_count(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'idem.db'}")
    try:
        orders = WorkOrders(store.db)
        wf = Workflow(orders, idempotency=IdempotencyLog(ttl_s=100.0, max_keys=3))
        op = Actor("key:op", "operator")
        t0 = 1_000_000.0
        ids = []
        for n in range(5):
            inc = store.open(camera_id="c", camera_name="c", site="s", zone_id="z", rule_id="r", type="street_vending",
                             at=time.time(), count=1, summary="s", details={}, snapshot=None)
            ids.append(orders.on_incident_opened(inc).incident_id)
        for n, i in enumerate(ids[:4]):
            wf.dispatch(i, op, key=f"key-{n:06d}", at=t0 + n)
        with orders.transaction() as s:
            assert s.query(IdempotencyRow).count() == 3  # the cap: the oldest went
        # the remembered ones still answer; a forgotten one runs again (dispatch from dispatched is allowed)
        v = orders.get(ids[3]).version
        assert wf.dispatch(ids[3], op, key="key-000003", at=t0 + 5).version == v
        assert wf.dispatch(ids[0], op, key="key-000000", at=t0 + 5).version == orders.get(ids[0]).version
        assert len([a for a in orders.audit(ids[0]) if a.action == "dispatch"]) == 2
        wf.dispatch(ids[4], op, key="key-000004", at=t0 + 1000)  # long after: every older key expired
        with orders.transaction() as s:
            assert [r.incident_id for r in s.query(IdempotencyRow).all()] == [ids[4]]
    finally:
        store.close()
