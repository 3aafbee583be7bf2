"""PUT /cameras/{id}/scene on a running service (real stream reader, real SQLite, scripted
detector): applied without a restart, roles, clear 404/422s, saved for API-added cameras
only (config-file cameras keep the edit until restart)."""

from __future__ import annotations

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client, wait_until

PARKING = {
    "id": "kerb",
    "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
    "rules": [{"type": "illegal_parking", "classes": ["car"], "min_duration_s": 0.5, "clear_after_s": 5}],
}


def _scene(**parts):
    return {"zones": [], "masks": [], "lines": [], "signals": [], "calibration": None, **parts}


@pytest.fixture
def make_client(tmp_path, clip_path):
    keys: dict[str, str] = {}

    def make(extra_cameras=()):
        settings = Settings(
            database={"url": f"sqlite:///{tmp_path / 'scene.db'}"},
            media_dir=clip_path.parent,
            cameras=[{"id": "cam1", "url": str(clip_path), "fps": 5}, *extra_cameras],
            evidence={"clips": False},
        )

        def factory():
            service = Service(settings, ParkedCarDetector())
            if not keys:
                for role in ("admin", "supervisor", "operator"):
                    keys[role] = create_key(service.keys, name=role, role=role)[1]
            return service

        return local_client(create_app(factory))

    make.keys = keys
    return make


def _h(keys, role):
    return {"Authorization": f"Bearer {keys[role]}"}


def test_scene_applied_without_restart_and_kept_until_restart(make_client, clip_path):
    with make_client() as client:
        sup = _h(make_client.keys, "supervisor")
        assert client.get("/incidents", headers=sup).json()["total"] == 0
        r = client.put("/cameras/cam1/scene", json=_scene(zones=[PARKING], lines=[{"id": "in", "points": [[0, 0.5], [1, 0.5]]}]), headers=sup)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["persisted"] is False  # a config-file camera: the file stays the source of truth
        assert [z["id"] for z in body["camera"]["zones"]] == ["kerb"]
        assert client.get("/cameras/cam1", headers=sup).json()["lines"][0]["id"] == "in"
        # the running analysis uses it at once: the parked car in the new zone opens an incident
        page = wait_until(lambda: (p := client.get("/incidents", headers=sup).json())["total"] and p)
        assert page["items"][0]["zone_id"] == "kerb" and page["items"][0]["type"] == "illegal_parking"
        # the console's feed: the case's audit log as server-sent events, resumable
        case = page["items"][0]["id"]
        feed = client.get("/console/events", params={"after": 0, "max_s": 1}, headers=sup).text
        assert feed.startswith("retry: ") and f'"incident_id":{case}' in feed and "\nid: 1\n" in "\n" + feed
        client.post(f"/workorders/{case}/dispatch", json={}, headers=sup)
        resumed = client.get("/console/events", params={"max_s": 1}, headers={**sup, "Last-Event-ID": "1"}).text
        assert "id: 1\n" not in resumed and '"action":"dispatch"' in resumed
        # removing the zone closes its incident
        assert client.put("/cameras/cam1/scene", json=_scene(), headers=sup).status_code == 200
        wait_until(lambda: client.get("/incidents", params={"status": "open"}, headers=sup).json()["total"] == 0)
        assert client.put("/cameras/cam1/scene", json=_scene(zones=[PARKING]), headers=sup).status_code == 200
    with make_client() as client:  # restarted: the config file's (empty) scene again
        assert client.get("/cameras/cam1", headers=_h(make_client.keys, "admin")).json()["zones"] == []


def test_scene_of_an_api_added_camera_survives_a_restart(make_client, rtsp_server):
    with make_client() as client:
        admin = _h(make_client.keys, "admin")
        body = {"id": "added", "url": rtsp_server.url("cam"), "fps": 2, "name": "Added"}  # the API takes network cameras
        assert client.post("/cameras", json=body, headers=admin).status_code == 201
        r = client.put("/cameras/added/scene", json=_scene(zones=[PARKING], masks=[{"id": "sky", "polygon": [[0, 0], [1, 0], [1, 0.2]]}]), headers=admin)
        assert r.status_code == 200 and r.json()["persisted"] is True
    with make_client() as client:
        cam = client.get("/cameras/added", headers=_h(make_client.keys, "admin")).json()
        assert [z["id"] for z in cam["zones"]] == ["kerb"] and [m["id"] for m in cam["masks"]] == ["sky"]
        assert cam["name"] == "Added" and cam["fps"] == 2  # the rest of the camera is untouched


@pytest.mark.parametrize(
    ("role", "camera", "scene", "status", "says"),
    [
        ("supervisor", "nope", _scene(), 404, "no camera 'nope'"),
        ("supervisor", "cam1", _scene(zones=[{"id": "z", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]), 422, "outside 0..1"),
        ("supervisor", "cam1", _scene(zones=[{"id": "z", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]), 422, "no area"),
        ("supervisor", "cam1", _scene(zones=[PARKING, PARKING]), 422, "repeated"),
        ("supervisor", "cam1", _scene(zones=[{**PARKING, "rules": [{"type": "teleport"}]}]), 422, "teleport"),
        ("supervisor", "cam1", _scene(zones=[{**PARKING, "rules": [{"type": "wrong_way", "direction": [0, 0]}]}]), 422, "non-zero"),
        (
            "supervisor",
            "cam1",
            _scene(zones=[{**PARKING, "rules": [{"type": "red_light", "stop_line": [[0, 0.5], [1, 0.5]], "signal": "s1"}]}]),
            422,
            "signal 's1' is not configured",
        ),
        ("supervisor", "cam1", {**_scene(), "url": "rtsp://elsewhere/x"}, 422, "Extra inputs"),
        ("operator", "cam1", _scene(), 403, "may not"),
        (None, "cam1", _scene(), 401, "API key"),
    ],
    ids=["unknown-camera", "outside-frame", "no-area", "duplicate-zone", "unknown-rule", "zero-direction", "red-light-no-signal", "not-a-scene-field", "operator", "no-key"],
)
def test_scene_errors(make_client, role, camera, scene, status, says):
    with make_client() as client:
        before = client.get("/cameras/cam1", headers=_h(make_client.keys, "admin")).json()
        headers = _h(make_client.keys, role) if role else {}
        r = client.put(f"/cameras/{camera}/scene", json=scene, headers=headers)
        assert r.status_code == status, r.text
        assert says in r.text
        assert client.get("/cameras/cam1", headers=_h(make_client.keys, "admin")).json()["zones"] == before["zones"]


def test_auth_me_and_console_files(make_client):
    with make_client() as client:
        assert client.get("/auth/me").status_code == 401
        me = client.get("/auth/me", headers=_h(make_client.keys, "operator")).json()
        assert me["role"] == "operator" and me["auth_required"] is True
        assert set(me["actions"]) == {"dispatch", "close", "reject"}
        assert me["may"] == {"wall": True, "patrol": True, "patrol_control": True, "edit_scene": False}
        assert client.get("/auth/me", headers=_h(make_client.keys, "supervisor")).json()["may"]["edit_scene"] is True
        r = client.get("/", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/console/"
        page = client.get("/console/")  # public: the files hold no data; every call they make needs the key
        assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
        assert client.get("/console/app.js").headers["content-type"].startswith("text/javascript")
