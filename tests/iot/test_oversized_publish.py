"""The ingest tells the broker its Maximum Packet Size (MQTT 5 CONNECT): a message larger than
``iot.max_payload_bytes`` (plus the topic's headroom) is dropped by the broker, never sent to
gridworker and never read into its memory; smaller ones, and the persistent session, work as
ever. Against the real mosquitto."""

from __future__ import annotations

import json

from gridworker.iot.service import PACKET_HEADROOM
from tests.factories import wait_until
from tests.iot.conftest import iot_settings


def test_the_broker_drops_a_message_over_the_packet_size(tmp_path, bus, make_service):
    service = make_service(iot_settings(f"sqlite:///{tmp_path / 'iot.db'}", bus, max_payload_bytes=1024))
    huge = json.dumps({"msg": "alarm", "code": "E01", "pad": "x" * (1024 + PACKET_HEADROOM + 100_000)}).encode()
    over = json.dumps({"msg": "alarm", "code": "E01", "pad": "x" * 2000}).encode()  # over the cap, within the headroom
    bus.publish("brk-1", huge)
    bus.publish("brk-1", over)
    bus.publish("brk-1", json.dumps({"msg": "alarm", "code": "E03"}).encode())
    wait_until(lambda: service.iot.stats()[0].get("alarm") == 1, timeout=10)
    assert service.iot.stats() == ({"malformed": 1, "alarm": 1}, {"brk-1": 1})  # the huge one never arrived
    assert service.iot.connected  # and the session goes on
