"""机动车违停 illegal_parking and 非机动车乱停放 nonmotor_parking on scripted tracks.

Both rules are per-object: each parked vehicle is its own incident. Rules run with
``clear_after_s: 0`` wherever "exactly one incident" (per vehicle) is asserted: then a
single frame without the vehicle's hit after it first counted would close its incident
and the next would open a second one, so one incident per vehicle proves its verdict
never dropped.
"""

import pytest

from tests.scenario import Scenario

T = 20.0
FPS = 5
FRAME = 1 / FPS
CAR = (400, 600, 600, 700)  # 200 × 100 px, ground point (500, 700)
KERB = [(0.0, 0.5), (1.0, 0.5), (1.0, 0.9), (0.0, 0.9)]


def _parking(**rule):
    return [{"id": "kerb", "polygon": KERB, "rules": [{"type": "illegal_parking", "min_duration_s": T, "clear_after_s": 0, **rule}]}]


def _actives(run, zone="kerb", rule="illegal_parking"):
    return [on for _, on in run.active(zone, rule)]


def _times_active(run, zone="kerb", rule="illegal_parking"):
    return [t for t, on in run.active(zone, rule) if on]


def test_parked_car_fires_at_threshold_exactly_once(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=5).stay(0, 60).jitter(3)
    run = sc.run(zones=_parking(), until=60)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(T, abs=FRAME)
    # from then on, every frame active (jitter never reset the clock)
    active = _times_active(run)
    assert len(active) == len([t for t, _ in run.active("kerb", "illegal_parking") if t >= active[0]])
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.type == "illegal_parking" and inc.zone_id == "kerb"
    assert T - FRAME <= inc.opened_at <= T + FRAME
    _, last = run.results("kerb", "illegal_parking")[-1]
    assert last.count == 1 and last.subjects.tolist() == [0]
    assert last.details["tracks"] == [5]
    assert last.details["objects"][0]["stationary_s"] == pytest.approx(60, abs=FRAME)
    assert "car #5" in last.summary and "1 min 00 s" in last.summary


def test_default_threshold_is_three_minutes():
    sc = Scenario(fps=1)
    sc.track("car", CAR).stay(0, 200)
    run = sc.run(zones=[{"id": "kerb", "polygon": KERB, "rules": [{"type": "illegal_parking"}]}], until=200)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(180, abs=1)


def test_occlusion_keeps_clock_and_incident(tmp_path):
    """Hidden across the threshold: fires as soon as it is seen again with the clock kept;
    hidden while active: the verdict stays on, no second incident."""
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=1).stay(0, 18).hide(18, 23).stay(23, 30).hide(30, 37).stay(37, 50)
    run = sc.run(zones=_parking(), until=50)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(23, abs=FRAME)  # not 23 + T
    results = run.results("kerb", "illegal_parking")
    assert all(r.active for t, r in results if t >= 23)
    hidden = [r for t, r in results if 31 <= t < 37]
    assert hidden and all(r.subjects.size == 0 and r.count == 1 for r in hidden)
    assert all(r.details["objects"][0]["visible"] is False for r in hidden)
    assert len(run.incidents(tmp_path)) == 1


def test_long_absence_restarts_clock():
    sc = Scenario(fps=FPS)
    sc.track("car", CAR).stay(0, 15).hide(15, 27).stay(27, 60)  # 12 s unseen > lost_grace_s 10
    run = sc.run(zones=_parking(), until=60)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(47, abs=FRAME)


def test_id_switch_after_occlusion_and_immediate_inherit_start(tmp_path):
    sc = Scenario(fps=FPS)
    car = sc.track("car", CAR, track_id=1).stay(0, 12).hide(12, 14).stay(14, 60).jitter(2)
    car.switch_id(13)  # comes back from behind the bus as track 1001
    car.switch_id(40)  # and the tracker swaps again, no gap: 2001
    run = sc.run(zones=_parking(), until=60)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(T, abs=FRAME)
    assert len(run.incidents(tmp_path)) == 1
    _, last = run.results("kerb", "illegal_parking")[-1]
    obj = last.details["objects"][0]
    assert obj["track"] == 2001 and obj["previous_tracks"] == [1, 1001]
    assert obj["stationary_s"] == pytest.approx(60, abs=FRAME)
    assert "was #1, #1001" in last.summary


