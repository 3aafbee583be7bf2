"""A deleted patrol plan leaves no series on /metrics: its visit and failure counters are
dropped at the next scrape (the plans that exist are read then), so create/start/delete
cycles do not grow the scrape without bound."""

from __future__ import annotations

import time

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.metrics import Metrics
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, free_port, local_client


def _plan_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("gridworker_patrol_") and "plan=" in line]


def test_counters_of_a_plan_that_is_gone_leave_at_the_next_scrape():
    plans: dict[str, float | None] = {"kept": 12.5, "gone": None}
    metrics = Metrics(lambda: [])
    metrics.watch_patrol(lambda: dict(plans))
    for plan in ("kept", "gone"):
        metrics.patrol_visit(plan, True, None)
        metrics.patrol_visit(plan, False, "open_timeout")
        metrics.patrol_visit(plan, False, None)
    text = metrics.render().decode()
    assert any('plan="gone"' in line for line in _plan_lines(text))

    del plans["gone"]
    lines = _plan_lines(metrics.render().decode())
    assert not [line for line in lines if 'plan="gone"' in line]
    assert 'gridworker_patrol_visits_total{outcome="ok",plan="kept"} 1.0' in lines
    assert 'gridworker_patrol_failures_total{kind="open_timeout",plan="kept"} 1.0' in lines
    assert 'gridworker_patrol_cycle_seconds{plan="kept"} 12.5' in lines

    metrics.patrol_visit("gone", True, None)  # a late outcome of the deleted plan (cluster queue)
    assert not [line for line in _plan_lines(metrics.render().decode()) if 'plan="gone"' in line]


def test_metrics_without_a_patrol_source_keep_their_counters():
    metrics = Metrics(lambda: [])
    metrics.patrol_visit("p", True, None)
    assert 'gridworker_patrol_visits_total{outcome="ok",plan="p"} 1.0' in _plan_lines(metrics.render().decode())


def test_create_start_delete_cycles_leave_no_series_on_metrics(tmp_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'm.db'}"},
        cameras=[{"id": "gate", "url": f"rtsp://127.0.0.1:{free_port()}/none", "watch": "patrol"}],
    )
    service = Service(settings, ParkedCarDetector())
    with local_client(create_app(lambda: service), client=("10.1.2.3", 40000)) as c:
        sup = {"Authorization": "Bearer " + create_key(service.keys, name="s", role="supervisor")[1]}
        ids = [f"cycle-{i}" for i in range(3)]
        for pid in ids:
            body = {"id": pid, "select": {"camera_ids": ["gate"]}, "cycles": 1, "open_timeout_s": 1.0}
            assert c.put(f"/patrol/plans/{pid}", json=body, headers=sup).status_code in (200, 201)
            assert c.post(f"/patrol/plans/{pid}/start", headers=sup).status_code in (200, 202)
            deadline = time.monotonic() + 30.0
            while c.delete(f"/patrol/plans/{pid}", headers=sup).status_code != 204:
                assert time.monotonic() < deadline, "the plan's run did not finish"
                time.sleep(0.05)
        assert service.metrics.patrol_visits.collect()[0].samples, "the visits were counted before the scrape"
        assert c.get("/patrol/plans", headers=sup).json() == []
        assert _plan_lines(c.get("/metrics").text) == []
