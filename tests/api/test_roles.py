"""Roles on the service's own routes (cameras, incidents, signals, flows, patrol, types):
with keys in place, each endpoint admits exactly the roles it should — on the real app
around a real Service."""

import time

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client

PLAN = {"id": "am", "name": "Morning", "select": {"camera_ids": ["c1"]}}
CAMERA = {"id": "c9", "url": "rtsp://127.0.0.1:9/none", "watch": "patrol"}


@pytest.fixture
def env(tmp_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'roles.db'}"},
        cameras=[{"id": "c1", "url": "rtsp://user:pw@127.0.0.1:9/x", "watch": "patrol", "signals": [{"id": "s1", "source": "api"}]}],
        patrol_plans=[PLAN],
    )
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for role, unit in [("viewer", None), ("operator", None), ("unit_handler", "traffic-squad"), ("supervisor", None), ("admin", None)]:
        keys[role] = create_key(service.keys, name=role, role=role, unit=unit)[1]
    with local_client(create_app(lambda: service)) as client:
        yield client, service, keys


def _as(keys, role):
    return {"Authorization": f"Bearer {keys[role]}"} if role else {}


# (method, path, body, roles allowed)
ROUTES = [
    ("GET", "/cameras", None, {"viewer", "operator", "supervisor", "admin"}),
    ("GET", "/cameras/c1", None, {"viewer", "operator", "supervisor", "admin"}),
    ("POST", "/cameras", CAMERA, {"admin"}),
    ("GET", "/cameras/c1/signals", None, {"viewer", "operator", "supervisor", "admin"}),
    ("PUT", "/cameras/c1/signals/s1", {"state": "red"}, {"operator", "supervisor", "admin"}),
    ("GET", "/incidents", None, {"viewer", "operator", "supervisor", "admin"}),
    ("GET", "/flows", None, {"viewer", "operator", "supervisor", "admin"}),
    ("GET", "/incident-types", None, {"viewer", "operator", "unit_handler", "supervisor", "admin"}),
    ("GET", "/patrol/plans", None, {"viewer", "operator", "supervisor", "admin"}),
    ("PUT", "/patrol/plans/am", PLAN, {"supervisor", "admin"}),
    ("POST", "/patrol/plans/am/stop", None, {"operator", "supervisor", "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_route_admits_exactly_its_roles(env, method, path, body, allowed):
    client, _service, keys = env
    assert client.request(method, path, json=body).status_code == 401
    for role in ("viewer", "operator", "unit_handler", "supervisor", "admin"):
        if method == "POST" and path == "/cameras":
            client.delete("/cameras/c9", headers=_as(keys, "admin"))
        code = client.request(method, path, json=body, headers=_as(keys, role)).status_code
        if role in allowed:
            assert code < 400, (role, method, path, code)
        else:
            assert code == 403, (role, method, path, code)


def test_health_and_metrics_stay_open(env):
    client, _service, _keys = env
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_unit_handler_sees_evidence_of_own_cases_only(env):
    client, service, keys = env
    ids = []
    for type_ in ("illegal_parking", "crowd"):
        inc = service.store.open(
            camera_id="c1", camera_name="", site="market", zone_id="z", rule_id=type_, type=type_,
            at=time.time(), count=1, summary="x", details={}, snapshot=b"\xff\xd8\xff\xd9",
        )
        ids.append(service.workorders.on_incident_opened(inc))
    mine = [o.incident_id for o in ids if o.unit == "traffic-squad"]
    other = [o.incident_id for o in ids if o.unit != "traffic-squad"]
    assert mine and other, [o.unit for o in ids]
    h = _as(keys, "unit_handler")
    assert client.get(f"/incidents/{mine[0]}", headers=h).status_code == 200
    snap = client.get(f"/incidents/{mine[0]}/snapshot.jpg", headers=h)
    assert snap.status_code == 200 and snap.headers["cache-control"].startswith("private")  # never in a shared cache
    assert client.get(f"/incidents/{other[0]}", headers=h).status_code == 404
    assert client.get(f"/incidents/{other[0]}/snapshot.jpg", headers=h).status_code == 404
    assert client.get("/incidents", headers=h).status_code == 403
