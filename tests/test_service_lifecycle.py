"""The service's lifecycle: a state machine that can be stopped and started again, with a real
RTSP server and a fake detector that sees one parked car (tests/factories.py).

* start → RUNNING: frames are analysed, the pipeline's threads run, the dispatcher runs;
* stop → STOPPED: no pipeline, reader, patrol or forwarding thread is left;
* start again → RUNNING: the cameras stream again, the open incident is the same one (adopted,
  not duplicated), a patrol plan runs, a new dispatcher runs;
* ``/health`` reads "ok" with a patrol-only camera in the config (it is never "live").
"""

from __future__ import annotations

import threading

import pytest

from gridworker.api import create_app
from gridworker.incidents import IncidentQuery
from gridworker.patrol import PatrolState
from gridworker.service import Service, ServiceState
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client, wait_until

pytestmark = [pytest.mark.rtsp]

KERB = [
    {
        "id": "kerb",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        "rules": [{"type": "dwell", "classes": ["car"], "min_duration_s": 0.5, "clear_after_s": 30}],
    }
]
PLAN = {"id": "round", "cycles": 1, "concurrency": 1, "open_timeout_s": 3.0, "keyframe_timeout_s": 4.0, "stagger_s": 0.0}


def _settings(tmp_path, server) -> Settings:
    return Settings(
        database={"url": f"sqlite:///{tmp_path / 'life.db'}"},
        cameras=[
            {"id": "street", "url": server.url("street"), "fps": 5, "zones": KERB},
            {"id": "lane", "url": server.url("lane"), "watch": "patrol"},
        ],
        patrol_plans=[PLAN],
        evidence={"clips": False},
    )


def _threads(*prefixes: str) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith(prefixes))


WORKERS = ("gw-inference", "gw-post", "camera-", "patrol-", "gw-forward", "gw-workflow-clock", "gw-retention")


def test_stop_and_start_again(tmp_path, sample_clip, rtsp_factory):
    server = rtsp_factory({"street": sample_clip, "lane": sample_clip})
    service = Service(_settings(tmp_path, server), ParkedCarDetector())
    assert service.state is ServiceState.CREATED
    others = set(_threads(*WORKERS))  # threads an earlier test in this process left behind are not ours
    service.start()
    try:
        assert service.state is ServiceState.RUNNING and service.started
        wait_until(lambda: service.incidents.open_count("street") == 1, timeout=30)
        (first,) = service.store.list(IncidentQuery())[0]
        assert "gw-inference-0" in _threads("gw-inference") and "camera-street" in _threads("camera-")
    finally:
        service.stop()
    assert service.state is ServiceState.STOPPED and not service.started
    assert set(_threads(*WORKERS)) - others == set()
    service.stop()  # idempotent
    assert service.state is ServiceState.STOPPED

    dispatcher = service.forwarding
    service.start()
    try:
        assert service.state is ServiceState.RUNNING
        assert service.forwarding is not dispatcher and service.forwarding.started  # a stopped one closed its senders
        before = service.camera("street").frames_analysed
        assert before == 0  # a new reader and slot
        wait_until(lambda: service.camera("street").frames_analysed >= 5, timeout=30)
        # the car is still parked: the same incident continues, none is opened twice
        items, total = service.store.list(IncidentQuery())
        assert total == 1 and items[0].id == first.id and items[0].status == "open"
        assert service.incidents.open_count("street") == 1
        # the patrol accepts starts again and its visit goes through the shared detector
        status, started = service.patrol.start("round")
        assert started
        run = service.patrol.run("round")
        assert run is not None and run.wait(timeout=30)
        assert run.status().state is PatrolState.FINISHED and run.status().last_cycle.ok == 2
        assert service.camera("lane").frames_analysed >= 1
        visits = 'gridworker_patrol_visits_total{outcome="ok",plan="round"} 2.0'  # counted just after each visit's record
        metrics = wait_until(lambda: (m := service.metrics.render().decode()) and visits in m and m, timeout=5)
        assert 'gridworker_patrol_cycle_seconds{plan="round"}' in metrics
        assert 'gridworker_cases_open{state="detected"} 1.0' in metrics
    finally:
        service.stop()
    wait_until(lambda: set(_threads(*WORKERS)) - others == set(), timeout=5)  # a finished run's pool threads wind down
    service.store.close()


def test_health_does_not_count_patrol_only_cameras_as_down(tmp_path, sample_clip, rtsp_factory):
    server = rtsp_factory({"street": sample_clip, "lane": sample_clip})
    service = Service(_settings(tmp_path, server), ParkedCarDetector())
    with local_client(create_app(lambda: service)) as client:
        wait_until(lambda: service.camera("street").health.state.value == "live", timeout=30)
        health = client.get("/health").json()
        assert health["status"] == "ok", health
        assert (health["cameras"], health["cameras_live"], health["cameras_patrol_only"]) == (2, 1, 1)
        server.pause()  # the continuous camera goes down: now it is degraded
        wait_until(lambda: client.get("/health").json()["status"] == "degraded", timeout=30)
    service.store.close()
