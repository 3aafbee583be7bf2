"""Two tracks on one parked car (illegal_parking on scripted tracks, through the real
IncidentManager): the detector boxes the car whole and, from another tile, also whole or
only its rear, and the tracker swaps the ids. The car keeps one incident (the hand-on in
vision/rules/stays.py); a car that parks where another drove away from is still a new car.
Measured on street_parking_kerb in docs/rules-field.md, "Kerb: tiles and one incident per car"."""

import pytest

from tests.scenario import Scenario

FPS = 5
CAR = (400, 600, 600, 700)  # 200 × 100 px
REAR = (540, 600, 600, 700)  # the car's rear only: its ground point 0.7 box heights from the car's
KERB = [(0.0, 0.4), (1.0, 0.4), (1.0, 0.95), (0.0, 0.95)]
ZONES = [{"id": "kerb", "polygon": KERB, "rules": [{"type": "illegal_parking", "min_duration_s": 20}]}]


def _keys(run):
    return [r.hits[0].key for _, r in run.results("kerb", "illegal_parking") if r.active]


def test_parked_car_whose_track_ids_swap_onto_a_part_box_is_one_incident(tmp_path):
    sc = Scenario(fps=FPS)
    # the whole car, track 1, parked all along; missed for one second at 25 s
    sc.track("car", CAR, track_id=1).stay(0, 25).hide(25, 26).stay(26, 60).jitter(1)
    # a second box on the whole car (track 2, from 22 s) takes track 1's stay over while 1 is
    # missed, then jumps to the car's rear at 30 s and is lost at 33 s
    sc.track("car", CAR, track_id=2).hide(0, 22).stay(22, 30).move(30, 30.4, to=REAR).stay(30.4, 33).hide(33, 60)
    run = sc.run(zones=ZONES, until=60)
    keys = _keys(run)
    assert set(keys) == {keys[0]}, sorted(set(keys))  # one object key from 20 s to the end
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1, [(i.opened_at, i.details.get("object")) for i in incidents]
    _, last = run.results("kerb", "illegal_parking")[-1]
    assert last.details["objects"][0]["track"] == 1
    assert last.details["objects"][0]["stationary_s"] == pytest.approx(60, abs=0.5)  # its clock since 0 s


def test_car_parking_where_another_drove_away_is_a_new_car(tmp_path):
    sc = Scenario(fps=FPS)
    # car 1 parked 0-30 s, then drives away to the right
    sc.track("car", CAR, track_id=1).stay(0, 30).move(30, 33, dx=300).hide(33, 70)
    # car 2 drives in from the left once the spot is free and parks there
    sc.track("car", (0, 600, 200, 700), track_id=2).hide(0, 32).move(32, 34, to=CAR).stay(34, 70)
    run = sc.run(zones=ZONES, until=70)
    keys = _keys(run)
    assert len(set(keys)) == 2, sorted(set(keys))
    second = next(t for t, r in run.results("kerb", "illegal_parking") if r.active and r.hits[0].key != keys[0])
    assert second == pytest.approx(54, abs=0.5)  # its own clock: parked from 34 s
    assert len(run.incidents(tmp_path)) == 2
