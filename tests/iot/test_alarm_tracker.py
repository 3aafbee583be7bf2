"""The alarm rules without a broker: messages and time in, reports out (``now`` is passed in)."""

from __future__ import annotations

import json

from gridworker.cases.catalogue import load_catalogue
from gridworker.iot import DeviceConfig, load_mappings
from gridworker.iot.tracker import AlarmTracker
from gridworker.vision.rules.base import IncidentKind

MAPPINGS = load_mappings()
CAT = load_catalogue()
BRK = DeviceConfig(id="brk-1", type="smart_breaker", name="3号楼电箱", site="estate-7", heartbeat_s=10, cameras=["gate"])


def _kind(code: str) -> IncidentKind:
    t = CAT.type(code)
    return IncidentKind(t.code, t.name_zh, t.name_en, t.category)


def _tracker(**kw) -> AlarmTracker:
    return AlarmTracker(MAPPINGS, _kind, clear_after_s=60.0, missed_heartbeats=3, **kw)


def _msg(body: dict, at: float):
    return MAPPINGS["smart_breaker"].parse(json.dumps(body).encode(), at)


def _seen(reports):
    return [(r.alarm, r.active, r.kind.code) for r in reports]


def test_an_alarm_holds_until_restored_and_repeats_update_it():
    t = _tracker()
    t.watch(BRK, 0.0)
    first = t.message(BRK, _msg({"msg": "alarm", "code": "E01", "data": {"i": 80}}, 1.0))
    assert _seen(first) == [("overcurrent", True, "iot_breaker_overcurrent")]
    r = first[0]
    assert (r.source_id, r.group, r.site, r.source_name) == ("iot:brk-1", "smart_breaker", "estate-7", "3号楼电箱")
    assert r.details["device_code"] == "E01" and r.details["readings"]["current"] == {"value": 80.0, "unit": "A"}
    assert r.details["device"]["cameras"] == ["gate"] and "current 80 A" in r.summary
    assert _seen(t.message(BRK, _msg({"msg": "alarm", "code": "E01"}, 2.0))) == [("overcurrent", True, "iot_breaker_overcurrent")]
    assert _seen(t.message(BRK, _msg({"msg": "data", "data": {"i": 10}}, 3.0))) == []  # a normal reading is no restore here
    assert _seen(t.message(BRK, _msg({"msg": "restore", "code": "E02"}, 4.0))) == []  # not the alarm that holds
    ended = t.message(BRK, _msg({"msg": "restore", "code": "E01"}, 5.0))
    assert _seen(ended) == [("overcurrent", False, "iot_breaker_overcurrent")] and ended[0].details["ended_by"] == "restored"
    assert t.state("brk-1") == (5.0, False, [])


def test_a_quiet_alarm_ends_after_clear_after_s():
    t = _tracker()
    brk = BRK.model_copy(update={"heartbeat_s": 60.0})
    t.message(brk, _msg({"msg": "alarm", "code": "E04"}, 0.0))
    t.message(brk, _msg({"msg": "heartbeat"}, 20.0))
    assert _seen(t.tick([brk], 59.0)) == []
    ended = t.tick([brk], 60.0)
    assert _seen(ended) == [("arc_fault", False, "iot_breaker_arc_fault")] and ended[0].details["ended_by"] == "quiet"
    assert t.tick([brk], 61.0) == []


def test_a_silent_device_goes_offline_and_its_next_message_ends_that():
    t = _tracker()
    t.watch(BRK, 0.0)
    assert t.tick([BRK], 30.0) == []  # 3 heartbeats of 10 s: not yet
    off = t.tick([BRK], 30.5)
    assert _seen(off) == [("offline", True, "iot_device_offline")] and "silent for 30 s" in off[0].summary
    assert t.tick([BRK], 100.0) == []  # once
    assert _seen(t.message(BRK, _msg({"msg": "heartbeat"}, 101.0))) == [("offline", False, "iot_device_offline")]
    t.watch(BRK, 200.0)  # a restart gives a grace period again
    assert t.tick([BRK], 229.0) == []


def test_adopted_cases_clear_after_a_restart():
    t = _tracker()
    brk = BRK.model_copy(update={"heartbeat_s": 60.0})
    t.adopt(brk, "leakage", 100.0)
    t.adopt(brk, "offline", 100.0)
    assert _seen(t.message(brk, _msg({"msg": "heartbeat"}, 101.0))) == [("offline", False, "iot_device_offline")]
    assert _seen(t.tick([brk], 160.0)) == [("leakage", False, "iot_breaker_leakage")]


def test_linkage_snapshot_only_when_a_case_opens():
    calls = []

    def snap(device):
        calls.append(device.id)
        return b"\xff\xd8jpeg", {"linked_camera": "gate"}

    t = _tracker(snapshot=snap)
    a = t.message(BRK, _msg({"msg": "alarm", "code": "E03"}, 0.0))
    b = t.message(BRK, _msg({"msg": "alarm", "code": "E03"}, 1.0))
    assert a[0].snapshot == b"\xff\xd8jpeg" and a[0].details["linked_camera"] == "gate" and b[0].snapshot is None
    assert calls == ["brk-1"]
