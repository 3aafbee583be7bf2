"""A failed visit's error_kind travels with its reason into the patrol status (failed_this_cycle,
last_cycle, offline): the API's non-admin view is chosen from it, never parsed from the reason."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from gridworker.patrol import PatrolPlan, PatrolRun, PatrolState, PatrolTarget
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceErrorKind, GlanceResult

# per camera, what its visit in cycle 1 and cycle 2 gives: (error_kind, error) or an exception
SCRIPT: dict[str, tuple[tuple[GlanceErrorKind, str] | Exception, ...]] = {
    # the reason of a continuous camera's visit reads "keyframe_timeout: continuous stream is stalled"
    "yard": (("keyframe_timeout", "continuous stream is stalled"),) * 2,
    # its error text starts like another kind: the kind is the visit's, not the text's
    "gate": (("open_failed", "open_timeout: no answer from rtsp://10.0.0.7/1"), ("keyframe_timeout", "no keyframe in 3 s")),
    "dock": (RuntimeError("sink at 10.0.0.7 failed"),) * 2,  # a failing visitor: kind "error"
}


def _visitor() -> Callable[[PatrolTarget, PatrolPlan, threading.Event, int, Callable[[Sequence[Frame]], None]], GlanceResult]:
    calls: dict[str, int] = {}

    def visit(target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]) -> GlanceResult:
        n = calls[target.camera_id] = calls.get(target.camera_id, 0) + 1
        step = SCRIPT[target.camera_id][n - 1]
        if isinstance(step, Exception):
            raise step
        kind, error = step
        return GlanceResult(target.camera_id, "", time.time(), error_kind=kind, error=error)

    return visit


def test_failures_carry_their_visits_error_kind() -> None:
    plan = PatrolPlan(id="kinds", cycles=2, concurrency=1, open_timeout_s=0.5, keyframe_timeout_s=0.5, stagger_s=0.0)
    run = PatrolRun(plan, [PatrolTarget(cid, f"rtsp://127.0.0.1:9/{cid}") for cid in SCRIPT], lambda target, frames: None, visitor=_visitor())
    assert run.start()
    assert run.wait(timeout=20)
    status = run.status()
    assert status.state is PatrolState.FINISHED and status.completed_cycles == 2
    assert status.last_cycle is not None
    cycle2 = {(f.camera_id, f.error_kind, f.reason) for f in status.last_cycle.failed_visits}
    assert cycle2 == {
        ("yard", "keyframe_timeout", "keyframe_timeout: continuous stream is stalled"),
        ("gate", "keyframe_timeout", "keyframe_timeout: no keyframe in 3 s"),
        ("dock", "error", "error: RuntimeError: sink at 10.0.0.7 failed"),
    }
    assert {(f.camera_id, f.error_kind) for f in status.failed_this_cycle} == {(c, k) for c, k, _ in cycle2}
    # offline: the last failure's kind (gate failed open_failed, then keyframe_timeout)
    offline = {o.camera_id: (o.error_kind, o.failures) for o in status.offline}
    assert offline == {"yard": ("keyframe_timeout", 2), "gate": ("keyframe_timeout", 2), "dock": ("error", 2)}
    kinds_of_cycle1 = {o.camera_id: o.error_kind for o in run.outcomes() if o.cycle == 1}
    assert kinds_of_cycle1 == {"yard": "keyframe_timeout", "gate": "open_failed", "dock": "error"}
