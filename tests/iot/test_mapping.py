"""Device-type mappings are data: every shipped type parses its own payloads, refuses
malformed ones (naming what is wrong, never echoing the payload), and every alarm has a
catalogue entry; the topic pattern and the CSV import validate their input."""

from __future__ import annotations

import contextlib
import json

import pytest

from gridworker.cases.catalogue import load_catalogue
from gridworker.iot import DeviceError, IotConfig, MalformedMessage, load_mappings, parse_csv
from gridworker.iot.mapping import MappingError
from gridworker.iot.simulate import alarm_readings, malformed, normal_readings, payload
import random

MAPPINGS = load_mappings()


def test_the_shipped_types_and_their_alarms_are_in_the_catalogue():
    assert set(MAPPINGS) == {"smart_breaker", "smoke_detector", "manhole_cover", "water_level"}
    breaker = {a.id for a in MAPPINGS["smart_breaker"].alarms}
    assert {"overcurrent", "leakage", "over_temperature", "arc_fault", "overvoltage", "undervoltage", "tripped"} <= breaker
    cat = load_catalogue()
    for m in MAPPINGS.values():
        for a in m.alarms:
            assert cat.is_listed(a.catalogue), (m.type, a.id)
            t = cat.type(a.catalogue)
            assert t.name_zh and t.name_en and cat.unit(t.unit) is not None and t.time_limit_s(t.grade) > 0
    assert cat.is_listed("iot_device_offline")


