"""Patrol visits into the pipeline: what a :class:`~gridworker.patrol.engine.PatrolRun` is given
to run inside a service.

:class:`PipelineFeed` builds each plan's run with three things, all backed by the
:class:`~gridworker.vision.pipeline.Pipeline`:

* **admission**: a visit starts only while few patrol frames wait for inference
  (:meth:`Pipeline.admit <gridworker.vision.pipeline.Pipeline.admit>`, a condition wait);
* **the visit sink**: a patrol-only camera's frames enter the shared batcher as one
  :class:`~gridworker.vision.pipeline.PatrolVisit` and are judged there;
* **the visitor**: a patrol-only camera gets a real glance/watch; a continuously watched
  camera is not opened again: its visit is its next analysed frame (all its rules already
  run on it), waited for on the camera's condition. A patrol-only camera has one watch stop
  at a time, whichever plans watch it (two watch plans, or an IoT linkage's watch during a
  watch plan): the camera has one tracker, so a second stop waits for the first to end;
* **the load** an adaptive plan's controller reads (:class:`~gridworker.patrol.concurrency.PipelineProbe`):
  this process's CPU, the patrol frames waiting in the batcher, and the share of the
  continuous cameras' offered frames that were analysed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult
from gridworker.streams.health import StreamState
from gridworker.streams.redact import redact_url
from gridworker.vision.pipeline import PatrolVisit, Pipeline

from .concurrency import LiveCount, PipelineProbe
from .config import PatrolPlan, PatrolTarget
from .engine import CameraOutcome, PatrolRun, default_visitor, glance_call

__all__ = ["PipelineFeed"]

#: Extra seconds a visit waits for its detections beyond the plan's own visit budget.
_INFERENCE_GRACE_S = 30.0


class _WatchStops:
    """The patrol-only cameras a watch stop is on now, over all plans: one stop per camera at a
    time (a stop's :meth:`Pipeline.begin_watch` resets the camera's one tracker and rule clocks,
    and two sessions' frames would interleave out of order in it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._cameras: set[str] = set()

    @contextlib.contextmanager
    def hold(self, camera_id: str, stop: threading.Event) -> Iterator[bool]:
        """The camera's watch, held for the ``with`` block once the stop on it now ended (True),
        or False when ``stop`` was set while waiting (nothing held)."""
        with self._cond:
            while camera_id in self._cameras and not stop.is_set():
                self._cond.wait(0.5)
            held = camera_id not in self._cameras
            if held:
                self._cameras.add(camera_id)
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._cameras.discard(camera_id)
                    self._cond.notify_all()


class PipelineFeed:
    """Makes the patrol runs of a service: visits feed the shared pipeline.

    Args:
        pipeline: the service's pipeline.
        targets: every camera as the patrol sees it (read at each cycle's start).
        on_outcome: told each finished visit (the service's patrol metrics).

    Example::

        feed = PipelineFeed(pipeline, service_targets)
        manager = PatrolManager(feed.make_run, plans)
    """

    def __init__(
        self,
        pipeline: Pipeline,
        targets: Callable[[], Sequence[PatrolTarget]],
        *,
        on_outcome: Callable[[PatrolPlan, CameraOutcome], None] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._targets = targets
        self._on_outcome = on_outcome
        self._watch_stops = _WatchStops()  # shared by every plan's run

    def make_run(self, plan: PatrolPlan) -> PatrolRun:
        def sink(target: PatrolTarget, frames: Sequence[Frame]) -> None:
            mode: Literal["glance", "watch"] = "watch" if plan.mode == "watch" else "glance"
            visit = PatrolVisit(target.camera_id, tuple(frames), mode, timeout_s=_INFERENCE_GRACE_S + plan.visit_budget_s())
            self._pipeline.judge_visit(visit)

        def outcome(result: CameraOutcome) -> None:
            if self._on_outcome is not None:
                self._on_outcome(plan, result)

        probe = None
        if plan.concurrency_mode == "adaptive":
            probe = PipelineProbe(self._pipeline.batcher.pending, self._pipeline.patrol_max_pending, self._live_counts)
        # a glance visit waits for room in the detector inside the pipeline (Pipeline.glance_visit);
        # a watch visit's frames come one by one through the sink, admitted here first
        admit = self._pipeline.admit if plan.mode == "watch" else None
        return PatrolRun(plan, self._targets, sink, visitor=self._visit, admit=admit, on_outcome=outcome, load_probe=probe)

    def _live_counts(self) -> list[LiveCount]:
        """The live continuous cameras' offered and analysed frames (the adaptive patrol's signal)."""
        out = []
        for slot in self._pipeline.slots():
            if slot.patrol_only:
                continue
            health = slot.reader.health()
            if health.state is StreamState.LIVE:
                out.append(LiveCount(slot.camera_id, health.frames_published, slot.frames_analysed))
        return out

    def _visit(
        self, target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
    ) -> GlanceResult:
        slot = self._pipeline.slot(target.camera_id)
        if slot is not None and slot.patrol_only and plan.mode != "watch":
            # the whole visit in the pipeline: admission, the camera's keyframes, detection, judgement
            timeout = _INFERENCE_GRACE_S + plan.visit_budget_s()
            return self._pipeline.glance_visit(target.camera_id, glance_call(target, plan, stop, first_seq), stop, timeout)
        if slot is not None and slot.patrol_only:  # a watch stop
            with self._watch_stops.hold(target.camera_id, stop) as held:
                if not held:
                    return GlanceResult(target.camera_id, redact_url(target.url), time.time(), error_kind="stopped", error="stopped")
                self._pipeline.begin_watch(target.camera_id, plan.watch_fps)  # a fresh tracker and rule clocks for this stop
                return default_visitor(target, plan, stop, first_seq, deliver)
        if slot is None:
            return default_visitor(target, plan, stop, first_seq, deliver)
        started_at, t0 = time.time(), time.monotonic()
        before = slot.frames_analysed
        analysed = slot.wait_analysed(before, stop, plan.open_timeout_s + plan.keyframe_timeout_s)
        took = time.monotonic() - t0
        url = redact_url(target.url)
        if analysed:
            return GlanceResult(target.camera_id, url, started_at, first_keyframe_s=took, total_s=took)
        if stop.is_set():
            return GlanceResult(target.camera_id, url, started_at, total_s=took, error_kind="stopped", error="stopped")
        health = slot.reader.health()
        why = f"continuous stream is {health.state.value}" + (f": {health.last_error}" if health.last_error else "")
        return GlanceResult(target.camera_id, url, started_at, total_s=took, error_kind="keyframe_timeout", error=why)
