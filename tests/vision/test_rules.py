"""Rules on scripted detection tracks: they fire when they should, not before, and reset."""

import numpy as np
import pytest

from gridworker.vision.config import CrowdRuleConfig, DwellRuleConfig, IntrusionRuleConfig
from gridworker.vision.rules import CrowdRule, DwellRule, IntrusionRule, Scene
from tests.factories import make_detections


def _scene(dets, in_zone, now):
    return Scene(detections=dets, now=float(now), size=(1000, 1000), in_zone=in_zone)


def _all_in(dets):
    return np.ones(len(dets), dtype=bool)


def test_intrusion_immediate_and_class_filter():
    rule = IntrusionRule(IntrusionRuleConfig(classes=["person"]))
    dets = make_detections([[0, 0, 10, 10], [5, 5, 20, 20]], class_name=["car", "person"], tracker_id=[1, 2])
    res = rule.evaluate(_scene(dets, _all_in(dets), 0.0))
    assert res.active and res.subjects.tolist() == [1] and res.count == 1
    cars = make_detections([[0, 0, 10, 10]], class_name=["car"], tracker_id=[1])
    assert not rule.evaluate(_scene(cars, _all_in(cars), 1.0)).active
    outside = make_detections([[0, 0, 10, 10]], tracker_id=[3])
    assert not rule.evaluate(_scene(outside, np.zeros(1, bool), 2.0)).active


def test_intrusion_min_duration_per_track():
    rule = IntrusionRule(IntrusionRuleConfig(classes=["person"], min_duration_s=2.0))
    fired = []
    for t in np.arange(0, 4.01, 0.5):
        dets = make_detections([[0, 0, 10, 10]], tracker_id=[7])
        fired.append(rule.evaluate(_scene(dets, _all_in(dets), float(t))).active)
    assert fired.index(True) == 4  # t = 2.0 s
    # the track leaves and a new one arrives: the clock restarts
    dets = make_detections([[0, 0, 10, 10]], tracker_id=[8])
    assert not rule.evaluate(_scene(dets, _all_in(dets), 4.5)).active


def test_intrusion_low_confidence_ignored():
    rule = IntrusionRule(IntrusionRuleConfig(classes=["person"], min_confidence=0.5))
    dets = make_detections([[0, 0, 10, 10]], confidence=[0.3], tracker_id=[1])
    assert not rule.evaluate(_scene(dets, _all_in(dets), 0)).active


def _people(n):
    return make_detections([[i * 10, 0, i * 10 + 8, 20] for i in range(n)], tracker_id=list(range(n)))


@pytest.mark.parametrize(
    ("counts", "expect_first_fire"),
    [
        ([5] * 20, 10),  # 5 people at 1 fps-ish steps of 0.5 s: fires at t = 5 s
        ([4] * 20, None),  # never enough
        ([5, 5, 5, 5, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], 10),  # a one-frame dip (< grace) keeps the clock
        ([5] * 4 + [0] * 6 + [5] * 14, 20),  # a long gap restarts it (fires 5 s after t = 5.0)
    ],
)
def test_crowd_threshold_and_duration(counts, expect_first_fire):
    rule = CrowdRule(CrowdRuleConfig(min_count=5, min_duration_s=5.0, grace_s=1.0))
    fired = []
    for i, n in enumerate(counts):
        dets = _people(n)
        fired.append(rule.evaluate(_scene(dets, _all_in(dets), i * 0.5)).active)
    if expect_first_fire is None:
        assert not any(fired)
    else:
        assert fired.index(True) == expect_first_fire


def _car(x, y, track, h=40.0):
    return make_detections([[x - 30, y - h, x + 30, y]], class_name=["car"], tracker_id=[track])


def test_dwell_fires_after_threshold_with_jitter():
    rule = DwellRule(DwellRuleConfig(min_duration_s=10.0, max_movement=0.3))
    rng = np.random.default_rng(0)
    fired_at = None
    for i in range(0, 30):
        t = i * 0.5
        dets = _car(200 + rng.normal(0, 2), 300 + rng.normal(0, 2), track=1)
        if rule.evaluate(_scene(dets, _all_in(dets), t)).active and fired_at is None:
            fired_at = t
    assert fired_at == pytest.approx(10.0)


def test_dwell_moving_vehicle_never_fires():
    rule = DwellRule(DwellRuleConfig(min_duration_s=5.0))
    for i in range(60):
        dets = _car(100 + i * 8, 300, track=1)  # 8 px per step, box height 40: moves 0.2 h/step
        assert not rule.evaluate(_scene(dets, _all_in(dets), i * 0.5)).active


def test_dwell_survives_missed_frames_but_not_long_absence():
    rule = DwellRule(DwellRuleConfig(min_duration_s=6.0, lost_grace_s=2.0))
    empty = make_detections([], tracker_id=[])
    timeline = [(t, True) for t in (0, 1, 2, 3)] + [(4, False)] + [(t, True) for t in (5, 6)]
    results = []
    for t, present in timeline:
        dets = _car(200, 300, 1) if present else empty
        results.append(rule.evaluate(_scene(dets, _all_in(dets), t)).active)
    assert results == [False] * 6 + [True]  # one missed frame kept the clock
    rule2 = DwellRule(DwellRuleConfig(min_duration_s=6.0, lost_grace_s=2.0))
    for t in (0, 1, 2):
        rule2.evaluate(_scene(_car(200, 300, 1), np.ones(1, bool), t))
    rule2.evaluate(_scene(empty, np.zeros(0, bool), 6))  # gone 4 s > grace: state pruned
    assert not rule2.evaluate(_scene(_car(200, 300, 1), np.ones(1, bool), 7)).active


def test_dwell_ignores_other_classes_and_unconfirmed_tracks():
    rule = DwellRule(DwellRuleConfig(min_duration_s=0.0))
    person = make_detections([[0, 0, 10, 40]], class_name=["person"], tracker_id=[1])
    assert not rule.evaluate(_scene(person, _all_in(person), 0)).active
    unconfirmed = make_detections([[0, 0, 10, 40]], class_name=["car"], tracker_id=[-1])
    assert not rule.evaluate(_scene(unconfirmed, _all_in(unconfirmed), 0)).active
