"""The patrol API on a running service: real RTSP cameras (patrol only), the real default model."""

from __future__ import annotations

import time

import pytest

from gridworker.api import create_app
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import local_client, wait_until

pytestmark = [pytest.mark.model]

FAST = {"open_timeout_s": 2.0, "keyframe_timeout_s": 3.0, "stagger_s": 0.0}


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig())


@pytest.fixture
def client(tmp_path, rtsp_factory, sample_clip, detector):
    server = rtsp_factory({"a": sample_clip, "b": sample_clip, "c": sample_clip})
    cams = [
        {"id": f"school-{m}", "url": server.url(m), "watch": "patrol", "patrol": {"site_type": "school", "priority": p}}
        for m, p in (("a", 9), ("b", 5), ("c", 1))
    ]
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'patrol.db'}"},
        cameras=cams,
        patrol_plans=[
            {"id": "schools", "select": {"site_types": ["school"]}, "cycles": 0, "min_cycle_s": 0.5, "concurrency": 2, **FAST},
            {"id": "once", "select": {"camera_ids": ["school-a"]}, "cycles": 1, **FAST},
        ],
    )
    with local_client(create_app(lambda: Service(settings, detector))) as c:
        yield c


def test_plans_listed_idle(client):
    plans = client.get("/patrol/plans").json()
    assert [p["plan"]["id"] for p in plans] == ["once", "schools"]
    schools = plans[1]
    assert schools["cameras"] == 3 and schools["status"]["state"] == "idle" and schools["status"]["visited"] == 0
    assert client.get("/patrol/plans/nope").status_code == 404
    assert client.post("/patrol/plans/nope/start").status_code == 404
    # patrol-only cameras are not streamed
    cam = client.get("/cameras/school-a").json()
    assert cam["health"]["state"] == "stopped" and cam["frames_analysed"] == 0


def test_start_pause_resume_stop_are_idempotent(client):
    # pausing or resuming a plan that never ran is a conflict, stopping it is a no-op
    assert client.post("/patrol/plans/schools/pause").status_code == 409
    assert client.post("/patrol/plans/schools/resume").status_code == 409
    r = client.post("/patrol/plans/schools/stop")
    assert r.status_code == 200 and r.json()["state"] == "idle"

    r = client.post("/patrol/plans/schools/start")
    assert r.status_code == 202, r.text
    started_at = r.json()["started_at"]
    again = client.post("/patrol/plans/schools/start")
    assert again.status_code == 200 and again.json()["state"] == "running"
    assert again.json()["started_at"] == started_at  # the same run
    # a full cycle: every camera visited, analysed through the shared detector
    st = wait_until(lambda: (s := client.get("/patrol/plans/schools").json()["status"])["completed_cycles"] >= 1 and s, timeout=40)
    assert st["last_cycle"]["ok"] == 3 and st["last_cycle"]["failed"] == 0 and st["last_cycle_s"] > 0
    assert client.get("/cameras/school-a").json()["frames_analysed"] >= 1
    assert client.get("/cameras/school-a/frame.jpg").status_code == 200

    r = client.post("/patrol/plans/schools/pause")
    assert r.status_code == 200 and r.json()["state"] in ("paused", "waiting")
    assert client.post("/patrol/plans/schools/pause").status_code == 200  # idempotent
    wait_until(lambda: client.get("/patrol/plans/schools").json()["status"]["in_flight"] == [], timeout=15)
    visits = client.get("/patrol/plans/schools").json()["status"]["visits_total"]
    time.sleep(1.5)
    assert client.get("/patrol/plans/schools").json()["status"]["visits_total"] == visits  # no visit while paused
    r = client.post("/patrol/plans/schools/resume")
    assert r.status_code == 200
    assert client.post("/patrol/plans/schools/resume").status_code == 200
    wait_until(lambda: client.get("/patrol/plans/schools").json()["status"]["visits_total"] > visits, timeout=20)

    r = client.post("/patrol/plans/schools/stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped" and r.json()["in_flight"] == []
    assert client.post("/patrol/plans/schools/stop").json()["state"] == "stopped"
    assert client.post("/patrol/plans/schools/pause").status_code == 409
    # a stopped run is replaced by a new one on start
    r = client.post("/patrol/plans/schools/start")
    assert r.status_code == 202 and r.json()["started_at"] != started_at
    client.post("/patrol/plans/schools/stop")


def test_finished_plan_and_runtime_plans(client):
    assert client.post("/patrol/plans/once/start").status_code == 202
    st = wait_until(lambda: (s := client.get("/patrol/plans/once").json()["status"])["state"] == "finished" and s, timeout=30)
    assert st["completed_cycles"] == 1 and st["visited"] == 1 and st["total"] == 1 and st["eta_s"] is None
    assert client.post("/patrol/plans/once/pause").status_code == 409

    body = {"id": "low", "select": {"camera_ids": ["school-c"]}, "cycles": 1, **FAST}
    r = client.put("/patrol/plans/low", json=body)
    assert r.status_code == 201 and r.json()["cameras"] == 1
    assert client.put("/patrol/plans/low", json=body).status_code == 200
    bad = client.put("/patrol/plans/ghost", json={**body, "id": "ghost", "select": {"camera_ids": ["no-such-cam"]}})
    assert bad.status_code == 422 and "no-such-cam" in bad.json()["detail"]
    assert client.put("/patrol/plans/x", json={**body, "id": "y"}).status_code == 422
    assert client.put("/patrol/plans/low", json={**body, "concurrency": 0}).status_code == 422
    # replacing a running plan is refused
    client.put("/patrol/plans/forever", json={**body, "id": "forever", "cycles": 0, "min_cycle_s": 5})
    assert client.post("/patrol/plans/forever/start").status_code == 202
    assert client.put("/patrol/plans/forever", json={**body, "id": "forever"}).status_code == 409
    assert client.post("/patrol/plans/forever/stop").json()["state"] == "stopped"
    assert client.put("/patrol/plans/forever", json={**body, "id": "forever"}).status_code == 200
