"""A flapping device (alarm, restore, alarm, ...) keeps one case: a restore closes the case
only once the alarm has stayed clear for ``iot.restore_hold_s``, and the cases one device may
open are capped per hour (a token bucket; refusals count as ``flapping``). The rules with the
clock passed in, then the real Service (incidents and work orders in SQLite)."""

from __future__ import annotations

import json
import sqlite3
import time

from gridworker.cases.catalogue import load_catalogue
from gridworker.cases.workflow import Actor
from gridworker.cases.workorders import WorkOrderQuery
from gridworker.incidents import IncidentQuery
from gridworker.iot import DeviceConfig, load_mappings
from gridworker.iot.tracker import AlarmTracker
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.vision.rules.base import IncidentKind
from tests.factories import ParkedCarDetector, wait_until

MAPPINGS = load_mappings()
CAT = load_catalogue()
BRK = DeviceConfig(id="brk-1", type="smart_breaker", site="estate-7", heartbeat_s=600)
ALARM = {"msg": "alarm", "code": "E01"}
RESTORE = {"msg": "restore", "code": "E01"}


def _kind(code: str) -> IncidentKind:
    t = CAT.type(code)
    return IncidentKind(t.code, t.name_zh, t.name_en, t.category)


def _msg(body: dict, at: float):
    return MAPPINGS["smart_breaker"].parse(json.dumps(body).encode(), at)


def _seen(reports):
    return [(r.alarm, r.active) for r in reports]


def test_a_flapping_alarm_is_one_case_until_it_stays_clear():
    t = AlarmTracker(MAPPINGS, _kind, clear_after_s=1800.0, missed_heartbeats=3, restore_hold_s=60.0)
    reports = []
    for n in range(50):  # 50 cycles in 50 s
        reports += t.message(BRK, _msg(ALARM, n * 1.0))
        reports += t.message(BRK, _msg(RESTORE, n * 1.0 + 0.5))
        reports += t.tick([BRK], n * 1.0 + 0.9)
    opened = [r for r in reports if r.active and r.details.get("alarm") == "overcurrent"]
    assert not [r for r in reports if not r.active]  # never closed in between
    assert len(opened) == 50 and sum(1 for r in reports if r.snapshot is None) == 50  # one case, updated
    assert t.state("brk-1")[2] == ["overcurrent"]  # still holds during the hold
    assert t.tick([BRK], 49.5 + 59.9) == []
    ended = t.tick([BRK], 49.5 + 60.0)  # clear for the whole hold since the last restore
    assert _seen(ended) == [("overcurrent", False)] and ended[0].at == 49.5 and ended[0].details["ended_by"] == "restored"
    assert t.state("brk-1")[2] == []
    assert _seen(t.message(BRK, _msg(ALARM, 200.0))) == [("overcurrent", True)]  # later: a new case


def test_case_openings_per_device_are_capped_and_held_back_ones_open_later():
    t = AlarmTracker(MAPPINGS, _kind, clear_after_s=1800.0, missed_heartbeats=3, restore_hold_s=0.0, openings_per_hour=3)
    opened = 0
    for n in range(10):  # restores that close at once: each alarm would be a new case
        opened += sum(1 for r in t.message(BRK, _msg(ALARM, n * 10.0)) if r.active)
        t.message(BRK, _msg(RESTORE, n * 10.0 + 5))
    assert opened == 3 and t.refused == 7
    assert t.message(BRK, _msg(ALARM, 100.0)) == [] and t.refused == 8  # held back, still holds at the device
    assert t.tick([BRK], 1000.0) == []  # a token every 1200 s
    late = t.tick([BRK], 1300.0)
    assert _seen(late) == [("overcurrent", True)] and late[0].at == 100.0  # the held-back alarm opens its case
    other = BRK.model_copy(update={"id": "brk-2"})
    assert _seen(t.message(other, _msg(ALARM, 1301.0))) == [("overcurrent", True)]  # per device


