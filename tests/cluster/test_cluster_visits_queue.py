"""Patrol visits on the JetStream work queue, against the real nats-server (issue 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cluster.cluster_h5_support import SHARED_URL, close_link, drop_streams, link_to, manager_on
from tests.factories import wait_until
from gridworker.cluster.observations import ObservationConsumer, ObservationPublisher, ensure_obs_stream, obs_subject
from gridworker.cluster.visits import VisitConsumer, VisitTask, ensure_visit_stream, publish_cycle
from gridworker.streams.glance import GlanceResult


@pytest.fixture
def link():
    lk = link_to(SHARED_URL)
    lk.call(lambda: ensure_visit_stream(lk))
    lk.call(lambda: ensure_obs_stream(lk))
    yield lk
    drop_streams(lk, "visits", "obs")
    close_link(lk)


def _tasks(cycle: int | str, cameras: list[str]) -> list[VisitTask]:
    return [VisitTask(plan_id="key-sites", cycle=str(cycle), camera_id=c, open_timeout_s=1, keyframe_timeout_s=1) for c in cameras]


def _ok(task: VisitTask, stop: threading.Event) -> GlanceResult:
    return GlanceResult(task.camera_id, "", time.time(), total_s=0.01)


def _queued(link) -> int:
    return int(link.call(lambda: link.js.stream_info(link.name("visits"))).state.messages)


def test_a_cycle_is_queued_once_and_every_visit_done_once(link) -> None:
    cams = [f"cam{i}" for i in range(30)]
    assert publish_cycle(link, _tasks(1, cams)) == 30
    assert publish_cycle(link, _tasks(1, cams)) == 0  # a leader re-publishing the cycle: Nats-Msg-Id plan:cycle:camera
    workers = [VisitConsumer(link, _ok, concurrency=4, ack_wait_s=10) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: sum(w.stats.done for w in workers) == 30, timeout=30)
        wait_until(lambda: _queued(link) == 0, timeout=10)
    finally:
        for w in workers:
            w.stop(5)
    done = [v for w in workers for v in w.stats.done_ids]
    assert sorted(done) == sorted(t.visit_id for t in _tasks(1, cams))  # none lost, none twice
    assert sum(w.stats.done > 0 for w in workers) >= 2  # shared out


_DYING_WORKER = """
import sys, threading, time
sys.path.insert(0, {root!r})
from tests.cluster.cluster_h5_support import link_to
from gridworker.cluster.visits import VisitConsumer
link = link_to({url!r}, {prefix!r})
def hang(task, stop):
    print("visiting", task.visit_id, flush=True)
    time.sleep(600)
