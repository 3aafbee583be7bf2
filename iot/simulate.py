"""``gridworker iot simulate``: realistic traffic of N devices to an MQTT broker.

Every payload is built from the device type's mapping file (the same data the ingest reads),
so the simulator speaks each shipped type's format: heartbeats, readings inside the normal
ranges, alarm bursts (the device's code, repeated a few times as real devices do, the
reading past its threshold where there is one, then a "restored" message), and a share of
malformed messages (not JSON, an unknown message kind or alarm code, a reading that is not
a number). Published with QoS 1.

Example:
    >>> m = load_mappings()["smart_breaker"]
    >>> json.loads(payload(m, "alarm", alarm="arc_fault"))
    {'msg': 'alarm', 'code': 'E04'}
"""

from __future__ import annotations

import csv
import io
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import DEVICE_PLACEHOLDER
from .mapping import DeviceMapping, MessageKind, load_mappings

#: short id stems of the shipped types (sim device ids: ``<prefix><stem>-0001``)
STEMS = {"smart_breaker": "brk", "smoke_detector": "smk", "manhole_cover": "mhc", "water_level": "wlv"}


def payload(mapping: DeviceMapping, kind: MessageKind, *, alarm: str | None = None, readings: dict[str, float] | None = None) -> bytes:
    """One message of ``mapping``'s device type: ``kind``, the device code of ``alarm`` (alarm
    and restore messages), and ``readings`` by reading name."""
    doc: dict[str, Any] = {}
    _put(doc, mapping.message.field, getattr(mapping.message, kind)[0])
    if alarm is not None:
        a = mapping.alarm(alarm)
        if a is None or not a.codes:
            raise ValueError(f"{mapping.type}: no alarm {alarm!r} with a device code")
        _put(doc, mapping.alarm_code_field, a.codes[0])
    paths = {r.name: r.path for r in mapping.readings}
    for name, value in (readings or {}).items():
        _put(doc, paths[name], value)
    return json.dumps(doc, separators=(",", ":")).encode()


def normal_readings(mapping: DeviceMapping, rng: random.Random) -> dict[str, float]:
    return {r.name: round(rng.uniform(*r.normal), 2) for r in mapping.readings}


def alarm_readings(mapping: DeviceMapping, alarm: str, rng: random.Random) -> dict[str, float]:
    """Readings of a device in ``alarm``: normal, but the alarm's reading past its threshold."""
    values = normal_readings(mapping, rng)
    a = mapping.alarm(alarm)
    t = a.threshold if a is not None else None
    if t is not None:
        values[t.reading] = round(t.above * 1.2 + 1, 2) if t.above is not None else round(_under(t.below or 0.0), 2)
    return values


def _under(limit: float) -> float:
    return limit * 0.8 if limit > 0 else limit - 1.0


def malformed(mapping: DeviceMapping, rng: random.Random) -> bytes:
    """A message the ingest must count and drop."""
    choice = rng.randrange(5)
    if choice == 0:
        return b"\x00\xffnot json{"
    if choice == 1:
        return b"[1, 2, 3]"
    if choice == 2:
        doc: dict[str, Any] = {}
        _put(doc, mapping.message.field, "no-such-kind")
        return json.dumps(doc).encode()
    if choice == 3:
        doc = {}
        _put(doc, mapping.message.field, mapping.message.alarm[0])
        _put(doc, mapping.alarm_code_field, "NO-SUCH-CODE")
        return json.dumps(doc).encode()
    if not mapping.readings:
        return b"{}"
    doc = {}
    _put(doc, mapping.message.field, mapping.message.reading[0])
    _put(doc, mapping.readings[0].path, "NaN-as-text")
    return json.dumps(doc).encode()


def _put(doc: dict[str, Any], path: str, value: object) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


@dataclass(frozen=True, slots=True)
class SimDevice:
    id: str
    mapping: DeviceMapping


def sim_devices(n: int, *, prefix: str = "sim-", types: Sequence[str] | None = None, mappings: dict[str, DeviceMapping] | None = None) -> list[SimDevice]:
    """``n`` devices, the types taken in turn (default: every shipped type, breakers first)."""
    mappings = mappings or load_mappings()
    names = list(types or ["smart_breaker", "smoke_detector", "manhole_cover", "water_level"])
    for t in names:
        if t not in mappings:
            raise ValueError(f"no mapping for device type {t!r}")
    return [SimDevice(f"{prefix}{STEMS.get(names[i % len(names)], names[i % len(names)])}-{i + 1:04d}", mappings[names[i % len(names)]]) for i in range(n)]


