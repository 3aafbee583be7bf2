"""Counting lines (越线): exact per-class in/out counts from scripted tracks; no double counts.

The frame is 1000 x 1000 (normalised 0.5 ≈ pixel 500); boxes are 100 px high, so the
default hysteresis band is 10 px either side of the line.
"""

from collections import Counter

import numpy as np
import pytest

from gridworker.vision.config import LineConfig
from gridworker.vision.lines import LineCounter
from tests.factories import make_detections
from tests.scenario import Scenario

# drawn left to right across the middle: moving down the frame is "in"
GATE = {"id": "gate", "points": [[0.1, 0.5], [0.9, 0.5]]}


def _box(x, ground_y, h=100):
    return (x - 50, ground_y - h, x + 50, ground_y)


def _counts(run):
    return Counter((c.line_id, c.class_name, c.direction) for a in run.analyses for c in a.crossings)


def test_scripted_crossings_counted_exactly_per_class():
    sc = Scenario(fps=5)
    sc.track("car", _box(300, 300)).move(0, 4, dy=400)  # down: in
    sc.track("person", _box(500, 700)).move(0, 4, dy=-400)  # up: out
    sc.track("bicycle", _box(700, 400)).move(0, 2, dy=200).move(2, 4, dy=-200)  # in, then back out
    sc.track("car", _box(400, 200)).move(0, 3, dy=150)  # stops short of the line
    sc.track("person", _box(200, 800)).stay(0, 4)  # never near it
    run = sc.run(until=6, lines=[GATE])
    assert _counts(run) == Counter(
        {("gate", "car", "in"): 1, ("gate", "person", "out"): 1, ("gate", "bicycle", "in"): 1, ("gate", "bicycle", "out"): 1}
    )
    crossings = [c for a in run.analyses for c in a.crossings]
    car = next(c for c in crossings if c.class_name == "car")
    # ground point 300 → 700 over 4 s passes y = 500 at t = 2.0; counted once clear of the band (10 px)
    assert car.tracker_id == 1 and 2.0 < car.ts <= 2.4


def test_direction_follows_the_line_orientation():
    sc = Scenario(fps=5)
    sc.track("car", _box(500, 300)).move(0, 4, dy=400)
    flipped = {"id": "gate-r", "points": [[0.9, 0.5], [0.1, 0.5]]}
    vertical = {"id": "v", "points": [[0.5, 0.1], [0.5, 0.9]]}  # looking down the frame, left is +x
    sc.track("person", _box(300, 600)).move(0, 4, dx=400)  # walks to the right of the picture across x = 500
    run = sc.run(until=4, lines=[GATE, flipped, vertical])
    got = {(c.line_id, c.class_name): c.direction for a in run.analyses for c in a.crossings}
    assert got[("gate", "car")] == "in" and got[("gate-r", "car")] == "out"
    # for a line pointing down the frame, its left side is the right of the picture:
    # a person walking to the right of the picture crosses it right → left, "out"
    assert got[("v", "person")] == "out"


def test_jittering_object_parked_on_the_line_counts_at_most_once():
    sc = Scenario(fps=5)
    sc.track("car", _box(300, 500)).stay(0, 60).jitter(6, seed=1)  # exactly on the line
    sc.track("car", _box(600, 503)).stay(0, 60).jitter(6, seed=2)  # a hair below it
    sc.track("person", _box(450, 498, h=60)).stay(0, 60).jitter(4, seed=3)
    run = sc.run(until=60, lines=[GATE])
    per_track = Counter(c.tracker_id for a in run.analyses for c in a.crossings)
    assert all(n <= 1 for n in per_track.values())
    assert sum(per_track.values()) <= 1


def test_parked_on_the_line_without_hysteresis_would_flicker():
    # the same parked car with the band switched off shows what the hysteresis prevents
    sc = Scenario(fps=5)
    sc.track("car", _box(300, 500)).stay(0, 30).jitter(6, seed=1)
    run = sc.run(until=30, lines=[{**GATE, "hysteresis": 0.0}])
    assert sum(_counts(run).values()) > 5


