"""A case's position and area in a real Service: from its report, its camera's config, its IoT
device's config; and dispatch to a person survives escalation (re-picked in the upper unit)."""

import time

from gridworker.cases.people import PersonIn
from gridworker.cases.workflow import Actor
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector
from tests.people.conftest import FAST_HASH, PW

AREAS = [
    {"id": "east", "name": "East", "polygon": [[121.50, 31.20], [121.60, 31.20], [121.60, 31.30], [121.50, 31.30]]},
    {"id": "west", "name": "West", "polygon": [[121.40, 31.20], [121.50, 31.20], [121.50, 31.30], [121.40, 31.30]]},
]


def _open(service, source, details=None, type="street_vending"):
    inc = service.store.open(
        camera_id=source, camera_name=source, site="market", zone_id="z", rule_id="r", type=type,
        at=time.time(), count=1, summary="s", details=details or {}, snapshot=None,
    )
    return service.workorders.on_incident_opened(inc)


def test_case_position_from_report_camera_and_device(tmp_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'pos.db'}"},
        cameras=[
            {"id": "east-cam", "url": "rtsp://127.0.0.1:9/x", "watch": "patrol", "position": {"lon": 121.55, "lat": 31.25}},
            {"id": "blind-cam", "url": "rtsp://127.0.0.1:9/y", "watch": "patrol"},
        ],
        iot={"devices": [{"id": "brk-1", "type": "smart_breaker", "longitude": 121.45, "latitude": 31.22},
                         {"id": "brk-2", "type": "smart_breaker"}]},
        areas=AREAS,
        people=FAST_HASH,
    )
    service = Service(settings, ParkedCarDetector())
    service.registry.load()  # the cameras of the config (what start() does first)
    cam = _open(service, "east-cam")
    assert (cam.lon, cam.lat, cam.area) == (121.55, 31.25, "east")
    dev = _open(service, "iot:brk-1")
    assert (dev.lon, dev.lat, dev.area) == (121.45, 31.22, "west")
    report = _open(service, "east-cam", {"position": {"lon": 121.41, "lat": 31.29}})  # the report's own position wins
    assert (report.lon, report.area) == (121.41, "west")
    for source in ("blind-cam", "iot:brk-2", "no-such-camera"):
        o = _open(service, source)
        assert (o.lon, o.lat, o.area) == (None, None, ""), source


def test_escalation_repicks_a_person_in_the_upper_unit(tmp_path):
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'esc.db'}"}, areas=AREAS, people=FAST_HASH)
    service = Service(settings, ParkedCarDetector())
    grid, street = service.people.add(
        [
            PersonIn(username="grid1", name="Grid", unit="community-grid", area="east", role="unit_handler", password=PW),
            PersonIn(username="street1", name="Street", unit="street-enforcement", role="unit_handler", password=PW),
        ]
    )
    case = _open(service, "cam", {"position": {"lon": 121.55, "lat": 31.25}})
    op, sup = Actor("key:op", "operator"), Actor("key:sup", "supervisor")
    assert service.workflow.dispatch(case.incident_id, op, unit="community-grid").assignee == grid.id
    up = service.workflow.escalate(case.incident_id, sup)
    assert (up.unit, up.assignee, up.state) == ("street-enforcement", street.id, "escalated")
    trail = service.workorders.audit(case.incident_id)
    assert trail[-1].details["assignee"] == [grid.id, street.id] and trail[-1].details["assigned_by"] == "load"
    # the grid worker no longer sees it; the street's person does
    assert not grid.actor().sees(up) and street.actor().sees(up)
