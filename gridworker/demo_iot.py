"""The demo's IoT devices: a few simulated smart breakers of an old housing estate, reporting
over MQTT to a mosquitto broker the demo starts on a free loopback port (Debian's
``mosquitto``, installed by ``scripts/setup.sh``).

The breakers send heartbeats and readings every ``INTERVAL_S``; every ``BURST_EVERY_S`` one of
them raises an alarm (overcurrent, leakage, arc fault, ...) and reports it restored
``RESTORE_AFTER_S`` later. Each alarm becomes a case in the console's queue through the one
incident writer, graded and routed by the catalogue, forwarded to the demo's webhook receiver
like any camera case; the restore closes it as verified. Without mosquitto the demo runs
without them (logged). docs/iot.md says how to point real devices at a gridworker.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any

from gridworker.iot.simulate import SimConfig, run_simulation, sim_devices

log = logging.getLogger(__name__)

BREAKERS = 3
PREFIX = "demo-"
SITE = "old-estate"
INTERVAL_S = 10.0
BURST_EVERY_S = 40.0
RESTORE_AFTER_S = 30.0
TOPIC = "gridworker/iot/{device_id}/up"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DemoBreakers:
    """A private mosquitto and the simulated breakers publishing to it.

    Example::

        breakers = DemoBreakers.start()
        config["iot"] = breakers.config(); ...; breakers.stop()
    """

    def __init__(self, broker: subprocess.Popen[bytes], port: int) -> None:
        self.port = port
        self._broker = broker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.devices = [d.id for d in sim_devices(BREAKERS, prefix=PREFIX, types=["smart_breaker"])]

    @classmethod
    def start(cls) -> DemoBreakers | None:
        """Start mosquitto on a free loopback port; None when it is not installed or does not come up."""
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if binary is None:
            log.warning("mosquitto is not installed (apt-get install mosquitto): the demo runs without its IoT breakers")
            return None
        port = _free_port()
        # mosquitto 2 without a config file listens on loopback only
        broker = subprocess.Popen([binary, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return cls(broker, port)
            except OSError:
                if broker.poll() is not None:
                    break
                time.sleep(0.1)
        broker.terminate()
        log.warning("mosquitto did not start on 127.0.0.1:%d: the demo runs without its IoT breakers", port)
        return None

    def config(self) -> dict[str, Any]:
        """The demo config's ``iot:`` section: the broker and the breakers."""
        return {
            "broker": {"host": "127.0.0.1", "port": self.port, "client_id": "gridworker-demo"},
            "topic_pattern": TOPIC,
            "devices": [
                {"id": d, "type": "smart_breaker", "name": f"Smart breaker {i + 1}, block {i + 3}", "site": SITE,
                 "unit": "district-emergency", "heartbeat_s": INTERVAL_S}
                for i, d in enumerate(self.devices)
            ],
        }

    def simulate(self) -> None:
        """Start publishing (a thread) once the service listens."""
        config = SimConfig(
            port=self.port, topic_pattern=TOPIC, devices=BREAKERS, prefix=PREFIX, types=("smart_breaker",), seconds=10 * 86_400,
            interval_s=INTERVAL_S, burst_every_s=BURST_EVERY_S, burst_devices=1, burst_repeats=2, restore_after_s=RESTORE_AFTER_S,
            malformed_share=0.0, client_id="demo-breakers",
        )

        def run() -> None:
            try:
                run_simulation(config, stop=self._stop)
            except Exception:  # noqa: BLE001 - the demo's devices must not take the demo down
                log.exception("the demo's simulated breakers stopped")

        self._thread = threading.Thread(target=run, name="demo-breakers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._broker.terminate()
        try:
            self._broker.wait(5)
        except subprocess.TimeoutExpired:
            self._broker.kill()
