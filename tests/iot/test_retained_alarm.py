"""A retained message is the broker's stored copy, sent again at every (re)subscription: the
ingest drops it (counted as ``retained``), so an old alarm never reopens its case after a
reconnect or restart. Against the real mosquitto and the real Service."""

from __future__ import annotations

import time

from gridworker.incidents import IncidentQuery
from gridworker.iot import load_mappings
from gridworker.iot.simulate import payload
from tests.factories import wait_until
from tests.iot.conftest import iot_settings, running

BRK = load_mappings()["smart_breaker"]


def test_a_retained_alarm_opens_no_case_at_start_or_restart(tmp_path, bus):
    settings = iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus)
    bus.publish("brk-1", payload(BRK, "alarm", alarm="overcurrent"), retain=True)
    for restart in range(2):  # a start, and a restart: the broker sends the retained copy each time
        service = running(settings)
        try:
            wait_until(lambda: service.iot.stats()[0].get("retained") == 1, timeout=10)
            time.sleep(0.3)  # time for a case to be written, were one opened
            assert [i.camera_id for i in service.store.list(IncidentQuery())[0]] == ([] if restart == 0 else ["iot:brk-2"])
            assert service.iot.stats()[0] == {"retained": 1}
            assert b'gridworker_iot_messages_total{outcome="retained"} 1.0' in service.metrics.render()
            # a live alarm is handled as ever (at the restart it updates the adopted case)
            bus.publish("brk-2", payload(BRK, "alarm", alarm="arc_fault"))
            wait_until(lambda: service.iot.stats()[0].get("alarm") == 1, timeout=10)
            incs = wait_until(lambda: service.store.list(IncidentQuery())[0], timeout=10)
            assert [i.camera_id for i in incs] == ["iot:brk-2"]
        finally:
            service.stop()
            service.db.close()
