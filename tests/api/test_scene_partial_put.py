"""PUT /cameras/{id}/scene replaces the parts of the scene it sends and keeps the rest: a save
that leaves out filters and riders (as the console's editor does) no longer resets them, and
GET shows them. Real service and app, a real SQLite file (the saved camera is read back after
a restart), the scripted detector.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridworker.api import create_app
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, free_port, local_client

QUAD = [[0.3, 0.5], [0.7, 0.5], [0.9, 0.95], [0.1, 0.95]]
KERB = {"id": "kerb", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], "rules": [{"type": "illegal_parking"}]}
CAMERA: dict[str, Any] = {
    "id": "gate",
    "url": f"rtsp://127.0.0.1:{free_port()}/s",  # nothing listens: the reader retries, the scene is what matters
    "filters": {"confirm": {"hits": 3, "frames": 5}, "min_confidence": {"person": 0.6}},
    "riders": {"enabled": False},
    "masks": [{"id": "osd-clock", "polygon": [[0, 0], [0.4, 0], [0.4, 0.08], [0, 0.08]], "by": "box", "min_overlap": 0.3}],
    "signals": [{"id": "s1", "source": "api"}],
    "calibration": {"image": QUAD, "ground": [[0, 0], [3.5, 0], [3.5, 30], [0, 30]]},
    "zones": [KERB],
}


def _factory(db: Path) -> tuple[dict[str, Service], Callable[[], Service]]:
    settings = Settings(database={"url": f"sqlite:///{db}"}, evidence={"clips": False})
    holder: dict[str, Service] = {}

    def factory() -> Service:
        holder["service"] = Service(settings, ParkedCarDetector())
        return holder["service"]

    return holder, factory


def _kept(cam: dict[str, Any]) -> None:
    """The parts of CAMERA no PUT below sends."""
    assert cam["filters"]["confirm"] == {"hits": 3, "frames": 5} and cam["filters"]["min_confidence"] == {"person": 0.6}
    assert cam["riders"]["enabled"] is False
    assert cam["masks"] == CAMERA["masks"]
    assert [s["id"] for s in cam["signals"]] == ["s1"]


def test_a_scene_put_keeps_what_it_leaves_out_across_a_restart(tmp_path):
    db = tmp_path / "scene.db"
    holder, factory = _factory(db)
    with local_client(create_app(factory)) as client:  # no key yet: a loopback caller is admin
        assert client.post("/cameras", json=CAMERA).status_code == 201
        cam = client.get("/cameras/gate").json()
        _kept(cam)  # GET shows filters and riders too

        # what the console's editor sends: the drawn parts, as it read them; filters and riders left out
        editor = {k: cam[k] for k in ("zones", "masks", "lines", "signals", "calibration")}
        r = client.put("/cameras/gate/scene", json=editor)
        assert r.status_code == 200, r.text
        _kept(r.json()["camera"])

        # zones alone, with a red-light rule on the camera's signal and a speeding rule on its calibration
        red = {"type": "red_light", "stop_line": [[0, 0.6], [1, 0.6]], "signal": "s1"}
        road = {"id": "road", "polygon": QUAD, "rules": [red, {"type": "speeding", "max_speed_kmh": 40}]}
        r = client.put("/cameras/gate/scene", json={"zones": [road]})
        assert r.status_code == 200, r.text
        cam = r.json()["camera"]
        assert [z["id"] for z in cam["zones"]] == ["road"] and cam["calibration"]["ground"][2] == [3.5, 30]
        _kept(cam)

        # references are checked on the whole scene: a signal the camera does not have, or
        # removing the calibration a rule needs, is refused in words, and nothing changes
        r = client.put("/cameras/gate/scene", json={"zones": [{**road, "rules": [{**red, "signal": "nope"}]}]})
        assert r.status_code == 422 and "signal 'nope' is not configured" in r.text, r.text
        r = client.put("/cameras/gate/scene", json={"calibration": None})
        assert r.status_code == 422 and "calibration" in r.text, r.text
        assert [z["id"] for z in client.get("/cameras/gate").json()["zones"]] == ["road"]

        # a part sent replaces the camera's whole part
        r = client.put("/cameras/gate/scene", json={"filters": {"min_confidence": {"car": 0.5}}, "zones": [KERB], "calibration": None})
        assert r.status_code == 200, r.text
        cam = r.json()["camera"]
        assert cam["filters"]["min_confidence"] == {"car": 0.5} and cam["filters"]["confirm"] is None
        assert cam["calibration"] is None and cam["riders"]["enabled"] is False and cam["masks"] == CAMERA["masks"]
        # the analysis runs with it
        assert holder["service"].registry.view("gate").config.filters.min_confidence == {"car": 0.5}

    holder, factory = _factory(db)
    with local_client(create_app(factory)) as client:  # restarted: the saved camera as last edited
        cam = client.get("/cameras/gate").json()
        assert cam["filters"]["min_confidence"] == {"car": 0.5} and cam["riders"]["enabled"] is False
        assert cam["masks"] == CAMERA["masks"] and [z["id"] for z in cam["zones"]] == ["kerb"] and cam["calibration"] is None
