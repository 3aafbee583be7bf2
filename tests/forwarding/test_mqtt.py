"""MQTT against a real mosquitto: QoS 1, topic per site and type, delivered on PUBACK;
a broker of our own that goes down and comes back (nothing lost, nothing dead)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from gridworker.delivery import ForwardingConfig, MqttDestination, RetryPolicy, build_forwarding
from gridworker.delivery.mqtt import topic_for, topic_level

from tests.factories import wait_until
from tests.forwarding.helpers import open_incident

SHARED = ("127.0.0.1", 1883)
FAST = RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=3)


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, int, dict]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-test-sub-{time.monotonic_ns()}")
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.qos, json.loads(m.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.ready.wait(10), "subscription not acknowledged"

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_topics():
    assert topic_level("a/b+c#d") == "a_b_c_d" and topic_level("") == "_"


def test_publishes_qos1_per_site_and_type_to_real_mosquitto(sqlite_orders):
    if not _port_open(*SHARED):
        pytest.skip("no mosquitto at 127.0.0.1:1883 (apt-get install mosquitto)")
    orders = sqlite_orders
    prefix = f"gw-test/{time.monotonic_ns()}"  # the broker is shared: a prefix of our own
    sub = Subscriber(SHARED[1], f"{prefix}/#")
    cfg = ForwardingConfig(
        destinations=[MqttDestination(name="bus", host="127.0.0.1", port=SHARED[1], topic_prefix=prefix, timeout_s=5)],
        retry=FAST, poll_interval_s=0.05,
    )
    disp = build_forwarding(cfg, orders.db, orders=orders)
    try:
        with disp:
            a = open_incident(orders, site="market/east", type="street_vending")
            b = open_incident(orders, site="", type="crowd", camera="cam-2")
            assert disp.drain(15)
            assert wait_until(lambda: len(sub.messages) == 2)
    finally:
        sub.close()
    got = {m[2]["idempotency_key"]: m for m in sub.messages}
    ta, qa, da = got[f"{a.incident_id}:1"]
    tb, qb, db = got[f"{b.incident_id}:1"]
    assert ta == f"{prefix}/market_east/street_vending" and tb == f"{prefix}/_/crowd"
    assert qa == qb == 1
    assert da["incident"]["type_name_zh"] and db["event"] == "workorder.detect"
    assert disp.outbox.counters()["bus"]["delivered"] == 2


def test_broker_down_then_back(sqlite_orders, tmp_path):
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if shutil.os.path.exists("/usr/sbin/mosquitto") else None)
    if mosquitto is None:
        pytest.skip("mosquitto is not installed")
    orders = sqlite_orders
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    # a pause of 2 s after each failure: room to start the broker and subscribe between two probes
    slow = RetryPolicy(base_s=2.0, cap_s=2.0, max_attempts=2, jitter=0.0)
    cfg = ForwardingConfig(
        destinations=[MqttDestination(name="bus", host="127.0.0.1", port=port, topic_prefix="gw", timeout_s=2)],
        retry=slow, poll_interval_s=0.05,
    )
    disp = build_forwarding(cfg, orders.db, orders=orders)
    broker = sub = None
    try:
        with disp:
            ids = [open_incident(orders, camera=f"c{i}").incident_id for i in range(5)]
            assert wait_until(lambda: disp.statuses()[0].consecutive_failures >= 2)  # more than max_attempts probes
            c = disp.outbox.counters()["bus"]
            assert (c["pending"], c["dead"], c["delivered"]) == (5, 0, 0)
            assert disp.statuses()[0].state == "unreachable"
            n = disp.statuses()[0].consecutive_failures
            assert wait_until(lambda: disp.statuses()[0].consecutive_failures > n, interval=0.02)  # a probe just failed
            broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert wait_until(lambda: _port_open("127.0.0.1", port), 10, interval=0.05)
            sub = Subscriber(port, "gw/#")
            assert disp.statuses()[0].delivered == 0, "the subscriber came too late for this test"
            assert disp.drain(30)
            assert wait_until(lambda: len({m[2]["idempotency_key"] for m in sub.messages}) == 5), sub.messages
            assert [m[2]["idempotency_key"] for m in sub.messages] == [f"{i}:1" for i in ids]
            assert all(m[1] == 1 for m in sub.messages)
            assert disp.outbox.counters()["bus"]["dead"] == 0
    finally:
        if sub is not None:
            sub.close()
        if broker is not None:
            broker.kill()
            broker.wait()
