"""``GET /map`` on a real service (patrol-only cameras with positions, no stream opened) and the
basemap's settings: positions converted for a GCJ-02 basemap (cameras, cases, areas), open
cases with a position only, newest first within ``limit``, a unit handler's own cases and no
cameras; tile URLs that are not plain http(s) templates are refused; the console's CSP admits
the tile server's origin for images only."""

from __future__ import annotations

import time
from contextlib import nullcontext

import pytest
from pydantic import ValidationError

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.security import CSP, SecurityPolicy
from gridworker.cases.basemap import MapConfig
from gridworker.cases.places import Position, wgs84_to_gcj02
from gridworker.cases.workflow import Actor
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client

GATE = Position(lon=121.4737, lat=31.2304)
MARKET = Position(lon=121.4857, lat=31.2244)
AREA = [[121.465, 31.225], [121.49, 31.225], [121.49, 31.24]]
BOSS = Actor("boss", "supervisor")


@pytest.fixture
def live(tmp_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'map.db'}"},
        cameras=[
            {"id": "gate", "site": "school", "url": "rtsp://127.0.0.1:9/none", "watch": "patrol", "position": GATE.model_dump()},
            {"id": "market", "site": "market", "url": "rtsp://127.0.0.1:9/none", "watch": "patrol", "position": MARKET.model_dump()},
            {"id": "nowhere", "site": "market", "url": "rtsp://127.0.0.1:9/none", "watch": "patrol"},
        ],
        areas=[{"id": "grid-7", "name": "第七网格", "polygon": AREA}],
        console={"map": {"tiles_url": "http://127.0.0.1:8099/{z}/{x}/{y}.png", "crs": "gcj02"}},
    )
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for name, role, unit in [("viewer", "viewer", None), ("grid", "unit_handler", "community-grid")]:
        keys[name] = create_key(service.keys, name=name, role=role, unit=unit)[1]
    with local_client(create_app(lambda: service)) as client:
        yield client, service, keys


def _h(keys, who):
    return {"Authorization": f"Bearer {keys[who]}"}


def _case(service, camera_id, type_="illegal_parking", at=None):
    inc = service.store.open(
        camera_id=camera_id, camera_name=camera_id, site="x", zone_id="z", rule_id="r", type=type_,
        at=time.time() if at is None else at, count=1, summary="s", details={}, snapshot=None,
    )
    return service.workorders.on_incident_opened(inc).incident_id


def _close(a: dict, b: Position) -> bool:
    return abs(a["lon"] - b.lon) < 1e-9 and abs(a["lat"] - b.lat) < 1e-9


def test_positions_are_converted_for_a_gcj02_basemap_and_only_open_positioned_cases_show(live):
    client, service, keys = live
    now = time.time()
    parked = _case(service, "gate", at=now - 60)
    vending = _case(service, "market", "street_vending", at=now - 30)
    unplaced = _case(service, "nowhere", at=now - 20)
    rejected = _case(service, "gate", at=now - 10)
    service.workflow.reject(rejected, BOSS, note="false alarm")
    got = client.get("/map", headers=_h(keys, "viewer"))
    assert got.status_code == 200, got.text
    m = got.json()
    assert m["basemap"]["crs"] == "gcj02" and m["basemap"]["tiles_url"].startswith("http://127.0.0.1:8099/")
    cams = {c["id"]: c for c in m["cameras"]}
    assert set(cams) == {"gate", "market"}  # "nowhere" has no position
    assert _close(cams["gate"]["position"], wgs84_to_gcj02(GATE)) and not _close(cams["gate"]["position"], GATE)
    assert cams["gate"]["state"] == "stopped" and cams["gate"]["patrol_only"] is True
    cases = {c["incident_id"]: c for c in m["cases"]}
    assert list(cases) == [vending, parked]  # newest first; no position and rejected: not on the map
    assert unplaced not in cases and rejected not in cases
    assert _close(cases[parked]["position"], wgs84_to_gcj02(GATE)) and cases[parked]["grade"] >= 1 and cases[parked]["state"] == "detected"
    assert _close(m["areas"][0]["polygon"][0], wgs84_to_gcj02(Position(lon=AREA[0][0], lat=AREA[0][1])))
    assert [s["site"] for s in m["sites"]] == ["market", "school"]
    school = m["sites"][1]
    assert school["south_west"]["lon"] < cams["gate"]["position"]["lon"] < school["north_east"]["lon"]
    # the CSP of every answer admits the tile server for images, nothing else from it
    csp = got.headers["content-security-policy"]
    assert "img-src 'self' data: blob: http://127.0.0.1:8099;" in csp and csp.count("8099") == 1


