"""A reading that is an integer too large for a float is a malformed message like any other:
refused by the mapping, counted against its device by the ingest, and the ingest carries on."""

from __future__ import annotations

import pytest

from gridworker.incidents import IncidentQuery
from gridworker.iot import MalformedMessage, load_mappings
from gridworker.iot.simulate import payload
from tests.factories import wait_until
from tests.iot.conftest import iot_settings

BRK = load_mappings()["smart_breaker"]
HUGE = b'{"msg": "data", "data": {"i": 1' + b"0" * 400 + b"}}"


@pytest.mark.parametrize("body", [HUGE, b'{"msg": "data", "data": {"i": -1' + b"0" * 400 + b"}}"])
def test_a_huge_integer_reading_is_malformed(body):
    with pytest.raises(MalformedMessage, match="'current' at 'data.i' is not a finite number"):
        BRK.parse(body, now=0.0)


def test_a_large_but_finite_integer_reading_is_kept():
    assert BRK.parse(b'{"msg": "data", "data": {"i": 1' + b"0" * 300 + b"}}", now=0.0).readings["current"] == 1e300


def test_the_ingest_counts_a_huge_reading_as_malformed(tmp_path, bus, make_service):
    service = make_service(iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus))
    bus.publish("brk-1", HUGE)
    bus.publish("brk-1", payload(BRK, "alarm", alarm="arc_fault"))  # the ingest carries on
    wait_until(lambda: service.iot.stats()[0].get("alarm") == 1, timeout=10)
    outcomes, per_device = service.iot.stats()
    assert outcomes["malformed"] == 1 and per_device == {"brk-1": 1}
    assert b'gridworker_iot_malformed_messages_total{device="brk-1"} 1.0' in service.metrics.render()
    incs = service.store.list(IncidentQuery())[0]
    assert [i.type for i in incs] == ["iot_breaker_arc_fault"]
