"""IoT alarms into the one loop, against the real mosquitto and the real Service:
alarm → incident → graded work order → webhook; repeats update the case, "restored" and
quiet time close it; QoS 1 across a restart loses nothing; silent devices raise "device
offline"; malformed payloads are counted per device and open nothing."""

from __future__ import annotations

import json
import time

from gridworker.incidents import IncidentQuery
from gridworker.iot import load_mappings
from gridworker.iot.simulate import malformed, payload
import random

from tests.factories import wait_until
from tests.iot.conftest import iot_settings, running

BRK = load_mappings()["smart_breaker"]
WLV = load_mappings()["water_level"]


def _incidents(service, **q):
    return service.store.list(IncidentQuery(**q))[0]


def test_an_alarm_goes_round_the_loop(tmp_path, bus, receiver, make_service):
    service = make_service(iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus, receiver))
    alarm = payload(BRK, "alarm", alarm="overcurrent", readings={"current": 81.5})
    for _ in range(3):  # a device repeats its alarm
        bus.publish("brk-1", alarm)
    wait_until(lambda: receiver.documents() and service.iot.stats()[0].get("alarm") == 3, timeout=15)
    incs = _incidents(service)
    assert len(incs) == 1
    inc = incs[0]
    assert (inc.camera_id, inc.camera_name, inc.site, inc.type, inc.status) == ("iot:brk-1", "3号楼电箱", "estate-7", "iot_breaker_overcurrent", "open")
    assert inc.details["source"] == "iot" and inc.details["device"]["unit"] == "property-7" and inc.details["device_code"] == "E01"
    assert inc.details["readings"]["current"] == {"value": 81.5, "unit": "A"} and inc.details["type_name_zh"] == "智能空开过流报警"
    order = wait_until(lambda: service.workorders.get(inc.id), timeout=5)
    cat = service.workorders.catalogue.type("iot_breaker_overcurrent")
    assert (order.state, order.grade, order.unit, order.responsible_unit) == ("detected", cat.grade, cat.first_unit, cat.unit)
    time.sleep(0.3)
    docs = receiver.documents()
    assert [(d["event"], d["incident_id"]) for d in docs] == [("workorder.detect", inc.id)]
    assert receiver.requests[0]["headers"]["x-gridworker-signature"]  # signed like any case
    # "restored" from the device closes the incident; the running case hears the condition cleared
    bus.publish("brk-1", payload(BRK, "restore", alarm="overcurrent"))
    wait_until(lambda: service.store.get(inc.id).status == "closed", timeout=10)
    assert service.store.get(inc.id).observations == 3  # the repeats updated the one case
    wait_until(lambda: [a.action for a in service.workorders.audit(inc.id)][-1] == "verify", timeout=5)
    # the next alarm of the device is a new case; another alarm of it is a case of its own
    bus.publish("brk-1", alarm)
    bus.publish("brk-1", payload(BRK, "alarm", alarm="arc_fault"))
    wait_until(lambda: len(_incidents(service)) == 3, timeout=10)
    assert sorted(i.type for i in _incidents(service, status="open")) == ["iot_breaker_arc_fault", "iot_breaker_overcurrent"]
    wait_until(lambda: [d["event"] for d in receiver.documents()].count("workorder.detect") == 3, timeout=10)
    assert [d["event"] for d in receiver.documents()] == ["workorder.detect", "workorder.verify", "workorder.detect", "workorder.detect"]
    assert b'gridworker_iot_messages_total{outcome="alarm"} 5.0' in service.metrics.render()


def test_a_handled_case_closes_verified_when_the_alarm_goes_quiet(tmp_path, bus, make_service):
    from gridworker.cases.workflow import Actor

    service = make_service(iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus, alarm_clear_min=0.1))  # 6 s: time to handle the case first
    bus.publish("wlv-1", payload(WLV, "alarm", alarm="waterlogging", readings={"level_cm": 41.0}))
    inc = wait_until(lambda: _incidents(service), timeout=10)[0]
    order = wait_until(lambda: service.workorders.get(inc.id), timeout=5)  # written by on_open, just after the incident
    assert inc.type == "iot_waterlogging" and order.unit == "traffic-squad"  # the catalogue's first unit
    boss = Actor("ops", "admin")
    service.workflow.dispatch(inc.id, boss)
    service.workflow.accept(inc.id, boss)
    service.workflow.handle(inc.id, boss, note="pumps on, underpass closed")
    wait_until(lambda: service.store.get(inc.id).status == "closed", timeout=10)
    order = wait_until(lambda: (o := service.workorders.get(inc.id)).state == "closed" and o, timeout=5)
    assert service.workorders.audit(inc.id)[-1].actor == "system:auto-verify"
    assert order.cleared_at is not None


