"""Prometheus metrics of one service instance (its own registry: no globals).

Besides the pipeline's figures (batches, frames, latency, incidents, line crossings) and the
cameras', three groups are read at scrape time from the parts that own them:

* **delivery** (the outbox): ``gridworker_delivery_queue_depth{destination}`` (messages not
  delivered yet), ``gridworker_delivery_oldest_undelivered_age_seconds{destination}`` and
  ``gridworker_delivery_dead_letters{destination}`` (gave up; replay them from the API);
* **cases** (work orders): ``gridworker_cases_open{state}`` and ``gridworker_cases_overdue``;
* **patrol**: ``gridworker_patrol_visits_total{plan,outcome}`` and
  ``gridworker_patrol_failures_total{plan,kind}`` (counted per visit), and
  ``gridworker_patrol_cycle_seconds{plan}`` (the last full cycle's duration). A deleted plan's
  series leave at the next scrape (the plans are read then, see :meth:`Metrics.watch_patrol`).

``gridworker_listener_failures_total{event,listener}`` counts listeners (incident open/close
callbacks, frame observers) that raised; each is logged with its traceback too.

**detector** (the pipeline's failed batches, ``vision/pipeline.py: DetectorFailures``):
``gridworker_detector_failed_batches_total`` and ``gridworker_detector_failed_frames_total``
(batches the model raised on, their frames skipped) and ``gridworker_detector_failing`` (1 for a
minute after a failure: ``/health`` says degraded then).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gridworker.vision.pipeline import DetectorHealth


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
        behind = GaugeMetricFamily(
            "gridworker_camera_behind", "1 while the camera's analysed fps has stayed below half its configured fps for pipeline.behind_window_s (default a minute)", labels=["camera"]
        )
        inferred = CounterMetricFamily("gridworker_camera_frames_inferred", "Live frames the model ran on", labels=["camera"])
        coasted = CounterMetricFamily(
            "gridworker_camera_frames_coasted", "Live frames the motion gate kept from the model (analysed with the last detections)", labels=["camera"]
        )
        cropped = CounterMetricFamily(
            "gridworker_camera_frames_cropped", "Inferred live frames the model saw only the moved part of (motion.crop)", labels=["camera"]
        )
        for cam in self._snapshot():
            cid = cam["id"]
            fps.add_metric([cid], cam["analysed_fps"])
            dec.add_metric([cid], cam["stream_fps"])
            live.add_metric([cid, cam["state"]], 1.0 if cam["state"] == "live" else 0.0)
            rec.add_metric([cid], cam["reconnects"])
            drop.add_metric([cid], cam["frames_dropped"])
            opened.add_metric([cid], cam["open_incidents"])
            inferred.add_metric([cid], cam.get("frames_inferred", 0))
            coasted.add_metric([cid], cam.get("frames_coasted", 0))
            cropped.add_metric([cid], cam.get("frames_cropped", 0))
            # issue 16: analysis falling behind (vision/pace.py)
            behind.add_metric([cid], 1.0 if cam.get("behind") else 0.0)
        yield from (fps, dec, live, rec, drop, opened, inferred, coasted, cropped, behind)


class DeliveryFigures(Protocol):
    """Per destination: counts by state and the oldest pending message's time (``Outbox.counters``)."""

    def counters(self) -> dict[str, dict[str, Any]]: ...


class CaseFigures(Protocol):
    """Unfinished cases by state and how many are overdue (``WorkOrders.case_counts``)."""

    def case_counts(self, now: float) -> tuple[dict[str, int], int]: ...


class _DetectorCollector(Collector):
    def __init__(self, status: Callable[[], DetectorHealth]) -> None:
        self._status = status

    def collect(self) -> Iterable[Any]:
        figures = self._status()
        batches = CounterMetricFamily("gridworker_detector_failed_batches", "Inference batches the detector raised on (their frames skipped)")
        batches.add_metric([], float(figures.batches_failed))
        frames = CounterMetricFamily("gridworker_detector_failed_frames", "Frames skipped because their batch failed in the detector")
        frames.add_metric([], float(figures.frames_failed))
        failing = GaugeMetricFamily("gridworker_detector_failing", "1 while a batch failed within the last minute (/health: degraded)")
        failing.add_metric([], 1.0 if figures.failing else 0.0)
        yield from (batches, frames, failing)


class _DeliveryCollector(Collector):
    def __init__(self, source: DeliveryFigures, clock: Callable[[], float]) -> None:
        self._source, self._clock = source, clock

    def collect(self) -> Iterable[Any]:
        depth = GaugeMetricFamily("gridworker_delivery_queue_depth", "Messages not delivered yet", labels=["destination"])
        age = GaugeMetricFamily(
            "gridworker_delivery_oldest_undelivered_age_seconds", "Age of the oldest message not delivered yet (0: none)", labels=["destination"]
        )
        dead = GaugeMetricFamily("gridworker_delivery_dead_letters", "Messages given up on (replay them)", labels=["destination"])
        now = self._clock()
        for dest, c in sorted(self._source.counters().items()):
            depth.add_metric([dest], float(c.get("pending", 0)))
            oldest = c.get("oldest_pending_at")
            age.add_metric([dest], max(0.0, now - float(oldest)) if oldest is not None else 0.0)
            dead.add_metric([dest], float(c.get("dead", 0)))
        yield from (depth, age, dead)


