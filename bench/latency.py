"""``gridworker bench latency``: how fast a case reaches the outside, on a real stream.

A real gst-rtsp-server plays a street clip in which people appear and leave every few
seconds (bus.jpg's pedestrians on an empty street, then the empty street); one camera
analyses it live with an intrusion rule (no minimum duration) in a running ``Service``, with
a signed webhook destination to a real receiver on this machine. Every appearance opens an
incident; for each one:

* **frame to incident**: from the frame's capture (the reader's wall-clock time of the
  decoded frame that opened it, the incident's ``opened_at``) to the incident written and
  its listeners told (``on_open``);
* **incident to webhook**: from then to the receiver holding the work order's first
  message (``workorder.detect``), signature checked.

Prints p50/p95 of both (targets: frame-to-incident p95 < 500 ms, incident-to-webhook
p95 < 1 s) with the machine's cores.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gridworker.assets import ultralytics_asset
from gridworker.demo_webhooks import WebhookReceiver
from gridworker.incidents import Incident
from gridworker.models import DetectorConfig, load_detector
from gridworker.models.config import auto_inference_workers
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import encode_frames
from gridworker.streams.rtsp_serve import RtspServerProcess

__all__ = ["LatencyResult", "format_latency", "run_latency"]

FPS = 10
SEGMENT_S = 2.0  # people for this long, then the empty street for this long


def _clip(out: Path) -> Path:
    """People (bus.jpg) and the empty street in turn, SEGMENT_S each, four times."""
    bus = ultralytics_asset("bus.jpg")
    if bus is None:
        raise FileNotFoundError("bus.jpg ships in the ultralytics wheel: pip install --no-deps ultralytics")
    bgr = cv2.imread(str(bus))
    if bgr is None:
        raise FileNotFoundError(f"cannot read {bus}")
    empty = np.full((540, 960, 3), 110, np.uint8)
    people = empty.copy()
    people[:, 0:405] = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (405, 540))
    per = round(SEGMENT_S * FPS)

    def frames() -> Iterator[np.ndarray]:
        for _ in range(4):
            yield from [people] * per
            yield from [empty] * per

    return encode_frames(frames(), out, fps=FPS, gop=FPS // 2)


def _p(values: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive method), ms rounded to 0.1; None without values."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


@dataclass(frozen=True, slots=True)
class LatencyResult:
    incidents: int
    webhooks: int  # incidents whose first webhook arrived
    frame_to_incident_p50_ms: float | None
    frame_to_incident_p95_ms: float | None
    incident_to_webhook_p50_ms: float | None
    incident_to_webhook_p95_ms: float | None
    cpu_cores: int | None


def run_latency(seconds: float = 40.0, progress: Callable[[str], None] | None = None) -> LatencyResult:
    """Run the measurement (see the module docstring); returns the keys printed by the CLI."""
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="gw-latency-") as tmp:
        work = Path(tmp)
        clip = _clip(work / "appear.mp4")
        server = RtspServerProcess({"street": clip}).start()
        secret = secrets.token_urlsafe(24)
        receiver = WebhookReceiver(secret=secret).start()
        try:
            camera = {
                "id": "street", "url": server.url("street"), "fps": FPS,
                "zones": [{"id": "road", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "rules": [
                    # every appearance is its own case (no cooldown: the next one 4 s later must open anew)
                    {"type": "intrusion", "classes": ["person"], "min_duration_s": 0.0, "clear_after_s": 0.5, "cooldown_s": 0.0}]}],
            }
            settings = Settings(
                database={"url": f"sqlite:///{work / 'latency.db'}"},
                cameras=[camera],
                evidence={"clips": False},
                forwarding={"destinations": [{"kind": "webhook", "name": "bench", "url": receiver.url, "secret": secret}],
                            "retry": {"base_s": 0.5, "cap_s": 2}},
            )
            service = Service(settings, load_detector(DetectorConfig(), workers=auto_inference_workers()))
            opened: dict[int, tuple[float, float]] = {}  # incident id → (frame time, told at)
            lock = threading.Lock()

            def told(incident: Incident) -> None:
                with lock:
                    opened[incident.id] = (incident.opened_at, time.time())

            service.incidents.on_open.append(told)
            service.start()
            try:
                say(f"measuring for {seconds:.0f} s (an incident every {2 * SEGMENT_S:.0f} s)")
                time.sleep(seconds)
                time.sleep(3.0)  # the last webhooks
            finally:
                service.stop()
                service.store.close()
            delivered = {d.incident_id: d.received_at for d in receiver.stats().last if d.event == "workorder.detect" and d.incident_id is not None}
        finally:
            receiver.stop()
            server.stop()
    with lock:
        rows = dict(opened)
    frame_ms = [(t - frame_at) * 1000 for frame_at, t in rows.values()]
    hook_ms = [(delivered[i] - t) * 1000 for i, (_f, t) in rows.items() if i in delivered]
    return LatencyResult(
        incidents=len(rows),
        webhooks=len(hook_ms),
        frame_to_incident_p50_ms=_p(frame_ms, 50),
        frame_to_incident_p95_ms=_p(frame_ms, 95),
        incident_to_webhook_p50_ms=_p(hook_ms, 50),
        incident_to_webhook_p95_ms=_p(hook_ms, 95),
        cpu_cores=os.cpu_count(),
    )


def _verdict(value: float | None, limit: float) -> str:
    return f"{'PASS' if value is not None and value < limit else 'FAIL'}: < {limit:.0f} ms"


def format_latency(r: LatencyResult) -> str:
    return "\n".join(
        [
            f"incidents {r.incidents}, webhooks matched {r.webhooks}, cores {r.cpu_cores}",
            f"frame -> incident   p50 {r.frame_to_incident_p50_ms} ms, p95 {r.frame_to_incident_p95_ms} ms "
            f"[{_verdict(r.frame_to_incident_p95_ms, 500)}]",
            f"incident -> webhook p50 {r.incident_to_webhook_p50_ms} ms, p95 {r.incident_to_webhook_p95_ms} ms "
            f"[{_verdict(r.incident_to_webhook_p95_ms, 1000)}]",
        ]
    )
