"""车辆逆行 wrong_way on the bench clips' failure shapes (docs/rules-field.md, "Wrong-way:
only lost tracks are taken over, and the latest step must agree"), as scripted tracks.

The lane is the left half of a 1000 x 1000 px frame; its traffic drives up the frame
(``direction: [0, -1]``), so driving down it is wrong-way. 5 fps.
"""

import pytest

from tests.scenario import Scenario

LANE = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
FAR_CAR = (460, 360, 500, 400)  # 40 px high, ground point (480, 400): just inside the lane
WHOLE_ROAD = (50, 250, 850, 880)  # a "car" box over most of the road, ground point (450, 880)


def _lane(**rule):
    return [{"id": "lane", "polygon": LANE, "rules": [{"type": "wrong_way", "direction": [0, -1], **rule}]}]


def _fired(run):
    return [t for t, on in run.active("lane", "wrong_way") if on]


def _far_car_steps_out(sc, *, how):
    """The far car stands in the lane for 1 s, then stays on the frame without being a
    candidate: it drifts 40 px right, out of the lane, or its score drops under
    ``min_confidence``; the tracker reports it (id 1) to the end."""
    if how == "leaves the zone":
        sc.track("car", FAR_CAR, track_id=1).stay(0, 1).move(1, 1.2, dx=40).stay(1.2, 8)
    else:
        sc.track("car", FAR_CAR, track_id=1).stay(0, 1.2)
        sc.track("car", FAR_CAR, track_id=1, confidence=0.1).hide(0, 1.2).stay(1.2, 8)


@pytest.mark.parametrize("how", ["leaves the zone", "scores under min_confidence"])
def test_whole_road_box_does_not_take_over_a_far_car_still_tracked(how):
    # the night clip's false alarms: a far car flickers out of the lane zone (or under the
    # score threshold) and a whole-road box appears in the lane within its own height of
    # the far car; taking over the far car's history made a 480 px jump "down the lane"
    sc = Scenario(fps=5)
    _far_car_steps_out(sc, how=how)
    sc.track("car", WHOLE_ROAD, track_id=2).hide(0, 1.4).stay(1.4, 8).jitter(40, seed=5)
    assert _fired(sc.run(_lane(), until=8)) == []


def test_jittering_whole_road_box_does_not_fire():
    sc = Scenario(fps=5)
    sc.track("car", WHOLE_ROAD).stay(0, 10).jitter(60, seed=7)
    assert _fired(sc.run(_lane(), until=10)) == []


def test_real_wrong_way_car_beside_a_whole_road_box_fires(tmp_path):
    sc = Scenario(fps=5)
    _far_car_steps_out(sc, how="leaves the zone")
    sc.track("car", WHOLE_ROAD, track_id=2).hide(0, 1.4).stay(1.4, 8).jitter(40, seed=5)
    sc.track("car", (150, 100, 250, 200), track_id=3).move(0, 6, dy=600)  # 100 px/s down: wrong way
    run = sc.run(_lane(), until=8)
    first = run.first_active("lane", "wrong_way")
    assert first is not None and 0.9 <= first <= 1.3
    assert {tuple(r.details["tracks"]) for _, r in run.results("lane", "wrong_way") if r.active} == {(3,)}
    incidents = run.incidents(tmp_path)
    assert [i.details["object"] for i in incidents] == ["3@0.000"]


@pytest.mark.parametrize(
    ("b_moves", "fires"),
    [
        (-100, False),  # the second car drives up, the right way: never judged wrong-way
        (100, True),  # ... down, the wrong way: it is
    ],
)
def test_id_given_to_a_car_behind(b_moves, fires):
    # oneway_overpass_dark's false alarm: a car (seen three times) drives up the lane and is
    # lost; 2 s later the tracker gives its id to another car 300 px further down. The jump
    # back makes the smoothed displacement point down the lane, but the latest step is the
    # second car's own motion
    sc = Scenario(fps=5)
    sc.track("car", (200, 500, 300, 600)).move(0, 0.4, dy=-20).hide(0.4, 2.6).move(2.6, 2.6, to=(200, 780, 300, 880)).move(2.6, 6, dy=b_moves * 3.4)
    first = sc.run(_lane(), until=6).first_active("lane", "wrong_way")
    assert (first is not None) is fires
    if fires:  # judged as soon as its own steps agree with the jump (the jump itself counts)
        assert first <= 3.0


def test_jittery_wrong_way_car_is_judged_at_once():
    sc = Scenario(fps=5)
    sc.track("car", (200, 100, 300, 200)).move(0, 6, dy=600).jitter(5, seed=2)
    first = sc.run(_lane(), until=6).first_active("lane", "wrong_way")
    assert first is not None and first <= 1.5


def test_wrong_way_car_that_wobbles_back_stays_wrong_way():
    # the verdict holds while the latest step goes the other way: a one-frame wobble back
    # neither clears nor re-judges it
    sc = Scenario(fps=5)
    sc.track("car", (200, 100, 300, 200)).move(0, 3, dy=300).move(3, 3.2, dy=-40).move(3.2, 6, dy=280)
    run = sc.run(_lane(clear_after_s=0), until=6)
    first = run.first_active("lane", "wrong_way")
    assert first is not None and all(on for t, on in run.active("lane", "wrong_way") if t >= first)