class _CaseCollector(Collector):
    def __init__(self, source: CaseFigures, clock: Callable[[], float]) -> None:
        self._source, self._clock = source, clock

    def collect(self) -> Iterable[Any]:
        by_state, overdue = self._source.case_counts(self._clock())
        opened = GaugeMetricFamily("gridworker_cases_open", "Cases not finished, by state", labels=["state"])
        for state, n in sorted(by_state.items()):
            opened.add_metric([state], float(n))
        late = GaugeMetricFamily("gridworker_cases_overdue", "Cases still running past their time limit")
        late.add_metric([], float(overdue))
        yield from (opened, late)


class _PatrolCycleCollector(Collector):
    def __init__(self, cycles: Callable[[], Mapping[str, float | None]]) -> None:
        self._cycles = cycles

    def collect(self) -> Iterable[Any]:
        g = GaugeMetricFamily("gridworker_patrol_cycle_seconds", "Duration of the plan's last full cycle", labels=["plan"])
        for plan, seconds in sorted(self._cycles().items()):
            if seconds is not None:
                g.add_metric([plan], seconds)
        yield g


class Metrics:
    """The service's registry. ``watch_delivery``, ``watch_cases`` and ``watch_patrol`` add the
    figures read at scrape time (the composition root calls them once).

    Example:
        >>> m = Metrics(lambda: [])
        >>> m.frames_done(3, None); b"gridworker_frames_analysed_total 3.0" in m.render()
        True
    """

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
        self.listener_failures = Counter(
            "gridworker_listener_failures",
            "Listeners (incident open/close callbacks, frame observers) that raised; each is logged",
            labelnames=["event", "listener"],
            registry=self.registry,
        )
        self.patrol_visits = Counter(
            "gridworker_patrol_visits", "Patrol visits finished", labelnames=["plan", "outcome"], registry=self.registry
        )
        self.patrol_failures = Counter(
            "gridworker_patrol_failures", "Patrol visits that failed, by kind", labelnames=["plan", "kind"], registry=self.registry
        )
        self.registry.register(_CameraCollector(camera_snapshot))
        self._patrol_plans: Callable[[], Mapping[str, float | None]] | None = None
        self._lines: Callable[[], set[tuple[str, str]]] | None = None

    # -- what the parts tell ------------------------------------------------------------
    def batch_done(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference_seconds.observe(seconds)

    def frames_done(self, n: int, latency_s: float | None) -> None:
        self.frames_analysed.inc(n)
        if latency_s is not None:
            self.frame_latency_seconds.observe(latency_s)

    def listener_failed(self, event: str, listener: str) -> None:
        self.listener_failures.labels(event=event, listener=listener).inc()

    def incident_opened(self, type_code: str) -> None:
        self.incidents_opened.labels(type=type_code).inc()

    def patrol_visit(self, plan_id: str, ok: bool, error_kind: str | None) -> None:
        self.patrol_visits.labels(plan=plan_id, outcome="ok" if ok else "failed").inc()
        if not ok:
            self.patrol_failures.labels(plan=plan_id, kind=error_kind or "error").inc()

    # -- what is read at scrape time ----------------------------------------------------
    def watch_delivery(self, source: DeliveryFigures, clock: Callable[[], float] = time.time) -> None:
        self.registry.register(_DeliveryCollector(source, clock))

    def watch_cases(self, source: CaseFigures, clock: Callable[[], float] = time.time) -> None:
        self.registry.register(_CaseCollector(source, clock))

    def watch_detector(self, status: Callable[[], DetectorHealth]) -> None:
        """The detector's failed batches, read at scrape time (``Pipeline.detector_failures.status``)."""
        self.registry.register(_DetectorCollector(status))

    def watch_patrol(self, last_cycles: Callable[[], Mapping[str, float | None]]) -> None:
        """Each plan's last cycle at scrape time; its keys are also the plans that exist: the
        visit and failure counters of any other plan are dropped before each scrape."""
        self._patrol_plans = last_cycles
        self.registry.register(_PatrolCycleCollector(last_cycles))

    @staticmethod
    def _drop_gone(counter: Counter, names: tuple[str, ...], key: Callable[[dict[str, str]], object], live: Callable[[], Container[object]]) -> None:
        """Remove ``counter``'s label sets whose ``key`` is not in ``live()``; ``live`` is read
        after the samples, so a label set added meanwhile (a camera, a plan just made) stays."""
        samples = [sample.labels for family in counter.collect() for sample in family.samples]
        alive = live()
        for values in {tuple(labels[n] for n in names) for labels in samples if key(labels) not in alive}:
            counter.remove(*values)

    def _drop_gone_plans(self, plans: Callable[[], Mapping[str, float | None]]) -> None:
        for counter, names in ((self.patrol_visits, ("plan", "outcome")), (self.patrol_failures, ("plan", "kind"))):
            self._drop_gone(counter, names, lambda labels: labels["plan"], lambda: plans().keys())

    def watch_lines(self, lines: Callable[[], set[tuple[str, str]]]) -> None:
        """The (camera, line) pairs that exist, read at scrape time: the crossing counts of any
        other (a camera removed, a line taken out of its scene) are dropped before each scrape."""
        self._lines = lines

    def render(self) -> bytes:
        if self._patrol_plans is not None:
            self._drop_gone_plans(self._patrol_plans)
        if self._lines is not None:
            names = ("camera", "line", "class_name", "direction")
            self._drop_gone(self.line_crossings, names, lambda labels: (labels["camera"], labels["line"]), self._lines)
        return generate_latest(self.registry)
