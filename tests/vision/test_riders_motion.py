"""Riders must have moved with their vehicle (vision/riders.py): a person standing still at a
parked motorcycle is a pedestrian to every person rule, while a cyclist who rode in and waits
at a junction stays the bicycle; counting lines see the same riders as the rules
(vision/lines.py). Scripted tracks through the real analyser, rules and line counter.
"""

import numpy as np
import pytest

from gridworker.vision.config import LineConfig, RiderConfig
from gridworker.vision.lines import LineCounter
from gridworker.vision.riders import RiderLinker
from tests.scenario import Scenario, Track

FPS = 5
FRAME = 1 / FPS
WHOLE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
# a person standing over / behind a motorcycle, as a rider's box sits on it: 190 px tall
# person, 140 px tall motorcycle (their ground points: (510, 470) and (510, 500))
ON_MOTORBIKE = (470, 280, 550, 470)
MOTORBIKE = (430, 360, 590, 500)
STALL = (620, 420, 740, 480)  # an umbrella stall to their right, ground point (680, 480)


def _parked(sc: Scenario, until: float) -> None:
    """A person standing still at a parked motorcycle from 0 to ``until``, boxes wobbling."""
    sc.track("person", ON_MOTORBIKE, track_id=1).stay(0, until).jitter(3)
    sc.track("motorcycle", MOTORBIKE, track_id=2).stay(0, until).jitter(3, seed=1)


def _rides_in(sc: Scenario, until: float, *, person: int = 1, vehicle: int = 2) -> tuple[Track, Track]:
    """A motorcyclist riding 300 px in 3 s (0.7 motorcycle heights a second) to the same spot,
    then waiting there until ``until``."""
    back = np.array([300.0, 0.0, 300.0, 0.0])
    rider = sc.track("person", tuple(np.asarray(ON_MOTORBIKE) - back), track_id=person)
    bike = sc.track("motorcycle", tuple(np.asarray(MOTORBIKE) - back), track_id=vehicle)
    rider.move(0, 3, dx=300).stay(3, until).jitter(3)
    bike.move(0, 3, dx=300).stay(3, until).jitter(3, seed=1)
    return rider, bike


def _lane(**rule: object) -> list[dict[str, object]]:
    return [{"id": "lane", "polygon": WHOLE, "rules": [{"type": "lane_intrusion", "id": "lane", **rule}]}]


# --- lane intrusion --------------------------------------------------------------------------


def test_person_standing_still_at_a_parked_motorbike_is_a_lane_intrusion():
    """The reviewer's case: overlap at a steady offset is not riding. A person standing 60 s
    behind a parked motorcycle in the motor lane is a pedestrian in it (default rule: persons and
    bicycles, 2 s)."""
    sc = Scenario(fps=FPS)
    _parked(sc, 60)
    run = sc.run(zones=_lane(), until=60)
    assert run.first_active("lane", "lane") == pytest.approx(2.0, abs=FRAME)
    assert all(active for t, active in run.active("lane", "lane") if t >= 2.2)
    _, last = run.results("lane", "lane")[-1]
    assert last.details == {"classes": ["person"], "tracks": [1]}


def test_cyclist_who_rode_in_is_still_a_rider_while_waiting_at_the_junction():
    """Rides in, waits 60 s (far beyond ``hold_s``), the motorcycle's box missed for a second
    meanwhile: never a pedestrian in the lane."""
    sc = Scenario(fps=FPS)
    _, bike = _rides_in(sc, 30)
    bike.hide(30, 31).stay(31, 63)
    sc.tracks[0].stay(30, 63)
    run = sc.run(zones=_lane(classes=["person"]), until=63)
    assert run.first_active("lane", "lane") is None
    # the same scene, pairing off: the waiting person is in the lane
    off = sc.run(zones=_lane(classes=["person"]), until=63, riders={"enabled": False})
    assert off.first_active("lane", "lane") == pytest.approx(2.0, abs=FRAME)


def test_waiting_rider_keeps_the_role_when_the_tracker_renumbers_either_of_the_pair():
    sc = Scenario(fps=FPS)
    rider, bike = _rides_in(sc, 40)
    rider.switch_id(15)  # the person's track renumbered while waiting
    bike.switch_id(25)  # then the motorcycle's
    run = sc.run(zones=_lane(classes=["person"]), until=40)
    assert run.first_active("lane", "lane") is None


