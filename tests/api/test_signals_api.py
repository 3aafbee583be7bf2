"""Signal states pushed and read through the HTTP API, and GET /incident-types."""

from __future__ import annotations

import time

import pytest

from gridworker.api import create_app
from gridworker.api.deps import running_service
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.vision.rules import incident_kinds
from tests.factories import ParkedCarDetector, local_client, wait_until

HEAD = [[0.9, 0.05], [0.97, 0.05], [0.97, 0.3], [0.9, 0.3]]
FALLEN = {"code": "person_fallen", "name_zh": "人员倒地", "name_en": "person fallen", "category": "public_safety"}


def _camera(cam_id: str, url, **extra):
    return {
        "id": cam_id,
        "url": str(url),
        "fps": 5,
        "signals": [{"id": "main", "source": "api", "stale_after_s": 30}, {"id": "head", "source": "image", "region": HEAD}],
        "zones": [
            {
                "id": "approach",
                "rules": [
                    {"type": "red_light", "stop_line": [[0.1, 0.5], [0.9, 0.5]], "signal": "main"},
                    {"type": "class_event", "classes": ["Fall"], "incident": FALLEN},
                ],
            }
        ],
        **extra,
    }


@pytest.fixture
def client(tmp_path, clip_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'signals.db'}"}, media_dir=clip_path.parent, cameras=[_camera("cam1", clip_path)]
    )
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector()))) as c:
        yield c


def test_push_and_read_signal_states(client):
    before = client.get("/cameras/cam1/signals")
    assert before.status_code == 200
    assert {s["id"]: (s["source"], s["state"]) for s in before.json()}["main"] == ("api", "unknown")
    r = client.put("/cameras/cam1/signals/main", json={"state": "red"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "red" and r.json()["updated_at"] is not None
    states = {s["id"]: s for s in client.get("/cameras/cam1/signals").json()}
    assert states["main"]["state"] == "red" and states["main"]["stale_after_s"] == 30
    # the analyzers read the same board the API writes
    service = running_service(client.app)
    assert service is not None
    assert service.signals.get("cam1", "main", now=time.time(), stale_after_s=30) == "red"
    assert client.put("/cameras/cam1/signals/main", json={"state": "green"}).json()["state"] == "green"
    assert {s["id"]: s["state"] for s in client.get("/cameras/cam1/signals").json()}["main"] == "green"


def test_image_signal_is_reported_after_frames_are_analysed(client):
    # the synthetic clip has no signal head: the reader says unknown, with a time
    def head():
        item = {s["id"]: s for s in client.get("/cameras/cam1/signals").json()}["head"]
        return item if item["updated_at"] else None

    item = wait_until(head)
    assert item["source"] == "image" and item["state"] == "unknown"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/cameras/nope/signals/main", {"state": "red"}, 404),
        ("/cameras/cam1/signals/nope", {"state": "red"}, 404),
        ("/cameras/cam1/signals/main", {"state": "blue"}, 422),
        ("/cameras/cam1/signals/main", {"state": "unknown"}, 422),
        ("/cameras/cam1/signals/main", {}, 422),
        ("/cameras/cam1/signals/main", {"state": "red", "extra": 1}, 422),
        ("/cameras/cam1/signals/head", {"state": "red"}, 409),
    ],
)
def test_push_errors(client, path, body, code):
    r = client.put(path, json=body)
    assert r.status_code == code, r.text
    # nothing was stored by a refused push
    assert {s["id"]: s["state"] for s in client.get("/cameras/cam1/signals").json()}["main"] == "unknown"


def test_list_signals_unknown_camera(client):
    assert client.get("/cameras/nope/signals").status_code == 404


def test_incident_types_lists_builtin_and_configured(client, rtsp_server):
    types = client.get("/incident-types").json()
    by_code = {t["code"]: t for t in types}
    for kind in incident_kinds():
        t = by_code[kind.code]
        assert (t["name_zh"], t["name_en"], t["category"], t["source"]) == (kind.name_zh, kind.name_en, kind.category, "builtin")
    assert by_code["red_light"]["name_zh"] == "闯红灯" and by_code["lane_intrusion"]["category"] == "traffic"
    assert "class_event" not in by_code  # the placeholder kind is not a type
    fallen = by_code["person_fallen"]
    assert fallen == {**FALLEN, "source": "class_event", "cameras": ["cam1"]}
    # a camera added at runtime brings its own class-event type; a repeated code is listed once
    garbage = {"code": "exposed_garbage", "name_zh": "暴露垃圾", "name_en": "exposed garbage", "category": "city_appearance"}
    cam2 = _camera("cam2", rtsp_server.url("cam2"))  # through the API: a network camera
    cam2["zones"][0]["rules"].append({"type": "class_event", "id": "garbage", "classes": ["garbage"], "incident": garbage})
    assert client.post("/cameras", json=cam2).status_code == 201
    types = client.get("/incident-types").json()
    codes = [t["code"] for t in types]
    assert codes.count("person_fallen") == 1 and codes[-2:] == ["exposed_garbage", "person_fallen"]
    by_code = {t["code"]: t for t in types}
    assert by_code["person_fallen"]["cameras"] == ["cam1", "cam2"]
    assert by_code["exposed_garbage"]["category"] == "city_appearance" and by_code["exposed_garbage"]["cameras"] == ["cam2"]
    assert len(types) == len(incident_kinds()) + 2
