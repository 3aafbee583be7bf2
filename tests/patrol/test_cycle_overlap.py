"""Overlapping cycles (``overlap_cycles``), with scripted visits (no camera): the next cycle
starts while the last visits of the previous one still run, a camera never has two visits
at once, and each cycle is summed up when its own last visit ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from gridworker.patrol import PatrolPlan, PatrolRun, PatrolTarget
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult


class TimedVisitor:
    """Each visit takes ``slow_s`` for ``slow`` cameras and ``fast_s`` for the others; records
    every visit's (camera, start, end)."""

    def __init__(self, slow: set[str], slow_s: float = 1.0, fast_s: float = 0.05) -> None:
        self.slow, self.slow_s, self.fast_s = slow, slow_s, fast_s
        self.lock = threading.Lock()
        self.visits: list[tuple[str, float, float]] = []

    def __call__(
        self, target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
    ) -> GlanceResult:
        t0 = time.monotonic()
        stop.wait(self.duration(target.camera_id))
        with self.lock:
            self.visits.append((target.camera_id, t0, time.monotonic()))
        return GlanceResult(target.camera_id, target.url, time.time())

    def duration(self, camera_id: str) -> float:
        return self.slow_s if camera_id in self.slow else self.fast_s


def _run(overlap: bool) -> tuple[PatrolRun, TimedVisitor, float]:
    # "a-slow" is the first camera of every cycle ("listed" order), so cycle 2 reaches it
    # while its cycle-1 visit still runs
    targets = [PatrolTarget(cid, f"rtsp://127.0.0.1:1/{cid}") for cid in ("a-slow", "b", "c", "d", "e", "f", "g", "h")]
    plan = PatrolPlan(
        id="o", order="listed", select={"camera_ids": [t.camera_id for t in targets]},
        concurrency=3, cycles=3, stagger_s=0, overlap_cycles=overlap,
    )
    visitor = TimedVisitor({"a-slow"})
    run = PatrolRun(plan, targets, lambda t, f: None, visitor=visitor)
    t0 = time.monotonic()
    assert run.start() and run.wait(timeout=30)
    return run, visitor, time.monotonic() - t0


@pytest.mark.parametrize("overlap", [True, False])
def test_cycles_overlap_without_two_visits_of_one_camera(overlap: bool) -> None:
    run, visitor, took = _run(overlap)
    status = run.status()
    assert status.completed_cycles == 3 and status.visits_total == 24 and status.in_flight == ()
    assert status.last_cycle is not None and (status.last_cycle.ok, status.last_cycle.total) == (8, 8)
    by_camera: dict[str, list[tuple[float, float]]] = {}
    for cid, start, end in visitor.visits:
        by_camera.setdefault(cid, []).append((start, end))
    for cid, spans in by_camera.items():
        spans.sort()
        assert len(spans) == 3
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), (cid, spans)  # never two at once
    slow = by_camera["a-slow"]
    fast_starts = sorted(s for cid, spans in by_camera.items() if cid != "a-slow" for s, _ in spans)
    # the second visits of the fast cameras: before the slow camera's first visit ended
    # only when cycles overlap (drained: cycle 2 waits for it)
    second_cycle_starts = fast_starts[7:]
    if overlap:
        assert min(second_cycle_starts) < slow[0][1]
        assert took < 3 * 1.0 + 0.9  # the three slow visits back to back, the rest hidden beside them
    else:
        assert min(second_cycle_starts) >= slow[0][1]


class OneSlowPerCycle(TimedVisitor):
    """Cycle n (from 0) has one slow visit, to the n-th camera: drained cycles each wait for
    their own slow visit, overlapping ones run the three side by side."""

    def __init__(self, cameras: Sequence[str], slow_s: float = 2.0, fast_s: float = 0.05) -> None:
        super().__init__(set(), slow_s, fast_s)
        self.cameras = list(cameras)
        self.seen: dict[str, int] = {}

    def duration(self, camera_id: str) -> float:
        with self.lock:
            nth = self.seen.get(camera_id, 0)
            self.seen[camera_id] = nth + 1
        return self.slow_s if self.cameras.index(camera_id) == nth else self.fast_s


def _timed(overlap: bool) -> float:
    cameras = ["a", "b", "c", "d", "e", "f", "g", "h"]
    targets = [PatrolTarget(cid, f"rtsp://127.0.0.1:1/{cid}") for cid in cameras]
    plan = PatrolPlan(
        id="o", order="listed", select={"camera_ids": cameras},
        concurrency=3, cycles=3, stagger_s=0, overlap_cycles=overlap,
    )
    run = PatrolRun(plan, targets, lambda t, f: None, visitor=OneSlowPerCycle(cameras))
    t0 = time.monotonic()
    assert run.start() and run.wait(timeout=30)
    assert run.status().visits_total == 24
    return time.monotonic() - t0


def test_overlap_is_faster_than_draining() -> None:
    # drained: three cycles, each held by its slow visit (>= 3 x 2 s); overlapped: cycle 2
    # reaches camera "a" while cycle 1's slow visit to it still runs and waits for it, then
    # cycle 2's and cycle 3's slow visits (other cameras) run side by side: about 2 x 2 s.
    # The 2 s saved leave 1 s of slack for a loaded machine.
    overlapped, drained = _timed(True), _timed(False)
    assert drained >= 6.0
    assert overlapped < drained - 1.0, (overlapped, drained)
