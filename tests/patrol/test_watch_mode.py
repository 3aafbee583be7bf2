"""Watch-mode patrol through the running service: real RTSP cameras, a fake detector that
sees one parked car in every frame (tests/factories.py), so rule timing is exact.

* a ``mode: watch`` plan stays ``watch_s`` on each camera, analyses about
  ``watch_s * watch_fps`` frames per stop, runs the camera's full rules with a tracker
  (a ``dwell`` rule fires during a stop) and releases the RTSP session after each stop;
* a glance plan over the same camera never opens that tracked-rule incident.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path


from gridworker.incidents import IncidentQuery
from gridworker.patrol import PatrolState
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector

FAST = {"open_timeout_s": 3.0, "keyframe_timeout_s": 4.0, "stagger_s": 0.0}
WATCH_S = 3.0
WATCH_FPS = 5.0
DWELL_S = 1.0
CLEAR_S = 2.0
CYCLES = 3

# The fake car stands in the lower middle of every frame (ground point at 50 %, 90 %).
KERB_ZONES = [
    {
        "id": "kerb",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        # clear_after_s shorter than the time between two stops of the camera
        "rules": [{"type": "dwell", "classes": ["car"], "min_duration_s": DWELL_S, "clear_after_s": CLEAR_S}],
    }
]
# Same rule on "gate", but its zone is the top half of the picture: the car is not in it.
GATE_ZONES = [
    {
        "id": "sky",
        "polygon": [[0, 0], [1, 0], [1, 0.4], [0, 0.4]],
        "rules": [{"type": "dwell", "classes": ["car"], "min_duration_s": DWELL_S}],
    }
]


def _service(tmp_path: Path, url_kerb: str, url_gate: str, plan: dict) -> Service:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'watch.db'}"},
        cameras=[
            {"id": "kerb", "url": url_kerb, "watch": "patrol", "zones": KERB_ZONES},
            {"id": "gate", "url": url_gate, "watch": "patrol", "zones": GATE_ZONES},
        ],
        patrol_plans=[plan],
        evidence={"clips": False},
    )
    service = Service(settings, ParkedCarDetector())
    service.start()
    return service


def _reader_threads(*camera_ids: str) -> list[str]:
    names = {f"camera-{c}" for c in camera_ids}
    return [t.name for t in threading.enumerate() if t.name in names and t.is_alive()]


def test_watch_plan_stays_tracks_and_releases(tmp_path, rtsp_factory, sample_clip):
    server = rtsp_factory({"kerb": sample_clip, "gate": sample_clip})
    plan = {
        "id": "watch",
        "mode": "watch",
        "watch_s": WATCH_S,
        "watch_fps": WATCH_FPS,
        "cycles": CYCLES,  # the start rotates: gate kerb | kerb gate | gate kerb
        "concurrency": 1,  # one stop at a time: a reader thread alive means that stop is on
        **FAST,
    }
    service = _service(tmp_path, server.url("kerb"), server.url("gate"), plan)
    seen_during: set[str] = set()
    try:
        _, started = service.patrol.start("watch")
        assert started
        run = service.patrol.run("watch")
        assert run is not None
        t0 = time.monotonic()
        while run.status().state not in (PatrolState.FINISHED, PatrolState.STOPPED) and time.monotonic() - t0 < 60:
            seen_during.update(_reader_threads("kerb", "gate"))
            time.sleep(0.05)
        assert run.wait(timeout=5)
        took = time.monotonic() - t0
        st = run.status()
        history = run.outcomes()
        kerb_view, gate_view = service.camera("kerb"), service.camera("gate")
        kerb_last = service.pipeline.slot("kerb").last  # the last analysed frame of the last kerb stop
        incidents, _ = service.store.list(IncidentQuery())
        # the stream is released after each stop: no reader left for these patrol-only cameras
        left = _reader_threads("kerb", "gate")
    finally:
        service.stop()

    assert st.state is PatrolState.FINISHED and st.completed_cycles == CYCLES, st
    assert st.last_cycle is not None and (st.last_cycle.ok, st.last_cycle.failed) == (2, 0), st.last_cycle
    # every visit counted: 2 cameras x 3 cycles, each camera three times
    assert st.visits_total == 2 * CYCLES and len(history) == 2 * CYCLES, history
    assert sorted(o.camera_id for o in history) == ["gate"] * CYCLES + ["kerb"] * CYCLES
    expected = WATCH_S * WATCH_FPS  # 15 frames a stop
    for o in history:
        assert o.ok, o
        # a stop lasts watch_s after its first frame (plus connecting), not much more
        assert WATCH_S - 0.1 <= o.duration_s <= WATCH_S + 3.0, o
        # frames analysed per stop ≈ watch_s * watch_fps (first frame at 0 s, then every 1/fps)
        assert 0.7 * expected <= o.frames <= expected + 2, o
    assert took >= 2 * CYCLES * WATCH_S  # the stops ran one after another, each for watch_s
    assert kerb_view.frames_analysed == sum(o.frames for o in history if o.camera_id == "kerb")
    assert gate_view.frames_analysed == sum(o.frames for o in history if o.camera_id == "gate")
    # patrol-only cameras: a session only while a stop is on, none once the patrol ended
    assert seen_during == {"camera-kerb", "camera-gate"}
    assert left == [], left
    assert kerb_view.health.state.value == "stopped" and gate_view.health.state.value == "stopped"

    # the tracked rule fired during a stop on the camera whose zone holds the parked car
    dwell = [i for i in incidents if i.type == "dwell"]
    assert [i.camera_id for i in dwell] == ["kerb"], [(i.camera_id, i.opened_at % 100, i.closed_at and i.closed_at % 100, i.details.get("object")) for i in incidents] + [(o.camera_id, o.started_at % 100, o.duration_s) for o in history]
    inc = dwell[0]
    assert inc.zone_id == "kerb" and inc.details["threshold_s"] == DWELL_S
    assert inc.details["stationary_s"] >= DWELL_S
    kerb_visits = sorted((o for o in history if o.camera_id == "kerb"), key=lambda o: o.started_at)
    first = kerb_visits[0]
    # it opened inside the first kerb stop, about DWELL_S after that stop's first frame
    assert first.started_at + DWELL_S <= inc.opened_at <= first.started_at + first.duration_s + 0.5, (inc.opened_at, first)
    # the car stayed parked: the same incident all along, although the time between two kerb
    # stops (a whole gate stop, ~WATCH_S) is longer than clear_after_s (unwatched time is not "clear")
    gaps = [b.started_at - (a.started_at + a.duration_s) for a, b in zip(kerb_visits, kerb_visits[1:])]
    assert max(gaps) > CLEAR_S, gaps
    assert inc.status == "open" and inc.closed_at is None
    # the tracker and rule clocks start afresh at each stop: at the end of the last kerb stop the
    # car has been still for about one stop, not since the first stop
    (verdict,) = [v for v in kerb_last.verdicts if v.rule_id == "dwell"]
    assert verdict.result.active and DWELL_S <= verdict.result.details["longest_s"] <= WATCH_S + 0.5, verdict.result.details


def test_glance_plan_does_not_open_the_tracked_rule(tmp_path, rtsp_factory, sample_clip):
    server = rtsp_factory({"kerb": sample_clip, "gate": sample_clip})
    plan = {"id": "glance", "mode": "glance", "cycles": 3, "min_cycle_s": 1.5, "concurrency": 2, **FAST}
    service = _service(tmp_path, server.url("kerb"), server.url("gate"), plan)
    try:
        service.patrol.start("glance")
        run = service.patrol.run("glance")
        assert run is not None and run.wait(timeout=60)
        st = run.status()
        history = run.outcomes()
        kerb_frames = service.camera("kerb").frames_analysed
        incidents, _ = service.store.list(IncidentQuery())
    finally:
        service.stop()
    assert st.state is PatrolState.FINISHED and st.completed_cycles == 3
    assert st.visits_total == 6 and all(o.ok for o in history), history
    # the parked car was seen on every glance (one keyframe each), over more than DWELL_S ...
    assert kerb_frames == 3
    kerb_visits = sorted(o.started_at for o in history if o.camera_id == "kerb")
    assert kerb_visits[-1] - kerb_visits[0] >= 2 * DWELL_S
    # ... but a glance cannot track it: the dwell rule is not run on glances
    assert [i for i in incidents if i.type == "dwell"] == [], [(i.camera_id, i.type) for i in incidents]


def test_a_watch_longer_than_the_readers_longest_back_off_still_visits():
    """watch_s may be up to 600 s; the reader's back-off only up to 300: a 600 s watch plan's
    visit of a dead camera fails as a dead camera (open_failed), not as a settings error that
    the adaptive controller takes for an overloaded machine."""
    from gridworker.patrol.config import PatrolPlan, PatrolTarget
    from gridworker.patrol.engine import default_visitor
    from tests.factories import free_port

    plan = PatrolPlan(id="long", mode="watch", watch_s=600, open_timeout_s=1, keyframe_timeout_s=2)
    target = PatrolTarget("dead", f"rtsp://127.0.0.1:{free_port()}/x")
    stop = threading.Event()
    threading.Timer(5.0, stop.set).start()  # a dead camera's visit must not need the whole watch
    result = default_visitor(target, plan, stop, 0, lambda frames: None)
    assert not result.ok and result.error_kind != "error", (result.error_kind, result.reason)
