"""Patrol statuses on the real app around a real Service: failure reasons name hosts, paths and
server answers, so only an admin reads them in full (viewers, operators and supervisors get
the kind's generic text, as /cameras serves last_error); a plan deleted while GET
/patrol/plans builds its list is left out (no 500); ids starting with ``iot-`` (the IoT
linkage's) cannot be made through the API."""

from __future__ import annotations

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.health import GENERIC_ERRORS
from tests.factories import ParkedCarDetector, local_client, wait_until

# nothing listens on port 9: every visit fails to open, and the reason names host, port and path
CAMERA = {"id": "gate", "url": "rtsp://admin:pw@127.0.0.1:9/Streaming/Channels/101", "watch": "patrol"}
PLAN = {"id": "loop", "select": {"camera_ids": ["gate"]}, "cycles": 0, "min_cycle_s": 0.2, "open_timeout_s": 0.5, "keyframe_timeout_s": 0.5}
ROLES = [("viewer", None), ("operator", None), ("supervisor", None), ("admin", None)]
LEAKS = ("127.0.0.1", "Streaming/Channels", "Refused", "rtsp://")
PUBLIC = {f"open_failed: {GENERIC_ERRORS['open_failed']}", f"open_timeout: {GENERIC_ERRORS['timeout']}", f"error: {GENERIC_ERRORS['error']}"}


@pytest.fixture
def env(tmp_path):
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'reasons.db'}"}, cameras=[CAMERA], patrol_plans=[PLAN])
    service = Service(settings, ParkedCarDetector())
    keys = {role: {"Authorization": f"Bearer {create_key(service.keys, name=role, role=role, unit=unit)[1]}"} for role, unit in ROLES}
    with local_client(create_app(lambda: service)) as client:
        yield client, service, keys


def _reasons(status: dict) -> list[str]:
    last = status["last_cycle"] or {"failed_visits": []}
    return [v["reason"] for v in [*status["failed_this_cycle"], *status["offline"], *last["failed_visits"]]]


def test_failure_reasons_in_full_for_admins_only(env):
    client, _service, keys = env
    assert client.post("/patrol/plans/loop/start", headers=keys["operator"]).status_code == 202
    try:
        def failed() -> dict | None:
            st = client.get("/patrol/plans/loop", headers=keys["admin"]).json()["status"]
            return st if st["offline"] and st["last_cycle"] and st["last_cycle"]["failed_visits"] else None

        full = _reasons(wait_until(failed, timeout=30))
        assert full and all("127.0.0.1" in r for r in full), full  # the admin reads the detail

        for role in ("viewer", "operator", "supervisor"):
            for body in (
                client.get("/patrol/plans/loop", headers=keys[role]).json()["status"],
                next(p for p in client.get("/patrol/plans", headers=keys[role]).json() if p["plan"]["id"] == "loop")["status"],
            ):
                reasons = _reasons(body)
                assert reasons, (role, body)
                assert set(reasons) <= PUBLIC, (role, reasons)
                assert not any(leak in r for r in reasons for leak in LEAKS), (role, reasons)
        # the control answers follow the caller's role too
        for act in ("pause", "resume"):
            op = client.post(f"/patrol/plans/loop/{act}", headers=keys["operator"]).json()
            assert not any(leak in r for r in _reasons(op) for leak in LEAKS), op
        adm = client.post("/patrol/plans/loop/pause", headers=keys["admin"]).json()
        assert all("127.0.0.1" in r for r in _reasons(adm)), adm
    finally:
        stopped = client.post("/patrol/plans/loop/stop", headers=keys["operator"])
    assert stopped.status_code == 200
    assert not any(leak in r for r in _reasons(stopped.json()) for leak in LEAKS)
    assert any("127.0.0.1" in r for r in _reasons(client.get("/patrol/plans/loop", headers=keys["admin"]).json()["status"]))


# the public text → reasons that read so; the last: kinds not known (or none) read as "error"
PUBLIC_OF = {
    "open_failed: cannot open the stream": ["open_failed: cannot open rtsp://***@10.0.0.7:554/Streaming/Channels/101: ConnectionRefusedError"],
    "open_timeout: the stream timed out": ["open_timeout: no RTSP answer from rtsp://10.0.0.7/1 in 5 s"],
    "keyframe_timeout: the stream timed out": ["keyframe_timeout: continuous stream is backoff: 401 Unauthorized from 10.0.0.7"],
    "ended: the stream ended": ["ended"],
    "error: the stream failed": ["error: RuntimeError: model at /srv/models/x.onnx failed", "failed", "10.0.0.7: something new"],
}


@pytest.mark.parametrize("public", sorted(PUBLIC_OF))
def test_public_reason_keeps_only_the_kind(public):
    from gridworker.api.schemas_patrol import public_reason

    assert [public_reason(r) for r in PUBLIC_OF[public]] == [public] * len(PUBLIC_OF[public])


def test_list_leaves_out_a_plan_deleted_meanwhile(env, monkeypatch):
    client, service, keys = env
    boss = keys["supervisor"]
    assert client.put("/patrol/plans/brief", json={"id": "brief", "select": {"camera_ids": ["gate"]}}, headers=boss).status_code == 201
    snapshot = service.patrol.plans

    def plans_then_delete():  # what the IoT linkage does when its watch is done: the plan goes between the two
        plans = snapshot()
        service.patrol.delete_plan("brief")
        return plans

    monkeypatch.setattr(service.patrol, "plans", plans_then_delete)
    r = client.get("/patrol/plans", headers=keys["viewer"])
    assert r.status_code == 200, r.text
    assert [p["plan"]["id"] for p in r.json()] == ["loop"]
    assert client.get("/patrol/plans/brief", headers=keys["viewer"]).status_code == 404


@pytest.mark.parametrize("plan_id", ["iot-gate", "iot-mhc-1"])
def test_iot_prefix_is_reserved(env, plan_id):
    client, service, keys = env
    r = client.put(f"/patrol/plans/{plan_id}", json={"id": plan_id, "select": {"camera_ids": ["gate"]}}, headers=keys["supervisor"])
    assert r.status_code == 422 and "reserved" in r.json()["detail"], r.text
    assert plan_id not in {p.id for p in service.patrol.plans()}
    # other ids that merely contain it are fine
    ok = client.put("/patrol/plans/my-iot-gate", json={"id": "my-iot-gate"}, headers=keys["supervisor"])
    assert ok.status_code == 201, ok.text
