"""A plan with nothing to visit never spins: an idle cycle waits IDLE_CYCLE_S, dead cameras are
retried at a back-off in seconds (not once per microsecond-long cycle)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from gridworker.patrol import CameraOutcome, PatrolPlan, PatrolRun, PatrolState, PatrolTarget, default_visitor
from gridworker.patrol.engine import IDLE_CYCLE_S
from gridworker.patrol.manager import PatrolManager
from gridworker.patrol.selection import RETRY_BACKOFF_MAX_S, retry_delay_s
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult
from tests.factories import free_port

WINDOW_S = 3.0  # shorter than IDLE_CYCLE_S: the first idle wait is still running at the end


class Outcomes:
    """Collects visit outcomes (thread-safe) and counts them per camera."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[CameraOutcome] = []

    def __call__(self, outcome: CameraOutcome) -> None:
        with self.lock:
            self.items.append(outcome)

    def count(self, camera_id: str | None = None) -> int:
        with self.lock:
            return sum(1 for o in self.items if camera_id is None or o.camera_id == camera_id)


def _dead(n: int) -> list[PatrolTarget]:
    return [PatrolTarget(f"dead{i}", f"rtsp://127.0.0.1:{free_port()}/x{i}") for i in range(n)]


def _drop(target: PatrolTarget, frames: Sequence[Frame]) -> None:
    return None


def _no_cameras() -> list[PatrolTarget]:
    return []


def test_retry_delay_grows_from_the_open_timeout_to_the_cap() -> None:
    assert [retry_delay_s(k, 1.0) for k in range(0, 5)] == [0.0, 0.0, 1.0, 2.0, 4.0]
    assert retry_delay_s(12, 5.0) == RETRY_BACKOFF_MAX_S == 300.0
    assert retry_delay_s(10_000, 5.0) == RETRY_BACKOFF_MAX_S  # no overflow
    assert retry_delay_s(3, 5.0, max_s=7.0) == 7.0


def test_empty_plan_waits_between_cycles_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gridworker.patrol")
    plan = PatrolPlan(id="empty", cycles=0)  # min_cycle_s 0: the idle floor is what waits
    assert plan.min_cycle_s == 0
    run = PatrolRun(plan, _no_cameras, _drop)
    cpu0 = time.process_time()
    run.start()
    assert run.wait_for(lambda s: s.state is PatrolState.WAITING, timeout=5)
    time.sleep(WINDOW_S)
    status = run.status()
    cpu = time.process_time() - cpu0
    assert status.cycle == 1 and status.completed_cycles == 1 and status.state is PatrolState.WAITING
    assert cpu < 1.0  # the reviewer's spin burnt a full core
    t0 = time.monotonic()
    assert run.stop(timeout=5)
    assert time.monotonic() - t0 < 2.0  # stop ends the idle wait at once
    idle_lines = [r.getMessage() for r in caplog.records if "no camera to visit" in r.getMessage()]
    assert len(idle_lines) == 1 and "selects no camera" in idle_lines[0]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "cycle 1," in r.getMessage()]


def test_empty_plan_is_woken_by_a_camera_change() -> None:
    cams: list[PatrolTarget] = []
    outcomes = Outcomes()
    plan = PatrolPlan(id="woken", cycles=0, open_timeout_s=1.0, keyframe_timeout_s=1.0)
    run = PatrolRun(plan, lambda: list(cams), _drop, on_outcome=outcomes)
    run.start()
    try:
        assert run.wait_for(lambda s: s.state is PatrolState.WAITING, timeout=5)
        cams.extend(_dead(1))
        t0 = time.monotonic()
        run.wake()
        assert run.wait_for(lambda s: s.visits_total >= 1, timeout=IDLE_CYCLE_S - 1)
        assert time.monotonic() - t0 < IDLE_CYCLE_S - 1  # not after the idle floor
    finally:
        assert run.stop(timeout=5)


