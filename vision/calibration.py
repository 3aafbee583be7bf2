"""Ground-plane calibration: image points → metres on the road, through a homography.

Four image points with their real positions (a lane segment of known width and length,
a crosswalk's corners) fix the plane-to-plane mapping. Coordinates go in normalised (0..1),
so the same calibration fits every stream resolution of the camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import CalibrationConfig, Point


class GroundPlane:
    """Maps image points to ground-plane metres.

    Example:
        >>> plane = GroundPlane(CalibrationConfig(image=[(0, 0), (1, 0), (1, 1), (0, 1)], ground=[(0, 0), (10, 0), (10, 20), (0, 20)]))
        >>> plane.to_ground(np.array([[50.0, 50.0]]), (100, 100)).round(1).tolist()
        [[5.1, 10.1]]
    """

    def __init__(self, config: CalibrationConfig) -> None:
        self.config = config
        self._h = homography(np.asarray(config.image, dtype=np.float64), np.asarray(config.ground, dtype=np.float64))
        self._h_inv = np.linalg.inv(self._h)

    def to_ground(self, points_px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(n, 2) pixel points in a frame of ``size`` = (width, height) → (n, 2) metres."""
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2), dtype=np.float64)
        w, h = size
        norm = pts / np.array([max(w - 1, 1), max(h - 1, 1)], dtype=np.float64)
        return cv2.perspectiveTransform(norm.reshape(-1, 1, 2), self._h).reshape(-1, 2)

    def to_image(self, points_m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(n, 2) ground points in metres → (n, 2) pixels in a frame of ``size`` (the inverse of ``to_ground``)."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2), dtype=np.float64)
        w, h = size
        norm = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), self._h_inv).reshape(-1, 2)
        return norm * np.array([max(w - 1, 1), max(h - 1, 1)], dtype=np.float64)

    def area_m2(self, polygon: list[Point]) -> float:
        """Ground area of a normalised image polygon (shoelace on its projected vertices). The
        outline must not cross itself (``ZoneConfig`` refuses one that does): the shoelace sum of
        a "bow tie" subtracts one loop from the other, far less than the area it is drawn over."""
        pts = cv2.perspectiveTransform(np.asarray(polygon, dtype=np.float64).reshape(-1, 1, 2), self._h).reshape(-1, 2)
        x, y = pts[:, 0], pts[:, 1]
        return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2.0)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography taking four ``src`` points to four ``dst`` points, in float64
    (``cv2.getPerspectiveTransform`` works in float32: micrometres off at road scale).

    Example:
        >>> homography(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]), np.array([[0, 0], [2, 0], [2, 2], [0, 2.0]])).round(6).tolist()
        [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    a = np.zeros((8, 8), dtype=np.float64)
    b = np.zeros(8, dtype=np.float64)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * i], b[2 * i + 1] = u, v
    return np.append(np.linalg.solve(a, b), 1.0).reshape(3, 3)
