from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from typing import Any

import pytest
from pydantic import ValidationError

from gridworker.models import DetectorConfig


def test_defaults() -> None:
    config = DetectorConfig()
    assert config.model == "ssd_mobilenet_v2_coco"
    assert (config.threads, config.confidence, config.iou, config.max_batch) == (None, 0.4, 0.5, 8)
    assert config.classes is None


@pytest.mark.parametrize(
    ("kwargs", "exception"),
    [
        ({"threads": 1}, does_not_raise()),
        ({"threads": 0}, pytest.raises(ValidationError)),
        ({"threads": 65}, pytest.raises(ValidationError)),
        ({"confidence": 0.0}, does_not_raise()),
        ({"confidence": 1.5}, pytest.raises(ValidationError)),
        ({"iou": 0.0}, pytest.raises(ValidationError)),
        ({"iou": 1.0}, does_not_raise()),
        ({"max_batch": 0}, pytest.raises(ValidationError)),
        ({"model": ""}, pytest.raises(ValidationError)),
        ({"classes": []}, pytest.raises(ValidationError)),
        ({"classes": ["person", " "]}, pytest.raises(ValidationError)),
        ({"classes": ["person"]}, does_not_raise()),
        ({"confidance": 0.3}, pytest.raises(ValidationError, match="confidance")),  # typo: extra="forbid"
    ],
)
def test_bounds(kwargs: dict[str, Any], exception: Any) -> None:
    with exception:
        DetectorConfig(**kwargs)


def test_classes_are_cleaned() -> None:
    assert DetectorConfig(classes=[" person", "car", "person"]).classes == ["person", "car"]


def test_every_field_is_documented() -> None:
    for name, field in DetectorConfig.model_fields.items():
        assert field.description, name