def _service(tmp_path, **iot):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'flap.db'}"}, evidence={"clips": False}, pipeline={"incident_write_interval_s": 0.1},
        iot={"devices": [{"id": "brk-1", "type": "smart_breaker", "site": "estate-7"}], **iot},
    )
    service = Service(settings, ParkedCarDetector())
    service.start()
    return service


def _counts(service):
    return service.store.list(IncidentQuery(limit=500))[1], service.workorders.list(WorkOrderQuery(limit=500))[1]


def test_fifty_flaps_in_a_minute_open_one_incident_and_a_real_restore_closes_it_verified(tmp_path):
    # the defaults (restore_hold_s 60, openings_per_hour 12); the service's own clock checks once a
    # minute, so that its ticks (an hour behind the test's clocks) do not interleave with the test's
    service = _service(tmp_path, check_interval_s=60)
    try:
        # both clocks ahead of the service's own: only the ticks below count
        t0, m0 = time.time() + 3600.0, time.monotonic() + 3600.0
        for n in range(50):
            service.iot.handle("gridworker/iot/brk-1/up", json.dumps(ALARM).encode(), now=t0 + n, mono=m0 + n)
            service.iot.handle("gridworker/iot/brk-1/up", json.dumps(RESTORE).encode(), now=t0 + n + 0.5, mono=m0 + n + 0.5)
            service.iot.tick(now=t0 + n + 0.9, mono=m0 + n + 0.9)
        [inc] = wait_until(lambda: service.store.list(IncidentQuery())[0], timeout=5)
        wait_until(lambda: service.workorders.get(inc.id), timeout=5)
        assert _counts(service) == (1, 1) and inc.status == "open"
        boss = Actor("ops", "admin")
        service.workflow.dispatch(inc.id, boss)
        service.workflow.accept(inc.id, boss)
        service.workflow.handle(inc.id, boss, note="breaker replaced")
        for s in range(1, 61):  # the service's clock: a tick a second (a longer step would be a pause, not time)
            service.iot.tick(now=t0 + 49.5 + s, mono=m0 + 49.5 + s)  # at 60 s: clear for the hold since the last restore
        wait_until(lambda: service.store.get(inc.id).status == "closed", timeout=10)
        wait_until(lambda: service.workorders.get(inc.id).state == "closed", timeout=5)
        assert service.workorders.audit(inc.id)[-1].actor == "system:auto-verify"
        assert service.iot.stats()[0] == {"alarm": 50, "restore": 50}
    finally:
        service.stop()
        service.db.close()


def test_openings_beyond_the_cap_count_as_flapping(tmp_path):
    service = _service(tmp_path, restore_hold_s=0, openings_per_hour=2)
    try:
        t0 = time.time() + 3600.0
        for n in range(5):
            service.iot.handle("gridworker/iot/brk-1/up", json.dumps(ALARM).encode(), now=t0 + n)
            service.iot.handle("gridworker/iot/brk-1/up", json.dumps(RESTORE).encode(), now=t0 + n + 0.5)
        wait_until(lambda: _counts(service) == (2, 2), timeout=5)
        assert service.iot.stats()[0] == {"alarm": 2, "flapping": 3, "restore": 5}
        assert b'gridworker_iot_messages_total{outcome="flapping"} 3.0' in service.metrics.render()
    finally:
        service.stop()
        service.db.close()


