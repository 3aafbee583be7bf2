"""A rule's class lists are bounded and de-duplicated, and matching boxes against them costs one
set lookup a box, whatever the number of classes (review: an 80 000-class rule in a 1 MiB scene
made every frame of its camera 250x slower)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import supervision as sv
from pydantic import ValidationError

from gridworker.settings import ConfigError, load_settings
from gridworker.vision.config import MAX_LISTED, SceneConfig, SceneLimits, ZoneConfig
from gridworker.vision.rules.base import class_mask


def _zone(**rule: object) -> dict[str, object]:
    return {"id": "z", "rules": [{"type": "crowd", **rule}]}


@pytest.mark.parametrize(
    "rule",
    [
        {"classes": [f"k{i}" for i in range(MAX_LISTED + 1)]},
        {"type": "street_vending", "goods_classes": [f"k{i}" for i in range(MAX_LISTED + 1)]},
        {"exempt_zones": [f"z{i}" for i in range(MAX_LISTED + 1)]},
    ],
)
def test_a_rule_lists_at_most_64_names(rule):
    with pytest.raises(ValidationError, match=f"at most {MAX_LISTED} items"):
        ZoneConfig.model_validate(_zone(**rule))


def test_a_counting_line_lists_at_most_64_classes():
    line = {"id": "l", "points": [[0, 0.5], [1, 0.5]], "classes": [f"k{i}" for i in range(MAX_LISTED + 1)]}
    with pytest.raises(ValidationError, match=f"at most {MAX_LISTED} items"):
        SceneConfig.model_validate({"lines": [line]})


def test_repeated_and_empty_class_names():
    rule = ZoneConfig.model_validate(_zone(classes=["car", "bus", "car", "car"])).rules[0]
    assert rule.classes == ["car", "bus"]
    with pytest.raises(ValidationError):
        ZoneConfig.model_validate(_zone(classes=[""]))


def test_limits_scene_classes_lowers_the_cap(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "limits: {scene: {classes: 2}}\n"
        "cameras:\n  - id: cam1\n    url: rtsp://10.0.0.1/s\n"
        "    zones: [{id: z, rules: [{type: crowd, classes: [person, car, bus]}]}]\n"
        "    lines: [{id: gate, points: [[0, 0.5], [1, 0.5]]}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(conf)
    text = str(err.value)
    assert "zone 'z' rule 'crowd' lists 3 classes, more than limits.scene.classes (2)" in text, text
    assert "line 'gate' lists 6 classes, more than limits.scene.classes (2)" in text, text
    with pytest.raises(ValidationError):
        SceneLimits(classes=MAX_LISTED + 1)


def _detections(n: int) -> sv.Detections:
    names = np.array(["person", "car", "bicycle"] * (n // 3 + 1))[:n]
    return sv.Detections(xyxy=np.tile([10.0, 10.0, 50.0, 120.0], (n, 1)), confidence=np.full(n, 0.9), data={"class_name": names})


def test_class_mask_looks_each_box_up_once():
    dets = _detections(30)
    assert class_mask(dets, frozenset({"car", "bicycle"}), 0.3).tolist() == [name != "person" for name in dets.data["class_name"]]
    many = frozenset({f"k{i}" for i in range(80_000)} | {"car"})

    def cost(classes: frozenset[str]) -> float:
        start = time.perf_counter()
        for _ in range(50):
            class_mask(dets, classes, 0.3)
        return time.perf_counter() - start

    few = frozenset({"car"})
    cost(few), cost(many)  # warm up
    # before: np.isin against list(classes) each call, ~100x the cost for 80 000 classes
    assert cost(many) < 5 * cost(few) + 0.01

