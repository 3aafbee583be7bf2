from contextlib import nullcontext

import numpy as np
import pytest
from pydantic import ValidationError

from gridworker.vision.config import ZoneConfig
from gridworker.vision.zones import Zone, ground_points
from tests.factories import make_detections

SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([], []),
        ([[40, 40, 60, 60]], [True]),  # ground point (50, 60) inside
        ([[40, 0, 60, 20]], [False]),  # ground point (50, 20) above the zone
        ([[0, 40, 10, 60]], [False]),  # left of the zone
        ([[40, 40, 60, 60], [0, 0, 5, 5], [70, 10, 74, 74]], [True, False, True]),
    ],
)
def test_contains_uses_ground_point(boxes, expected):
    zone = Zone(ZoneConfig(id="z", polygon=SQUARE))
    assert zone.contains(make_detections(boxes), (100, 100)).tolist() == expected


def test_mask_scales_with_resolution():
    zone = Zone(ZoneConfig(id="z", polygon=SQUARE))
    assert zone.contains_points(np.array([[50.0, 50.0]]), (100, 100)).tolist() == [True]
    assert zone.contains_points(np.array([[500.0, 500.0]]), (1000, 1000)).tolist() == [True]
    assert zone.contains_points(np.array([[100.0, 500.0]]), (1000, 1000)).tolist() == [False]
    # points outside the frame are clipped to the border, never an IndexError
    assert zone.contains_points(np.array([[-5.0, 5000.0]]), (100, 100)).tolist() == [False]


def test_ground_points():
    assert ground_points(np.array([[0, 0, 10, 20]])).tolist() == [[5.0, 20.0]]


@pytest.mark.parametrize(
    ("polygon", "raises"),
    [
        (SQUARE, nullcontext()),
        ([(0, 0), (1, 0)], pytest.raises(ValidationError, match="at least 3")),
        ([(0, 0), (1.5, 0), (1, 1)], pytest.raises(ValidationError, match="outside 0..1")),
        ([(0, 0), (0.5, 0.5), (1, 1)], pytest.raises(ValidationError, match="no area")),
    ],
)
def test_zone_validation(polygon, raises):
    with raises:
        ZoneConfig(id="z", polygon=polygon)


def test_duplicate_rule_ids_rejected():
    with pytest.raises(ValidationError, match="used twice"):
        ZoneConfig(id="z", polygon=SQUARE, rules=[{"type": "crowd"}, {"type": "crowd"}])
