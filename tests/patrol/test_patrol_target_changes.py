"""A camera changed while a cycle runs (scripted visits, no camera): each visit is of the camera
as the service has it when the visit starts, a time window closing ends the cycle, a camera
replaced under the same id starts without the old one's back-off, and two plans never watch one
patrol-only camera at the same time."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

import pytest

import gridworker.patrol.engine as engine
import gridworker.patrol.feed as feed
from gridworker.patrol import CameraPatrolConfig, PatrolPlan, PatrolRun, PatrolState, PatrolTarget
from gridworker.patrol.feed import PipelineFeed
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult
from gridworker.vision.pipeline import Pipeline

# a Monday, 17:59 UTC: one minute before the plan's window (07:00-18:00) closes
MONDAY_1759 = dt.datetime(2025, 3, 3, 17, 59, 0, tzinfo=dt.timezone.utc).timestamp()
WINDOW = {"timezone": "UTC", "windows": [{"start": "07:00", "end": "18:00"}]}


class Cameras:
    """The service's camera list, changed by the test (DELETE + POST) while the run reads it."""

    def __init__(self, targets: list[PatrolTarget]) -> None:
        self.lock = threading.Lock()
        self.targets = targets

    def __call__(self) -> list[PatrolTarget]:
        with self.lock:
            return list(self.targets)

    def replace(self, targets: list[PatrolTarget]) -> None:
        with self.lock:
            self.targets = targets


class Visitor:
    """Records each visit (camera, URL, the clock's time); the visit of ``hold`` waits for
    ``gate``; a URL holding "bad" fails."""

    def __init__(self, clock: Callable[[], float] = time.time, hold: str | None = None) -> None:
        self.clock, self.hold = clock, hold
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, float]] = []

    def __call__(
        self, target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
    ) -> GlanceResult:
        with self.lock:
            self.seen.append((target.camera_id, target.url, self.clock()))
        if target.camera_id == self.hold:
            self.gate.wait(10)
        if "bad" in target.url:
            return GlanceResult(target.camera_id, target.url, self.clock(), error_kind="open_failed", error="401")
        return GlanceResult(target.camera_id, target.url, self.clock())

    def urls(self) -> list[str]:
        with self.lock:
            return [url for _, url, _ in self.seen]


def _drop(target: PatrolTarget, frames: Sequence[Frame]) -> None:
    return None


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _listed(ids: Sequence[str], **extra: object) -> PatrolPlan:
    return PatrolPlan.model_validate(
        {"id": "p", "order": "listed", "select": {"camera_ids": list(ids)}, "concurrency": 1, "stagger_s": 0, **extra}
    )


def test_a_camera_replaced_while_its_visit_waits_for_a_slot_is_visited_at_its_new_url() -> None:
    cams = Cameras([PatrolTarget("a", "rtsp://10.0.0.1/a"), PatrolTarget("b", "rtsp://u:old@10.0.0.2/b")])
    visitor = Visitor(hold="a")
    run = PatrolRun(_listed(["a", "b"]), cams, _drop, visitor=visitor)
    assert run.start()
    assert _wait(lambda: run.status().in_flight == ("a",))
    cams.replace([cams()[0], PatrolTarget("b", "rtsp://u:new@10.0.0.9/b")])  # DELETE b + POST b, new URL
    visitor.gate.set()
    assert run.wait(5)
    assert visitor.urls() == ["rtsp://10.0.0.1/a", "rtsp://u:new@10.0.0.9/b"]


@pytest.mark.parametrize("change", ["deleted", "deselected"])
def test_a_camera_gone_by_its_turn_is_left_out_of_the_cycle(change: str) -> None:
    school = CameraPatrolConfig(site_type="school")
    cams = Cameras([PatrolTarget(c, f"rtsp://10.0.0.1/{c}", school) for c in "abc"])
    visitor = Visitor(hold="a")
    plan = PatrolPlan(id="p", order="listed", select={"site_types": ["school"]}, concurrency=1, stagger_s=0)
    run = PatrolRun(plan, cams, _drop, visitor=visitor)
    assert run.start()
    assert _wait(lambda: run.status().in_flight == ("a",))
    a, b, c = cams()
    if change == "deleted":
        cams.replace([a, c])
    else:  # its patrol attributes changed: the plan no longer selects it
        cams.replace([a, PatrolTarget("b", b.url, CameraPatrolConfig(site_type="street")), c])
    visitor.gate.set()
    assert run.wait(5)
    assert [cid for cid, _, _ in visitor.seen] == ["a", "c"]
    status = run.status()
    assert status.state is PatrolState.FINISHED and status.completed_cycles == 1
    assert status.last_cycle is not None and (status.last_cycle.total, status.last_cycle.ok) == (2, 2)
    assert "b" not in run.last_outcomes()


