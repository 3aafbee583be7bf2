"""End to end on real parts: Debian's RTSP server → PyAV → the embedded SSD model → tracker →
dwell rule → incident in SQLite → API, and still there after a restart."""

import time

import cv2
import numpy as np
import pytest

from gridworker.api import create_app
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import encode_still
from tests.factories import bus_photo, local_client, wait_until

pytestmark = [pytest.mark.rtsp, pytest.mark.model]


@pytest.fixture(scope="module")
def bus_clip(tmp_path_factory):
    return encode_still(bus_photo(), tmp_path_factory.mktemp("e2e") / "bus_still.mp4", seconds=6, fps=10)


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig())




def test_rtsp_to_stored_incident_survives_restart(tmp_path, bus_clip, detector, rtsp_factory):
    server = rtsp_factory({"bus": bus_clip, "bus2": bus_clip})
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'e2e.db'}"},
        cameras=[
            {
                "id": "bus-stop",
                "name": "Bus stop",
                "site": "transport hub",
                "url": server.url("bus"),
                "fps": 4,
                "zones": [
                    {
                        "id": "no-parking",
                        "polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 0.85], [0.0, 0.85]],
                        "rules": [{"type": "dwell", "classes": ["bus"], "min_duration_s": 3, "clear_after_s": 30}],
                    }
                ],
            }
        ],
    )
    with local_client(create_app(lambda: Service(settings, detector))) as client:
        page = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p)
        inc = page["items"][0]
        assert inc["type"] == "dwell" and inc["camera_id"] == "bus-stop" and inc["status"] == "open"
        assert inc["details"]["stationary_s"] >= 3 and inc["details"]["object"]  # one incident per bus
        snap = client.get(inc["snapshot_url"])
        assert snap.status_code == 200
        img = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[:2] == (1080, 810)
        # the same bus keeps the same incident open
        time.sleep(2.0)
        assert client.get("/incidents").json()["total"] == 1
        cam = client.get("/cameras/bus-stop").json()
        assert cam["health"]["state"] == "live" and cam["frames_analysed"] > 5

        # a camera added through the API starts producing frames
        r = client.post("/cameras", json={"id": "added", "url": server.url("bus2"), "fps": 2})
        assert r.status_code == 201, r.text
        wait_until(lambda: client.get("/cameras/added").json()["frames_analysed"] >= 2)
        assert client.get("/cameras/added/frame.jpg").status_code == 200
        first_id = inc["id"]

    # restart on the same database: the incident is still there (and still the open one),
    # the API-added camera came back
    with local_client(create_app(lambda: Service(settings, detector))) as client:
        page = client.get("/incidents").json()
        assert page["total"] == 1 and page["items"][0]["id"] == first_id
        assert client.get(f"/incidents/{first_id}/snapshot.jpg").status_code == 200
        assert {c["id"] for c in client.get("/cameras").json()} == {"bus-stop", "added"}
        wait_until(lambda: client.get("/cameras/bus-stop").json()["frames_analysed"] > 20)
        page = client.get("/incidents").json()
        assert page["total"] == 1 and page["items"][0]["status"] == "open", "no duplicate incident after restart"