def test_new_id_while_old_still_reported_inherits():
    """The tracker starts a second id on the parked car a frame before it drops the first."""
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=1).stay(0, 12)
    sc.track("car", (402, 601, 601, 701), track_id=7).stay(11.8, 40)
    run = sc.run(zones=_parking(), until=40)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(T, abs=FRAME)  # not 11.8 + T
    assert run.openings("kerb", "illegal_parking") == 1
    _, last = run.results("kerb", "illegal_parking")[-1]
    assert last.details["tracks"] == [7] and last.details["objects"][0]["previous_tracks"] == [1]


def test_different_vehicle_at_same_spot_does_not_inherit():
    """A bus (box 2.5× taller) stopping where a car vanished starts its own clock, and so
    does a car appearing a few metres away."""
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=1).stay(0, 12)
    sc.track("bus", (350, 450, 650, 700), track_id=2).stay(13, 40)
    run = sc.run(zones=_parking(), until=40)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(13 + T, abs=FRAME)

    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=1).stay(0, 12)
    sc.track("car", (400 + 120, 600, 600 + 120, 700), track_id=2).stay(12.2, 40)  # 1.2 box heights along
    run = sc.run(zones=_parking(), until=40)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(12.2 + T, abs=FRAME)


def test_passing_and_briefly_stopping_cars_never_fire():
    sc = Scenario(fps=FPS)
    sc.track("car", (0, 600, 200, 700)).move(0, 10, dx=800)  # 80 px/s
    sc.track("truck", (800, 560, 1000, 700)).move(0, 60, dx=-800)  # crawling, 13 px/s
    sc.track("car", (0, 700, 200, 800)).move(0, 5, dx=300).stay(5, 5 + T - 2).move(5 + T - 2, 30, dx=500)  # waits 18 s
    run = sc.run(zones=_parking(), until=60)
    assert not any(_actives(run))


def test_car_that_drives_in_and_parks_fires_after_stopping(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("car", (0, 600, 200, 700)).move(0, 5, to=CAR).stay(5, 40).jitter(2)
    run = sc.run(zones=_parking(), until=40)
    first = run.first_active("kerb", "illegal_parking")
    assert first is not None and 5 + T - FRAME <= first <= 5 + T + 1.0 + FRAME  # a move is confirmed within 1 s
    assert len(run.incidents(tmp_path)) == 1


def test_single_outlier_box_does_not_reset_clock():
    sc = Scenario(fps=FPS)
    car = sc.track("car", CAR, track_id=3)
    car.stay(0, 10).move(10, 10.2, dx=80).move(10.2, 10.4, dx=-80).stay(10.4, 40)  # one frame 80 px off
    run = sc.run(zones=_parking(), until=40)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(T, abs=FRAME)


def test_car_driving_away_clears_at_once(tmp_path):
    """Seen leaving (out of the zone), the stay ends after the move is confirmed, not after the grace."""
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=4).stay(0, 25).move(25, 27, dy=-400).stay(27, 40)  # drives up, out of the kerb
    run = sc.run(zones=_parking(), until=40)
    on = _times_active(run)
    assert on[0] == pytest.approx(T, abs=FRAME)
    assert on[-1] <= 26.5  # not kept alive for lost_grace_s (10 s) after it left
    assert len(run.incidents(tmp_path)) == 1


def test_parking_ignores_persons_and_bicycles():
    sc = Scenario(fps=FPS)
    sc.track("person", (480, 500, 520, 700)).stay(0, 40)
    sc.track("bicycle", (600, 620, 680, 700)).stay(0, 40)
    run = sc.run(zones=_parking(), until=40)
    assert not any(_actives(run))


def test_several_vehicles_named_in_summary():
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=11).stay(0, 40)
    sc.track("truck", (50, 550, 300, 700), track_id=12).stay(5, 40)
    run = sc.run(zones=_parking(), until=40)
    _, last = run.results("kerb", "illegal_parking")[-1]
    assert last.count == 2 and sorted(last.details["tracks"]) == [11, 12]
    assert last.summary.startswith("2 stationary vehicle(s): car #11 for 40 s, truck #12 for 35 s")
    assert [h.summary for h in last.hits] == ["stationary vehicle: car #11 for 40 s", "stationary vehicle: truck #12 for 35 s"]


