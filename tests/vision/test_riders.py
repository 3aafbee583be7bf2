"""Riders are not pedestrians: a person on a bicycle/motorcycle, moving with it, counts as the
vehicle (vision/riders.py), on scripted tracks through the real analyser and rules.

A pair becomes a rider only once it has moved together (half a vehicle box height), so the
scripted cyclists ride at a cyclist's pace: 90 px/s is 0.75 bicycle heights a second, a slow
cyclist near the camera or a brisk one far from it. The stationary cases are in
tests/vision/test_riders_motion.py."""

import numpy as np
import supervision as sv

from gridworker.vision.config import RiderConfig
from gridworker.vision.riders import RiderLinker
from tests.scenario import Scenario

FPS = 5
LANE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
# a cyclist: the person's box sits on the upper part of the bicycle's box
RIDER = (460, 300, 540, 480)
BIKE = (440, 380, 560, 500)


def _ride(sc: Scenario, t0: float, t1: float, dx: float, *, bike_hidden: tuple[float, float] | None = None) -> None:
    """A cyclist riding ``dx`` px from ``t0`` to ``t1``, centred on RIDER/BIKE; the bicycle's box
    missed during ``bike_hidden``."""
    back = np.array([dx / 2, 0.0, dx / 2, 0.0])
    sc.track("person", tuple(np.asarray(RIDER) - back), track_id=1).move(t0, t1, dx=dx)
    bike = sc.track("bicycle", tuple(np.asarray(BIKE) - back), track_id=2)
    if bike_hidden is None:
        bike.move(t0, t1, dx=dx)
        return
    h0, h1 = bike_hidden
    speed = dx / (t1 - t0)
    bike.move(t0, h0, dx=speed * (h0 - t0)).hide(h0, h1)
    bike.box = bike.box + speed * (h1 - h0) * np.array([1.0, 0.0, 1.0, 0.0])  # it rode on unseen
    bike.move(h1, t1, dx=speed * (t1 - h1))


def _lane(classes: list[str], **extra: object) -> list[dict[str, object]]:
    rule = {"type": "lane_intrusion", "id": "lane", "classes": classes, "min_duration_s": 1.0, **extra}
    return [{"id": "lane", "polygon": LANE, "rules": [rule]}]


def test_cyclist_is_not_a_pedestrian_in_the_lane():
    sc = Scenario(fps=FPS)
    _ride(sc, 0, 10, dx=900)
    run = sc.run(zones=_lane(["person"]), until=10)
    # the rider is paired once the pair rode 60 px (0.8 s), before the 1 s the rule needs
    assert run.first_active("lane", "lane") is None


def test_cyclist_counts_as_the_bicycle_once():
    sc = Scenario(fps=FPS)
    _ride(sc, 0, 10, dx=900)
    run = sc.run(zones=_lane(["person", "bicycle"]), until=10)
    assert run.first_active("lane", "lane") is not None
    _, last = run.results("lane", "lane")[-1]
    assert last.count == 1 and last.details["classes"] == ["bicycle"]  # the pair is one object: the bicycle


def test_rider_stands_for_the_bicycle_while_the_detector_misses_it():
    """A non-motor rule keeps counting the cyclist while only the person's box is found."""
    sc = Scenario(fps=FPS)
    _ride(sc, 0, 10, dx=900, bike_hidden=(4.0, 5.0))
    run = sc.run(zones=_lane(["bicycle"], grace_s=0.0), until=10)
    on = [t for t, active in run.active("lane", "lane") if 4.2 <= t <= 4.8]
    assert on and all(active for t, active in run.active("lane", "lane") if 4.2 <= t <= 4.8)
    hidden = [res for t, res in run.results("lane", "lane") if 4.2 <= t <= 4.8]
    # the box shown is the rider's, under the bicycle's track (its clock went on); named as the
    # rider's own class or, where Scene.class_names names stand-ins by role, as the bicycle
    assert hidden and all(r.details["tracks"] == [2] and r.details["classes"] == ["bicycle"] for r in hidden)
    assert all(list(a.detections.data["class_name"]) == ["person"] for a in run.analyses if 4.2 <= a.frame.ts <= 4.8)


def test_pedestrian_walking_past_a_parked_bicycle_stays_a_pedestrian():
    sc = Scenario(fps=FPS)
    sc.track("bicycle", BIKE, track_id=2).stay(0, 10)
    # walks left to right across the parked bicycle at an easy pace (2/3 of their height a
    # second): overlaps it for well over a second
    sc.track("person", (200, 300, 280, 480), track_id=1).move(0, 10, dx=1200)
    run = sc.run(zones=_lane(["person"]), until=10)
    assert run.first_active("lane", "lane") is not None
    assert all(active for t, active in run.active("lane", "lane") if t >= 1.0)


def test_person_next_to_a_bicycle_on_the_pavement_is_not_a_rider():
    """Feet on the ground beside the bicycle (no overlap with its box) are a pedestrian's."""
    sc = Scenario(fps=FPS)
    sc.track("bicycle", BIKE, track_id=2).stay(0, 5)
    sc.track("person", (570, 320, 640, 500), track_id=1).stay(0, 5)
    run = sc.run(zones=_lane(["person"]), until=5)
    assert run.first_active("lane", "lane") == 1.0


