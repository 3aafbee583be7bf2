"""The camera scene: masks, common rule filters and cross-references, through the real analyzer."""

import numpy as np
import pytest
from pydantic import ValidationError

from gridworker.settings import CameraConfig
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig, ZoneConfig
from tests.scenario import Scenario

LOWER_HALF = [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]


def _intrusion_scene(**rule):
    return [{"id": "road", "polygon": LOWER_HALF, "rules": [{"type": "intrusion", "classes": ["person"], **rule}]}]


def test_mask_drops_detections_before_tracking():
    sc = Scenario(fps=5)
    sc.track("person", (100, 600, 140, 700)).stay(0, 5)  # ground point (120, 700): inside the mask
    sc.track("person", (700, 600, 740, 700)).stay(3, 5)  # outside it
    run = sc.run(_intrusion_scene(), until=5, masks=[{"id": "billboard", "polygon": [(0.0, 0.6), (0.3, 0.6), (0.3, 0.8), (0.0, 0.8)]}])
    assert run.first_active("road", "intrusion") == pytest.approx(3.0)
    assert all(a.detections.xyxy[:, 0].tolist() in ([], [700.0]) for a in run.analyses)


def test_min_box_height_ignores_small_far_objects():
    sc = Scenario(fps=5)
    sc.track("person", (100, 600, 110, 620)).stay(0, 5)  # 20 px tall = 2 % of the frame
    sc.track("person", (500, 600, 540, 700)).stay(2, 5)  # 100 px
    run = sc.run(_intrusion_scene(min_box_height=0.05), until=5)
    assert run.first_active("road", "intrusion") == pytest.approx(2.0)
    assert all(r.count <= 1 for _, r in run.results("road", "intrusion"))


def test_exempt_zone_suppresses_rule_inside_it():
    zones = [
        {"id": "road", "polygon": LOWER_HALF, "rules": [{"type": "intrusion", "exempt_zones": ["crosswalk"]}]},
        {"id": "crosswalk", "polygon": [(0.4, 0.5), (0.6, 0.5), (0.6, 1.0), (0.4, 1.0)]},
    ]
    sc = Scenario(fps=5)
    sc.track("person", (480, 600, 520, 700)).stay(0, 4).move(4, 6, dx=300).stay(6, 8)  # on the crosswalk, then off it
    run = sc.run(zones, until=8)
    first = run.first_active("road", "intrusion")
    assert first is not None and first > 4.5


def test_schedule_idle_rule_is_quiet_and_resets(tmp_path):
    # 2026-11-30 is a Monday; start at 06:59:50 Shanghai time, window opens at 07:00
    start = 1796000000.0
    import datetime as dt
    import zoneinfo

    local = dt.datetime.fromtimestamp(start, zoneinfo.ZoneInfo("Asia/Shanghai"))
    opens = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    window = {"start": opens.strftime("%H:%M"), "end": (opens + dt.timedelta(hours=1)).strftime("%H:%M")}
    sc = Scenario(fps=5, start=start)
    sc.track("person", (480, 600, 520, 700)).stay(0, 120)
    schedule = {"windows": [window], "timezone": "Asia/Shanghai"}
    run = sc.run(_intrusion_scene(min_duration_s=5, schedule=schedule), until=120)
    first = run.first_active("road", "intrusion")
    armed_at = opens.timestamp() - start
    # the clock starts when the window opens, not when the person arrived
    assert first is not None and armed_at + 5 <= first <= armed_at + 5.5
    assert len(run.incidents(tmp_path)) == 1


def test_scene_references_are_checked():
    with pytest.raises(ValidationError, match="exempt zone 'crosswalk' is not a zone"):
        SceneConfig(zones=[{"id": "road", "rules": [{"type": "lane_intrusion", "exempt_zones": ["crosswalk"]}]}])
    with pytest.raises(ValidationError, match="signal 'main' is not configured"):
        SceneConfig(zones=[{"id": "road", "rules": [{"type": "red_light", "stop_line": [(0, 0.5), (1, 0.5)], "signal": "main"}]}])
    with pytest.raises(ValidationError, match="needs the camera's ground-plane 'calibration'"):
        SceneConfig(zones=[{"id": "road", "rules": [{"type": "speeding", "max_speed_kmh": 60}]}])
    with pytest.raises(ValidationError, match="needs a 'region'"):
        SceneConfig(signals=[{"id": "main", "source": "image"}])
    with pytest.raises(ValidationError, match="non-zero vector"):
        ZoneConfig(id="lane", rules=[{"type": "wrong_way", "direction": (0, 0)}])
    with pytest.raises(ValidationError, match="unknown time zone"):
        ZoneConfig(id="gate", rules=[{"type": "intrusion", "schedule": {"windows": [{"start": "07:00", "end": "08:00"}], "timezone": "Mars/Olympus"}}])
    with pytest.raises(ValidationError, match="mask ids must be unique"):
        SceneConfig(masks=[{"id": "m", "polygon": LOWER_HALF}, {"id": "m", "polygon": LOWER_HALF}])


def test_camera_config_carries_the_scene_and_analyzer_keeps_it_on_zone_edit():
    cam = CameraConfig(
        id="c1",
        url="rtsp://10.0.0.1/s",
        zones=[{"id": "road", "polygon": LOWER_HALF, "rules": [{"type": "intrusion"}]}],
        masks=[{"id": "m", "polygon": [(0.0, 0.6), (0.3, 0.6), (0.3, 0.8), (0.0, 0.8)]}],
    )
    scene = cam.scene()
    assert isinstance(scene, SceneConfig) and scene.masks[0].id == "m"
    analyzer = CameraAnalyzer("c1", 5, scene, track=False)
    analyzer.set_zones([ZoneConfig(id="other", polygon=LOWER_HALF)])
    assert [z.id for z in analyzer.zones] == ["other"]
    sc = Scenario()
    sc.track("person", (100, 600, 140, 700)).stay(0, 1)  # inside the mask
    frame, dets = next(sc.frames(0))
    assert len(analyzer.analyze(frame, dets).detections) == 0  # the mask survived the zone edit


def test_full_frame_zone_is_the_default_polygon():
    zone = ZoneConfig(id="all")
    assert zone.polygon == [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    sc = Scenario()
    sc.track("person", (10, 10, 50, 90)).stay(0, 1)
    run = sc.run([{"id": "all", "rules": [{"type": "intrusion"}]}], until=1)
    assert run.first_active("all", "intrusion") == 0.0
    assert np.all([v.kind.code == "intrusion" for a in run.analyses for v in a.verdicts])
