"""Motion rules on scripted tracks: 车辆逆行 wrong_way and 超速 speeding.

Both rules are per-object: each wrong-way or speeding vehicle is its own incident.

Frames are 1000 x 1000 px (speeding: 1001 x 1001, so that the calibration below maps
exactly 0.2 m to a pixel) at 5 fps; cars are 100 px boxes.
"""

import numpy as np
import pytest

from gridworker.vision.config import SpeedingRuleConfig, WrongWayRuleConfig
from gridworker.vision.rules import Scene, SpeedingRule, WrongWayRule
from gridworker.vision.rules.speeding import speed_kmh
from tests.factories import make_detections
from tests.scenario import Scenario

CAR = (450, 700, 550, 800)  # 100 px high, ground point (500, 800)


def _lane(**rule):
    return [{"id": "lane", "rules": [{"type": "wrong_way", "direction": [0, 1], **rule}]}]


def _active_times(run, zone="lane", rule="wrong_way"):
    return [t for t, on in run.active(zone, rule) if on]


# --- 车辆逆行 wrong_way ------------------------------------------------------------------


def test_wrong_way_fires_once_after_min_distance(tmp_path):
    sc = Scenario(fps=5)
    sc.track("car", CAR).move(0, 6, dy=-600)  # 100 px/s up the frame: against (0, 1)
    run = sc.run(_lane(), until=8)
    first = run.first_active("lane", "wrong_way")
    # judged once the smoothed displacement reaches one box height: 1 s of travel
    assert first is not None and 0.9 <= first <= 1.3
    assert run.openings("lane", "wrong_way") == 1
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "wrong_way"
    assert incidents[0].details["track"] == 1 and incidents[0].details["object"] == "1@0.000"
    assert incidents[0].details["angle_deg"] > 170 and incidents[0].peak_count == 1


@pytest.mark.parametrize(
    ("script", "why"),
    [
        (lambda t: t.move(0, 6, dy=600), "the right way"),
        (lambda t: t.stay(0, 20).jitter(8, seed=3), "parked, box jitter of 8 px"),
        (lambda t: t.move(0, 4, dx=-400, dy=-70), "lane change drifting back slightly (about 100 degrees)"),
        (lambda t: t.move(0, 0.5, dy=-50).stay(0.5, 10), "reversing half a car length into a space"),
        (lambda t: t.move(0, 3, dy=300).stay(3, 6).jitter(6, seed=1).switch_id(3.5), "arrives, stops, tracker renames it"),
    ],
)
def test_wrong_way_quiet(script, why):
    sc = Scenario(fps=5)
    script(sc.track("car", (450, 100, 550, 200) if "right way" in why else CAR))
    run = sc.run(_lane(), until=10)
    assert run.first_active("lane", "wrong_way") is None, why


def test_wrong_way_other_classes_and_angles():
    sc = Scenario(fps=5)
    sc.track("person", CAR).move(0, 6, dy=-600)  # a pedestrian walking up the lane
    assert sc.run(_lane(), until=6).first_active("lane", "wrong_way") is None
    # 135 degrees off the allowed direction: wrong-way at min_angle 120, not at 150
    sc = Scenario(fps=5)
    sc.track("car", CAR).move(0, 4, dx=-300, dy=-300)
    assert sc.run(_lane(min_angle_deg=120), until=4).first_active("lane", "wrong_way") is not None
    assert sc.run(_lane(min_angle_deg=150), until=4).first_active("lane", "wrong_way") is None


def test_wrong_way_survives_jitter_and_missed_frames(tmp_path):
    sc = Scenario(fps=5)
    sc.track("car", CAR).move(0, 3, dy=-300).hide(3, 4.4).move(4.4, 6, dy=-160).jitter(5, seed=2)
    sc.track("car", (100, 100, 200, 200)).move(0, 6, dy=600).jitter(5, seed=4)  # traffic going the right way
    run = sc.run(_lane(), until=20)
    assert run.openings("lane", "wrong_way") == 2  # the verdict pauses while the car is hidden ...
    hidden = [t for t, on in run.active("lane", "wrong_way") if 3.0 <= t < 4.4]
    assert hidden and not any(on for t, on in run.active("lane", "wrong_way") if 3.0 <= t < 4.4)
    assert all(on for t, on in run.active("lane", "wrong_way") if 4.4 <= t <= 6.0)  # ... and resumes at once
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1  # ... but it is one incident
    assert incidents[0].details["track"] == 1