def test_manager_wakes_its_idle_runs() -> None:
    cams: list[PatrolTarget] = []
    plan = PatrolPlan(id="managed", cycles=0, open_timeout_s=1.0, keyframe_timeout_s=1.0)
    manager = PatrolManager(lambda p: PatrolRun(p, lambda: list(cams), _drop), [plan])
    manager.cameras_changed()  # no run yet: nothing to wake
    manager.start("managed")
    run = manager.run("managed")
    assert run is not None
    try:
        assert run.wait_for(lambda s: s.state is PatrolState.WAITING, timeout=5)
        cams.extend(_dead(1))
        manager.cameras_changed()
        assert run.wait_for(lambda s: s.visits_total >= 1, timeout=IDLE_CYCLE_S - 1)
    finally:
        manager.stop_all(timeout=5)


def test_idle_floor_keeps_a_longer_min_cycle() -> None:
    plan = PatrolPlan(id="slow", cycles=0, min_cycle_s=IDLE_CYCLE_S + 60)
    run = PatrolRun(plan, _no_cameras, _drop)
    run.start()
    try:
        assert run.wait_for(lambda s: s.state is PatrolState.WAITING, timeout=5)
        run.wake()  # wakes only what passes min_cycle_s: nothing here
        time.sleep(1.0)
        assert run.status().cycle == 1
    finally:
        assert run.stop(timeout=5)


def test_all_dead_plan_retries_at_the_backoff_rate() -> None:
    targets = _dead(3)
    outcomes = Outcomes()
    plan = PatrolPlan(id="dead", cycles=0, open_timeout_s=1.0, keyframe_timeout_s=2.0)
    run = PatrolRun(plan, targets, _drop, on_outcome=outcomes)
    run.start()
    try:
        time.sleep(WINDOW_S)
        status = run.status()
    finally:
        assert run.stop(timeout=5)
    # cycle 1 and 2 (a first failure is retried next cycle), then every camera sits out its
    # back-off: the cycle starts no visit and the run waits IDLE_CYCLE_S (the reviewer saw 494)
    assert outcomes.count() == 6, [(o.camera_id, o.cycle) for o in outcomes.items]
    assert status.cycle == 3 and status.state is PatrolState.WAITING
    assert status.last_cycle is not None and status.last_cycle.skipped == 3
    for off in status.offline:
        assert off.failures == 2 and off.retry_at is not None
        assert off.retry_at >= off.since + plan.open_timeout_s - 0.5


def test_dead_camera_beside_live_ones_is_not_retried_every_cycle() -> None:
    """Cycles with visits run at full speed (no idle floor); the dead camera among them is
    retried by the back-off in seconds: 0, then 1, 2 s later (open_timeout_s 1)."""
    (dead,) = _dead(1)
    live = [PatrolTarget(f"live{i}", "rtsp://127.0.0.1:1/never-dialled") for i in range(2)]
    outcomes = Outcomes()

    def visitor(
        target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int,
        deliver: Callable[[Sequence[Frame]], None],
    ) -> GlanceResult:
        if target.camera_id == dead.camera_id:
            return default_visitor(target, plan, stop, first_seq, deliver)  # really refused
        stop.wait(0.02)
        return GlanceResult(target.camera_id, "rtsp://127.0.0.1:1/never-dialled", time.time(), total_s=0.02)

    plan = PatrolPlan(id="mixed", cycles=0, concurrency=4, stagger_s=0.0, open_timeout_s=1.0, keyframe_timeout_s=2.0)
    run = PatrolRun(plan, [dead, *live], _drop, visitor=visitor, on_outcome=outcomes)
    run.start()
    try:
        time.sleep(WINDOW_S)
    finally:
        assert run.stop(timeout=5)
    assert outcomes.count("live0") >= 20  # many short cycles: none waited
    assert 2 <= outcomes.count(dead.camera_id) <= 4
