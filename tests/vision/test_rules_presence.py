"""Presence rules on scripted tracks: 行人/非机动车闯入机动车道 lane_intrusion, 人员聚集 crowd,
区域入侵 intrusion with schedules. "Once" is proven through the real incident manager."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from tests.scenario import Scenario

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *, tz: dt.tzinfo = SHANGHAI) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()


# --- 行人/非机动车闯入机动车道 lane_intrusion ---------------------------------------------

# the motor lane is the band y = 0.4..0.8; a crosswalk crosses it at x = 0.4..0.6
LANE = {"id": "lane", "polygon": [[0, 0.4], [1, 0.4], [1, 0.8], [0, 0.8]]}
CROSSWALK = {"id": "crosswalk", "polygon": [[0.4, 0.35], [0.6, 0.35], [0.6, 0.85], [0.4, 0.85]]}


def _lane_zones(**rule):
    return [{**LANE, "rules": [{"type": "lane_intrusion", "exempt_zones": ["crosswalk"], **rule}]}, CROSSWALK]


@pytest.mark.parametrize("cls", ["person", "bicycle"])
def test_lane_intrusion_fires_once_after_min_duration(tmp_path, cls):
    sc = Scenario()
    sc.track(cls, (150, 450, 190, 600)).stay(0, 30)  # standing in the lane, away from the crosswalk
    run = sc.run(_lane_zones(), until=30)
    assert run.first_active("lane", "lane_intrusion") == pytest.approx(2.0)  # default min_duration_s
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.type == "lane_intrusion" and inc.details["category"] == "traffic"
    assert inc.details["type_name_zh"] == "行人/非机动车闯入机动车道" and inc.details["classes"] == [cls]


def test_lane_intrusion_survives_missed_detections(tmp_path):
    sc = Scenario()
    walker = sc.track("person", (150, 450, 190, 600))
    for s in range(0, 20):  # the detector misses him one frame in every five
        walker.stay(s, s + 0.8).hide(s + 0.8, s + 1.0)
    run = sc.run(_lane_zones(min_duration_s=3.0), until=20)
    assert 3.0 <= run.first_active("lane", "lane_intrusion") <= 3.4
    assert len(run.incidents(tmp_path)) == 1


def test_pedestrian_on_the_crosswalk_never_fires():
    sc = Scenario()
    # crosses slowly (20 s) on the crosswalk, from one kerb to the other
    sc.track("person", (480, 250, 520, 380)).move(0, 20, dy=500).stay(20, 30)
    run = sc.run(_lane_zones(), until=30)
    assert any(a.verdicts and a.detections.xyxy[0, 3] > 450 for a in run.analyses)  # he was in the lane band
    assert run.first_active("lane", "lane_intrusion") is None
    # the same walk beside the crosswalk does fire
    sc = Scenario()
    sc.track("person", (180, 250, 220, 380)).move(0, 20, dy=500).stay(20, 30)
    assert sc.run(_lane_zones(), until=30).first_active("lane", "lane_intrusion") is not None


def test_quick_crossing_shorter_than_minimum_does_not_fire():
    sc = Scenario()
    # runs across the lane (y 400 -> 800) at 300 px/s, outside the crosswalk: 1.3 s in it
    sc.track("person", (180, 250, 220, 380)).move(0, 2, dy=600).stay(2, 10)
    run = sc.run(_lane_zones(min_duration_s=2.0), until=10)
    assert run.first_active("lane", "lane_intrusion") is None
    assert sc.run(_lane_zones(min_duration_s=0.8), until=10).first_active("lane", "lane_intrusion") is not None


@pytest.mark.parametrize("cls", ["car", "bus", "truck"])
def test_motor_vehicles_in_the_lane_do_not_fire(cls):
    sc = Scenario()
    sc.track(cls, (100, 500, 300, 650)).stay(0, 20)
    assert sc.run(_lane_zones(), until=20).first_active("lane", "lane_intrusion") is None


# --- 人员聚集 crowd ---------------------------------------------------------------------

SQUARE = {"id": "square", "polygon": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]]}  # the top half


def _crowd(n: int, *, x0: float = 50, y: float = 300) -> Scenario:
    sc = Scenario()
    for i in range(n):
        sc.track("person", (x0 + i * 60, y - 100, x0 + i * 60 + 40, y))
    return sc


def _crowd_zone(**rule):
    return [{**SQUARE, "rules": [{"type": "crowd", **rule}]}]


@pytest.mark.parametrize(("n", "fires"), [(4, False), (5, True), (9, True)])
def test_crowd_count_threshold_and_duration(tmp_path, n, fires):
    sc = _crowd(n)
    for tr in sc.tracks:
        tr.stay(0, 60)
    sc.track("person", (100, 700, 140, 800)).stay(0, 60)  # outside the zone: never counted
    run = sc.run(_crowd_zone(min_count=5, min_duration_s=10), until=60)
    if not fires:
        assert run.first_active("square", "crowd") is None
        return
    assert run.first_active("square", "crowd") == pytest.approx(10.0)
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "crowd" and incidents[0].peak_count == n
    assert incidents[0].details["needed"] == 5


def test_crowd_grace_under_flicker_is_one_incident(tmp_path):
    sc = _crowd(6)
    for i, tr in enumerate(sc.tracks):
        for s in range(0, 60, 3):  # two people at a time drop out for a frame, staggered
            miss = s + 0.4 * (i % 3) + 1.0
            tr.stay(s, miss).hide(miss, miss + 0.2).stay(miss + 0.2, s + 3)
    run = sc.run(_crowd_zone(min_count=5, min_duration_s=10, grace_s=2.0), until=60)
    assert 10.0 <= run.first_active("square", "crowd") <= 10.4
    assert len(run.incidents(tmp_path)) == 1


def test_crowd_dip_longer_than_grace_restarts_the_clock():
    sc = _crowd(6)
    for i, tr in enumerate(sc.tracks):
        tr.stay(0, 8)
        if i < 3:
            tr.hide(8, 12)  # half the crowd is gone for 4 s
        tr.stay(12, 40)
    run = sc.run(_crowd_zone(min_count=5, min_duration_s=10, grace_s=2.0), until=40)
    assert run.first_active("square", "crowd") == pytest.approx(22.0)
    # with a grace longer than the dip the clock survives, though the verdict is off during it
    run = sc.run(_crowd_zone(min_count=5, min_duration_s=10, grace_s=5.0), until=40)
    assert run.first_active("square", "crowd") == pytest.approx(12.0)


# the camera sees 40 m x 20 m of ground: the top half (the square zone) is 400 m²
CALIBRATION = {"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground": [[0, 0], [40, 0], [40, 20], [0, 20]]}
SMALL_CALIBRATION = {"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground": [[0, 0], [8, 0], [8, 5], [0, 5]]}  # zone: 20 m²


@pytest.mark.parametrize(
    ("calibration", "n", "fires"),
    [
        (CALIBRATION, 7, False),  # 0.02 / m² x 400 m² needs 8
        (CALIBRATION, 8, True),
        (SMALL_CALIBRATION, 1, True),  # 0.02 x 20 m² = 0.4: one person is already dense
    ],
)
def test_crowd_density_uses_the_calibrated_zone_area(calibration, n, fires):
    sc = _crowd(n, x0=20)
    for tr in sc.tracks:
        tr.stay(0, 30)
    run = sc.run(_crowd_zone(min_count=1000, min_density=0.02, min_duration_s=5), until=30, calibration=calibration)
    first = run.first_active("square", "crowd")
    assert (first is not None) is fires
    if fires:
        details = dict(run.results("square", "crowd"))[first].details
        area = 400.0 if calibration is CALIBRATION else 20.0
        assert details["density_per_m2"] == pytest.approx(n / area, abs=2e-3)


# --- 区域入侵 intrusion with schedules --------------------------------------------------

GATE = {"id": "gate", "polygon": [[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]}
SCHOOL_HOURS = {"timezone": "Asia/Shanghai", "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "17:30"}]}


def _intruder(start: float, until: float = 30) -> Scenario:
    sc = Scenario(start=start)
    sc.track("person", (480, 400, 520, 600)).stay(0, until)
    return sc


def _gate(schedule, **rule):
    return [{**GATE, "rules": [{"type": "intrusion", "schedule": schedule, **rule}]}]


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        (epoch(2024, 5, 15, 8, 0), True),  # Wednesday 08:00
        (epoch(2024, 5, 15, 17, 29, 0), True),  # a minute before the end
        (epoch(2024, 5, 15, 6, 59, 0), True),  # armed at 07:00, 60 s in
        (epoch(2024, 5, 15, 18, 0), False),  # evening
        (epoch(2024, 5, 15, 5, 0), False),  # early morning
        (epoch(2024, 5, 18, 8, 0), False),  # Saturday
    ],
)
def test_intrusion_inside_school_hours_only(when, fires):
    run = _intruder(when, until=90).run(_gate(SCHOOL_HOURS), until=90)
    assert (run.first_active("gate", "intrusion") is not None) is fires


def test_intrusion_armed_when_the_window_opens():
    run = _intruder(epoch(2024, 5, 15, 6, 59, 0), until=90).run(_gate(SCHOOL_HOURS), until=90)
    assert run.first_active("gate", "intrusion") == pytest.approx(60.0)


NIGHT = {"timezone": "Asia/Shanghai", "windows": [{"days": ["fri"], "start": "22:00", "end": "06:00"}]}


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        (epoch(2024, 5, 17, 23, 0), True),  # Friday night
        (epoch(2024, 5, 18, 2, 0), True),  # Saturday 02:00 belongs to Friday's window
        (epoch(2024, 5, 17, 2, 0), False),  # Friday 02:00 belongs to Thursday's (not listed)
        (epoch(2024, 5, 18, 6, 0), False),  # the window's end is exclusive
        (epoch(2024, 5, 17, 21, 59, 0), True),  # armed at 22:00 within the 90 s
    ],
)
def test_window_wrapping_midnight(when, fires):
    run = _intruder(when, until=90).run(_gate(NIGHT), until=90)
    assert (run.first_active("gate", "intrusion") is not None) is fires


def test_window_is_judged_in_its_time_zone():
    when = epoch(2024, 5, 15, 8, 0)  # 08:00 in Shanghai is 00:00 UTC
    assert _intruder(when).run(_gate(SCHOOL_HOURS), until=30).first_active("gate", "intrusion") is not None
    utc = {**SCHOOL_HOURS, "timezone": "UTC"}
    assert _intruder(when).run(_gate(utc), until=30).first_active("gate", "intrusion") is None
    # and 08:00 in London is 15:00 in Shanghai: inside its school hours, not outside
    london = epoch(2024, 5, 15, 8, 0, tz=zoneinfo.ZoneInfo("Europe/London"))
    assert _intruder(london).run(_gate(SCHOOL_HOURS), until=30).first_active("gate", "intrusion") is not None
    night_utc = epoch(2024, 5, 15, 8, 0, tz=dt.timezone.utc)  # 16:00 in Shanghai
    assert _intruder(night_utc).run(_gate({**SCHOOL_HOURS, "windows": [{"start": "07:00", "end": "12:00"}]}), until=30).first_active(
        "gate", "intrusion"
    ) is None


def test_incident_open_when_the_window_closes_ends(tmp_path):
    start = epoch(2024, 5, 15, 17, 29, 30)
    run = _intruder(start, until=120).run(_gate(SCHOOL_HOURS, clear_after_s=5), until=120)
    states = run.active("gate", "intrusion")
    assert all(on for t, on in states if t < 30) and not any(on for t, on in states if t >= 30)
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.status == "closed"
    # at 17:30 (run times are relative): the idle rule judges nothing, so its incident closes at
    # once, not as cleared (tests/vision/test_rules_schedule_scene.py: its case is not verified)
    assert inc.closed_at == pytest.approx(30.0, abs=0.3)


def test_rule_state_resets_when_the_window_closes():
    # armed 17:00-17:30 and again from 17:31; the person stays throughout
    schedule = {
        "timezone": "Asia/Shanghai",
        "windows": [{"start": "17:00", "end": "17:30"}, {"start": "17:31", "end": "18:00"}],
    }
    start = epoch(2024, 5, 15, 17, 29, 50)
    run = _intruder(start, until=120).run(_gate(schedule, min_duration_s=20), until=120)
    # 10 s inside before the break; after it the clock starts again at 17:31:00 (t = 70 s)
    assert run.first_active("gate", "intrusion") == pytest.approx(90.0)