@pytest.mark.parametrize(
    ("type_", "body", "kind", "raised", "restored", "readings"),
    [
        ("smart_breaker", {"msg": "heartbeat"}, "heartbeat", (), (), {}),
        ("smart_breaker", {"msg": "data", "data": {"i": 12.5, "u": 221}}, "reading", (), (), {"current": 12.5, "voltage": 221.0}),
        ("smart_breaker", {"msg": "data", "data": {"i": 80}}, "reading", ("overcurrent",), (), {"current": 80.0}),
        ("smart_breaker", {"msg": "data", "data": {"u": 150}}, "reading", ("undervoltage",), (), {"voltage": 150.0}),
        ("smart_breaker", {"msg": "alarm", "code": "E04"}, "alarm", ("arc_fault",), (), {}),
        ("smart_breaker", {"msg": "alarm", "code": "E08", "data": {"sw": 0}}, "alarm", ("tripped",), (), {"switch": 0.0}),
        ("smart_breaker", {"msg": "data", "data": {"sw": True}}, "reading", (), ("tripped",), {"switch": 1.0}),
        ("smart_breaker", {"msg": "restore", "code": "E01"}, "restore", (), ("overcurrent",), {}),
        ("smoke_detector", {"type": "alarm", "alarmCode": 1, "smoke": 0.4}, "alarm", ("smoke",), (), {"smoke": 0.4}),
        ("smoke_detector", {"type": "clear"}, "restore", (), ("smoke", "low_battery", "tamper"), {}),
        ("manhole_cover", {"cmd": "report", "sensor": {"tilt": 31.0}}, "reading", ("tilt",), (), {"tilt": 31.0}),
        ("water_level", {"event": "measure", "values": {"level_cm": 2}}, "reading", (), ("waterlogging",), {"level_cm": 2.0}),
        ("water_level", {"event": "alarm", "level": "L2", "values": {"level_cm": 40}}, "alarm", ("waterlogging",), (), {"level_cm": 40.0}),
    ],
)
def test_payloads_become_messages(type_, body, kind, raised, restored, readings):
    msg = MAPPINGS[type_].parse(json.dumps(body).encode(), now=5.0)
    assert (msg.kind, msg.raised, msg.restored, dict(msg.readings), msg.at) == (kind, raised, restored, readings, 5.0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"data": {"i": 1}}', "no message kind"),
        (b'{"msg": "hello"}', "unknown message kind"),
        (b'{"msg": "alarm"}', "an alarm without a code"),
        (b'{"msg": "alarm", "code": "E99"}', "unknown alarm code"),
        (b'{"msg": "alarm", "code": true}', "unknown alarm code"),
        (b'{"msg": "data", "data": {"i": "12"}}', "'current' at 'data.i' is not a finite number"),
        (b'{"msg": "data", "data": {"i": NaN}}', "not a finite number"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_malformed_payloads_are_refused_without_echo(body, reason):
    with pytest.raises(MalformedMessage, match=reason) as err:
        MAPPINGS["smart_breaker"].parse(body, now=0.0)
    assert "E99" not in str(err.value) and "hello" not in str(err.value)


def test_the_simulator_speaks_every_type():
    rng = random.Random(3)
    for m in MAPPINGS.values():
        assert m.parse(payload(m, "heartbeat"), 0).kind == "heartbeat"
        normal = m.parse(payload(m, "reading", readings=normal_readings(m, rng)), 0)
        assert normal.raised == ()
        for a in m.alarms:
            if a.codes:
                msg = m.parse(payload(m, "alarm", alarm=a.id, readings=alarm_readings(m, a.id, rng)), 0)
                assert msg.raised[0] == a.id, (m.type, a.id, msg)
                assert m.parse(payload(m, "restore", alarm=a.id), 0).restored == (a.id,)
        for _ in range(20):
            with pytest.raises(MalformedMessage):
                m.parse(malformed(m, rng), 0)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"alarms": []}, "alarms"),
        ({"alarms": [{"id": "offline", "catalogue": "x", "name_zh": "x", "name_en": "x"}]}, "reserved"),
        ({"alarms": [{"id": "a", "catalogue": "x", "name_zh": "x", "name_en": "x", "threshold": {"reading": "nope", "above": 1}}]}, "unknown reading"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_mapping_file_is_refused_by_name(tmp_path, data, error):
    base = {"type": "gas_meter", "name_zh": "燃气", "name_en": "gas", "alarm_code_field": "code",
            "message": {"field": "m", "heartbeat": ["h"], "reading": ["r"], "alarm": ["a"], "restore": ["c"]},
            "alarms": [{"id": "leak", "catalogue": "gas_leak", "name_zh": "泄漏", "name_en": "leak"}]}
    import yaml

    (tmp_path / "gas.yaml").write_text(yaml.safe_dump({**base, **data}), encoding="utf-8")
    with pytest.raises(MappingError, match=error) as err:
        load_mappings(tmp_path)
    assert "gas.yaml" in str(err.value)
    (tmp_path / "gas.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    assert "gas_meter" in load_mappings(tmp_path)  # a deployment adds a type by adding a file


@pytest.mark.parametrize(
    ("pattern", "topic", "device", "ok"),
    [
        ("gridworker/iot/{device_id}/up", "gridworker/iot/brk-1/up", "brk-1", True),
        ("gridworker/iot/{device_id}/up", "gridworker/iot/brk-1/down", None, True),
        ("gridworker/iot/{device_id}/up", "gridworker/iot/a/b/up", None, True),
        ("{device_id}", "brk-1", "brk-1", True),
        ("city/{device_id}x/up", "", None, False),
        ("city/+/{device_id}", "", None, False),
        ("city/up", "", None, False),
    ],
)
def test_topic_pattern(pattern, topic, device, ok):
    with contextlib.nullcontext() if ok else pytest.raises(ValueError):
        cfg = IotConfig(topic_pattern=pattern)
        assert cfg.device_of(topic) == device
        assert "+" in cfg.topic_filter()


def test_csv_import_parses_and_names_bad_rows():
    text = "id,type,name,site,longitude,latitude,cameras,heartbeat_s\nbrk-1,smart_breaker,楼3,estate-7,121.5,31.2,gate;yard,30\n\nsmk-1,smoke_detector,,,,,,\n"
    devs = parse_csv(text)
    assert [(d.id, d.cameras, d.heartbeat_s, d.longitude) for d in devs] == [("brk-1", ["gate", "yard"], 30.0, 121.5), ("smk-1", [], 60.0, None)]
    with pytest.raises(DeviceError, match="line 3.*longitude") as err:
        parse_csv("id,type,longitude,latitude\nok-1,smart_breaker,1,1\nbad-1,smart_breaker,999,1\n")
    assert "999" not in str(err.value)
    with pytest.raises(DeviceError, match="header"):
        parse_csv("id,kind\nx,y\n")
    with pytest.raises(DeviceError, match="more than 2 rows"):
        parse_csv("id,type\na,smart_breaker\nb,smart_breaker\nc,smart_breaker\n", max_rows=2)
    with pytest.raises(DeviceError, match="both longitude and latitude"):
        parse_csv("id,type,longitude\na,smart_breaker,1\n")


def test_text_that_is_not_csv_is_a_device_error_not_a_crash():
    """A carriage return inside an unquoted field makes Python's csv module raise its own
    error; the import answers it as a bad file (422), never a server error (the API fuzzer found it)."""
    from gridworker.iot.registry import DeviceError, parse_csv

    with pytest.raises(DeviceError, match="not a valid CSV"):
        parse_csv("id,type\nbrk-1,smart\rbreaker\n")


def test_a_mapping_file_with_a_key_written_twice_is_refused(tmp_path):
    """YAML keeps only the last of two `alarms:` lists: the first list's alarms would silently not exist."""
    text = (
        "type: gas_meter\nname_zh: 燃气\nname_en: gas\nalarm_code_field: code\n"
        "message: {field: m, heartbeat: [h], reading: [r], alarm: [a], restore: [c]}\n"
        "alarms: [{id: leak, catalogue: gas_leak, name_zh: 泄漏, name_en: leak}]\n"
        "alarms: [{id: smoke, catalogue: gas_leak, name_zh: 烟, name_en: smoke}]\n"
    )
    (tmp_path / "gas.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match="gas.yaml.*key 'alarms' on line 7 repeats line 6"):
        load_mappings(tmp_path)
