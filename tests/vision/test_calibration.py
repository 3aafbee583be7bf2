"""Ground-plane calibration: image pixels → metres through a four-point homography."""

import numpy as np
import pytest
from pydantic import ValidationError

from gridworker.vision.calibration import GroundPlane
from gridworker.vision.config import CalibrationConfig
from tests.scenario import Scenario

# a 3.5 m lane, 30 m long, seen in perspective: the far end (top) is narrower
LANE = CalibrationConfig(
    image=[(0.40, 0.55), (0.55, 0.55), (0.70, 0.95), (0.30, 0.95)],
    ground=[(0, 0), (3.5, 0), (3.5, 30), (0, 30)],
)


def _px(norm, size):
    w, h = size
    return np.asarray(norm, dtype=np.float64) * np.array([w - 1, h - 1])


@pytest.mark.parametrize("size", [(1920, 1080), (640, 360)])
def test_calibration_points_map_to_their_metres(size):
    plane = GroundPlane(LANE)
    got = plane.to_ground(_px(LANE.image, size), size)
    np.testing.assert_allclose(got, np.asarray(LANE.ground), atol=1e-6)


def test_resolution_independent_and_perspective():
    plane = GroundPlane(LANE)
    # the middle of the lane's near edge is 1.75 m across, 30 m along, at any resolution
    for size in [(1920, 1080), (1280, 720)]:
        np.testing.assert_allclose(plane.to_ground(_px([(0.5, 0.95)], size), size), [[1.75, 30.0]], atol=1e-6)
    # equal steps up the image cover more road the farther they are: perspective
    size = (1000, 1000)
    ys = [0.95, 0.85, 0.75, 0.65, 0.55]
    along = plane.to_ground(_px([(0.5, y) for y in ys], size), size)[:, 1]
    steps = -np.diff(along)
    assert np.all(steps > 0) and np.all(np.diff(steps) > 0)
    assert along[-1] == pytest.approx(0.0, abs=1e-6)


def test_lines_stay_lines_and_empty_input():
    plane = GroundPlane(LANE)
    size = (1000, 1000)
    # points on the image segment between two calibration corners land on the ground edge x = 3.5
    t = np.linspace(0, 1, 7)[:, None]
    edge = _px([(0.55, 0.55)], size) * (1 - t) + _px([(0.70, 0.95)], size) * t
    got = plane.to_ground(edge, size)
    np.testing.assert_allclose(got[:, 0], 3.5, atol=1e-6)
    assert np.all(np.diff(got[:, 1]) > 0)
    assert plane.to_ground(np.zeros((0, 2)), size).shape == (0, 2)


def test_area_of_the_calibration_quad_and_a_sub_polygon():
    plane = GroundPlane(LANE)
    assert plane.area_m2(LANE.image) == pytest.approx(3.5 * 30, rel=1e-6)
    square = GroundPlane(CalibrationConfig(image=[(0, 0), (1, 0), (1, 1), (0, 1)], ground=[(0, 0), (10, 0), (10, 20), (0, 20)]))
    assert square.area_m2([(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)]) == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("image", "ground", "message"),
    [
        ([(0, 0), (1, 0), (0.1, 1), (0.8, 0.9)], [(0, 0), (1, 0), (1, 1), (0, 1)], "in order"),  # Z order in the image
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (1, 0), (0, 1), (1, 1)], "in order"),  # Z order on the ground
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (5, 0), (10, 0), (0, 5)], "no three on one line"),
        ([(0, 0), (0.5, 0), (1, 0), (0, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], "no three on one line"),
        ([(0, 0), (1.2, 0), (1, 1), (0, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], "outside 0..1"),
    ],
)
def test_calibration_config_rejects_unusable_quads(image, ground, message):
    with pytest.raises(ValidationError, match=message):
        CalibrationConfig(image=image, ground=ground)


def test_mirrored_ground_axes_are_fine():
    # the ground y axis may run the other way (towards the camera): still a valid plane
    cfg = CalibrationConfig(image=LANE.image, ground=[(0, 30), (3.5, 30), (3.5, 0), (0, 0)])
    assert GroundPlane(cfg).to_ground(_px([(0.475, 0.55)], (100, 100)), (100, 100))[0] == pytest.approx([1.75, 30.0])


def test_to_image_inverts_to_ground():
    plane = GroundPlane(LANE)
    size = (1280, 720)
    ground = np.array([[0.0, 0.0], [1.75, 15.0], [3.0, 29.0], [0.5, 4.2]])
    px = plane.to_image(ground, size)
    np.testing.assert_allclose(px[0], _px([LANE.image[0]], size)[0], atol=1e-6)
    np.testing.assert_allclose(plane.to_ground(px, size), ground, atol=1e-9)
    assert plane.to_image(np.zeros((0, 2)), size).shape == (0, 2)


def test_analyzer_hands_rules_ground_positions():
    sc = Scenario(size=(1001, 1001), fps=5)
    sc.track("car", (450, 100, 550, 200)).move(0, 2, dy=500)
    cal = {"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground": [[0, 0], [200, 0], [200, 200], [0, 200]]}
    run = sc.run([{"id": "road", "rules": [{"type": "speeding", "max_speed_kmh": 1}]}], until=2, calibration=cal)
    # 500 px in 2 s at 0.2 m/px = 50 m/s = 180 km/h, measured from the scene's ground points
    speeds = [r.details["speed_kmh"] for _, r in run.results("road", "speeding") if r.active]
    assert speeds and speeds[-1] == pytest.approx(180.0, abs=0.5)
