"""Fixtures of the IoT tests: a topic prefix and a persistent MQTT session of each test's own
on the shared mosquitto (wiped afterwards), a real webhook receiver, and a real Service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, wait_until
from tests.forwarding.conftest import receiver  # noqa: F401 - the real webhook receiver fixture
from tests.forwarding.helpers import Receiver
from tests.forwarding.test_mqtt import SHARED, _port_open

SECRET = "whsec-iot"


class Bus:
    """This test's corner of the shared broker: ``prefix`` for topics, ``client_id`` for the
    ingest's persistent session, and a QoS 1 publisher."""

    def __init__(self, prefix: str, client_id: str) -> None:
        self.prefix, self.client_id = prefix, client_id
        self.pattern = f"{prefix}/{{device_id}}/up"
        self._pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
        self._pub.connect(*SHARED)
        self._pub.loop_start()

        self._retained: set[str] = set()

    def publish(self, device_id: str, body: bytes, *, retain: bool = False) -> None:
        topic = f"{self.prefix}/{device_id}/up"
        info = self._pub.publish(topic, body, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()
        if retain:
            self._retained.add(topic)

    def close(self) -> None:
        for topic in self._retained:  # an empty retained message clears the broker's copy
            self._pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        self._pub.disconnect()
        self._pub.loop_stop()
        # forget the ingest's persistent session on the broker
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        c.connect(*SHARED)
        c.disconnect()


@pytest.fixture
def bus() -> Iterator[Bus]:
    if not _port_open(*SHARED):
        pytest.skip("no mosquitto at 127.0.0.1:1883 (apt-get install mosquitto)")
    tag = f"{time.monotonic_ns()}"
    b = Bus(f"gw-test-iot/{tag}", f"gw-test-iot-{tag}")
    yield b
    b.close()


DEVICES = [
    {"id": "brk-1", "type": "smart_breaker", "name": "3号楼电箱", "site": "estate-7", "unit": "property-7", "longitude": 121.47, "latitude": 31.23},
    {"id": "brk-2", "type": "smart_breaker", "site": "estate-7"},
    {"id": "wlv-1", "type": "water_level", "name": "下穿通道", "site": "underpass-3"},
]


def iot_settings(db: str, bus: Bus, receiver: Receiver | None = None, **iot: object) -> Settings:
    forwarding: dict[str, object] = {}
    if receiver is not None:
        forwarding = {
            "destinations": [{"kind": "webhook", "name": "city", "url": receiver.url, "secret": SECRET, "timeout_s": 3, "connect_timeout_s": 1}],
            "retry": {"base_s": 0.05, "cap_s": 0.3, "max_attempts": 5},
            "poll_interval_s": 0.1,
        }
    section = {
        "broker": {"host": SHARED[0], "port": SHARED[1], "client_id": bus.client_id},
        "topic_pattern": bus.pattern,
        "devices": DEVICES,
        "check_interval_s": 0.1,
        "restore_hold_s": 0.3,  # a restore closes its case after 0.3 s clear (the product waits 60 s)
        **iot,
    }
    return Settings(
        database={"url": db}, evidence={"clips": False}, pipeline={"incident_write_interval_s": 0.1},
        forwarding=forwarding, iot=section,
    )


def running(settings: Settings) -> Service:
    service = Service(settings, ParkedCarDetector())
    service.start()
    wait_until(lambda: service.iot.connected, timeout=10, interval=0.02)
    return service


@pytest.fixture
def make_service() -> Iterator[Callable[[Settings], Service]]:
    services: list[Service] = []

    def make(settings: Settings) -> Service:
        s = running(settings)
        services.append(s)
        return s

    yield make
    for s in services:
        s.stop()
        s.db.close()
