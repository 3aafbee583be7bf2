"""Sanity filters between the detector and the rules (vision/filters.py), on scripted
detections through the real analyser, and the analysis-pace watch (vision/pace.py)."""

import logging

import numpy as np
import pytest
from pydantic import ValidationError

from gridworker.vision.config import ConfirmConfig, FilterConfig, SceneConfig, reference_problems
from gridworker.vision.filters import TrackConfirmer, box_fraction_inside
from gridworker.vision.pace import PaceWatch
from tests.scenario import Scenario

FPS = 5
ALL = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def _crowd(n: int) -> list[dict[str, object]]:
    return [{"id": "square", "polygon": ALL, "rules": [{"type": "crowd", "min_count": n, "min_duration_s": 1}]}]


def test_whole_frame_person_is_dropped_by_default_and_kept_when_switched_off():
    sc = Scenario(fps=FPS)
    sc.track("person", (100, 100, 160, 260)).stay(0, 5)
    sc.track("person", (5, 5, 995, 990)).stay(0, 5)  # the recurring whole-frame "person"
    run = sc.run(zones=_crowd(2), until=5)
    assert run.first_active("square", "crowd") is None
    assert all(len(a.detections) == 1 for a in run.analyses)
    off = sc.run(zones=_crowd(2), until=5, filters={"shapes": False})
    assert off.first_active("square", "crowd") == 1.0


def test_a_person_lying_in_the_road_is_kept_and_a_flat_sliver_person_dropped():
    """A fallen person seen from a pole is wider than tall (height/width 0.3 here): kept, so
    lane intrusion still sees them; a 0.1 sliver labelled "person" is no body."""
    sc = Scenario(fps=FPS)
    sc.track("person", (300, 600, 500, 660)).stay(0, 3)  # 200 x 60: lying down
    sc.track("person", (100, 300, 500, 340)).stay(0, 3)  # 400 x 40: a kerb edge, not a person
    road = [{"id": "road", "polygon": ALL, "rules": [{"type": "lane_intrusion", "classes": ["person"], "min_duration_s": 1}]}]
    run = sc.run(zones=road, until=3)
    assert all(a.detections.xyxy.tolist() == [[300, 600, 500, 660]] for a in run.analyses)
    assert run.first_active("road", "lane_intrusion") is not None


def test_flat_sliver_car_is_dropped():
    sc = Scenario(fps=FPS)
    sc.track("car", (100, 500, 700, 520)).stay(0, 2)  # 600 × 20: no car looks like that
    sc.track("car", (100, 600, 300, 700)).stay(0, 2)
    run = sc.run(until=2)
    assert all(a.detections.xyxy.tolist() == [[100, 600, 300, 700]] for a in run.analyses)


def test_class_specific_confidence():
    sc = Scenario(fps=FPS)
    sc.track("person", (100, 100, 160, 260), confidence=0.35).stay(0, 3)
    sc.track("car", (300, 300, 500, 400), confidence=0.35).stay(0, 3)
    run = sc.run(until=3, filters={"min_confidence": {"person": 0.5}})
    assert all(a.detections.data["class_name"].tolist() == ["car"] for a in run.analyses)
    with pytest.raises(ValidationError):
        FilterConfig(min_confidence={"person": 1.5})


def test_text_mask_by_box_drops_boxes_on_the_overlay_only():
    overlay = {"id": "clock", "polygon": [(0.0, 0.0), (0.4, 0.0), (0.4, 0.1), (0.0, 0.1)], "by": "box"}
    sc = Scenario(fps=FPS)
    sc.track("book", (20, 10, 380, 140)).stay(0, 2)  # the timestamp read as a "book", reaching below it
    sc.track("person", (300, 50, 360, 220)).stay(0, 2)  # a person whose head is behind the text
    run = sc.run(until=2, masks=[overlay])
    assert all(a.detections.data["class_name"].tolist() == ["person"] for a in run.analyses)
    # the same region by ground point keeps the book (its bottom edge is below the overlay)
    point = sc.run(until=2, masks=[{**overlay, "by": "ground_point"}])
    assert all(len(a.detections) == 2 for a in point.analyses)


