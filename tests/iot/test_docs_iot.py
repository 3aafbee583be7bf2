"""docs/iot.md stays true: its config block is a valid ``iot:`` section, its mapping block a
valid mapping file that does what the text after it says, and its tables name the shipped
alarms and the catalogue's grades."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gridworker.cases.catalogue import load_catalogue
from gridworker.iot import IotConfig, load_mappings
from gridworker.iot.mapping import parse_mapping

DOC = (Path(__file__).resolve().parents[2] / "docs" / "iot.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def test_the_config_example_is_valid():
    iot = IotConfig.model_validate(yaml.safe_load(BLOCKS[0])["iot"])
    assert iot.device_of("city/iot/brk-0001/up") == "brk-0001" and iot.broker is not None and iot.broker.tls


def test_the_mapping_example_does_what_the_text_says():
    m = parse_mapping(yaml.safe_load(BLOCKS[1]), "docs/iot.md")
    assert m.parse(b'{"msg": "alarm", "code": "E01", "data": {"i": 71.2}}', 0).raised == ("overcurrent",)
    assert m.parse(b'{"msg": "data", "data": {"i": 71.2}}', 0).raised == ("overcurrent",)
    assert m.parse(b'{"msg": "restore", "code": "E01"}', 0).restored == ("overcurrent",)


def test_the_tables_match_the_mappings_and_the_catalogue():
    for mapping in load_mappings().values():
        for alarm in mapping.alarms:
            assert f"`{alarm.catalogue}`" in DOC and alarm.id in DOC
    cat = load_catalogue()
    for code, grade, unit, first, limit in re.findall(r"^\| `(iot_\w+)` \| \S+ \| (\d) \| ([\w-]+) \| ([\w-]+) \| (\d+) min \|$", DOC, re.M):
        t = cat.type(code)
        assert (t.grade, t.unit, t.first_unit, t.time_limits_min[t.grade]) == (int(grade), unit, first, float(limit)), code
    assert len(re.findall(r"^\| `iot_", DOC, re.M)) == len([t for t in cat.types if t.code.startswith("iot_")])
