"""The device registry over HTTP (admins only), the CSV import, persistence across a restart
(migration 0003's table), and video linkage: an alarm's case carries the latest analysed
frame of a camera that sees the device."""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.incidents import IncidentQuery
from gridworker.iot import load_mappings
from gridworker.iot.simulate import payload
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import encode_still
from tests.factories import ParkedCarDetector, local_client, wait_until
from tests.iot.conftest import iot_settings

SMK = load_mappings()["smoke_detector"]
CSV = "id,type,name,site,cameras,heartbeat_s\nsmk-1,smoke_detector,2单元烟感,estate-7,,300\nmhc-1,manhole_cover,,road-9,gate;yard,600\n"


def test_devices_are_registered_imported_listed_and_removed_by_admins(tmp_path, bus):
    settings = iot_settings(f"sqlite:///{tmp_path / 'api.db'}", bus)
    service = Service(settings, ParkedCarDetector())
    _, admin = create_key(service.keys, name="ops", role="admin")
    _, viewer = create_key(service.keys, name="wall", role="viewer")
    auth = {"Authorization": f"Bearer {admin}"}
    with local_client(create_app(lambda: service)) as client:
        assert client.get("/devices", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        listed = client.get("/devices", headers=auth).json()
        assert [(d["id"], d["from_file"], d["source"]) for d in listed][:1] == [("brk-1", True, "iot:brk-1")]
        assert listed[0]["longitude"] == 121.47 and listed[0]["offline"] is False and listed[0]["last_seen"]
        types = {t["type"]: t for t in client.get("/devices/types", headers=auth).json()}
        assert {a["catalogue"] for a in types["smart_breaker"]["alarms"]} >= {"iot_breaker_overcurrent", "iot_breaker_arc_fault"}

        r = client.post("/devices", headers=auth, json={"id": "wlv-9", "type": "water_level", "site": "underpass-1", "longitude": 121.5, "latitude": 31.2})
        assert r.status_code == 201 and r.json()["source"] == "iot:wlv-9" and r.json()["from_file"] is False
        assert client.post("/devices", headers=auth, json={"id": "wlv-9", "type": "water_level"}).status_code == 409
        assert client.post("/devices", headers=auth, json={"id": "brk-1", "type": "smart_breaker"}).status_code == 409
        bad_type = client.post("/devices", headers=auth, json={"id": "gas-1", "type": "gas_meter"})
        assert bad_type.status_code == 422 and "no mapping" in bad_type.text
        assert client.post("/devices", headers=auth, json={"id": "x/y", "type": "water_level"}).status_code == 422
        assert client.post("/devices", headers=auth, json={"id": "x", "type": "water_level", "latitude": 91, "longitude": 1}).status_code == 422

        csv_headers = {**auth, "Content-Type": "text/csv"}
        assert client.post("/devices/import", headers={**auth, "Content-Type": "application/json"}, content=CSV).status_code == 415
        bad = client.post("/devices/import", headers=csv_headers, content="id,type,heartbeat_s\nok-1,smoke_detector,300\nbad-1,smoke_detector,-5\n")
        assert bad.status_code == 422 and "line 3" in bad.text and client.get("/devices/ok-1", headers=auth).status_code == 404  # all or none
        twice = client.post("/devices/import", headers=csv_headers, content="id,id,type\nd4,d5,smoke_detector\n")
        assert twice.status_code == 422 and "'id' twice" in twice.text and client.get("/devices/d5", headers=auth).status_code == 404
        r = client.post("/devices/import", headers=csv_headers, content=CSV)
        assert r.status_code == 200 and r.json() == {"imported": 2, "devices": ["smk-1", "mhc-1"]}
        assert client.post("/devices/import", headers=csv_headers, content=CSV).status_code == 409
        assert client.post("/devices/import?replace=true", headers=csv_headers, content=CSV).status_code == 200
        assert client.get("/devices/mhc-1", headers=auth).json()["cameras"] == ["gate", "yard"]

        # an imported device's alarm is a case at once
        bus.publish("smk-1", payload(SMK, "alarm", alarm="smoke", readings={"smoke": 0.4}))
        inc = wait_until(lambda: service.store.list(IncidentQuery())[0], timeout=10)[0]
        assert (inc.camera_id, inc.type, inc.site) == ("iot:smk-1", "iot_smoke_alarm", "estate-7")
        assert client.get("/devices/smk-1", headers=auth).json()["alarms"] == ["smoke"]

        assert client.delete("/devices/brk-1", headers=auth).status_code == 409  # the config file's
        assert client.delete("/devices/nobody", headers=auth).status_code == 404
        assert client.delete("/devices/smk-1", headers=auth).status_code == 204  # its open case closes
        assert service.store.get(inc.id).status == "closed"
        assert client.get("/devices/smk-1", headers=auth).status_code == 404
    service.db.close()

    # a restart: what the API added comes back from the database
    again = Service(settings, ParkedCarDetector())
    again.start()
    try:
        ids = {v.config.id for v in again.iot.views()}
        assert ids == {"brk-1", "brk-2", "wlv-1", "wlv-9", "mhc-1"}
    finally:
        again.stop()
        again.db.close()


def test_an_alarm_case_carries_the_linked_camera_frame(tmp_path, bus, make_service):
    frame = np.full((240, 320, 3), 90, dtype=np.uint8)
    frame[140:220, 120:200] = (200, 40, 40)
    encode_still(frame, tmp_path / "gate.mp4", seconds=4, fps=5)
    settings = iot_settings(f"sqlite:///{tmp_path / 'link.db'}", bus, devices=[
        {"id": "brk-1", "type": "smart_breaker", "cameras": ["nowhere", "gate"]},
        {"id": "brk-2", "type": "smart_breaker", "cameras": ["nowhere"]},
    ])
    settings = Settings(**{**settings.model_dump(), "media_dir": str(tmp_path), "cameras": [{"id": "gate", "url": str(tmp_path / "gate.mp4"), "fps": 5}]})
    service = make_service(settings)
    wait_until(lambda: service.latest_jpeg("gate"), timeout=20)
    bus.publish("brk-1", payload(load_mappings()["smart_breaker"], "alarm", alarm="arc_fault"))
    bus.publish("brk-2", payload(load_mappings()["smart_breaker"], "alarm", alarm="arc_fault"))
    incs = wait_until(lambda: len(service.store.list(IncidentQuery())[0]) == 2 and service.store.list(IncidentQuery())[0], timeout=10)
    by = {i.camera_id: i for i in incs}
    linked = by["iot:brk-1"]
    assert linked.has_snapshot and linked.details["linked_camera"] == "gate"
    assert service.store.snapshot(linked.id)[:2] == b"\xff\xd8"
    assert not by["iot:brk-2"].has_snapshot and by["iot:brk-2"].details["linked_cameras"] == ["nowhere"]


@pytest.mark.rtsp
def test_an_alarm_starts_a_patrol_watch_of_patrol_only_cameras(tmp_path, bus, make_service, rtsp_factory):
    frame = np.full((240, 320, 3), 120, dtype=np.uint8)
    encode_still(frame, tmp_path / "yard.mp4", seconds=4, fps=5)
    srv = rtsp_factory({"yard": tmp_path / "yard.mp4"})
    base = iot_settings(f"sqlite:///{tmp_path / 'watch.db'}", bus, linkage_watch_s=1.0,
                        devices=[{"id": "mhc-1", "type": "manhole_cover", "cameras": ["yard"]}])
    settings = Settings(**{**base.model_dump(), "cameras": [{"id": "yard", "url": srv.url("yard"), "watch": "patrol"}]})
    service = make_service(settings)
    assert service.latest_jpeg("yard") is None  # nobody streams it
    bus.publish("mhc-1", payload(load_mappings()["manhole_cover"], "alarm", alarm="tilt", readings={"tilt": 40.0}))
    inc = wait_until(lambda: service.store.list(IncidentQuery())[0], timeout=10)[0]
    assert inc.type == "iot_manhole_displaced"
    done = wait_until(lambda: (i := service.store.get(inc.id)).has_snapshot and i, timeout=30)
    assert done.details["linked_camera"] == "yard" and done.details["linked_by"] == "patrol watch"
    assert service.store.snapshot(inc.id)[:2] == b"\xff\xd8"
    wait_until(lambda: "iot-mhc-1" not in {p.id for p in service.patrol.plans()}, timeout=10)  # the watch's plan is gone
    assert service.store.patrol_plans.all() == []  # and was never saved