def test_wrong_way_id_switch_keeps_the_verdict(tmp_path):
    sc = Scenario(fps=5)
    sc.track("car", CAR).move(0, 6, dy=-600).switch_id(3.0, new_id=77)
    run = sc.run(_lane(), until=8)
    first = run.first_active("lane", "wrong_way")
    assert first is not None and first <= 1.3
    # the renamed track inherits the history: no gap at the switch
    assert all(on for t, on in run.active("lane", "wrong_way") if first <= t <= 6.0)
    after = [r for t, r in run.results("lane", "wrong_way") if t >= 3.0 and r.active]
    assert after and after[0].details["tracks"] == [77]
    # the hit keeps the key of the history it inherited: the same incident
    assert after[0].hits[0].key == "1@0.000" and after[0].hits[0].details["first_track"] == 1
    assert "car #77 (was #1)" in after[0].hits[0].summary
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].details["object"] == "1@0.000"


def test_two_wrong_way_cars_are_two_incidents(tmp_path):
    sc = Scenario(fps=5)
    sc.track("car", CAR, track_id=1).move(0, 6, dy=-600)
    sc.track("car", (150, 700, 250, 800), track_id=2).hide(0, 2).move(2, 8, dy=-600)  # 2 s later, one lane over
    sc.track("car", (750, 100, 850, 200), track_id=3).move(0, 6, dy=600)  # the right way
    run = sc.run(_lane(clear_after_s=0), until=10)
    both = [r for _, r in run.results("lane", "wrong_way") if r.active and r.count == 2]
    assert both and {h.key for h in both[0].hits} == {"1@0.000", "2@2.000"}
    incidents = run.incidents(tmp_path)
    assert [i.details["track"] for i in incidents] == [1, 2]
    assert incidents[1].opened_at - incidents[0].opened_at == pytest.approx(2.0, abs=0.3)
    assert all(i.peak_count == 1 for i in incidents)


def test_wrong_way_id_switch_does_not_inherit_from_a_far_track():
    sc = Scenario(fps=5)
    # car 1 drives the wrong way and leaves the frame at t = 3; at that moment a car
    # appears far away going the right way: it must not inherit car 1's history
    sc.track("car", CAR).move(0, 3, dy=-300)
    sc.track("car", (100, 0, 200, 100), track_id=9).hide(0, 3.2).move(3.2, 8, dy=480)
    run = sc.run(_lane(), until=8)
    assert not any(on for t, on in run.active("lane", "wrong_way") if t > 3.0)


def test_wrong_way_prunes_unseen_tracks():
    rule = WrongWayRule(WrongWayRuleConfig(direction=(0, 1), window_s=2.0))
    for i in range(10):
        dets = make_detections([[450, 700 - 30 * i, 550, 800 - 30 * i]], class_name=["car"], tracker_id=[5])
        res = rule.evaluate(Scene(dets, now=i * 0.2, size=(1000, 1000), in_zone=np.ones(1, bool)))
    assert res.active and 5 in rule._tracks
    empty = make_detections([], tracker_id=[])
    rule.evaluate(Scene(empty, now=1.8 + 2.1, size=(1000, 1000), in_zone=np.zeros(0, bool)))
    assert rule._tracks == {}
    rule.reset()
    assert rule._tracks == {}


# --- 超速 speeding -----------------------------------------------------------------------

# 1001 px frame, normalised corners → a 200 m square: 0.2 m per pixel both ways
CAL = {"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground": [[0, 0], [200, 0], [200, 200], [0, 200]]}
M_PER_PX = 0.2


def _px_per_s(kmh):
    return kmh / 3.6 / M_PER_PX


def _speed_zone(**rule):
    return [{"id": "road", "rules": [{"type": "speeding", "max_speed_kmh": 60, **rule}]}]


def _drive(kmh, seconds=6.0, jitter=0.0, seed=0, box=(450, 100, 550, 200)):
    sc = Scenario(size=(1001, 1001), fps=5)
    t = sc.track("car", box).move(0, seconds, dy=_px_per_s(kmh) * seconds)
    if jitter:
        t.jitter(jitter, seed=seed)
    return sc


def test_speeding_80_in_a_60_zone_fires_once_with_the_speed(tmp_path):
    run = _drive(80).run(_speed_zone(), until=8, calibration=CAL)
    first = run.first_active("road", "speeding")
    assert first is not None and 0.5 <= first <= 0.8  # min_track_s = 0.5, three sightings
    assert run.openings("road", "speeding") == 1
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "speeding"
    assert incidents[0].details["speed_kmh"] == pytest.approx(80, abs=1.0)
    assert incidents[0].details["limit_kmh"] == 60