def test_two_parked_cars_are_two_incidents(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("car", CAR, track_id=11).stay(0, 40).jitter(3, seed=1)
    sc.track("truck", (50, 550, 300, 700), track_id=12).stay(5, 40).jitter(3, seed=2)
    sc.track("car", (700, 600, 900, 700), track_id=13).move(0, 10, dx=-600)  # passes by: no incident
    run = sc.run(zones=_parking(), until=40)
    assert run.openings("kerb", "illegal_parking") == 1  # the zone's verdict rose once ...
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 2  # ... but each vehicle is its own incident, never dropped
    first, second = incidents
    assert first.details["track"] == 11 and first.details["object"] == "11@0.000" and first.details["class"] == "car"
    assert second.details["track"] == 12 and second.details["object"] == "12@5.000" and second.details["class"] == "truck"
    assert first.opened_at == pytest.approx(T, abs=FRAME) and second.opened_at == pytest.approx(T + 5, abs=FRAME)
    assert first.peak_count == second.peak_count == 1
    assert "car #11" in first.summary and "truck" not in first.summary and "truck #12" in second.summary
    assert all(i.status == "open" for i in incidents)


# --- 非机动车乱停放 ------------------------------------------------------------------------

BAY = [(0.0, 0.5), (0.3, 0.5), (0.3, 0.9), (0.0, 0.9)]  # the painted bicycle bay, left of the sidewalk


def _sidewalk(**rule):
    return [
        {"id": "bay", "polygon": BAY},
        {
            "id": "sidewalk",
            "polygon": KERB,
            "rules": [{"type": "nonmotor_parking", "min_duration_s": T, "clear_after_s": 0, "exempt_zones": ["bay"], **rule}],
        },
    ]


def test_bike_in_bay_never_fires_bike_outside_does(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("bicycle", (100, 620, 180, 700), track_id=1).stay(0, 40).jitter(2)  # in the bay
    sc.track("motorcycle", (600, 610, 700, 700), track_id=2).stay(0, 40).jitter(2)  # on the sidewalk
    run = sc.run(zones=_sidewalk(), until=40)
    assert run.first_active("sidewalk", "nonmotor_parking") == pytest.approx(T, abs=FRAME)
    for _, r in run.results("sidewalk", "nonmotor_parking"):
        assert 1 not in r.details.get("tracks", [])
    _, last = run.results("sidewalk", "nonmotor_parking")[-1]
    assert last.details["tracks"] == [2] and last.subjects.tolist() == [1]
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "nonmotor_parking" and incidents[0].details["track"] == 2

    only_bay = Scenario(fps=FPS)
    only_bay.track("bicycle", (100, 620, 180, 700)).stay(0, 60)
    run = only_bay.run(zones=_sidewalk(), until=60)
    assert not any(_actives(run, "sidewalk", "nonmotor_parking"))


def test_two_parked_bikes_are_two_incidents(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("bicycle", (500, 620, 580, 700), track_id=1).stay(0, 40).jitter(2, seed=1)
    sc.track("motorcycle", (700, 610, 800, 700), track_id=2).stay(10, 40).jitter(2, seed=2)
    sc.track("bicycle", (100, 620, 180, 700), track_id=3).stay(0, 40)  # in the bay
    run = sc.run(zones=_sidewalk(), until=40)
    incidents = run.incidents(tmp_path)
    assert [(i.details["track"], i.details["class"]) for i in incidents] == [(1, "bicycle"), (2, "motorcycle")]
    assert incidents[1].opened_at == pytest.approx(T + 10, abs=FRAME)


def test_nonmotor_ignores_cars_and_ridden_bikes():
    sc = Scenario(fps=FPS)
    sc.track("car", CAR).stay(0, 40)
    sc.track("bicycle", (320, 620, 400, 700)).move(0, 40, dx=600)  # ridden along the sidewalk, 15 px/s
    run = sc.run(zones=_sidewalk(), until=40)
    assert not any(_actives(run, "sidewalk", "nonmotor_parking"))


def test_nonmotor_bike_id_switch_keeps_clock(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("bicycle", (600, 620, 680, 700), track_id=9).stay(0, 8).hide(8, 9).stay(9, 40).switch_id(8.6, 90)
    run = sc.run(zones=_sidewalk(), until=40)
    assert run.first_active("sidewalk", "nonmotor_parking") == pytest.approx(T, abs=FRAME)
    assert len(run.incidents(tmp_path)) == 1


def test_far_small_car_judged_on_its_own_size():
    """Movement is judged in box heights: a distant 30 px car wobbling 3 px still parks, and
    a distant car crawling 6 px/s (a fifth of its height a second) never does."""
    sc = Scenario(fps=FPS)
    sc.track("car", (100, 520, 160, 550), track_id=1).stay(0, 40).jitter(3)
    sc.track("car", (300, 620, 360, 650), track_id=2).move(0, 40, dx=240)
    run = sc.run(zones=_parking(), until=40)
    assert run.first_active("kerb", "illegal_parking") == pytest.approx(T, abs=FRAME)
    assert all(r.details["tracks"] == [1] for _, r in run.results("kerb", "illegal_parking") if r.active)
