"""``rule_class_warnings``: a rule or counting line that lists a class its camera's models never
output is named, with the nearest class the model has (review: ``classes: [Car, lorry]`` passed
``gridworker check`` and could never fire)."""

from __future__ import annotations

import pytest

from gridworker.models.config import DetectorConfig
from gridworker.rule_classes import model_class_names, rule_class_warnings, unknown_class_note
from gridworker.settings import Settings

TYPO = {
    "cameras": [
        {
            "id": "gate",
            "url": "rtsp://10.0.0.1/s",
            "zones": [
                {
                    "id": "no-parking",
                    "rules": [
                        {"type": "illegal_parking", "classes": ["Car", "lorry"]},
                        {"type": "intrusion", "id": "staff", "classes": ["persons"]},
                        {"type": "street_vending", "goods_classes": ["umbrella", "umbrela"]},
                        {"type": "crowd"},
                    ],
                }
            ],
            "lines": [{"id": "kerb", "points": [[0, 0.5], [1, 0.5]], "classes": ["person", "bike"]}],
        }
    ]
}


def test_the_embedded_models_classes_come_from_its_manifest():
    names = model_class_names(DetectorConfig())
    assert names is not None and len(names) == 80 and {"person", "car", "truck", "umbrella"} <= set(names) and "" not in names
    assert model_class_names(DetectorConfig(classes=["car", "bus"])) == ["car", "bus"]
    assert model_class_names(DetectorConfig(model="/nowhere/model.onnx")) is None


def test_unknown_rule_classes_are_named_with_a_suggestion():
    lines = rule_class_warnings(Settings(**TYPO))
    assert lines == [
        "camera 'gate' zone 'no-parking' rule 'illegal_parking': classes 'Car' (did you mean 'car'?), 'lorry' are not among"
        " the classes of model(s) default: the rule never fires on them",
        "camera 'gate' zone 'no-parking' rule 'staff': classes 'persons' (did you mean 'person'?) are not among the classes"
        " of model(s) default: the rule never fires on them",
        "camera 'gate' zone 'no-parking' rule 'street_vending': goods_classes 'umbrela' (did you mean 'umbrella'?) are not"
        " among the classes of model(s) default: the rule never fires on them",
        "camera 'gate' line 'kerb': classes 'bike' are not among the classes of model(s) default: the line never counts them",
    ]


def test_a_rule_is_checked_against_its_own_model_and_a_detectors_filter():
    settings = Settings(
        detector={"classes": ["person", "car"]},
        detectors=[{"id": "fall", "model": "/srv/fall.onnx"}],
        cameras=[
            {
                "id": "c",
                "url": "rtsp://10.0.0.1/s",
                "detectors": ["default", "fall"],
                "zones": [
                    {
                        "id": "z",
                        "rules": [
                            {"type": "intrusion", "classes": ["bus"]},  # the default model filters buses out; 'fall' is unknown
                            {"type": "dwell", "id": "parked", "detector": "default", "classes": ["bus"]},
                            {"type": "crowd", "detector": "fall", "classes": ["fallen"]},
                        ],
                    }
                ],
            }
        ],
    )
    assert rule_class_warnings(settings) == [
        "camera 'c' zone 'z' rule 'parked': classes 'bus' are not among the classes of model(s) default: the rule never fires on them"
    ]
    # with the second model's classes known, a rule of both models is checked against both
    assert rule_class_warnings(settings, lambda det: ["fallen"] if det.model.endswith("fall.onnx") else ["person"]) == [
        "camera 'c' zone 'z' rule 'intrusion': classes 'bus' are not among the classes of model(s) default, fall: the rule never fires on them",
        "camera 'c' zone 'z' rule 'parked': classes 'bus' are not among the classes of model(s) default: the rule never fires on them",
    ]


def test_an_ultralytics_files_names_are_read_from_its_metadata(tmp_path):
    pytest.importorskip("onnx", reason="the test model is built with the onnx package (the export extra)")
    from tests.models.tiny_onnx import square_only

    model = square_only(tmp_path / "two.onnx")
    assert model_class_names(DetectorConfig(model=str(model))) == ["person", "car"]
    settings = Settings(
        detector={"model": str(model)},
        cameras=[{"id": "c", "url": "rtsp://10.0.0.1/s", "zones": [{"id": "z", "rules": [{"type": "illegal_parking"}]}]}],
    )
    assert rule_class_warnings(settings) == [
        "camera 'c' zone 'z' rule 'illegal_parking': classes 'bus', 'truck', 'motorcycle' are not among the classes of"
        " model(s) default: the rule never fires on them"
    ]


def test_unknown_class_note():
    assert unknown_class_note(["car"], ["car"]) is None
    assert unknown_class_note(["Truck", "xyzzy"], ["truck", "car"]) == "'Truck' (did you mean 'truck'?), 'xyzzy'"