def test_limit_and_unit_handler(live):
    client, service, keys = live
    now = time.time()
    ids = [_case(service, "gate", at=now - 100 + i) for i in range(4)]
    vending = _case(service, "market", "street_vending", at=now)  # routed to community-grid
    m = client.get("/map", params={"limit": 2}, headers=_h(keys, "viewer")).json()
    assert [c["incident_id"] for c in m["cases"]] == [vending, ids[-1]] and m["truncated"] is True
    assert client.get("/map", params={"limit": 5}, headers=_h(keys, "viewer")).json()["truncated"] is False
    for bad in (0, 5001, "all"):
        assert client.get("/map", params={"limit": bad}, headers=_h(keys, "viewer")).status_code == 422
    mine = client.get("/map", headers=_h(keys, "grid")).json()
    units = {c["unit"] for c in mine["cases"]}
    assert units == {"community-grid"} and mine["cameras"] == [] and mine["sites"] == []
    assert client.get("/map").status_code == 401


@pytest.mark.parametrize(
    "config, ok",
    [
        ({"tiles_url": "https://tiles.example.org/{z}/{x}/{y}.png"}, True),
        ({"tiles_url": "http://10.1.2.3:8080/tiles/{z}/{x}/{y}.png", "crs": "gcj02", "max_zoom": 19}, True),
        ({}, True),
        ({"tiles_url": "ftp://tiles.example.org/{z}/{x}/{y}.png"}, False),
        ({"tiles_url": "https://user:pw@tiles.example.org/{z}/{x}/{y}.png"}, False),
        ({"tiles_url": "https://tiles.example.org/{z}/{x}.png"}, False),
        ({"tiles_url": "https://tiles.example.org/{z}/{x}/{y}.png'; script-src *"}, False),
        ({"tiles_url": "https://tiles.example.org:99999/{z}/{x}/{y}.png"}, False),
        ({"tiles_url": "https://tiles example.org/{z}/{x}/{y}.png"}, False),
        ({"crs": "bd09"}, False),
        ({"min_zoom": 12, "max_zoom": 10}, False),
        ({"tiles_url": "https://t.example.org/{z}/{x}/{y}.png", "bogus": 1}, False),
    ],
)
def test_basemap_settings(config, ok):
    with nullcontext() if ok else pytest.raises(ValidationError):
        cfg = MapConfig(**config)
        if "tiles_url" in config:
            assert cfg.tile_origin() is not None and "{" not in cfg.tile_origin()
        # without tiles nothing is converted, whatever crs says
        assert MapConfig(crs="gcj02").display(GATE) == GATE


def test_csp_admits_only_a_plain_tile_origin():
    assert SecurityPolicy().csp() == CSP
    policy = SecurityPolicy.of(server_host=None, allowed_hosts=[], allowed_origins=[], keys=None, tile_origin="https://tiles.example.org")
    assert "img-src 'self' data: blob: https://tiles.example.org;" in policy.csp()
    assert policy.csp().replace(" https://tiles.example.org", "") == CSP
    for hostile in ("https://x.org; script-src *", "javascript:alert(1)", "https://x.org/path"):
        p = SecurityPolicy.of(server_host=None, allowed_hosts=[], allowed_origins=[], keys=None, tile_origin=hostile)
        assert p.csp() == CSP, hostile
