"""Patrol visits done again and the cameras they reach, against the real nats-server: a visit
whose reports were not stored reports again when redone; a camera's URL is the registry's now;
a visit that keeps raising is given up, reported and signalled on its last delivery; a
continuously watched camera is not sent to the workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gridworker.cluster.observations import ObservationConsumer, ObservationPublisher
from gridworker.cluster.visits import (
    QueueFeed,
    VisitConsumer,
    VisitLedger,
    VisitTask,
    publish_cycle,
    start_visit_consumer,
    start_visit_publisher,
)
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.settings import CameraConfig
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.pipeline import PatrolVisit, Pipeline
from gridworker.vision.visits import VisitAnalyzer
from tests.cluster.cluster_h5_support import manager_on
from tests.cluster.test_cluster_revisit_kv import links, worker_pipeline  # noqa: F401 - links: the fixture
from tests.cluster.test_cluster_visits_queue import link  # noqa: F401 - the fixture
from tests.factories import wait_until
from tests.patrol.test_revisit import CAR, _kerb_scene, dets
from tests.patrol.test_revisit_memory import GRAY


class _FailsOnce:
    """A worker's sink whose first report with a qualifying vehicle is not stored (it raises;
    ``refuse=False``: a sink that stores every report)."""

    def __init__(self, refuse: bool) -> None:
        self.reports: list[Any] = []
        self.failed = 0 if refuse else 1

    def observe(self, analysis: Any, *, partial: bool = False) -> None:
        pass

    def report(self, report: Any) -> None:
        if not self.failed and any(o.qualifies for o in report.objects):
            self.failed += 1
            raise TimeoutError("observation not stored: MaxPayloadError")
        self.reports.append(report)


def _qualifying(sink: _FailsOnce) -> list[Any]:
    return [o for r in sink.reports for o in r.objects if o.qualifies]


def test_a_visit_whose_report_was_not_stored_reports_again_when_redone(links) -> None:  # noqa: F811
    """The memory goes to the bucket only once the sink took the visit's reports: the redone
    visit (here on the other worker) finds the vehicle not yet reported and reports it."""
    sink_a, sink_b = _FailsOnce(refuse=True), _FailsOnce(refuse=False)
    a, b = worker_pipeline(links[0], sink_a), worker_pipeline(links[1], sink_b)

    def visit(pipeline: Pipeline, ts: float) -> None:
        frame = Frame("cam", int(ts), ts, np.full((360, 640, 3), GRAY, np.uint8))
        pipeline.judge_visit(PatrolVisit("cam", (frame,), timeout_s=30.0))

    try:
        visit(a, 1000.0)
        with pytest.raises(TimeoutError):
            visit(a, 1310.0)  # the pair qualifies, its report is not stored: the visit fails
        assert sink_a.failed == 1 and _qualifying(sink_a) == []  # nothing was stored
        visit(b, 1320.0)  # redelivered to the other worker
        [seen] = _qualifying(sink_b)
        assert seen.details["first_capture"]["at"] == 1000.0 and seen.details["second_capture"]["at"] == 1320.0
        assert seen.snapshot is not None
    finally:
        a.stop()
        b.stop()


def test_a_glance_whose_judgement_the_sink_refused_is_forgotten() -> None:
    judge = VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator())

    def frame(ts: float) -> Frame:
        return Frame("cam", int(ts), ts, np.full((360, 640, 3), GRAY, np.uint8))

    def refuse(judgement: Any) -> None:
        raise RuntimeError("stream full")

    judge.analyse_glance([frame(1000.0)], [dets(CAR)])
    with pytest.raises(RuntimeError):
        judge.judge_glance([frame(1310.0)], [dets(CAR)], refuse)
    [memory] = judge.export_revisit().zones.values()
    assert [p.reported for p in memory.parked] == [False] and memory.last_ts == 1000.0
    taken: list[Any] = []
    judged = judge.judge_glance([frame(1320.0)], [dets(CAR)], taken.append)
    assert judged is not None and taken == [judged]
    [seen] = [o for r in judged.reports for o in r.objects]
    assert seen.qualifies and seen.details["second_capture"]["at"] == 1320.0


class _NoSlots:
    """A worker pipeline without a slot for the camera: its visits only glance."""

    def slot(self, camera_id: str) -> None:
        return None


def test_a_visit_opens_the_url_the_registry_has_now(link, monkeypatch) -> None:  # noqa: F811
    opened: list[str] = []

    def glance(camera_id: str, url: str, **kwargs: Any) -> GlanceResult:
        opened.append(url)
        return GlanceResult(camera_id, "", time.time(), total_s=0.01)

    monkeypatch.setattr("gridworker.cluster.visits.glance", glance)
    targets = [PatrolTarget("gate-1", "rtsp://user:old@10.0.0.5/s1")]
    ctx: Any = SimpleNamespace(link=link, config=SimpleNamespace(visit_slots=2), worker_id="w1", visit_done=lambda: None)
    runtime: Any = SimpleNamespace(pipeline=_NoSlots(), targets=lambda: list(targets), sink=None)
    consumer = start_visit_consumer(ctx, runtime)
    try:
        publish_cycle(link, [VisitTask(plan_id="p", cycle="1", camera_id="gate-1")])
        wait_until(lambda: opened == ["rtsp://user:old@10.0.0.5/s1"], timeout=10)
        targets[0] = PatrolTarget("gate-1", "rtsp://user:rotated@10.0.0.9/s1")  # the operator edits the camera
        publish_cycle(link, [VisitTask(plan_id="p", cycle="2", camera_id="gate-1")])
        wait_until(lambda: len(opened) == 2, timeout=10)
        assert opened[1] == "rtsp://user:rotated@10.0.0.9/s1"
        targets.clear()  # ... then deletes it: no longer known, not opened
        publish_cycle(link, [VisitTask(plan_id="p", cycle="3", camera_id="gate-1")])
        wait_until(lambda: consumer.stats.retried >= 1, timeout=10)
        assert len(opened) == 2
    finally:
        consumer.stop(5)


def test_a_visit_that_keeps_raising_is_given_up_reported_and_signalled(link, tmp_path: Path) -> None:  # noqa: F811
    calls: list[str] = []

    def boom(task: VisitTask, stop: threading.Event) -> GlanceResult:
        calls.append(task.visit_id)
        raise RuntimeError("decoder crashed")

    sink = ObservationPublisher(link, "w1", lambda cam: None)
    reported: list[Any] = []
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    cases = ObservationConsumer(link, manager, store.db, on_outcome=reported.append)
    cases.start()
    feed = QueueFeed(link, lambda: [])
    feed.start()
    worker = VisitConsumer(link, boom, sink, concurrency=1, ack_wait_s=5, max_deliver=2, backoff_s=(0.2,))
    worker.start()
    task = VisitTask(plan_id="p", cycle="1", camera_id="gate-1", open_timeout_s=1, keyframe_timeout_s=1)
    try:
        t0 = time.monotonic()
        result = feed.visit(task, threading.Event(), 15.0)  # waits for the worker's done signal
        took = time.monotonic() - t0
        wait_until(lambda: len(reported) == 1, timeout=10)
    finally:
        worker.stop(5)
        feed.stop()
        cases.stop()
        sink.close(5)
    assert result.error_kind == "error" and "visit failed: RuntimeError" in (result.error or "") and took < 10
    assert calls == ["p:1:gate-1"] * 2 and worker.stats.given_up == 1 and worker.stats.retried == 1
    assert reported[0].outcome.error_kind == "error" and reported[0].outcome.deliveries == 2
    assert int(link.call(lambda: link.js.stream_info(link.name("visits"))).state.messages) == 0  # terminated


def test_a_continuously_watched_camera_is_not_sent_to_the_workers(link) -> None:  # noqa: F811
    cameras = {
        "live-1": CameraConfig(id="live-1", url="rtsp://10.0.0.5/s1", fps=5),
        "yard-1": CameraConfig(id="yard-1", url="rtsp://10.0.0.6/s1", watch="patrol"),
    }
    visits: list[tuple[str, bool, str | None]] = []

    def camera(camera_id: str) -> Any:
        return SimpleNamespace(config=cameras[camera_id])  # an unknown one: CameraNotFound, a KeyError

    service: Any = SimpleNamespace(
        patrol_targets=lambda: [PatrolTarget(c.id, c.url) for c in cameras.values()], camera=camera,
        metrics=SimpleNamespace(patrol_visit=lambda plan_id, ok, kind: visits.append((plan_id, ok, kind))), patrol=SimpleNamespace(),
    )
    ctx: Any = SimpleNamespace(link=link, visits=VisitLedger(), service=service)
    sent: list[str] = []

    def runner(task: VisitTask, stop: threading.Event) -> GlanceResult:
        sent.append(task.camera_id)
        return GlanceResult(task.camera_id, "", time.time(), total_s=0.01, first_keyframe_s=0.01)

    feed = start_visit_publisher(ctx)
    worker = VisitConsumer(link, runner, concurrency=2, ack_wait_s=5)
    worker.start()
    plan = PatrolPlan(id="p", select={"camera_ids": ["live-1", "yard-1"]}, cycles=2, open_timeout_s=1, keyframe_timeout_s=1)
    run = service.patrol.make_run(plan)
    try:
        run.start()
        assert run.wait(30)
    finally:
        worker.stop(5)
        feed.stop()
    assert sent == ["yard-1", "yard-1"]  # the continuous camera was not opened a second time
    outcomes = run.outcomes()
    assert sorted((o.camera_id, o.ok) for o in outcomes) == [("live-1", True)] * 2 + [("yard-1", True)] * 2
    assert len(visits) == 4 and all(ok for _, ok, _ in visits)
