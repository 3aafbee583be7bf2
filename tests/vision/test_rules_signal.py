"""闯红灯 red_light on scripted tracks: signal states pushed through a SignalBoard (as the API
does) or read from a drawn signal head in the frame, stored through the real incident manager."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig
from gridworker.vision.signals import SignalBoard
from tests.scenario import Run, Scenario
from tests.vision.test_signals import signal_head

# a 1000 x 1000 frame; the stop line runs left to right across the middle (y = 0.5) from
# x = 0.2 to x = 0.8. Vehicles come up from the bottom of the frame: from the line's
# right side (looking from its first point to its second, image y down).
STOP_LINE = [[0.2, 0.5], [0.8, 0.5]]
API_SIGNAL = [{"id": "main", "source": "api", "stale_after_s": 5}]


def _zone(**rule):
    return {"id": "approach", "rules": [{"type": "red_light", "stop_line": STOP_LINE, "signal": "main", **rule}]}


def _car_up(sc: Scenario, x: float, t0: float, t1: float, *, start_y: float = 800, end_y: float = 200, **kw):
    """A car whose ground point (box bottom) drives from start_y to end_y between t0 and t1."""
    car = sc.track("car", (x - 50, start_y - 80, x + 50, start_y), **kw)
    if t0 > 0:
        car.stay(0, t0)
    return car.move(t0, t1, dy=end_y - start_y)


def run_with_signal(sc: Scenario, zones, state_at: Callable[[float], str | None], until: float, signals=API_SIGNAL) -> Run:
    """Play the scenario through a CameraAnalyzer whose API signal ``main`` is pushed to
    ``state_at(t)`` on every frame (None: nothing pushed)."""
    board = SignalBoard()
    config = SceneConfig.model_validate({"zones": zones, "signals": signals})
    analyzer = CameraAnalyzer("scenario", sc.fps, config, track=False, signals=board)
    analyses = []
    for frame, dets in sc.frames(until):
        state = state_at(frame.ts - sc.start)
        if state is not None:
            board.push("scenario", "main", state, at=frame.ts)  # type: ignore[arg-type]
        analyses.append(analyzer.analyze(frame, dets))
    return Run(analyses)


def test_crossing_on_red_fires_once_with_state_and_track(tmp_path):
    sc = Scenario()
    _car_up(sc, 500, 1, 7, track_id=42)
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=15)
    assert run.openings("approach", "red_light") == 1
    # the ground point reaches the line (y = 499.5) at t = 1 + 6 * 300.5 / 600 ≈ 4.0 s
    assert 4.0 <= run.first_active("approach", "red_light") <= 4.6
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.type == "red_light" and inc.details["category"] == "traffic" and inc.details["type_name_zh"] == "闯红灯"
    assert inc.details["signal_state"] == "red" and inc.details["signal"] == "main"
    assert inc.details["track"] == 42 and inc.details["class"] == "car"
    assert 3.9 <= inc.details["crossed_at"] <= 4.3
    assert inc.details["object"] == f"42@{inc.details['crossed_at']:.3f}" and inc.peak_count == 1
    # the crossing is the event: the incident closes clear_after_s (default 5 s) after it
    assert inc.status == "closed" and inc.closed_at - inc.opened_at == pytest.approx(5.0, abs=0.25)


@pytest.mark.parametrize("state", ["green", "yellow", None])
def test_crossing_on_green_yellow_or_unknown_does_not_fire(state):
    sc = Scenario()
    _car_up(sc, 500, 1, 7)
    run = run_with_signal(sc, [_zone()], lambda t: state, until=15)
    assert run.first_active("approach", "red_light") is None


def test_stale_push_is_unknown():
    sc = Scenario()
    _car_up(sc, 500, 8, 14)  # crosses at ≈ 11 s
    # the controller pushed red once at t = 0 and then went silent: stale after 5 s
    run = run_with_signal(sc, [_zone()], lambda t: "red" if t == 0 else None, until=20)
    assert run.first_active("approach", "red_light") is None


def test_each_vehicle_crossing_is_its_own_incident(tmp_path):
    sc = Scenario()
    _car_up(sc, 300, 1, 7, track_id=1)
    _car_up(sc, 700, 1, 7, track_id=2)  # side by side: both cross on the same frame
    _car_up(sc, 500, 2, 8, track_id=3)  # one second behind: crosses while the first two are still open
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=25)
    together = [r for _, r in run.results("approach", "red_light") if r.active and r.count == 2]
    assert len(together) == 1 and sorted(h.details["track"] for h in together[0].hits) == [1, 2]
    incidents = run.incidents(tmp_path)
    assert sorted(i.details["track"] for i in incidents) == [1, 2, 3]
    assert len({i.details["object"] for i in incidents}) == 3
    assert all(i.details["signal_state"] == "red" and i.peak_count == 1 for i in incidents)
    third = next(i for i in incidents if i.details["track"] == 3)
    assert third.opened_at - incidents[0].opened_at == pytest.approx(1.0, abs=0.25)
    assert all(i.status == "closed" for i in incidents)  # each 5 s after its own crossing


def test_vehicle_stopped_on_the_line_with_jitter_does_not_fire():
    sc = Scenario()
    # drives up and stops with its ground point on the line (y = 500 vs 499.5), box wobbling ±4 px
    car = sc.track("car", (450, 720, 550, 800))
    car.move(0, 3, dy=-300).stay(3, 60).jitter(4.0, seed=3)
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=60)
    assert run.first_active("approach", "red_light") is None
    gp = [float(a.detections.xyxy[0, 3]) for a in run.analyses if a.frame.ts >= 3]
    assert min(gp) < 499.5 < max(gp)  # the jitter does flip it across the line, many times
    # without the margin the same wobble would count as a crossing
    assert run_with_signal(sc, [_zone(margin=0.0)], lambda t: "red", until=60).first_active("approach", "red_light") is not None


def test_waits_on_red_goes_on_green_does_not_fire_runs_red_does():
    # car 1 stops before the line on red, goes when it turns green at t = 10
    sc = Scenario()
    sc.track("car", (450, 720, 550, 800), track_id=1).move(0, 2, dy=-200).stay(2, 10).move(10, 14, dy=-400)
    run = run_with_signal(sc, [_zone()], lambda t: "red" if t < 10 else "green", until=20)
    assert run.first_active("approach", "red_light") is None
    # car 2 stops the same way, then runs the red at t = 10
    sc = Scenario()
    sc.track("car", (450, 720, 550, 800), track_id=2).move(0, 2, dy=-200).stay(2, 10).move(10, 14, dy=-400)
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=20)
    assert 11.0 <= run.first_active("approach", "red_light") <= 11.4  # 100 px/s: at the line at ≈ 11.0 s


def test_light_turning_red_after_the_vehicle_passed_the_line_does_not_fire():
    sc = Scenario()
    # 100 px/s: the ground point is past the line from the 4.2 s frame, 0.5 box heights
    # (40 px) past it from the 4.6 s frame; the light turns red in between
    _car_up(sc, 500, 1, 7)
    run = run_with_signal(sc, [_zone(margin=0.5)], lambda t: "green" if t < 4.4 else "red", until=12)
    assert run.first_active("approach", "red_light") is None
    # the same with red from 4.2 s on: it was red when the car passed the line
    run = run_with_signal(sc, [_zone(margin=0.5)], lambda t: "green" if t < 4.2 else "red", until=12)
    assert run.first_active("approach", "red_light") == pytest.approx(4.6)


@pytest.mark.parametrize(("direction", "fires"), [("right_to_left", True), ("left_to_right", False), ("any", True)])
def test_direction(direction, fires):
    sc = Scenario()
    _car_up(sc, 500, 1, 7)  # comes from the right side of the line
    run = run_with_signal(sc, [_zone(direction=direction)], lambda t: "red", until=12)
    assert (run.first_active("approach", "red_light") is not None) is fires
    # the opposite lane: coming down from the top, i.e. from the left side
    sc = Scenario()
    _car_up(sc, 500, 1, 7, start_y=200, end_y=800)
    run = run_with_signal(sc, [_zone(direction=direction)], lambda t: "red", until=12)
    assert (run.first_active("approach", "red_light") is not None) is (direction != "right_to_left")


def test_beside_the_stop_line_or_other_classes_do_not_fire():
    sc = Scenario()
    _car_up(sc, 100, 1, 7)  # in a lane the stop line does not span (x < 0.2)
    _car_up(sc, 500, 1, 7).class_name = "person"  # a pedestrian walking over the line
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=12)
    assert run.first_active("approach", "red_light") is None


def test_vehicle_already_past_the_line_when_first_seen_does_not_fire():
    sc = Scenario()
    _car_up(sc, 500, 0, 3, start_y=450, end_y=100)  # appears beyond the line
    run = run_with_signal(sc, [_zone()], lambda t: "red", until=6)
    assert run.first_active("approach", "red_light") is None


def _frame_with_head(lit: str | None) -> tuple[np.ndarray, list[list[float]]]:
    img = np.full((1000, 1000, 3), 90, np.uint8)
    head = signal_head(lit, radius=12)
    y0, x0 = 40, 900
    img[y0 : y0 + head.shape[0], x0 : x0 + head.shape[1]] = head
    x1, y1 = x0 + head.shape[1] - 1, y0 + head.shape[0] - 1
    region = [[x0 / 999, y0 / 999], [x1 / 999, y0 / 999], [x1 / 999, y1 / 999], [x0 / 999, y1 / 999]]
    img.flags.writeable = False
    return img, region


@pytest.mark.parametrize(("lit", "fires"), [("red", True), ("green", False), ("yellow", False), (None, False)])
def test_signal_read_from_the_image(lit, fires):
    image, region = _frame_with_head(lit)
    sc = Scenario()
    _car_up(sc, 500, 1, 7)
    run = sc.run([_zone()], until=12, image=image, signals=[{"id": "main", "source": "image", "region": region}])
    assert {a.signals["main"] for a in run.analyses} == {lit or "unknown"}
    assert (run.openings("approach", "red_light") == 1) is fires


def test_reset_forgets_tracks():
    from gridworker.vision.config import RedLightRuleConfig
    from gridworker.vision.rules import RedLightRule, Scene
    from tests.factories import make_detections

    rule = RedLightRule(RedLightRuleConfig(stop_line=STOP_LINE, signal="main"))

    def at(y, t):
        dets = make_detections([[450, y - 80, 550, y]], class_name=["car"], tracker_id=[5])
        return Scene(detections=dets, now=t, size=(1000, 1000), in_zone=np.ones(1, bool), signals={"main": "red"})

    assert not rule.evaluate(at(600, 0.0)).active  # seen clearly before the line
    rule.reset()  # e.g. its schedule closed
    assert not rule.evaluate(at(400, 0.2)).active  # first seen past the line: no known approach
    assert not rule.evaluate(at(300, 0.4)).active