def test_a_window_closing_mid_cycle_ends_the_cycle_and_the_next_window_starts_afresh() -> None:
    # a one-pass plan: the pass the window cut short is run again, afresh, in the next window
    now = [MONDAY_1759]
    cams = Cameras([PatrolTarget(c, f"rtsp://u:old@10.0.0.1/{c}") for c in "abcd"])
    visitor = Visitor(clock=lambda: now[0], hold="a")
    run = PatrolRun(_listed("abcd", cycles=1, schedule=WINDOW), cams, _drop, visitor=visitor, clock=lambda: now[0])
    assert run.start()
    assert _wait(lambda: run.status().in_flight == ("a",))  # 'b' waits for the slot
    now[0] = MONDAY_1759 + 120  # 18:01: the window closes while 'a' is visited
    cams.replace([PatrolTarget("d", "rtsp://u:new@10.0.0.9/d")])  # overnight: a, b, c deleted, d re-added with a new URL
    visitor.gate.set()
    # the cycle ends with 'a': 'b', whose slot came free after 18:00, is not visited
    assert _wait(lambda: run.status().completed_cycles == 1 and run.status().state is PatrolState.WAITING)
    time.sleep(0.3)
    assert [cid for cid, _, _ in visitor.seen] == ["a"]
    first = run.status()
    assert first.last_cycle is not None and (first.last_cycle.cycle, first.last_cycle.total, first.last_cycle.ok) == (1, 1, 1)
    assert first.last_cycle_s is not None and first.last_cycle_s < 5
    now[0] = MONDAY_1759 + 13 * 3600 + 120  # Tuesday 07:01: the window opens, cycle 2 reads the cameras of the day
    assert run.wait(10)
    assert visitor.seen[1:] == [("d", "rtsp://u:new@10.0.0.9/d", now[0])]
    final = run.status()
    assert final.state is PatrolState.FINISHED and (final.cycle, final.completed_cycles) == (2, 2)
    assert final.last_cycle is not None and (final.last_cycle.cycle, final.last_cycle.total) == (2, 1)


def test_a_camera_fixed_by_delete_and_post_is_tried_without_the_old_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "IDLE_CYCLE_S", 0.05)  # speed only: cycles of a dead camera are idle
    cams = Cameras([PatrolTarget("x", "rtsp://u:old@10.0.0.1/bad")])
    visitor = Visitor()
    plan = PatrolPlan(id="p", cycles=0, open_timeout_s=0.001, stagger_s=0)
    run = PatrolRun(plan, cams, _drop, visitor=visitor)
    assert run.start()
    try:
        assert _wait(lambda: run.status().visits_total >= 5)
        offline = run.status().offline
        assert offline and offline[0].failures >= 5  # sits out several cycles now
        fixed_in = run.status().cycle
        cams.replace([PatrolTarget("x", "rtsp://u:new@10.0.0.1/good")])  # the same id, a fixed URL
        run.wake()
        assert _wait(lambda: any(o.ok for o in run.outcomes()))
        good = next(o for o in run.outcomes() if o.ok)
        assert good.cycle <= fixed_in + 2  # the old code waited out the old camera's 7-8 skipped cycles
        assert run.status().offline == ()
    finally:
        run.stop(5)


class _Slot:
    patrol_only = True
    visits = None


class _Pipeline:
    """What PipelineFeed needs of a pipeline for a watch plan over patrol-only cameras."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def slot(self, camera_id: str) -> _Slot:
        return _Slot()

    def admit(self, stop: threading.Event) -> bool:
        return not stop.is_set()

    def begin_watch(self, camera_id: str, fps: float) -> None:
        self.log.append(f"begin {camera_id}")

    def judge_visit(self, visit: object) -> None:
        return None


def test_two_plans_never_watch_one_patrol_only_camera_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    lock = threading.Lock()

    def watch(
        target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
    ) -> GlanceResult:
        with lock:
            log.append(f"start {plan.id}")
        stop.wait(0.3)
        with lock:
            log.append(f"end {plan.id}")
        return GlanceResult(target.camera_id, target.url, time.time())

    monkeypatch.setattr(feed, "default_visitor", watch)
    pipeline = _Pipeline(log)
    maker = PipelineFeed(cast(Pipeline, pipeline), lambda: [PatrolTarget("gate", "rtsp://10.0.0.1/gate")])
    # a watch plan, and an IoT linkage's watch of the same camera during its stop
    runs = [
        maker.make_run(PatrolPlan(id=pid, select={"camera_ids": ["gate"]}, mode="watch", watch_s=0.3, stagger_s=0))
        for pid in ("plan", "iot-gate")
    ]
    for run in runs:
        assert run.start()
    assert all(run.wait(5) for run in runs)
    assert all(run.status().last_cycle is not None and run.status().last_cycle.ok == 1 for run in runs)  # type: ignore[union-attr]
    # one stop after the other, each starting with its own fresh tracker
    assert [entry.split()[0] for entry in log] == ["begin", "start", "end", "begin", "start", "end"]
