"""Patrol plans made with ``PUT /patrol/plans/{id}`` are saved in the database: they come back
when a new Service starts over the same SQLite file, ``DELETE`` removes them for good, config
file plans win on an id clash and cannot be deleted; PUT and DELETE are for supervisors."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from fastapi.testclient import TestClient

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client

CAMS = [
    {"id": "gate", "url": "rtsp://127.0.0.1:9/gate", "watch": "patrol", "patrol": {"site_type": "school", "priority": 8}},
    {"id": "ward", "url": "rtsp://127.0.0.1:9/ward", "watch": "patrol", "patrol": {"site_type": "hospital"}},
]
CONFIG_PLAN = {"id": "am", "name": "From the file", "select": {"camera_ids": ["gate"]}}
NIGHT = {
    "id": "night",
    "name": "Hospitals at night",
    "select": {"site_types": ["hospital"], "camera_ids": ["gate"]},
    "mode": "watch",
    "watch_s": 20,
    "watch_fps": 3,
    "concurrency": 4,
    "schedule": {"timezone": "Asia/Shanghai", "windows": [{"days": ["mon", "tue"], "start": "22:00", "end": "06:00"}]},
}


def _settings(db, plans=(CONFIG_PLAN,)) -> Settings:
    return Settings(database={"url": f"sqlite:///{db}"}, cameras=CAMS, patrol_plans=list(plans))


def _client(settings: Settings) -> TestClient:
    return local_client(create_app(lambda: Service(settings, ParkedCarDetector())))


def _ids(client) -> list[str]:
    return [p["plan"]["id"] for p in client.get("/patrol/plans").json()]


def test_put_plan_survives_restart_and_delete_too(tmp_path):
    db = tmp_path / "plans.db"
    with _client(_settings(db)) as c:
        r = c.put("/patrol/plans/night", json=NIGHT)
        assert r.status_code == 201, r.text
        assert r.json()["source"] == "api" and r.json()["cameras"] == 2
        made = r.json()["plan"]
        assert _ids(c) == ["am", "night"]
    # saved as JSON in its own table
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT id, config FROM patrol_plans").fetchall()
    assert [r[0] for r in rows] == ["night"] and '"watch_fps":3.0' in rows[0][1]

    with _client(_settings(db)) as c:  # a new Service over the same file
        assert _ids(c) == ["am", "night"]
        got = c.get("/patrol/plans/night").json()
        assert got["source"] == "api" and got["status"]["state"] == "idle"
        plan = got["plan"]
        assert plan["mode"] == "watch" and plan["watch_s"] == 20 and plan["watch_fps"] == 3
        assert plan["select"] == {**plan["select"], "site_types": ["hospital"], "camera_ids": ["gate"]}
        assert plan["schedule"]["windows"][0]["start"].startswith("22:00")
        assert plan == made  # all of it, as it was made
        # a replacement is saved too
        r = c.put("/patrol/plans/night", json={**NIGHT, "watch_s": 30})
        assert r.status_code == 200 and r.json()["plan"]["watch_s"] == 30

    with _client(_settings(db)) as c:
        assert c.get("/patrol/plans/night").json()["plan"]["watch_s"] == 30
        assert c.delete("/patrol/plans/night").status_code == 204
        assert c.get("/patrol/plans/night").status_code == 404
        assert c.delete("/patrol/plans/night").status_code == 404
        assert _ids(c) == ["am"]

    with _client(_settings(db)) as c:  # the delete is for good
        assert _ids(c) == ["am"]
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM patrol_plans").fetchone()[0] == 0


def test_config_plans_cannot_be_deleted_and_win_on_clash(tmp_path, caplog):
    db = tmp_path / "plans.db"
    with _client(_settings(db)) as c:
        assert c.get("/patrol/plans/am").json()["source"] == "config"
        r = c.delete("/patrol/plans/am")
        assert r.status_code == 409 and "config file" in r.json()["detail"]
        # replacing a config-file plan lasts until the restart, it is not saved
        assert c.put("/patrol/plans/am", json={**CONFIG_PLAN, "name": "edited"}).status_code == 200
        assert c.get("/patrol/plans/am").json()["plan"]["name"] == "edited"
        # a runtime plan that the config file will later define too
        assert c.put("/patrol/plans/pm", json={"id": "pm", "name": "saved through the API"}).status_code == 201
    with _client(_settings(db)) as c:
        assert c.get("/patrol/plans/am").json()["plan"]["name"] == "From the file"

    file_pm = {"id": "pm", "name": "in the file now", "select": {"camera_ids": ["ward"]}}
    with caplog.at_level(logging.WARNING, logger="gridworker.service"), _client(_settings(db, [CONFIG_PLAN, file_pm])) as c:
        got = c.get("/patrol/plans/pm").json()
        assert got["plan"]["name"] == "in the file now" and got["source"] == "config"
        assert c.delete("/patrol/plans/pm").status_code == 409
    assert any("'pm'" in r.getMessage() and "config file wins" in r.getMessage() for r in caplog.records)


def test_running_plan_cannot_be_deleted(tmp_path):
    with _client(_settings(tmp_path / "plans.db")) as c:
        # cameras nothing listens on: the run keeps going (failed visits, retried) until stopped
        body = {"id": "loop", "cycles": 0, "min_cycle_s": 30, "open_timeout_s": 0.5, "keyframe_timeout_s": 0.5}
        assert c.put("/patrol/plans/loop", json=body).status_code == 201
        assert c.post("/patrol/plans/loop/start").status_code == 202
        r = c.delete("/patrol/plans/loop")
        assert r.status_code == 409 and "running" in r.json()["detail"]
        assert c.post("/patrol/plans/loop/stop").status_code == 200
        assert c.delete("/patrol/plans/loop").status_code == 204
        assert c.get("/patrol/plans/loop").status_code == 404


@pytest.mark.parametrize(
    ("role", "allowed"), [("viewer", False), ("operator", False), ("unit_handler", False), ("supervisor", True), ("admin", True)]
)
def test_put_and_delete_are_for_supervisors(tmp_path, role, allowed):
    settings = _settings(tmp_path / "roles.db")
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for r, unit in [("viewer", None), ("operator", None), ("unit_handler", "traffic-squad"), ("supervisor", None), ("admin", None)]:
        keys[r] = create_key(service.keys, name=r, role=r, unit=unit)[1]
    boss = {"Authorization": f"Bearer {keys['supervisor']}"}
    me = {"Authorization": f"Bearer {keys[role]}"}
    with local_client(create_app(lambda: service)) as c:
        assert c.put("/patrol/plans/night", json=NIGHT).status_code == 401
        assert c.delete("/patrol/plans/night").status_code == 401
        put = c.put("/patrol/plans/night", json=NIGHT, headers=me).status_code
        assert put == (201 if allowed else 403)
        if not allowed:
            assert c.put("/patrol/plans/night", json=NIGHT, headers=boss).status_code == 201
        delete = c.delete("/patrol/plans/night", headers=me).status_code
        assert delete == (204 if allowed else 403)
        assert c.get("/patrol/plans/night", headers=boss).status_code == (404 if allowed else 200)
