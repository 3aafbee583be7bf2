"""The incident manager when a database write fails mid-frame (a PostgreSQL failover, a full
SQLite disk): a failed close is retried on the next frame (one incident, one verified close),
and incidents a frame opened before the failure still reach their listeners."""

from __future__ import annotations

from typing import Any

import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.incidents.store import Incident
from tests.scenario import Scenario


class _FailingStore(IncidentStore):
    """Raises once from the chosen method's ``call``-th call (1-based)."""

    def __init__(self, url: str, method: str, call: int) -> None:
        super().__init__(url)
        self.method, self.call, self.calls = method, call, 0

    def _maybe_fail(self, method: str) -> None:
        if method == self.method:
            self.calls += 1
            if self.calls == self.call:
                raise RuntimeError("OperationalError: server closed the connection unexpectedly")

    def close_incident(self, incident_id: int, *, at: float) -> None:
        self._maybe_fail("close_incident")
        super().close_incident(incident_id, at=at)

    def open(self, **kwargs: Any) -> Incident:
        self._maybe_fail("open")
        return super().open(**kwargs)


def _observe_all(manager: IncidentManager, analyses) -> int:
    failures = 0
    for a in analyses:
        try:
            manager.observe(a)
        except RuntimeError:
            failures += 1  # the pipeline logs it and goes on with the next frame
    return failures


def test_a_failed_close_is_retried_on_the_next_frame(store_url):
    store = _FailingStore(store_url, "close_incident", 1)
    closed: list[int] = []
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0, on_close=[lambda i, _t: closed.append(i)])
    sc = Scenario(fps=5)
    sc.track("person", (400, 600, 440, 700)).stay(0, 2).hide(2, 8).stay(8, 10)  # gone, then back
    rules = [{"id": "z", "rules": [{"type": "intrusion", "clear_after_s": 1.0, "cooldown_s": 0.0}]}]
    assert _observe_all(manager, sc.run(rules, until=10).analyses) == 1
    items, total = store.list(IncidentQuery())
    assert total == 2, "one incident per occurrence, no duplicate of the first"
    first = min(items, key=lambda i: i.id)
    assert first.status == "closed" and closed[0] == first.id and closed.count(first.id) == 1
    store.close()


def test_a_failed_close_of_a_camera_keeps_its_incident(store_url):
    store = _FailingStore(store_url, "close_incident", 1)
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0)
    sc = Scenario(fps=5)
    sc.track("person", (400, 600, 440, 700)).stay(0, 2)
    _observe_all(manager, sc.run([{"id": "z", "rules": [{"type": "intrusion"}]}], until=2).analyses)
    assert manager.open_count() == 1
    camera = store.open_incidents()[0].camera_id
    with pytest.raises(RuntimeError):
        manager.close_camera(camera, 3.0)
    assert manager.open_count() == 1 and len(store.open_incidents()) == 1
    manager.close_camera(camera, 4.0)
    assert manager.open_count() == 0 and store.open_incidents() == []
    store.close()


def test_incidents_opened_before_a_failing_verdict_reach_the_listeners(store_url):
    """Two zones open on one frame; the second's write fails: the first is stored and must
    get its clip, work order and metrics (on_open) all the same."""
    store = _FailingStore(store_url, "open", 2)
    told: list[Incident] = []
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0, on_open=[told.append])
    sc = Scenario(fps=5)
    sc.track("person", (400, 600, 440, 700)).stay(0, 2)
    zones = [{"id": "a", "rules": [{"type": "intrusion"}]}, {"id": "b", "rules": [{"type": "intrusion"}]}]
    assert _observe_all(manager, sc.run(zones, until=2).analyses) == 1
    stored = {i.id for i in store.list(IncidentQuery())[0]}
    assert {i.id for i in told} == stored and len(stored) == 2, "each stored incident told once"
    assert sorted(i.zone_id for i in told) == ["a", "b"]
    store.close()