def test_missed_frames_and_id_switch():
    sc = Scenario(fps=5)
    # hidden while it crosses: seen above, then below; one count
    sc.track("car", _box(300, 300)).move(0, 1.6, dy=160).hide(1.6, 3.0).move(3.0, 5, dy=200)
    # renamed by the tracker far from the line, then crosses: one count under the new id
    sc.track("bus", _box(600, 200)).move(0, 5, dy=500).switch_id(1.0, new_id=50)
    # renamed right on the line: the new id has no side yet, so at most one count
    sc.track("truck", _box(700, 300)).move(0, 4, dy=400).switch_id(2.0, new_id=60)
    run = sc.run(until=5, lines=[GATE])
    crossings = [c for a in run.analyses for c in a.crossings]
    assert [(c.class_name, c.direction) for c in crossings if c.class_name == "car"] == [("car", "in")]
    assert [(c.tracker_id, c.direction) for c in crossings if c.class_name == "bus"] == [(50, "in")]
    assert len([c for c in crossings if c.class_name == "truck"]) <= 1


def test_only_crossings_of_the_segment_count():
    sc = Scenario(fps=5)
    sc.track("car", _box(50, 300)).move(0, 4, dy=400)  # passes left of the line's start (x = 100)
    sc.track("car", _box(950, 700)).move(0, 4, dy=-400)  # right of its end (x = 900)
    sc.track("car", _box(150, 300)).move(0, 4, dy=400)  # just inside
    run = sc.run(until=4, lines=[GATE])
    assert _counts(run) == Counter({("gate", "car", "in"): 1})


def test_line_classes_and_confidence():
    sc = Scenario(fps=5)
    sc.track("car", _box(300, 300)).move(0, 4, dy=400)
    sc.track("person", _box(500, 300)).move(0, 4, dy=400)
    sc.track("person", _box(700, 300), confidence=0.2).move(0, 4, dy=400)
    run = sc.run(until=4, lines=[{**GATE, "classes": ["person"], "min_confidence": 0.5}])
    assert _counts(run) == Counter({("gate", "person", "in"): 1})


def test_counter_totals_pruning_and_unconfirmed_tracks():
    counter = LineCounter([LineConfig(**GATE)], forget_after_s=2.0)
    size = (1000, 1000)
    for i, y in enumerate(range(300, 760, 40)):
        dets = make_detections([_box(300, y), _box(600, y)], class_name=["car", "car"], tracker_id=[4, -1])
        counter.update(dets, size, i * 0.2)
    assert counter.counts["gate"] == Counter({("car", "in"): 1})  # the unconfirmed (-1) box is not counted
    line = counter._lines[0]
    assert set(line.tracks) == {4}
    counter.update(make_detections([], tracker_id=[]), size, 10.0)
    assert line.tracks == {}
    # untracked detections are ignored, not an error
    assert counter.update(make_detections([_box(300, 300)], class_name=["car"]), size, 11.0) == []


def test_crossing_between_sparse_frames_is_located_on_the_path():
    counter = LineCounter([LineConfig(**GATE)])
    size = (1000, 1000)
    # one frame far above the line, the next far below, the path crossing at x = 500
    counter.update(make_detections([_box(300, 100)], class_name=["car"], tracker_id=[1]), size, 0.0)
    got = counter.update(make_detections([_box(700, 900)], class_name=["car"], tracker_id=[1]), size, 0.2)
    assert [(c.tracker_id, c.direction) for c in got] == [(1, "in")]
    # the same jump passing beyond the line's end (x from 800 to 1000 meets y = 500 at x = 900.5)
    counter2 = LineCounter([LineConfig(**GATE)])
    counter2.update(make_detections([_box(850, 100)], class_name=["car"], tracker_id=[1]), size, 0.0)
    assert counter2.update(make_detections([_box(960, 900)], class_name=["car"], tracker_id=[1]), size, 0.2) == []


@pytest.mark.parametrize("band_frac", [0.1, 0.3])
def test_wobble_into_the_band_and_back_is_not_a_crossing(band_frac):
    counter = LineCounter([LineConfig(**GATE, hysteresis=band_frac)])
    size = (1000, 1000)
    band = band_frac * 100
    path = [400, 480, 500 + band * 0.9, 499, 500 + band * 0.5, 470, 400]  # touches the far side of the line, never clears it
    got = []
    for i, y in enumerate(path):
        got += counter.update(make_detections([_box(500, float(y))], class_name=["car"], tracker_id=[3]), size, i * 0.2)
    assert got == []
    got = counter.update(make_detections([_box(500, 500 + band + 1)], class_name=["car"], tracker_id=[3]), size, 2.0)
    assert [c.direction for c in got] == ["in"]
    # normalised 0.5 is pixel 499.5 in a 1000 px frame (0..999)
    assert counter._lines[0].signed_distance(np.array([[500.0, 500 + band + 1]]), size)[0] == pytest.approx(band + 1.5)