VisitConsumer(link, hang, concurrency=1, ack_wait_s=3).start()
time.sleep(600)
"""


def test_a_worker_killed_mid_visit_has_its_visit_redone_by_another(link) -> None:
    publish_cycle(link, _tasks(7, ["gate-1"]))
    root = str(Path(__file__).resolve().parents[2])
    code = _DYING_WORKER.format(root=root, url=SHARED_URL, prefix=link.config.prefix)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=root)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "visiting key-sites:7:gate-1" in line
        os.kill(proc.pid, signal.SIGKILL)  # mid-visit, never acked
        proc.wait(10)
        other = VisitConsumer(link, _ok, concurrency=1, ack_wait_s=3)
        other.start()
        try:
            wait_until(lambda: other.stats.done == 1, timeout=20)
        finally:
            other.stop(5)
        assert other.stats.done_ids == ["key-sites:7:gate-1"] and other.stats.redelivered == 1
        wait_until(lambda: _queued(link) == 0, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_offline_camera_is_terminated_and_reported_not_retried(link, tmp_path: Path) -> None:
    calls: list[str] = []

    def offline(task: VisitTask, stop: threading.Event) -> GlanceResult:
        calls.append(task.visit_id)
        return GlanceResult(task.camera_id, "", time.time(), error_kind="open_failed", error="connection refused")

    def flaky(task: VisitTask, stop: threading.Event) -> GlanceResult:
        calls.append(task.visit_id)
        return GlanceResult(task.camera_id, "", time.time(), error_kind="keyframe_timeout", error="no keyframe")

    sink = ObservationPublisher(link, "w1", lambda cam: None)
    reported: list = []
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    cases = ObservationConsumer(link, manager, store.db, on_outcome=reported.append)
    cases.start()
    publish_cycle(link, _tasks(3, ["depot-yard"]))
    worker = VisitConsumer(link, offline, sink, concurrency=2, ack_wait_s=5)
    worker.start()
    try:
        wait_until(lambda: len(reported) == 1, timeout=20)
        time.sleep(1.0)
        assert calls == ["key-sites:3:depot-yard"] and worker.stats.offline == 1  # AckTerm: no second try
        assert reported[0].outcome.error_kind == "open_failed" and reported[0].visit == "key-sites:3:depot-yard"
        assert _queued(link) == 0
    finally:
        worker.stop(5)
    # a failure that may pass (no keyframe in time): retried with backoff up to max_deliver, then reported
    calls.clear()
    publish_cycle(link, _tasks(4, ["slow-cam"]))
    retrying = VisitConsumer(link, flaky, sink, concurrency=1, ack_wait_s=5, max_deliver=3, backoff_s=(0.3,))
    retrying.start()
    try:
        wait_until(lambda: len(reported) == 2, timeout=30)
    finally:
        retrying.stop(5)
        cases.stop()
        sink.close(5)
    assert calls == ["key-sites:4:slow-cam"] * 3 and retrying.stats.given_up == 1 and retrying.stats.retried == 2
    assert reported[1].outcome.deliveries == 3


def test_hostile_visit_tasks_are_terminated(link) -> None:
    for i, raw in enumerate([b"{", b'{"v":2,"plan_id":"p","cycle":"1","camera_id":"c"}', b'{"v":1,"plan_id":"../x","cycle":"1","camera_id":"c"}', b"x" * 5000]):
        try:
            link.call(lambda raw=raw, i=i: link.js.publish(f"{link.config.prefix}.visits", raw, headers={"Nats-Msg-Id": f"bad{i}"}))
        except Exception:
            pass  # the oversized one: the stream's max_msg_size refuses it already
    publish_cycle(link, _tasks(1, ["cam1"]))
    worker = VisitConsumer(link, _ok, concurrency=2, ack_wait_s=5)
    worker.start()
    try:
        wait_until(lambda: worker.stats.done == 1 and worker.stats.rejected == 3, timeout=20)
    finally:
        worker.stop(5)


def test_a_patrol_plan_runs_through_the_queue_on_several_workers(link) -> None:
    from gridworker.cluster.visits import QueueFeed
    from gridworker.patrol.config import PatrolPlan, PatrolTarget

    cams = [PatrolTarget(f"cam{i}", f"rtsp://127.0.0.1:1/cam{i}") for i in range(8)] + [PatrolTarget("depot-yard", "rtsp://127.0.0.1:1/x")]

    def runner(task: VisitTask, stop: threading.Event) -> GlanceResult:
        if task.camera_id == "depot-yard":
            return GlanceResult(task.camera_id, "", time.time(), error_kind="open_failed", error="refused")
        return GlanceResult(task.camera_id, "", time.time(), total_s=0.01, first_keyframe_s=0.01)

    feed = QueueFeed(link, lambda: cams, wait_s=20)
    feed.start()
    workers = [VisitConsumer(link, runner, concurrency=3, ack_wait_s=10) for _ in range(2)]
    for w in workers:
        w.start()
    plan = PatrolPlan(id="key-sites", select={"camera_ids": [c.camera_id for c in cams]}, cycles=2, concurrency=6, open_timeout_s=1, keyframe_timeout_s=1)
    run = feed.make_run(plan)
    try:
        run.start()
        assert run.wait(60)
    finally:
        for w in workers:
            w.stop(5)
        feed.stop()
    status = run.status()
    outcomes = run.outcomes()
    ok = [o for o in outcomes if o.ok]
    assert len(ok) == 16  # 8 cameras x 2 cycles, each done once
    failed = [o for o in outcomes if not o.ok]
    assert failed and all(o.camera_id == "depot-yard" and o.error_kind == "open_failed" for o in failed)
    assert {o.reason for o in failed} == {"open_failed: refused"}, "the worker's reason, its kind named once"
    assert sum(w.stats.offline for w in workers) == len(failed)  # terminated, not retried
    assert status.visits_total == len(outcomes)


def test_a_visit_longer_than_ack_wait_is_not_handed_out_twice(link) -> None:
    calls: list[str] = []

    def slow(task: VisitTask, stop: threading.Event) -> GlanceResult:
        calls.append(task.visit_id)
        time.sleep(5.0)  # more than twice the AckWait: kept by progress signals
        return GlanceResult(task.camera_id, "", time.time(), total_s=5.0)

    publish_cycle(link, _tasks(2, ["gate-2"]))
    workers = [VisitConsumer(link, slow, concurrency=1, ack_wait_s=2.0) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: sum(w.stats.done for w in workers) == 1, timeout=20)
        time.sleep(3.0)
    finally:
        for w in workers:
            w.stop(10)
    assert calls == ["key-sites:2:gate-2"] and sum(w.stats.redelivered for w in workers) == 0


def test_a_worker_dying_after_sending_before_its_ack_makes_no_duplicate(link, tmp_path: Path) -> None:
    from tests.cluster.cluster_h5_support import Scripted

    release = threading.Event()

    def visit_then_die(task: VisitTask, stop: threading.Event) -> GlanceResult:
        sink_a.observe(Scripted(task.camera_id).frame(True), partial=True)  # sent, stored by JetStream
        release.wait(30)  # ... and the worker dies before acking (no ack, no progress signal)
        return GlanceResult(task.camera_id, "", time.time(), error_kind="stopped", error="stopped")

    def visit(task: VisitTask, stop: threading.Event) -> GlanceResult:
        sink_b.observe(Scripted(task.camera_id).frame(True), partial=True)
        return GlanceResult(task.camera_id, "", time.time(), total_s=0.1)

    sink_a = ObservationPublisher(link, "wa", lambda cam: None)
    sink_b = ObservationPublisher(link, "wb", lambda cam: None)
    publish_cycle(link, _tasks(9, ["gate-3"]))
    dying = VisitConsumer(link, visit_then_die, sink_a, concurrency=1, ack_wait_s=2.0, progress_s=1000.0)
    dying.start()
    wait_until(lambda: sink_a.stats.published == 1, timeout=20)
    other = VisitConsumer(link, visit, sink_b, concurrency=1, ack_wait_s=2.0)
    other.start()
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    cases = ObservationConsumer(link, manager, store.db)
    cases.start()
    try:
        wait_until(lambda: other.stats.done == 1, timeout=20)
        wait_until(lambda: cases.stats.applied >= 1, timeout=20)
        time.sleep(1.0)
    finally:
        release.set()
        for c in (dying, other, cases):
            c.stop(5)
        sink_a.close(2)
        sink_b.close(2)
    # the redone visit's observation has the same id (key-sites:9:gate-3.0): the broker kept one
    assert sink_b.stats.published == 1 and cases.stats.applied == 1
    assert len(store.open_incidents()) == 1
