"""Prometheus metrics of one service instance (its own registry: no globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class _CameraCollector(Collector):
    """Reads per-camera figures at scrape time from the running service."""

    def __init__(self, snapshot: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Any]:
        fps = GaugeMetricFamily("gridworker_camera_analysed_fps", "Frames analysed per second", labels=["camera"])
        dec = GaugeMetricFamily("gridworker_camera_stream_fps", "Frames sampled from the stream per second", labels=["camera"])
        live = GaugeMetricFamily("gridworker_camera_up", "1 when the camera's stream is live", labels=["camera", "state"])
        rec = CounterMetricFamily("gridworker_camera_reconnects", "Stream reconnects", labels=["camera"])
        drop = CounterMetricFamily("gridworker_camera_frames_dropped", "Sampled frames replaced before analysis", labels=["camera"])
        opened = GaugeMetricFamily("gridworker_incidents_open", "Open incidents", labels=["camera"])
        for cam in self._snapshot():
            cid = cam["id"]
            fps.add_metric([cid], cam["analysed_fps"])
            dec.add_metric([cid], cam["stream_fps"])
            live.add_metric([cid, cam["state"]], 1.0 if cam["state"] == "live" else 0.0)
            rec.add_metric([cid], cam["reconnects"])
            drop.add_metric([cid], cam["frames_dropped"])
            opened.add_metric([cid], cam["open_incidents"])
        yield from (fps, dec, live, rec, drop, opened)


class Metrics:
    def __init__(self, camera_snapshot: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        self.batch_size = Histogram(
            "gridworker_batch_size", "Frames per inference batch", buckets=(1, 2, 4, 8, 16, 32), registry=self.registry
        )
        self.inference_seconds = Histogram(
            "gridworker_inference_seconds",
            "Detector time per batch",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self.frame_latency_seconds = Histogram(
            "gridworker_frame_latency_seconds",
            "From frame capture to rules evaluated and incidents written",
            buckets=(0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0),
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "gridworker_incidents_opened", "Incidents opened", labelnames=["type"], registry=self.registry
        )
        self.frames_analysed = Counter("gridworker_frames_analysed", "Frames analysed", registry=self.registry)
        self.line_crossings = Counter(
            "gridworker_line_crossings",
            "Objects crossing a counting line",
            labelnames=["camera", "line", "class_name", "direction"],
            registry=self.registry,
        )
        self.registry.register(_CameraCollector(camera_snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)