@pytest.mark.parametrize(
    ("kmh", "tolerance", "fires"),
    [(40, 0, False), (58, 0, False), (64, 0, True), (64, 5, False), (70, 5, True), (120, 0, True)],
)
def test_speeding_threshold(kmh, tolerance, fires):
    run = _drive(kmh, seconds=4).run(_speed_zone(tolerance_kmh=tolerance), until=4, calibration=CAL)
    assert (run.first_active("road", "speeding") is not None) is fires


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speeding_measured_speed_under_jitter(seed):
    run = _drive(80, jitter=3, seed=seed).run(_speed_zone(), until=6, calibration=CAL)
    speeds = [r.details["speed_kmh"] for _, r in run.results("road", "speeding") if r.active]
    assert speeds and all(70 <= s <= 90 for s in speeds)  # 3 px of jitter is 0.6 m a frame
    slow = _drive(40, jitter=3, seed=seed).run(_speed_zone(), until=6, calibration=CAL)
    assert slow.first_active("road", "speeding") is None


def test_speeding_min_track_and_window():
    run = _drive(100).run(_speed_zone(min_track_s=2.0, window_s=1.0), until=6, calibration=CAL)
    first = run.first_active("road", "speeding")
    assert first is not None and 2.0 <= first <= 2.2


def test_speeding_parked_jitter_missed_frames_and_id_switch(tmp_path):
    sc = Scenario(size=(1001, 1001), fps=5)
    sc.track("car", (100, 500, 200, 600)).stay(0, 20).jitter(6, seed=5).switch_id(10)  # parked
    fast = sc.track("car", (450, 50, 550, 150))
    fast.move(0, 2, dy=_px_per_s(90) * 2).hide(2, 3).move(3, 5, dy=_px_per_s(90) * 2).switch_id(4.0)
    run = sc.run(_speed_zone(), until=20, calibration=CAL)
    results = run.results("road", "speeding")
    fired_tracks = {tid for _, r in results if r.active for tid in r.details["tracks"]}
    assert fired_tracks <= {2, 1002}  # never the parked car, under either of its ids
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1  # a gap and a new id on the fast car: still one incident
    assert incidents[0].details["speed_kmh"] == pytest.approx(90, abs=1.5)


def test_two_speeding_cars_two_seconds_apart_are_two_incidents(tmp_path):
    sc = Scenario(size=(1001, 1001), fps=5)
    step = _px_per_s(90) * 2  # 90 km/h for 2 s
    sc.track("car", (450, 50, 550, 150), track_id=1).move(0, 2, dy=step)  # then gone
    # the next car, the same lane, appears where the first one started as it vanishes
    sc.track("car", (450, 50, 550, 150), track_id=2).hide(0, 2.2).move(2.2, 4.2, dy=step)
    run = sc.run(_speed_zone(clear_after_s=5), until=10, calibration=CAL)
    incidents = run.incidents(tmp_path)
    assert [i.details["track"] for i in incidents] == [1, 2]  # not merged, even within clear_after_s
    assert [i.details["first_track"] for i in incidents] == [1, 2]
    assert incidents[1].opened_at - incidents[0].opened_at == pytest.approx(2.2, abs=0.3)
    assert all(i.details["speed_kmh"] == pytest.approx(90, abs=1.5) for i in incidents)


def test_speeding_ignores_uncalibrated_scenes_and_other_classes():
    rule = SpeedingRule(SpeedingRuleConfig(max_speed_kmh=60))
    dets = make_detections([[0, 0, 10, 10]], class_name=["car"], tracker_id=[1])
    assert not rule.evaluate(Scene(dets, now=0.0, size=(100, 100), in_zone=np.ones(1, bool))).active
    sc = Scenario(size=(1001, 1001), fps=5)
    sc.track("person", (450, 100, 550, 200)).move(0, 4, dy=_px_per_s(90) * 4)
    assert sc.run(_speed_zone(), until=4, calibration=CAL).first_active("road", "speeding") is None


def test_speed_estimate_shrugs_off_one_bad_box():
    ts = np.arange(6) * 0.2
    ground = np.stack([np.zeros(6), 20.0 * ts], axis=1)  # 20 m/s = 72 km/h
    assert speed_kmh(ts, ground) == pytest.approx(72.0)
    ground[3, 1] += 3.0  # one box cut by an occluder: 3 m off for one frame
    assert speed_kmh(ts, ground) == pytest.approx(72.0, abs=6.0)
    assert speed_kmh(ts[:2], ground[:2]) is None  # two sightings are not enough
