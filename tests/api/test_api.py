"""The HTTP API on a running service (real stream reader, real SQLite, scripted detector)."""

import logging
import time

import cv2
import numpy as np
import pytest

from gridworker.api import create_app
from gridworker.service import Service
from gridworker.settings import Settings

from tests.factories import ParkedCarDetector, local_client, wait_until

ZONES = [
    {
        "id": "no-parking",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        "rules": [{"type": "dwell", "min_duration_s": 1.0, "clear_after_s": 2.0}],
    }
]


def _settings(tmp_path, clip_path):
    return Settings(
        database={"url": f"sqlite:///{tmp_path / 'api.db'}"},
        media_dir=clip_path.parent,  # the config file may play video files from here
        cameras=[{"id": "cam1", "name": "Gate", "site": "school", "url": str(clip_path), "fps": 5, "zones": ZONES}],
    )




@pytest.fixture
def client(tmp_path, clip_path):
    settings = _settings(tmp_path, clip_path)
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector()))) as c:
        yield c


def test_incident_flow_and_snapshot(client):
    wait_until(lambda: client.get("/cameras").json()[0]["health"]["state"] == "live")
    page = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p)
    inc = page["items"][0]
    assert inc["type"] == "dwell" and inc["camera_id"] == "cam1" and inc["status"] == "open" and inc["site"] == "school"
    snap = client.get(inc["snapshot_url"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (240, 320)
    assert client.get(f"/incidents/{inc['id']}").json()["id"] == inc["id"]
    frame = client.get("/cameras/cam1/frame.jpg")
    assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
    # one open incident per camera + zone + rule, however long the car stays
    time.sleep(1.5)
    assert client.get("/incidents", params={"status": "open"}).json()["total"] == 1
    health = client.get("/health").json()
    assert health["cameras"] == 1 and health["open_incidents"] == 1
    metrics = client.get("/metrics").text
    assert 'gridworker_incidents_opened_total{type="dwell"} 1.0' in metrics
    assert "gridworker_camera_analysed_fps" in metrics and "gridworker_inference_seconds_bucket" in metrics
    assert 'gridworker_camera_up{camera="cam1",state="live"} 1.0' in metrics


def test_filters_and_pagination(client):
    wait_until(lambda: client.get("/incidents").json()["total"])
    assert client.get("/incidents", params={"camera_id": "nope"}).json()["total"] == 0
    assert client.get("/incidents", params={"type": "crowd"}).json()["total"] == 0
    assert client.get("/incidents", params={"type": "dwell", "status": "open"}).json()["total"] == 1
    assert client.get("/incidents", params={"since": "2100-01-01T00:00:00Z"}).json()["total"] == 0
    assert client.get("/incidents", params={"until": "2000-01-01T00:00:00Z"}).json()["total"] == 0
    page = client.get("/incidents", params={"limit": 1, "offset": 1}).json()
    assert page["items"] == [] and page["total"] == 1 and page["limit"] == 1


def test_add_and_remove_camera_at_runtime(client, rtsp_server):
    body = {"id": "cam2", "name": "Added", "url": rtsp_server.url("cam"), "fps": 5}
    r = client.post("/cameras", json=body)
    assert r.status_code == 201, r.text
    assert client.post("/cameras", json=body).status_code == 409
    wait_until(lambda: client.get("/cameras/cam2").json()["frames_analysed"] > 3)
    assert client.get("/cameras/cam2/frame.jpg").status_code == 200
    assert {c["id"] for c in client.get("/cameras").json()} == {"cam1", "cam2"}
    assert client.delete("/cameras/cam2").status_code == 204
    assert client.get("/cameras/cam2").status_code == 404
    assert client.delete("/cameras/cam2").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code", "reason"),
    [
        ("post", "/cameras", {"json": {"id": "x"}}, 422, "url"),
        ("post", "/cameras", {"json": {"id": "bad id!", "url": "rtsp://h/s"}}, 422, "id"),
        ("post", "/cameras", {"json": {"id": "x", "url": "ftp://h/s"}}, 422, "unsupported URL scheme"),
        ("post", "/cameras", {"json": {"id": "x", "url": "rtsp://h/s", "fps": 0}}, 422, "fps"),
        ("post", "/cameras", {"json": {"id": "x", "url": "rtsp://h/s", "zones": [{"id": "z", "polygon": [[0, 0], [2, 0], [1, 1]]}]}}, 422, "outside 0..1"),
        ("post", "/cameras", {"content": b"not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ("get", "/cameras/nope", {}, 404, "no camera"),
        ("get", "/cameras/nope/frame.jpg", {}, 404, "no camera"),
        ("get", "/incidents/999999", {}, 404, "no incident"),
        ("get", "/incidents/0", {}, 422, "greater than or equal"),
        ("get", "/incidents/abc", {}, 422, "integer"),
        ("get", "/incidents/999999/snapshot.jpg", {}, 404, "no snapshot"),
        ("get", "/incidents", {"params": {"status": "weird"}}, 422, "status"),
        ("get", "/incidents", {"params": {"limit": 0}}, 422, "limit"),
        ("get", "/incidents", {"params": {"limit": 100000}}, 422, "limit"),
        ("get", "/incidents", {"params": {"since": "yesterday"}}, 422, "since"),
        ("get", "/incidents", {"params": {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}}, 422, "after"),
    ],
)
def test_bad_requests_get_4xx_with_reason(client, method, path, kwargs, code, reason):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == code, r.text
    assert reason in r.text


def test_password_never_in_api_output_or_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"id": "secretcam", "url": "rtsp://admin:Hunter2pw@127.0.0.1:9/stream", "fps": 1}
    r = client.post("/cameras", json=body)
    assert r.status_code == 201
    assert "Hunter2pw" not in r.text
    wait_until(lambda: client.get("/cameras/secretcam").json()["health"]["state"] in ("backoff", "connecting"))
    time.sleep(1.0)
    for path in ("/cameras", "/cameras/secretcam", "/metrics", "/health"):
        assert "Hunter2pw" not in client.get(path).text
    assert caplog.records, "the reader logs its reconnects"
    assert not [r for r in caplog.records if "Hunter2pw" in r.getMessage()]
