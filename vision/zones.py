"""Zones: which detections stand inside a polygon, answered for all boxes at once."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

from .sizecache import SIZES_KEPT, SizeCache
from .config import MaskConfig, ZoneConfig


def ground_points(xyxy: np.ndarray) -> np.ndarray:
    """Bottom-centre of each box, where an object touches the ground.

    Args:
        xyxy: (n, 4) boxes in pixels.

    Returns:
        (n, 2) float32 points in pixels.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) * 0.5, xyxy[:, 3]], axis=1)


def polygon_mask(polygon: Sequence[tuple[float, float]], size: tuple[int, int]) -> np.ndarray:
    """(height, width) bool mask of a normalised polygon for a frame of ``size`` = (width, height)."""
    w, h = size
    px = np.round(np.asarray(polygon, dtype=np.float32) * np.array([w - 1, h - 1], dtype=np.float32)).astype(np.int32)
    canvas = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(canvas, [px], 1)
    return canvas.astype(bool)


MASK_CACHE_SIZES = SIZES_KEPT
"""How many frame sizes each zone keeps a rasterised mask for (least recently used dropped first)."""


class Zone:
    """A polygon in normalised coordinates, rasterised once per frame size.

    Example:
        >>> zone = Zone(ZoneConfig(id="z", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)]))
        >>> zone.contains_points(np.array([[5.0, 5.0]]), (10, 10)).tolist()
        [True]
    """

    def __init__(self, config: ZoneConfig | MaskConfig) -> None:
        self.config = config
        self.id = config.id
        self._polygon = np.asarray(config.polygon, dtype=np.float32)
        self._masks = SizeCache(lambda size: polygon_mask(self.config.polygon, size), keep=MASK_CACHE_SIZES)

    def polygon_px(self, size: tuple[int, int]) -> np.ndarray:
        """Vertices in pixels for a frame of ``size`` = (width, height), (k, 2) int32."""
        w, h = size
        return np.round(self._polygon * np.array([w - 1, h - 1], dtype=np.float32)).astype(np.int32)

    def mask(self, size: tuple[int, int]) -> np.ndarray:
        """(height, width) bool mask of the zone for a frame of ``size`` = (width, height).

        Only the ``MASK_CACHE_SIZES`` most recently used sizes stay cached, so a stream whose
        picture size keeps changing does not pile up one full-frame mask per size.
        """
        return self._masks.get(size)

    def contains_points(self, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(n,) bool: which (n, 2) pixel points fall inside the zone."""
        w, h = size
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        x = np.clip(np.round(pts[:, 0]).astype(np.int64), 0, w - 1)
        y = np.clip(np.round(pts[:, 1]).astype(np.int64), 0, h - 1)
        return self.mask(size)[y, x]

    def contains(self, detections: sv.Detections, size: tuple[int, int]) -> np.ndarray:
        """(n,) bool: which detections have their ground point inside the zone."""
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        return self.contains_points(ground_points(detections.xyxy), size)


def build_zones(configs: Sequence[ZoneConfig]) -> list[Zone]:
    return [Zone(c) for c in configs]
