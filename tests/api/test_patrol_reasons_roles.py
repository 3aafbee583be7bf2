"""Patrol statuses on the real app around a real Service: failure reasons name hosts, paths and
server answers, so only an admin reads them in full (viewers, operators and supervisors get
the generic text of the failure's error_kind, never anything read from the reason's text, as
/cameras serves last_error); a plan deleted while GET
/patrol/plans builds its list is left out (no 500); ids starting with ``iot-`` (the IoT
linkage's) cannot be made through the API."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.schemas_patrol import PUBLIC_TEXTS, public_text
from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import CycleSummary, FailedVisit, OfflineCamera
from gridworker.patrol.manager import idle_status
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.glance import GlanceErrorKind
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


def _failures(status: dict) -> list[dict]:
    last = status["last_cycle"] or {"failed_visits": []}
    return [*status["failed_this_cycle"], *status["offline"], *last["failed_visits"]]


def _reasons(status: dict) -> list[str]:
    return [v["reason"] for v in _failures(status)]


def test_failure_reasons_in_full_for_admins_only(env):
    client, _service, keys = env
    assert client.post("/patrol/plans/loop/start", headers=keys["operator"]).status_code == 202
    try:
        def failed() -> dict | None:
            st = client.get("/patrol/plans/loop", headers=keys["admin"]).json()["status"]
            return st if st["offline"] and st["last_cycle"] and st["last_cycle"]["failed_visits"] else None

        admin = _failures(wait_until(failed, timeout=30))
        full = [f["reason"] for f in admin]
        assert full and all("127.0.0.1" in r for r in full), full  # the admin reads the detail
        assert all(f["error_kind"] in ("open_failed", "open_timeout") for f in admin), admin  # and the visit's kind

        for role in ("viewer", "operator", "supervisor"):
            for body in (
                client.get("/patrol/plans/loop", headers=keys[role]).json()["status"],
                next(p for p in client.get("/patrol/plans", headers=keys[role]).json() if p["plan"]["id"] == "loop")["status"],
            ):
                reasons = _reasons(body)
                assert reasons, (role, body)
                assert set(reasons) <= PUBLIC, (role, reasons)
                assert all(f["reason"] == public_text(f["error_kind"]) for f in _failures(body)), (role, body)
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


# (camera, the record's reason, its error_kind) → what a non-admin reads: chosen from the kind only
CRAFTED = [
    # a continuous camera's reason: its text starts with no kind at all
    ("yard", "continuous stream is stalled: 401 Unauthorized from 10.0.0.7", "keyframe_timeout", "keyframe_timeout: the stream timed out"),
    # the text starts like another kind than the visit's
    ("gate", "open_timeout: no RTSP answer from rtsp://10.0.0.7/Streaming/Channels/101", "open_failed", "open_failed: cannot open the stream"),
    ("dock", "ended: rtsp://10.0.0.7/1 ended", "error", "error: the stream failed"),
    ("pier", "error: RuntimeError at 10.0.0.7", "open_timeout", "open_timeout: the stream timed out"),
    ("mill", "keyframe_timeout: 10.0.0.7", "ended", "ended: the stream ended"),
    # a kind not known, or none: the one generic text, whatever the reason says
    ("silo", "open_failed: cannot open rtsp://10.0.0.7/1", "martian: rtsp://10.0.0.7", "error: the stream failed"),
    ("barn", "open_failed: cannot open rtsp://10.0.0.7/1", None, "error: the stream failed"),
]


def _crafted_status(plan_id: str):
    visits = tuple(FailedVisit(cid, reason, kind) for cid, reason, kind, _ in CRAFTED)
    offline = tuple(OfflineCamera(cid, reason, 3, 1.7e9, 9, error_kind=kind) for cid, reason, kind, _ in CRAFTED)
    last = CycleSummary(4, len(CRAFTED), 0, len(CRAFTED), 0, 1.5, visits)
    return replace(idle_status(PatrolPlan(id=plan_id)), failed_this_cycle=visits, offline=offline, last_cycle=last, failed=len(CRAFTED))


def test_public_text_follows_error_kind_not_the_reason(env, monkeypatch):
    client, service, keys = env
    monkeypatch.setattr(service.patrol, "status", _crafted_status)
    expected = {cid: (public, kind if kind in PUBLIC_TEXTS else "error") for cid, _, kind, public in CRAFTED}
    for role in ("viewer", "operator", "supervisor"):
        for body in (
            client.get("/patrol/plans/loop", headers=keys[role]).json()["status"],
            next(p for p in client.get("/patrol/plans", headers=keys[role]).json() if p["plan"]["id"] == "loop")["status"],
        ):
            failures = _failures(body)
            assert len(failures) == 3 * len(CRAFTED), (role, body)
            for f in failures:
                assert (f["reason"], f["error_kind"]) == expected[f["camera_id"]], (role, f)
            assert not any("10.0.0.7" in f["reason"] or "martian" in str(f["error_kind"]) for f in failures), (role, failures)
    # the admin reads every record as it is
    admin = _failures(client.get("/patrol/plans/loop", headers=keys["admin"]).json()["status"])
    assert sorted((f["camera_id"], f["reason"], f["error_kind"]) for f in admin) == sorted([(c, r, k) for c, r, k, _ in CRAFTED] * 3)


def test_every_glance_error_kind_has_its_public_text():
    assert set(PUBLIC_TEXTS) == set(get_args(GlanceErrorKind))
    assert {public_text(k) for k in ("open_timeout", "keyframe_timeout")} == {
        "open_timeout: the stream timed out", "keyframe_timeout: the stream timed out"
    }
    assert public_text(None) == public_text("not a kind") == f"error: {GENERIC_ERRORS['error']}"


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