def test_an_alarm_and_its_restore_sent_while_the_database_is_away_reach_the_case_once_it_is_back(tmp_path, monkeypatch):
    """The tracker moves on as each message arrives (the alarm holds, then it is over); the
    incident writer's database was away, so both writes failed and were given up: the device
    never had a case, and an alarm with no restore after it would have held its case open in
    the tracker's mind only. The reports now wait, in order, and are written once the
    database is back (at the next message or clock check)."""
    service = _service(tmp_path, check_interval_s=60, restore_hold_s=0)
    try:
        manager = service.incidents
        real, down = manager.device_report, {"on": True}

        def writer(report):
            if down["on"]:
                raise sqlite3.OperationalError("database is locked")
            return real(report)

        monkeypatch.setattr(manager, "device_report", writer)
        monkeypatch.setattr("gridworker.iot.service.WRITE_ATTEMPTS", 1)  # no short retries: each failure waits at once
        t0, m0 = time.time() + 3600.0, time.monotonic() + 3600.0
        assert service.iot.handle("gridworker/iot/brk-1/up", json.dumps(ALARM).encode(), now=t0, mono=m0) == "alarm"
        assert service.iot.handle("gridworker/iot/brk-1/up", json.dumps(RESTORE).encode(), now=t0 + 5, mono=m0 + 5) == "restore"
        service.iot.tick(now=t0 + 6, mono=m0 + 6)
        assert _counts(service) == (0, 0) and service.iot.unwritten() == (2, 0)
        assert b"gridworker_iot_unwritten 2.0" in service.metrics.render()
        down["on"] = False
        service.iot.tick(now=t0 + 7, mono=m0 + 7)  # the database is back
        assert service.iot.unwritten() == (0, 0)
        [inc] = service.store.list(IncidentQuery())[0]
        assert inc.status == "closed" and inc.opened_at == t0  # opened at the alarm's time, closed by its restore
        wait_until(lambda: service.workorders.get(inc.id), timeout=5)
    finally:
        service.stop()
        service.db.close()


def test_a_waiting_update_that_can_never_be_written_does_not_block_the_rest(tmp_path, monkeypatch):
    """Only a database that is away keeps an update waiting: any other error would come back at
    every try and hold up every later case, so that one update is dropped (logged) and the
    others are written. A repeat of an open alarm whose write failed is counted once, not once
    per try; a device removed while its updates wait takes them with it."""
    service = _service(tmp_path, check_interval_s=60, restore_hold_s=0)
    try:
        manager = service.incidents
        real, fault = manager.device_report, {"kind": None}

        def writer(report):
            if fault["kind"] == "bug" and report.alarm == "overcurrent" and not report.active:
                raise ValueError("a bug in this one update")
            if fault["kind"] == "down":
                raise sqlite3.OperationalError("database is locked")
            return real(report)

        monkeypatch.setattr(manager, "device_report", writer)
        monkeypatch.setattr("gridworker.iot.service.WRITE_ATTEMPTS", 1)
        t0, m0 = time.time() + 3600.0, time.monotonic() + 3600.0
        send = lambda body, dt: service.iot.handle("gridworker/iot/brk-1/up", json.dumps(body).encode(), now=t0 + dt, mono=m0 + dt)  # noqa: E731
        send(ALARM, 0)  # opens the case
        fault["kind"] = "down"
        for n in range(1, 4):  # three repeats while the database is away, one write each tried again and again
            send(ALARM, n)
            service.iot.tick(now=t0 + n + 0.5, mono=m0 + n + 0.5)
        fault["kind"] = "bug"
        send(RESTORE, 5)  # the repeats are written; the restore fails for good and is dropped
        assert service.iot.unwritten() == (0, 0)
        [inc] = service.store.list(IncidentQuery())[0]
        assert inc.status == "open" and inc.observations == 4  # the alarm and its three repeats, each once
        service.iot.add([BRK.model_copy(update={"id": "brk-9"})])  # a device added at run time
        fault["kind"] = "down"
        service.iot.handle("gridworker/iot/brk-9/up", json.dumps(ALARM).encode(), now=t0 + 6, mono=m0 + 6)  # its alarm waits...
        assert service.iot.unwritten()[0] == 1
        fault["kind"] = None
        service.iot.remove("brk-9")  # ...and goes with the device: nothing reopens for a device that is gone
        assert service.iot.unwritten() == (0, 0)
        assert [i.camera_id for i in service.store.list(IncidentQuery())[0]] == ["iot:brk-1"]
    finally:
        service.stop()
        service.db.close()