def test_alarms_sent_while_gridworker_is_down_are_delivered_after_restart(tmp_path, bus, receiver):
    settings = iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus, receiver)
    first = running(settings)  # subscribes: the broker now keeps a session for its client id
    first.stop()
    first.db.close()
    sent = {"brk-1": "leakage", "brk-2": "tripped"}
    for device, alarm in sent.items():
        bus.publish(device, payload(BRK, "alarm", alarm=alarm))
    bus.publish("wlv-1", payload(WLV, "alarm", alarm="waterlogging"))
    again = running(settings)
    try:
        incs = wait_until(lambda: len(_incidents(again)) == 3 and _incidents(again), timeout=15)
        assert sorted((i.camera_id, i.rule_id) for i in incs) == [("iot:brk-1", "leakage"), ("iot:brk-2", "tripped"), ("iot:wlv-1", "waterlogging")]
        wait_until(lambda: len(receiver.documents()) == 3, timeout=15)
        time.sleep(0.3)
        assert sorted(d["incident_id"] for d in receiver.documents()) == sorted(i.id for i in incs)
    finally:
        again.stop()
    # and the open cases are adopted by the next start: a repeat updates them, opens nothing new
    third = running(settings)
    try:
        assert len(third.incidents.open_sources("iot:")) == 3
        bus.publish("brk-1", payload(BRK, "alarm", alarm="leakage"))
        wait_until(lambda: third.iot.stats()[0].get("alarm") == 1, timeout=10)
        assert len(_incidents(third)) == 3
    finally:
        third.stop()
        third.db.close()


def test_a_silent_device_raises_a_device_offline_case(tmp_path, bus, make_service):
    service = make_service(iot_settings(
        f"sqlite:///{tmp_path / 'iot.db'}", bus, missed_heartbeats=1,
        devices=[{"id": "brk-1", "type": "smart_breaker", "heartbeat_s": 1.0}, {"id": "brk-2", "type": "smart_breaker", "heartbeat_s": 60.0}],
    ))
    inc = wait_until(lambda: _incidents(service), timeout=10)[0]
    assert (inc.camera_id, inc.type, inc.rule_id) == ("iot:brk-1", "iot_device_offline", "offline")
    wait_until(lambda: service.workorders.get(inc.id), timeout=5)
    assert b'gridworker_iot_devices{state="offline"} 1.0' in service.metrics.render()
    bus.publish("brk-1", payload(BRK, "heartbeat"))
    wait_until(lambda: service.store.get(inc.id).status == "closed", timeout=10)
    assert len(_incidents(service)) == 1  # brk-2 is within its heartbeat


def test_malformed_payloads_are_counted_per_device_and_open_nothing(tmp_path, bus, make_service):
    service = make_service(iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus, max_payload_bytes=1024))
    rng = random.Random(7)
    bodies = [malformed(BRK, rng) for _ in range(10)] + [b"{" * 5000, json.dumps({"msg": "alarm", "code": "E01", "pad": "x" * 2000}).encode()]
    for body in bodies:
        bus.publish("brk-1", body)
    bus.publish("brk-2", b"not json")
    bus.publish("nobody-9", payload(BRK, "alarm", alarm="arc_fault"))  # an unknown device
    bus.publish("brk-2", payload(BRK, "alarm", alarm="arc_fault"))  # the ingest carries on
    wait_until(lambda: _incidents(service) and service.iot.stats()[0].get("alarm") == 1, timeout=10)
    outcomes, per_device = service.iot.stats()
    assert per_device == {"brk-1": len(bodies), "brk-2": 1}
    assert outcomes["malformed"] == len(bodies) + 1 and outcomes["unknown_device"] == 1 and outcomes["alarm"] == 1
    assert [(i.camera_id, i.type) for i in _incidents(service)] == [("iot:brk-2", "iot_breaker_arc_fault")]
    text = service.metrics.render()
    assert f'gridworker_iot_malformed_messages_total{{device="brk-1"}} {float(len(bodies))}'.encode() in text
    assert b"nobody-9" not in text  # unknown devices do not grow the label set