def test_pedestrian_stepping_up_behind_a_waiting_rider_inherits_nothing():
    """A rider waits on their motorcycle; a pedestrian stops right behind them, their box on the
    motorcycle as the rider's is: the pedestrian is in the lane, the rider is not."""
    sc = Scenario(fps=FPS)
    _rides_in(sc, 30)
    sc.track("person", (480, 290, 560, 472), track_id=3).stay(5, 30).jitter(2, seed=3)
    run = sc.run(zones=_lane(classes=["person"]), until=30)
    assert run.first_active("lane", "lane") == pytest.approx(7.0, abs=FRAME)
    assert all(r.details["tracks"] == [3] for t, r in run.results("lane", "lane") if r.active)


def test_pedestrian_behind_a_waiting_rider_inherits_nothing_when_the_rider_is_missed_a_frame():
    """The detector misses the waiting rider on one frame while the pedestrian stands behind:
    the pedestrian's track is not new (it stood there while the rider rode), so it is not the
    rider renumbered, and stays in the lane before, during and after the miss."""
    sc = Scenario(fps=FPS)
    rider, bike = _rides_in(sc, 10)
    rider.hide(10, 10.2).stay(10.2, 30)
    bike.stay(10, 30)
    sc.track("person", (480, 290, 560, 472), track_id=3).stay(5, 30).jitter(2, seed=3)
    run = sc.run(zones=_lane(classes=["person"]), until=30)
    assert run.first_active("lane", "lane") == pytest.approx(7.0, abs=FRAME)
    assert all(r.active and r.details["tracks"] == [3] for t, r in run.results("lane", "lane") if t >= 7.2)


# --- loitering, street vending ---------------------------------------------------------------


def _loitering() -> list[dict[str, object]]:
    return [{"id": "gate", "polygon": WHOLE, "rules": [{"type": "loitering", "min_duration_s": 20}]}]


def test_rider_waiting_at_the_gate_is_not_loitering():
    sc = Scenario(fps=FPS)
    _rides_in(sc, 60)
    run = sc.run(zones=_loitering(), until=60)
    assert run.first_active("gate", "loitering") is None


def test_person_standing_still_at_a_parked_motorbike_is_loitering():
    sc = Scenario(fps=FPS)
    _parked(sc, 60)
    run = sc.run(zones=_loitering(), until=60)
    assert run.first_active("gate", "loitering") == pytest.approx(20.0, abs=FRAME)
    _, last = run.results("gate", "loitering")[-1]
    assert [h.details["track"] for h in last.hits] == [1]


def _vending() -> list[dict[str, object]]:
    return [{"id": "kerb", "polygon": WHOLE, "rules": [{"type": "street_vending", "min_duration_s": 20}]}]


def test_rider_waiting_beside_a_stall_is_not_a_vendor():
    """A delivery rider who rode up and waits on the motorcycle next to a stall is not selling."""
    sc = Scenario(fps=FPS)
    _rides_in(sc, 60)
    sc.track("umbrella", STALL, track_id=5).stay(0, 60)
    run = sc.run(zones=_vending(), until=60)
    assert run.first_active("kerb", "street_vending") is None


def test_vendor_standing_at_a_parked_motorbike_beside_the_stall_is_a_vendor():
    sc = Scenario(fps=FPS)
    _parked(sc, 60)
    sc.track("umbrella", STALL, track_id=5).stay(0, 60)
    run = sc.run(zones=_vending(), until=60)
    assert run.first_active("kerb", "street_vending") == pytest.approx(20.0, abs=FRAME)
    _, last = run.results("kerb", "street_vending")[-1]
    assert last.details["vendors"][0]["track"] == 1


# --- the linker alone ------------------------------------------------------------------------