def test_box_fraction_inside():
    mask = np.zeros((100, 100), dtype=bool)
    mask[:50, :] = True
    got = box_fraction_inside(np.array([[0, 0, 10, 10], [0, 40, 10, 60], [0, 80, 10, 90]]), mask)
    assert got.tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_confirmation_m_of_n_delays_and_drops_flicker():
    sc = Scenario(fps=FPS)
    sc.track("person", (100, 100, 160, 260), track_id=1).stay(0, 5)
    flicker = sc.track("person", (400, 100, 460, 260), track_id=2)
    flicker.stay(1.0, 1.2).hide(1.2, 2.0).stay(2.0, 2.2).hide(2.2, 5)  # one frame now and then
    intrusion = [{"id": "gate", "polygon": ALL, "rules": [{"type": "intrusion", "id": "in"}]}]
    run = sc.run(zones=intrusion, until=5, filters={"confirm": {"hits": 2, "frames": 3}})
    assert run.first_active("gate", "in") == pytest.approx(0.2)  # seen on its second frame
    assert all(r.count == 1 for _, r in run.results("gate", "in") if r.active)  # the flicker never counts
    off = sc.run(zones=intrusion, until=5)
    assert off.first_active("gate", "in") == 0.0 and max(r.count for _, r in off.results("gate", "in")) == 2


def test_confirmer_restarts_a_track_missing_too_long_and_never_confirms_untracked():
    c = TrackConfirmer(ConfirmConfig(hits=2, frames=3))
    assert c.update(np.array([5, -1])).tolist() == [False, False]
    assert c.update(np.array([5, -1])).tolist() == [True, False]
    for _ in range(4):
        c.update(np.array([], dtype=np.int64))
    assert c.update(np.array([5])).tolist() == [False]
    with pytest.raises(ValidationError):
        ConfirmConfig(hits=4, frames=3)


def test_reference_problems_all_at_once_and_on_raw_data():
    raw = {
        "zones": [
            {"id": "a", "rules": [{"type": "crowd", "exempt_zones": ["nowhere"], "min_density": 1.0}]},
            {"id": "a", "rules": [{"type": "red_light", "signal": "s9", "stop_line": "bad"}]},
        ]
    }
    problems = reference_problems(raw)
    assert len(problems) == 4, problems
    assert any("repeated: ['a']" in p for p in problems) and any("'nowhere'" in p for p in problems)
    assert any("signal 's9'" in p for p in problems) and any("calibration" in p for p in problems)
    valid = {"zones": [{"id": "a", "rules": [{"type": "crowd", "exempt_zones": ["x", "y"]}]}]}
    with pytest.raises(ValidationError) as err:
        SceneConfig.model_validate(valid)
    assert "'x'" in str(err.value) and "'y'" in str(err.value)


def test_pace_watch_warns_once_when_behind_for_a_minute_and_notes_the_catch_up(caplog):
    watch = PaceWatch("cam1", fps=5.0)
    caplog.set_level(logging.INFO, logger="gridworker.vision.pace")
    for i in range(50):  # 5 fps for 10 s: fine
        watch.tick(i * 0.2)
    assert not watch.pace(10.0).behind
    t = 10.0
    while t < 75.0:  # then 1 fps
        t += 1.0
        watch.tick(t)
    pace = watch.pace(t)
    assert pace.behind and pace.analysed_fps < 2.5 and pace.behind_since is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cam1" in warnings[0].getMessage()
    for _ in range(400):  # back to 5 fps
        t += 0.2
        watch.tick(t)
    assert not watch.pace(t).behind
    assert any("caught up" in r.getMessage() for r in caplog.records)


def test_pace_watch_is_not_behind_in_its_first_minute_or_at_half_rate():
    watch = PaceWatch("cam1", fps=4.0)
    for i in range(30):
        watch.tick(float(i))  # 1 fps, but only 29 s
    assert not watch.pace(29.0).behind
    half = PaceWatch("cam2", fps=4.0)
    for i in range(200):
        half.tick(i * 0.5)  # 2 fps = exactly half: not below
    assert not half.pace(99.5).behind


def test_confirmation_counts_empty_frames_as_misses():
    """A box seen now and then across empty frames never adds up to a confirmed track."""
    sc = Scenario(fps=FPS)
    blink = sc.track("person", (400, 100, 460, 260), track_id=2)
    for k in range(5):  # one frame every second, nothing in between
        blink.hide(k, k + 0.0).stay(k, k + 0.2).hide(k + 0.2, k + 1.0)
    intrusion = [{"id": "gate", "polygon": ALL, "rules": [{"type": "intrusion", "id": "in"}]}]
    run = sc.run(zones=intrusion, until=5, filters={"confirm": {"hits": 2, "frames": 3}})
    assert run.first_active("gate", "in") is None
    assert sum(len(a.detections) for a in sc.run(zones=intrusion, until=5).analyses) == 5  # seen 5 times, unfiltered
