"""``gridworker bench iot``: N simulated devices through the real MQTT broker into the real
service, alarm to work order to webhook.

The devices (``gridworker iot simulate``'s, every shipped type in turn) each publish one
message per ``interval`` (heartbeats and readings, a share malformed) with QoS 1 to the
broker (mosquitto on 127.0.0.1:1883 by default); every ``burst_every`` seconds a few of
them raise an alarm (three messages, the reading past its threshold) and restore it a few
seconds later. A real :class:`~gridworker.service.Service` (SQLite, no cameras) ingests
them with its persistent QoS 1 session and forwards every work-order change to a webhook
receiver (an HTTP server thread of this process).

Printed (JSON with ``--json``): ``messages`` (published), ``alarms`` (alarm bursts),
``cases_opened``, ``lost`` (messages the ingest never saw, plus bursts without a case, plus
cases whose work order never reached the webhook), ``p95_alarm_to_workorder_ms`` (first
alarm message published → its work order committed), ``p95_alarm_to_webhook_ms`` (→ the
webhook received it), ``cpu_cores``. Targets: ``lost`` = 0, p95 alarm-to-work-order < 1 s.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import supervision as sv
from paho.mqtt.enums import CallbackAPIVersion

from gridworker.iot.simulate import SimConfig, run_simulation, sim_devices

__all__ = ["IotBenchConfig", "format_summary", "run_iot_bench"]


@dataclass(frozen=True, slots=True)
class IotBenchConfig:
    """What ``bench iot`` runs.

    Attributes:
        traffic: the devices' traffic and the broker, as ``gridworker iot simulate`` publishes
            it (its topic and restore delay are the bench's own; the rest is taken as given).
        settle_s: longest wait, after the last message, for cases and webhooks.
        workdir: where the service's database goes (default: a temporary folder).
    """

    traffic: SimConfig = SimConfig(devices=1000, burst_every_s=2.0, burst_devices=5, malformed_share=0.01)
    settle_s: float = 30.0
    workdir: Path | None = None


class _NoCameras:
    """The service's detector slot: this benchmark has no cameras, so it is never called."""

    class_names: list[str] = []
    max_batch = 1

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        return [sv.Detections.empty() for _ in images]


class _Receiver:
    """Records when each incident's ``workorder.detect`` first arrives."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {}
                if isinstance(doc, dict) and doc.get("event") == "workorder.detect" and isinstance(doc.get("incident_id"), int):
                    with outer.lock:
                        outer.first.setdefault(doc["incident_id"], at)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-iot-receiver", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _p95_ms(values: list[float]) -> float | None:
    return None if not values else round(float(np.percentile(np.asarray(values), 95)) * 1000.0, 1)


def run_iot_bench(config: IotBenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from gridworker.service import Service
    from gridworker.settings import Settings

    say = progress or (lambda _m: None)
    traffic = config.traffic
    # one line per webhook POST and per case would drown the progress lines
    quiet = [logging.getLogger(n) for n in ("httpx", "gridworker.incidents.manager")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    prefix, client_id = f"gw-bench-iot/{tag}", f"gw-bench-iot-{tag}"
    devices = sim_devices(traffic.devices, prefix=traffic.prefix, types=traffic.types)
    receiver = _Receiver()
    with tempfile.TemporaryDirectory(prefix="gw-bench-iot-") as tmp:
        workdir = config.workdir or Path(tmp)
        settings = Settings(
            database={"url": f"sqlite:///{workdir / 'bench-iot.db'}"},
            evidence={"clips": False},
            forwarding={"destinations": [{"kind": "webhook", "name": "bench", "url": receiver.url, "secret": "bench-iot-secret", "timeout_s": 5}], "poll_interval_s": 0.2},
            iot={
                "broker": {"host": traffic.host, "port": traffic.port, "client_id": client_id},
                "topic_pattern": f"{prefix}/{{device_id}}/up",
                "devices": [{"id": d.id, "type": d.mapping.type, "heartbeat_s": traffic.interval_s} for d in devices],
                "max_devices": max(traffic.devices, 1),
            },
        )
        service = Service(settings, _NoCameras())
        opened: dict[tuple[str, str], list[tuple[int, float]]] = {}
        lock = threading.Lock()

        def on_opened(inc: Any, device: Any) -> None:
            with lock:
                opened.setdefault((device.id, inc.rule_id), []).append((inc.id, time.time()))

        service.iot.on_opened.append(on_opened)
        service.start()
        try:
            deadline = time.time() + 10
            while not service.iot.connected and time.time() < deadline:
                time.sleep(0.05)
            if not service.iot.connected:
                raise RuntimeError(f"the service could not subscribe at {traffic.host}:{traffic.port}")
            say(f"{traffic.devices} devices, {traffic.seconds:g} s, one message per {traffic.interval_s:g} s each")
            sim = run_simulation(replace(traffic, topic_pattern=settings.iot.topic_pattern, restore_after_s=3.0), progress=say)
            say(f"published {sim.messages} messages; waiting for the ingest and the webhook")
            end = time.time() + config.settle_s
            while time.time() < end:
                seen = sum(service.iot.stats()[0].values())
                with lock:
                    ids = [i for cases in opened.values() for i, _ in cases]
                with receiver.lock:
                    delivered = all(i in receiver.first for i in ids)
                if seen >= sim.messages and delivered:
                    break
                time.sleep(0.2)
            seen = sum(service.iot.stats()[0].values())
        finally:
            service.stop()
            service.db.close()
            receiver.close()
            _forget_session(traffic.host, traffic.port, client_id)
            for q, level in zip(quiet, levels):
                q.setLevel(level)
    # pair each burst with the case it opened (bursts of one device + alarm come one after another)
    to_order: list[float] = []
    to_hook: list[float] = []
    missing_cases = 0
    missing_hooks = 0
    bursts: dict[tuple[str, str], list[float]] = {}
    for device, alarm, t0 in sim.alarm_starts:
        bursts.setdefault((device, alarm), []).append(t0)
    for key, starts in bursts.items():
        cases = opened.get(key, [])
        missing_cases += max(0, len(starts) - len(cases))
        for t0, (incident_id, t_order) in zip(starts, cases):
            to_order.append(t_order - t0)
            hook = receiver.first.get(incident_id)
            if hook is None:
                missing_hooks += 1
            else:
                to_hook.append(hook - t0)
    cases_opened = sum(len(c) for c in opened.values())
    return {
        "devices": traffic.devices,
        "seconds": traffic.seconds,
        "messages": sim.messages,
        "ingested": seen,
        "malformed": sim.malformed,
        "alarms": len(sim.alarm_starts),
        "alarm_messages": sim.alarms,
        "cases_opened": cases_opened,
        "lost": max(0, sim.messages - seen) + missing_cases + missing_hooks + sim.failed,
        "p95_alarm_to_workorder_ms": _p95_ms(to_order),
        "p95_alarm_to_webhook_ms": _p95_ms(to_hook),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }


def _forget_session(host: str, port: int, client_id: str) -> None:
    """Drop the benchmark's persistent session from the broker."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    try:
        c.connect(host, port)
        c.disconnect()
    except OSError:
        pass


def format_summary(result: dict[str, Any]) -> str:
    ok = result["lost"] == 0 and (result["p95_alarm_to_workorder_ms"] or 0) < 1000
    return (
        f"IoT: {result['devices']} devices, {result['seconds']:g} s: {result['messages']} messages "
        f"({result['ingested']} ingested, {result['malformed']} malformed), {result['alarms']} alarm bursts, "
        f"{result['cases_opened']} cases, lost {result['lost']}; p95 alarm→work order {result['p95_alarm_to_workorder_ms']} ms, "
        f"alarm→webhook {result['p95_alarm_to_webhook_ms']} ms on {result['cpu_cores']} core(s) "
        f"[{'targets met' if ok else 'TARGETS MISSED'}: lost = 0, p95 alarm→work order < 1000 ms]"
    )
