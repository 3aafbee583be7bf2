"""The adaptive concurrency controller (AIMD) with a fake clock and scripted load samples,
and a PatrolRun whose visits are scripted (no camera): the limit grows while the visits
want more slots and the machine has room, shrinks when good cameras start failing, and
ignores cameras that were never good (dead, hung)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from gridworker.patrol import PatrolPlan, PatrolRun, PatrolTarget
from gridworker.patrol.concurrency import AimdTuning, ConcurrencyController, LiveCount, LoadSample, PipelineProbe
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Script:
    """Returns the scripted samples in order (the last one repeats)."""

    def __init__(self, *samples: LoadSample) -> None:
        self.samples = list(samples)
        self.calls = 0

    def __call__(self) -> LoadSample:
        self.calls += 1
        return self.samples.pop(0) if len(self.samples) > 1 else self.samples[0]


ROOM = LoadSample(cpu_busy=0.5, queue_fill=0.1, live_ratio=1.0)


def step(ctl: ConcurrencyController, clock: FakeClock, in_flight: int | None = None, seconds: float = 1.0) -> int:
    """One interval later, with the limit reached unless ``in_flight`` says otherwise."""
    clock.now += seconds
    return ctl.update(ctl.limit if in_flight is None else in_flight)


def make(probe: Callable[[], LoadSample] | None, cap: int = 64, floor: int = 4, initial: int = 8) -> tuple[ConcurrencyController, FakeClock]:
    clock = FakeClock()
    ctl = ConcurrencyController(cap, floor=floor, initial=initial, probe=probe, clock=clock)
    ctl.update(0)  # starts the first interval
    return ctl, clock


def test_slow_start_doubles_to_the_cap_while_there_is_room() -> None:
    probe = Script(ROOM)
    ctl, clock = make(probe)
    assert [step(ctl, clock) for _ in range(4)] == [16, 32, 64, 64]
    assert ctl.stats().peak == 64 and ctl.stats().increases == 3


def test_no_growth_without_demand_or_before_the_interval() -> None:
    probe = Script(ROOM)
    ctl, clock = make(probe)
    assert step(ctl, clock, in_flight=3) == 8  # the limit was never reached: no reason to grow
    clock.now += 0.5
    assert ctl.update(8) == 8  # within the interval: only noted
    assert probe.calls == 1  # probed once per interval, not per call
    clock.now += 0.5
    assert ctl.update(8) == 16  # the demand noted above counts


def test_busy_cpu_decreases_multiplicatively_then_grows_additively() -> None:
    busy = LoadSample(cpu_busy=0.97, queue_fill=0.0, live_ratio=1.0)
    ctl, clock = make(Script(ROOM, ROOM, busy, ROOM, ROOM))
    limits = [step(ctl, clock) for _ in range(3)]
    assert limits == [16, 32, 24] and ctl.stats().last_reason == "cpu"  # x0.75
    assert [step(ctl, clock) for _ in range(2)] == [32, 40]  # then +8: slow start is over
    assert ctl.stats().decreases == 1 and ctl.stats().last_reason == "room"


def test_live_cameras_falling_behind_decrease_on_the_smoothed_ratio() -> None:
    dip = LoadSample(cpu_busy=0.5, queue_fill=0.0, live_ratio=0.6)
    ctl, clock = make(Script(ROOM, ROOM, dip, ROOM, ROOM, ROOM))
    # smoothed: 1.0, 1.0, 0.8 (< 0.9: x0.75), 0.9 (< 0.92: hold), 0.95 (grow), 0.975
    assert [step(ctl, clock) for _ in range(6)] == [16, 32, 24, 24, 32, 40]
    assert ctl.stats().decreases == 1


def test_one_decrease_per_cooldown() -> None:
    busy = LoadSample(cpu_busy=0.99, queue_fill=0.0, live_ratio=1.0)
    ctl, clock = make(Script(busy), initial=32)
    # 1 s intervals, cooldown 2 s: the effect of a decrease shows only as visits in flight end
    assert [step(ctl, clock) for _ in range(5)] == [24, 24, 18, 18, 13]


@pytest.mark.parametrize(
    "sample",
    [
        LoadSample(cpu_busy=0.92, queue_fill=0.0, live_ratio=1.0),  # CPU between grow and high
        LoadSample(cpu_busy=0.5, queue_fill=0.8, live_ratio=1.0),  # the detector sets the pace
        LoadSample(cpu_busy=0.5, queue_fill=0.0, live_ratio=0.91),  # live cameras just short of 0.92
    ],
)
def test_between_the_thresholds_the_limit_holds(sample: LoadSample) -> None:
    ctl, clock = make(Script(sample))
    assert [step(ctl, clock) for _ in range(3)] == [8, 8, 8]


def test_failures_of_good_cameras_decrease_down_to_the_floor() -> None:
    ctl, clock = make(Script(ROOM), initial=16)
    limits = []
    for _ in range(5):
        for _ in range(6):
            ctl.visit_done(True)
        for _ in range(4):
            ctl.visit_done(False, overload=True)
        limits.append(step(ctl, clock, seconds=3.0))
    assert limits == [12, 9, 6, 4, 4]  # x0.75 each cooldown, never below the floor
    assert ctl.stats().decreases == 4 and ctl.stats().last_reason == "failures"


def test_camera_failures_that_are_not_overload_do_not_shrink() -> None:
    ctl, clock = make(Script(ROOM))
    for _ in range(20):
        ctl.visit_done(False)  # dead and hung cameras
    assert step(ctl, clock) == 16


def test_too_few_visits_are_not_judged() -> None:
    ctl, clock = make(Script(ROOM))
    ctl.visit_done(False, overload=True)  # 1 of 1 failed, but below min_finished
    assert step(ctl, clock) == 16


def test_plan_floor_must_not_pass_the_cap() -> None:
    with pytest.raises(ValueError, match="min_concurrency"):
        PatrolPlan(id="p", concurrency=4, min_concurrency=8, concurrency_mode="adaptive")
    assert PatrolPlan(id="p", concurrency=2).min_concurrency == 4  # a fixed plan does not use it


def test_tuning_is_validated() -> None:
    with pytest.raises(ValueError):
        AimdTuning(decrease=1.0)
    with pytest.raises(ValueError):
        AimdTuning(cpu_grow=0.99, cpu_high=0.9)
    with pytest.raises(ValueError):
        ConcurrencyController(0)


def test_pipeline_probe_reads_cpu_queue_and_live_cameras() -> None:
    counts = [[LiveCount("a", 100, 90), LiveCount("b", 50, 50)]]
    probe = PipelineProbe(lambda: 12, 16, lambda: counts[-1])
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        pass  # some CPU time passes in this process
    # a: 10 offered, 8 analysed; b: 10 and 10; c: new (no previous sample), left out
    counts.append([LiveCount("a", 110, 98), LiveCount("b", 60, 60), LiveCount("c", 500, 0)])
    sample = probe()
    assert sample.queue_fill == pytest.approx(0.75)
    assert sample.live_ratio == pytest.approx(18 / 20)
    assert sample.cpu_busy is not None and 0.0 < sample.cpu_busy <= 1.0  # this process spun (a shared machine gives it what it can)
    counts.append([LiveCount("a", 111, 99)])  # too few frames offered to judge
    assert probe().live_ratio is None


# --------------------------------------------------------------------------- in a run


class ScriptedVisitor:
    """Visits take ``visit_s``; cameras in ``dead`` always fail; with ``fail_from_visit`` every
    camera fails from its n-th visit on (good cameras that start failing: the machine).
    Records the most visits in flight."""

    def __init__(self, visit_s: float, dead: Sequence[str] = (), fail_from_visit: int | None = None) -> None:
        self.visit_s = visit_s
        self.dead = set(dead)
        self.fail_from_visit = fail_from_visit
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.visits: dict[str, int] = {}

    def __call__(
        self, target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
    ) -> GlanceResult:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            n = self.visits[target.camera_id] = self.visits.get(target.camera_id, 0) + 1
            failing = self.fail_from_visit is not None and n >= self.fail_from_visit
        stop.wait(self.visit_s)
        with self.lock:
            self.in_flight -= 1
        bad = target.camera_id in self.dead or failing
        if bad:
            return GlanceResult(target.camera_id, target.url, time.time(), error_kind="open_timeout", error="scripted")
        return GlanceResult(target.camera_id, target.url, time.time())


def _targets(n: int) -> list[PatrolTarget]:
    return [PatrolTarget(f"c{i:03d}", f"rtsp://127.0.0.1:1/c{i}") for i in range(n)]


def test_adaptive_run_grows_to_the_cap_around_dead_cameras() -> None:
    visitor = ScriptedVisitor(0.3, dead=[f"c{i:03d}" for i in range(0, 120, 4)])
    plan = PatrolPlan(id="a", concurrency=32, min_concurrency=2, concurrency_mode="adaptive", cycles=2, stagger_s=0)
    run = PatrolRun(plan, _targets(120), lambda t, f: None, visitor=visitor, load_probe=lambda: ROOM)
    assert run.start() and run.wait(timeout=30)
    status, stats = run.status(), run.controller_stats()
    assert stats is not None and stats.peak == 32 and stats.decreases == 0, stats
    assert visitor.most > 8  # started at cap // 4 = 8 and grew
    assert status.visits_total == 240 and status.concurrency_limit == 32
    assert status.last_cycle is not None and status.last_cycle.failed == 30  # dead cameras: failures, but no shrink


def test_adaptive_run_shrinks_when_good_cameras_start_failing() -> None:
    # every camera was fine in cycle 1 and fails in cycle 2: the machine, not the cameras
    visitor = ScriptedVisitor(0.4, fail_from_visit=2)
    plan = PatrolPlan(id="a", concurrency=32, min_concurrency=2, concurrency_mode="adaptive", cycles=3, stagger_s=0)
    run = PatrolRun(plan, _targets(120), lambda t, f: None, visitor=visitor, load_probe=lambda: ROOM)
    assert run.start() and run.wait(timeout=30)
    stats = run.controller_stats()
    # shrunk while cycle 2's failures came in; cycle 3's failures (cameras that failed
    # before) no longer count, so it may grow again by the end
    assert stats is not None and stats.decreases >= 1, stats


def test_fixed_run_keeps_its_concurrency() -> None:
    visitor = ScriptedVisitor(0.1)
    plan = PatrolPlan(id="f", concurrency=6, cycles=1, stagger_s=0)
    run = PatrolRun(plan, _targets(30), lambda t, f: None, visitor=visitor)
    assert run.start() and run.wait(timeout=30)
    assert run.controller_stats() is None and run.status().concurrency_limit == 6
    assert visitor.most == 6 and run.status().visits_total == 30
