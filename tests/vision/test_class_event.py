"""Model-class events: a detector class becomes the configured incident type once it
persists; scripted tracks, and the committed default detector on bus.jpg."""

from __future__ import annotations

import cv2
import pytest

from gridworker.assets import ultralytics_asset
from gridworker.incidents.manager import CameraInfo, IncidentManager
from gridworker.incidents.store import IncidentQuery, IncidentStore
from gridworker.models import DetectorConfig
from gridworker.models.loader import load_detector
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig
from tests.scenario import Scenario

FALLEN = {"code": "person_fallen", "name_zh": "人员倒地", "name_en": "person fallen", "category": "public_safety"}
BOX = (400, 600, 600, 700)  # a person lying on the ground


def _zones(**rule):
    return [{"id": "plaza", "rules": [{"type": "class_event", "classes": ["Fall"], "incident": FALLEN, **rule}]}]


def test_persistent_class_fires_once_as_the_configured_type(tmp_path):
    sc = Scenario()
    fall = sc.track("Fall", BOX, track_id=7)
    # the fall model misses a frame every second, and the tracker renumbers the person once
    for s in range(0, 20):
        fall.stay(s, s + 0.8).hide(s + 0.8, s + 1.0)
    fall.switch_id(1.5)
    run = sc.run(_zones(min_duration_s=3.0, grace_s=1.0, clear_after_s=5.0), until=20)
    assert 3.0 <= run.first_active("plaza", "class_event") <= 3.2
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.type == "person_fallen" and inc.rule_id == "class_event"
    assert inc.details["type_name_zh"] == "人员倒地" and inc.details["type_name_en"] == "person fallen"
    assert inc.details["category"] == "public_safety"
    assert inc.details["name_zh"] == "人员倒地" and inc.details["classes"] == ["Fall"]
    assert inc.details["confidence"] == pytest.approx(0.9)
    assert "person fallen" in inc.summary


@pytest.mark.parametrize(("grace_s", "fires"), [(1.0, False), (2.0, True)])
def test_flicker_shorter_than_the_threshold(grace_s, fires):
    sc = Scenario()
    fall = sc.track("Fall", BOX)
    # seen for 0.8 s (frames 0, 0.2, .., 0.6), then missed for 1.8 s, over and over
    for s in range(0, 30, 2):
        fall.stay(s * 1.2, s * 1.2 + 0.8).hide(s * 1.2 + 0.8, s * 1.2 + 2.4)
    run = sc.run(_zones(min_duration_s=1.0, grace_s=grace_s), until=30)
    # each burst is shorter than min_duration_s; only a grace longer than the gaps joins them
    assert (run.first_active("plaza", "class_event") is not None) is fires


def test_confidence_class_and_zone_filters():
    sc = Scenario()
    sc.track("Fall", BOX, confidence=0.4)  # below the rule's 0.5
    sc.track("person", (100, 100, 150, 300))  # another class
    sc.tracks[0].stay(0, 10)
    sc.tracks[1].stay(0, 10)
    run = sc.run(_zones(), until=10)
    assert run.first_active("plaza", "class_event") is None
    run = sc.run(_zones(min_confidence=0.3), until=10)
    assert 1.0 <= run.first_active("plaza", "class_event") <= 1.2  # default min_duration_s 1.0
    # outside the rule's zone
    zones = _zones(min_confidence=0.3)
    zones[0]["polygon"] = [[0, 0], [1, 0], [1, 0.4], [0, 0.4]]
    assert sc.run(zones, until=10).first_active("plaza", "class_event") is None


def test_two_types_on_one_camera_keep_their_codes(tmp_path):
    garbage = {"code": "exposed_garbage", "name_zh": "暴露垃圾", "name_en": "exposed garbage", "category": "city_appearance"}
    sc = Scenario()
    sc.track("Fall", BOX).stay(0, 10)
    sc.track("garbage", (700, 800, 800, 900)).stay(0, 10)
    zones = [
        {
            "id": "plaza",
            "rules": [
                {"type": "class_event", "id": "fall", "classes": ["Fall"], "incident": FALLEN},
                {"type": "class_event", "id": "garbage", "classes": ["garbage"], "incident": garbage, "min_duration_s": 5},
            ],
        }
    ]
    run = sc.run(zones, until=10)
    types = {(i.rule_id, i.type, i.details["category"]) for i in run.incidents(tmp_path)}
    assert types == {("fall", "person_fallen", "public_safety"), ("garbage", "exposed_garbage", "city_appearance")}
    assert 5.0 <= run.first_active("plaza", "garbage") <= 5.2


@pytest.mark.model
def test_default_detector_bus_becomes_an_incident(tmp_path):
    path = ultralytics_asset("bus.jpg")
    assert path is not None, "bus.jpg comes with the ultralytics wheel of the test environment"
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    detector = load_detector(DetectorConfig())
    scene = SceneConfig.model_validate(
        {
            "zones": [
                {
                    "id": "street",
                    "rules": [
                        {
                            "type": "class_event",
                            "classes": ["bus"],
                            "min_duration_s": 1.0,
                            "incident": {"code": "bus_present", "name_zh": "公交车", "name_en": "bus present", "category": "traffic"},
                        }
                    ],
                }
            ]
        }
    )
    analyzer = CameraAnalyzer("cam", fps=5, scene=scene)  # with the real tracker
    store = IncidentStore(f"sqlite:///{tmp_path}/bus.db")
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(name="bus"), write_interval_s=0.0)
    opened = []
    for i in range(10):
        frame = Frame("cam", i, 1000.0 + i * 0.2, image)
        analysis = analyzer.analyze(frame, detector.detect([image])[0])
        opened += manager.observe(analysis)
    assert [inc.type for inc in opened] == ["bus_present"]
    assert opened[0].opened_at >= 1001.0  # after min_duration_s, not on the first frame
    items, total = store.list(IncidentQuery(type="bus_present"))
    assert total == 1 and items[0].details["classes"] == ["bus"] and items[0].details["confidence"] >= 0.5
    assert items[0].details["type_name_zh"] == "公交车" and items[0].has_snapshot
    store.close()