def devices_csv(devices: Sequence[SimDevice], *, heartbeat_s: float, site: str = "sim-estate") -> str:
    """The devices as a CSV for ``gridworker iot import`` / ``POST /devices/import``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "type", "name", "site", "unit", "longitude", "latitude", "cameras", "heartbeat_s"])
    for i, d in enumerate(devices):
        w.writerow([d.id, d.mapping.type, f"{d.mapping.name_zh} {i + 1}", site, "community-grid",
                    round(121.47 + (i % 100) * 1e-4, 6), round(31.23 + (i // 100) * 1e-4, 6), "", heartbeat_s])
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to publish: ``devices`` messages each ``interval_s`` for ``seconds``; every
    ``burst_every_s`` a burst: ``burst_devices`` devices raise an alarm (``burst_repeats``
    messages ``0.2 s`` apart) and restore it ``restore_after_s`` later (0: never);
    ``malformed_share`` of the regular messages are malformed."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic_pattern: str = "gridworker/iot/{device_id}/up"
    devices: int = 10
    prefix: str = "sim-"
    types: tuple[str, ...] | None = None
    seconds: float = 30.0
    interval_s: float = 10.0
    burst_every_s: float = 10.0
    burst_devices: int = 3
    burst_repeats: int = 3
    restore_after_s: float = 5.0
    malformed_share: float = 0.02
    seed: int = 1
    client_id: str | None = None


@dataclass
class SimResult:
    messages: int = 0
    alarms: int = 0  # alarm messages
    alarm_starts: list[tuple[str, str, float]] = field(default_factory=list)  # (device, alarm, first publish time)
    restores: int = 0
    malformed: int = 0
    failed: int = 0  # not acknowledged by the broker

    def as_dict(self) -> dict[str, int]:
        return {"messages": self.messages, "alarms": self.alarms, "alarm_bursts": len(self.alarm_starts),
                "restores": self.restores, "malformed": self.malformed, "failed": self.failed}


class Publisher:
    """A QoS 1 publisher (paho's loop in its own thread); ``close`` waits for every PUBACK."""

    def __init__(self, host: str, port: int, client_id: str | None = None, timeout_s: float = 10.0) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"gridworker-sim-{time.monotonic_ns()}")
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self._lock = threading.Lock()
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        self._timeout_s = timeout_s

    def publish(self, topic: str, body: bytes) -> None:
        info = self._client.publish(topic, body, qos=1)
        with self._lock:
            self._pending.append(info)
            if len(self._pending) > 5000:
                self._settle()

    def _settle(self) -> int:
        failed = 0
        for info in self._pending:
            try:
                info.wait_for_publish(self._timeout_s)
            except (RuntimeError, ValueError):
                failed += 1
                continue
            failed += not info.is_published()
        self._pending.clear()
        return failed

    def close(self) -> int:
        """Wait for the broker's PUBACKs; returns how many never came."""
        with self._lock:
            failed = self._settle()
        self._client.disconnect()
        self._client.loop_stop()
        return failed


def run_simulation(
    config: SimConfig, *, progress: Callable[[str], None] | None = None, stop: threading.Event | None = None,
    on_alarm: Callable[[str, str, float], None] | None = None,
) -> SimResult:
    """Publish the traffic of ``config`` in real time; returns what was sent."""
    rng = random.Random(config.seed)
    devices = sim_devices(config.devices, prefix=config.prefix, types=config.types)
    pub = Publisher(config.host, config.port, config.client_id)
    result = SimResult()
    topic = config.topic_pattern.replace(DEVICE_PLACEHOLDER, "{}")
    start = time.time()
    # each device's regular message at its own phase in the interval; bursts on their own clock
    phases = sorted((rng.uniform(0, config.interval_s), i) for i in range(len(devices)))
    restores: list[tuple[float, SimDevice, str]] = []
    next_burst = start + min(config.burst_every_s, config.seconds / 2) if config.burst_devices > 0 else float("inf")
    cycle = 0
    try:
        while True:
            cycle_start = start + cycle * config.interval_s
            if cycle_start - start >= config.seconds or (stop is not None and stop.is_set()):
                break
            for phase, i in phases:
                due = cycle_start + phase
                if due - start >= config.seconds:
                    break
                _sleep_until(due, stop)
                now = time.time()
                if now >= next_burst:
                    next_burst += config.burst_every_s
                    _burst(pub, topic, devices, config, rng, result, restores, on_alarm)
                for when, dev, alarm in [r for r in restores if r[0] <= now]:
                    restores.remove((when, dev, alarm))
                    pub.publish(topic.format(dev.id), payload(dev.mapping, "restore", alarm=alarm))
                    result.messages += 1
                    result.restores += 1
                dev = devices[i]
                if rng.random() < config.malformed_share:
                    body = malformed(dev.mapping, rng)
                    result.malformed += 1
                elif cycle % 2 == 0:
                    body = payload(dev.mapping, "heartbeat")
                else:
                    body = payload(dev.mapping, "reading", readings=normal_readings(dev.mapping, rng))
                pub.publish(topic.format(dev.id), body)
                result.messages += 1
            cycle += 1
            if progress is not None:
                progress(f"{time.time() - start:.0f} s: {result.messages} messages, {len(result.alarm_starts)} alarm bursts")
        for _, dev, alarm in restores:  # every burst ends restored
            pub.publish(topic.format(dev.id), payload(dev.mapping, "restore", alarm=alarm))
            result.messages += 1
            result.restores += 1
    finally:
        result.failed = pub.close()
    return result


def _burst(
    pub: Publisher, topic: str, devices: Sequence[SimDevice], config: SimConfig, rng: random.Random, result: SimResult,
    restores: list[tuple[float, SimDevice, str]], on_alarm: Callable[[str, str, float], None] | None,
) -> None:
    busy = {r[1].id for r in restores}
    free = [d for d in devices if d.id not in busy]
    for dev in rng.sample(free, min(config.burst_devices, len(free))):
        alarm = rng.choice([a for a in dev.mapping.alarms if a.codes])
        readings = alarm_readings(dev.mapping, alarm.id, rng)
        first = time.time()
        result.alarm_starts.append((dev.id, alarm.id, first))
        if on_alarm is not None:
            on_alarm(dev.id, alarm.id, first)
        for _ in range(config.burst_repeats):
            pub.publish(topic.format(dev.id), payload(dev.mapping, "alarm", alarm=alarm.id, readings=readings))
            result.messages += 1
            result.alarms += 1
        if config.restore_after_s > 0:
            restores.append((first + config.restore_after_s, dev, alarm.id))


def _sleep_until(when: float, stop: threading.Event | None) -> None:
    delay = when - time.time()
    if delay > 0:
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)