def test_linker_needs_the_pair_to_move_then_keeps_it_through_the_stop():
    linker = RiderLinker(RiderConfig())
    sc = Scenario(fps=FPS)
    _rides_in(sc, 20)
    person_roles = []
    for frame, dets in sc.frames(20):
        roles = linker.update(dets, frame.ts)
        person_roles.append((frame.ts, roles.classes[list(dets.data["class_name"]).index("person")]))
    became = next(t for t, role in person_roles if role == "")
    # 70 px (half the motorcycle's height) at 100 px/s: paired on the first frame after 0.7 s
    assert became == pytest.approx(0.8, abs=1e-6)
    assert all(role == "" for t, role in person_roles if t >= became)  # through 17 s of waiting
    linker.update(dets[:0], 1000.0)
    assert not linker._tracks and not linker._ridden  # memory is bounded: all forgotten


def test_linker_parked_pair_never_pairs_however_long():
    linker = RiderLinker(RiderConfig())
    sc = Scenario(fps=FPS)
    _parked(sc, 120)
    roles = [linker.update(dets, frame.ts).classes.tolist() for frame, dets in sc.frames(120)]
    assert all(r == ["person", "motorcycle"] for r in roles)


# --- counting lines --------------------------------------------------------------------------

GATE_LINE = LineConfig(id="gate", points=[(0.5, 0.0), (0.5, 1.0)], classes=["person", "bicycle", "motorcycle"])


def _cyclist_crossing(sc: Scenario, *, bike_hidden: tuple[float, float] | None = None) -> None:
    """A cyclist riding left to right across the middle of the frame, 90 px/s."""
    sc.track("person", (120, 300, 200, 480), track_id=1).move(0, 8, dx=720)
    bike = sc.track("bicycle", (100, 380, 220, 500), track_id=2)
    if bike_hidden is None:
        bike.move(0, 8, dx=720)
        return
    h0, h1 = bike_hidden
    bike.move(0, h0, dx=90 * h0).hide(h0, h1)
    bike.box = bike.box + np.array([90 * (h1 - h0), 0, 90 * (h1 - h0), 0])
    bike.move(h1, 8, dx=90 * (8 - h1))


def _count(sc: Scenario, *, riders: bool) -> dict[tuple[str, str], int]:
    counter = LineCounter([GATE_LINE])
    linker = RiderLinker(RiderConfig())
    for frame, dets in sc.frames(8):
        roles = linker.update(dets, frame.ts)
        counter.update(dets, sc.size, frame.ts, roles=roles if riders else None)
    return {(name, way): k for (name, way), k in counter.counts["gate"].items()}


def test_a_cyclist_crosses_a_counting_line_once_as_the_bicycle():
    sc = Scenario(fps=FPS)
    _cyclist_crossing(sc)
    # y axis down, line drawn top to bottom: its left side is the right of the frame, so a
    # move to the right is "out"
    assert _count(sc, riders=False) == {("person", "out"): 1, ("bicycle", "out"): 1}
    assert _count(sc, riders=True) == {("bicycle", "out"): 1}


def test_a_cyclist_whose_bicycle_is_missed_on_the_line_still_counts_once_as_the_bicycle():
    """The bicycle's box is missed from 3.4 to 4.6 s, while its ground point crosses the line
    (x = 500 at 3.8 s): the rider stands in for it, under its track, and the crossing counts
    once, when the bicycle is clearly across."""
    sc = Scenario(fps=FPS)
    _cyclist_crossing(sc, bike_hidden=(3.4, 4.6))
    assert _count(sc, riders=True) == {("bicycle", "out"): 1}


def test_a_pedestrian_crossing_next_to_a_parked_bicycle_counts_as_a_person():
    sc = Scenario(fps=FPS)
    sc.track("bicycle", (440, 380, 560, 500), track_id=2).stay(0, 8)
    sc.track("person", (300, 300, 380, 480), track_id=1).move(0, 8, dx=400)  # walks past over it
    assert _count(sc, riders=True) == {("person", "out"): 1}


def test_analyzer_counts_riders_on_lines_as_their_vehicle():
    sc = Scenario(fps=FPS)
    _cyclist_crossing(sc)
    run = sc.run(until=8, lines=[GATE_LINE.model_dump()])
    crossings = [(c.class_name, c.tracker_id) for a in run.analyses for c in a.crossings]
    assert crossings == [("bicycle", 2)]
