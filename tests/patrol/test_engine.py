"""PatrolRun against the real RTSP server: dead and hung cameras, retries, lifecycle."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gridworker.patrol import CameraPatrolConfig, PatrolPlan, PatrolRun, PatrolState, PatrolTarget
from gridworker.streams.frame import Frame
from gridworker.streams.rtsp_serve import RtspServerProcess
from tests.factories import free_port

FAST = {"open_timeout_s": 1.5, "keyframe_timeout_s": 3.0, "stagger_s": 0.0}


class Sink:
    """Collects the frames each camera delivered (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames: dict[str, list[Frame]] = {}

    def __call__(self, target: PatrolTarget, frames: Sequence[Frame]) -> None:
        with self.lock:
            self.frames.setdefault(target.camera_id, []).extend(frames)


@pytest.fixture
def cameras(rtsp_factory: Callable[..., RtspServerProcess], sample_clip: Path) -> tuple[list[PatrolTarget], RtspServerProcess]:
    good = rtsp_factory({"gate": sample_clip, "ward": sample_clip, "hall": sample_clip})
    hung = rtsp_factory({"frozen": sample_clip})
    hung.pause()
    targets = [
        PatrolTarget("gate", good.url("gate"), CameraPatrolConfig(site_type="school", priority=9)),
        PatrolTarget("ward", good.url("ward"), CameraPatrolConfig(site_type="hospital")),
        PatrolTarget("hall", good.url("hall"), CameraPatrolConfig(site_type="transport_hub")),
        PatrolTarget("hung", hung.url("frozen"), CameraPatrolConfig(site_type="school")),
        PatrolTarget("dead", f"rtsp://u:topsecret@127.0.0.1:{free_port()}/x", CameraPatrolConfig(site_type="market")),
    ]
    return targets, hung


def test_dead_and_hung_cameras_do_not_stall_the_cycle(cameras: tuple[list[PatrolTarget], RtspServerProcess]) -> None:
    targets, hung = cameras
    sink = Sink()
    plan = PatrolPlan(id="p", concurrency=2, cycles=2, **FAST)
    run = PatrolRun(plan, targets, sink)
    assert run.start()
    # cycle 1 ends although two cameras never answer
    assert run.wait_for(lambda s: s.completed_cycles >= 1, timeout=20)
    first = run.status().last_cycle
    assert first is not None and first.cycle == 1
    assert run.wait(timeout=20)
    final = run.status()
    assert final.state is PatrolState.FINISHED and final.completed_cycles == 2
    # both bad cameras offline, with their reasons; the password never shows
    offline = {o.camera_id: o for o in final.offline}
    assert set(offline) == {"hung", "dead"}
    assert offline["hung"].reason.startswith("open_timeout")
    assert offline["dead"].reason.startswith("open_failed") and "topsecret" not in offline["dead"].reason
    # retried in cycle 2 (first failure: no cycles skipped), failed again
    outcomes = run.last_outcomes()
    assert outcomes["hung"].cycle == 2 and outcomes["dead"].cycle == 2
    assert offline["dead"].failures == 2 and offline["dead"].retry_cycle == 4  # now sits out cycle 3
    assert {f.camera_id for f in first.failed_visits} == {"hung", "dead"}
    assert (first.ok, first.failed, first.total) == (3, 2, 5)
    assert {f.camera_id for f in final.failed_this_cycle} == {"hung", "dead"}  # cycle 2's failures
    assert final.visits_total == 10 and final.in_flight == ()
    # the good cameras each delivered one keyframe per cycle, seq increasing across visits
    assert sorted(sink.frames) == ["gate", "hall", "ward"]
    assert [f.seq for f in sink.frames["gate"]] == [1, 2]
    assert all(outcomes[c].ok and outcomes[c].packets_decoded == 1 for c in ("gate", "hall", "ward"))
    # the hung camera's visit took about its open timeout, not forever
    assert outcomes["hung"].duration_s < FAST["open_timeout_s"] + 2
    hung.resume()


def test_offline_camera_comes_back(rtsp_factory: Callable[..., RtspServerProcess], sample_clip: Path) -> None:
    server = rtsp_factory({"cam": sample_clip})
    server.pause()
    plan = PatrolPlan(id="p", concurrency=1, cycles=2, **FAST)
    run = PatrolRun(plan, [PatrolTarget("cam", server.url("cam"))], Sink())
    run.start()
    assert run.wait_for(lambda s: s.completed_cycles >= 1, timeout=15)
    assert [o.camera_id for o in run.status().offline] == ["cam"]
    server.resume()
    assert run.wait(timeout=15)
    status = run.status()
    assert status.offline == () and run.last_outcomes()["cam"].ok


def test_lifecycle_is_idempotent(rtsp_server: RtspServerProcess) -> None:
    targets = [PatrolTarget(f"c{i}", rtsp_server.url("cam" if i % 2 else "cam2")) for i in range(4)]
    sink = Sink()
    run = PatrolRun(PatrolPlan(id="forever", cycles=0, concurrency=2, **FAST), targets, sink)
    assert run.status().state is PatrolState.IDLE
    assert not run.pause() and not run.resume()  # nothing to pause before start
    assert run.start() is True
    assert run.start() is False  # already running: no second dispatcher
    assert run.wait_for(lambda s: s.visits_total >= 2, timeout=15)
    assert run.pause() is True and run.pause() is False
    assert run.status().state is PatrolState.PAUSED
    assert run.wait_for(lambda s: not s.in_flight, timeout=10)
    frozen = run.status().visits_total
    threading.Event().wait(1.5)
    assert run.status().visits_total == frozen  # paused: nothing new started
    assert run.resume() is True and run.resume() is False
    assert run.wait_for(lambda s: s.visits_total > frozen, timeout=15)
    assert run.stop(timeout=10) is True
    assert run.stop(timeout=1) is True
    status = run.status()
    assert status.state is PatrolState.STOPPED and status.in_flight == ()
    assert status.eta_s is None
    with pytest.raises(RuntimeError):
        run.start()
    assert sum(len(v) for v in sink.frames.values()) >= frozen


def test_progress_and_eta(rtsp_server: RtspServerProcess) -> None:
    targets = [PatrolTarget(f"c{i}", rtsp_server.url("cam")) for i in range(6)]
    run = PatrolRun(PatrolPlan(id="p", cycles=1, concurrency=1, **FAST), targets, Sink())
    run.start()
    assert run.wait_for(lambda s: s.visited >= 2, timeout=20)
    mid = run.status()
    assert mid.total == 6 and 0 < mid.progress < 1
    assert mid.eta_s is not None and mid.eta_s > 0
    assert len(mid.in_flight) <= 1
    assert run.wait(timeout=30)
    done = run.status()
    assert done.visited == 6 and done.progress == 1.0 and done.last_cycle_s is not None


def test_outside_time_window_waits(rtsp_server: RtspServerProcess) -> None:
    # a window that is never open at the injected clock (a Monday 03:00 UTC; window Sundays only)
    plan = PatrolPlan(
        id="night",
        schedule={"windows": [{"days": ["sun"], "start": "10:00", "end": "11:00"}], "timezone": "UTC"},
        **FAST,
    )
    monday_3am = 1_700_449_200.0  # 2023-11-20 03:00 UTC, a Monday
    run = PatrolRun(plan, [PatrolTarget("c", rtsp_server.url("cam"))], Sink(), clock=lambda: monday_3am)
    run.start()
    assert run.wait_for(lambda s: s.state is PatrolState.WAITING, timeout=5)
    assert run.status().visits_total == 0
    assert run.stop(timeout=5)


def test_sink_failure_fails_the_visit_not_the_run(rtsp_server: RtspServerProcess) -> None:
    def broken(target: PatrolTarget, frames: Sequence[Frame]) -> None:
        raise RuntimeError("batcher gone")

    run = PatrolRun(PatrolPlan(id="p", cycles=1, **FAST), [PatrolTarget("c", rtsp_server.url("cam"))], broken)
    run.start()
    assert run.wait(timeout=15)
    outcome = run.last_outcomes()["c"]
    assert not outcome.ok and "batcher gone" in (outcome.reason or "")
    assert run.status().state is PatrolState.FINISHED


def test_a_long_run_forgets_the_last_outcome_of_cameras_that_left() -> None:
    """A run that lasts (cycles: 0) sees cameras added and removed: it keeps the last outcome of
    the cameras it still patrols, not of every camera id it ever met."""
    import itertools
    import time

    from gridworker.streams.glance import GlanceResult

    visits = itertools.count(1)
    generation = [0]

    def cameras() -> list[PatrolTarget]:  # a different set of 5 every cycle (each visit reads them too)
        k = generation[0]
        return [PatrolTarget(f"c{k}-{i}", "rtsp://10.0.0.1/x") for i in range(5)]

    def visitor(target, plan, stop, first_seq, deliver):
        if next(visits) % 5 == 0:  # the cycle's last visit started: the set changes for the next cycle
            generation[0] += 1
        return GlanceResult(target.camera_id, "x", time.time(), error_kind="open_failed", error="refused")

    # drained cycles: the next one starts (and reads the new set) once this one's visits all ended
    plan = PatrolPlan(id="p", cycles=40, stagger_s=0, concurrency=4, overlap_cycles=False)
    run = PatrolRun(plan, cameras, lambda *a: None, visitor=visitor)
    run.start()
    assert run.wait(60)
    assert run.status().completed_cycles == 40
    assert len(run.last_outcomes()) <= 10  # was one per camera id ever visited: 200