def test_motorcyclist_waiting_at_the_junction_is_not_a_pedestrian():
    """The issue's case: riders waiting at a junction were counted as pedestrians in the lane.
    The motorcyclist rides up (0.7 s to be paired) and waits 27 s: still the motorcycle."""
    sc = Scenario(fps=FPS)
    sc.track("person", (170, 280, 250, 470), track_id=1).move(0, 3, dx=300).stay(3, 30).jitter(3)
    sc.track("motorcycle", (130, 360, 290, 500), track_id=2).move(0, 3, dx=300).stay(3, 30).jitter(3, seed=1)
    run = sc.run(zones=_lane(["person", "bicycle"]), until=30)
    assert run.first_active("lane", "lane") is None


def test_riders_are_out_of_the_crowd_count():
    sc = Scenario(fps=FPS)
    for k in range(4):  # four cyclists riding side by side, then waiting at the junction
        x = 100 + 200 * k
        sc.track("person", (x + 20, 100, x + 100, 280), track_id=10 + k).move(0, 5, dy=400).stay(5, 20)
        sc.track("bicycle", (x, 180, x + 120, 300), track_id=20 + k).move(0, 5, dy=400).stay(5, 20)
    sc.track("person", (100, 600, 160, 760), track_id=30).stay(0, 20)  # one pedestrian
    crowd = [{"id": "square", "polygon": LANE, "rules": [{"type": "crowd", "min_count": 3, "min_duration_s": 2}]}]
    run = sc.run(zones=crowd, until=20)
    assert run.first_active("square", "crowd") is None
    # switched off, the same scene is a crowd of five "persons"
    off = sc.run(zones=crowd, until=20, riders={"enabled": False})
    assert off.first_active("square", "crowd") is not None


def test_rider_of_a_dismounted_cyclist_is_a_pedestrian_again():
    sc = Scenario(fps=FPS)
    sc.track("person", RIDER, track_id=1).move(0, 5, dx=400).stay(5, 20)
    sc.track("bicycle", BIKE, track_id=2).move(0, 5, dx=400).hide(5, 20)  # bicycle gone (parked out of view)
    run = sc.run(zones=_lane(["person"]), until=20)
    first = run.first_active("lane", "lane")
    # a rider for hold_s (2 s) after the pair was last seen together, then a pedestrian for 1 s
    assert first is not None and 7.0 <= first <= 8.4


def test_linker_roles_and_memory_bound():
    linker = RiderLinker(RiderConfig(hits=2, frames=3))
    dets = sv.Detections(
        xyxy=np.array([RIDER, BIKE, (800, 100, 860, 260)], dtype=np.float32),
        tracker_id=np.array([1, 2, 3]),
        data={"class_name": np.array(["person", "bicycle", "person"])},
    )
    assert linker.update(dets, 0.0).classes.tolist() == ["person", "bicycle", "person"]  # one frame is not enough
    dets.xyxy[:2] += np.array([80, 0, 80, 0], dtype=np.float32)  # the pair rode 80 px (2/3 of the bicycle's height)
    roles = linker.update(dets, 0.2)
    assert roles.classes.tolist() == ["", "bicycle", "person"] and roles.ids.tolist() == [1, 2, 3]
    # the bicycle missed on a frame: the rider stands for it, with its track id
    only_person = sv.Detections(xyxy=dets.xyxy[:1], tracker_id=dets.tracker_id[:1], data={"class_name": np.array(["person"])})
    roles = linker.update(only_person, 0.4)
    assert roles.classes.tolist() == ["bicycle"] and roles.ids.tolist() == [2]
    # tracks gone for long are forgotten
    linker.update(sv.Detections.empty(), 100.0)
    assert not linker._tracks


def test_a_scene_edit_keeps_the_pairing():
    """Editing the zones (the console's editor) does not turn a paired rider back into a pedestrian."""
    from gridworker.vision.analyzer import CameraAnalyzer
    from gridworker.vision.config import SceneConfig

    sc = Scenario(fps=FPS)
    _ride(sc, 0, 4, dx=400)
    frames = list(sc.frames(4))
    analyzer = CameraAnalyzer("cam", FPS, SceneConfig.model_validate({"zones": _lane(["person"])}), track=False)
    for frame, dets in frames[:10]:
        analyzer.analyze(frame, dets)
    analyzer.set_zones(SceneConfig.model_validate({"zones": _lane(["person"], min_duration_s=0.0)}).zones)
    for frame, dets in frames[10:]:
        assert not analyzer.analyze(frame, dets).active  # min_duration 0: a pedestrian would fire at once
    # with another rider setting the pairing starts afresh: the first frames see a pedestrian
    analyzer.set_scene(SceneConfig.model_validate({"zones": _lane(["person"], min_duration_s=0.0), "riders": {"hits": 2}}))
    assert analyzer.analyze(*frames[-1]).active
