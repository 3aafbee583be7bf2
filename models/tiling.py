"""Tiled detection: small, far objects found by running the model on overlapping crops; and
region crops: the model sees only the part of the frame where the camera's rules look.

A detector with a fixed small input (SSD-MobileNet's 300x300) shrinks a 640x360 street
view until a parked car on the far kerb is ~30 px: below what the model finds. Cutting the
frame into overlapping tiles gives each object more input pixels, at the cost of one model
run per tile. Tiles of all frames of a batch go through the detector as one batch; boxes
are shifted back, and duplicates from overlaps (and from the optional whole-frame pass)
are merged with class-aware NMS on intersection-over-smaller, so a box cut by a tile edge
does not survive beside the whole object's box.

A **region** (``detect_region:`` on a camera, computed from its rule zones, or a fixed
``rect``) cuts the frame to the part the rules look at before anything else; tiles then cut
that region. Boxes come back
in the whole frame's pixels either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import subset
from .config import MAX_CLASS_NAME, MAX_FILTER_CLASSES


#: Vehicle classes a COCO detector gives one object by turns (a van is "car" in one tile or
#: minute and "truck" in the next): one class for the tiles' merge and for a parked vehicle
#: found again (vision/rules/stays.py).
CONFUSED_VEHICLES: tuple[str, ...] = ("car", "truck", "bus")

class TileConfig(BaseModel):
    """How to cut a camera's frames for detection (``detect_tiles:`` on a camera).

    Example:
        >>> TileConfig(rows=2, cols=2).count
        5
    """

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(2, ge=1, le=4)
    cols: int = Field(2, ge=1, le=4)
    overlap: float = Field(0.15, ge=0.0, le=0.5, description="Overlap of neighbouring tiles, as a fraction of a tile.")
    full_frame: bool = Field(True, description="Also run the whole frame (large, near objects that span tiles).")
    merge_threshold: float = Field(
        0.6, gt=0.0, le=1.0, description="Boxes of one class overlapping by more than this (intersection over the smaller) merge."
    )
    merge_classes: list[list[Annotated[str, Field(min_length=1, max_length=MAX_CLASS_NAME)]]] = Field(
        default_factory=lambda: [list(CONFUSED_VEHICLES)],
        description="Classes a model confuses on one object (a van as car in one tile, truck in another): merged as one class.",
    )

    @field_validator("merge_classes")
    @classmethod
    def _bounded(cls, groups: list[list[str]]) -> list[list[str]]:
        if sum(len(g) for g in groups) > MAX_FILTER_CLASSES:
            raise ValueError(f"merge_classes lists more than {MAX_FILTER_CLASSES} class names in all")
        return groups

    @property
    def count(self) -> int:
        """Model runs per frame."""
        return self.rows * self.cols + (1 if self.full_frame else 0)


#: A detection region: (x0, y0, x1, y1), normalised 0-1 of the frame.
Region = tuple[float, float, float, float]


class RegionConfig(BaseModel):
    """Detect only where the rules look (``detect_region:`` on a camera; off unless ``enabled``;
    measured in docs/rules-field.md, "Zone crops").

    The region is the bounding box of the camera's rule zones and counting lines, grown by
    ``margin`` and clamped to the frame; it is used only when it covers at most ``max_area``
    of the frame (a region almost as big as the frame saves nothing). ``rect`` replaces that
    box with a fixed one (no margin, no ``max_area``): a window the operator picked.

    Example:
        >>> RegionConfig(enabled=True, margin=0.0).region([(0.1, 0.6), (0.9, 0.9)])
        (0.1, 0.6, 0.9, 0.9)
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Crop each frame to the rules' region before detection.")
    margin: float = Field(0.08, ge=0.0, le=0.5, description="Grow the zones' bounding box by this fraction of the frame.")
    max_area: float = Field(0.7, gt=0.0, le=1.0, description="Crop only when the region covers at most this fraction of the frame.")
    rect: tuple[float, float, float, float] | None = Field(
        None,
        description="A fixed region (x0, y0, x1, y1), normalised 0-1 of the frame, used instead of the zones' "
        "bounding box (margin and max_area do not apply). Needs enabled.",
    )

    @model_validator(mode="after")
    def _check_rect(self) -> RegionConfig:
        if self.rect is None:
            return self
        x0, y0, x1, y1 = self.rect
        if not all(0.0 <= v <= 1.0 for v in self.rect):
            raise ValueError(f"detect_region.rect {list(self.rect)}: every value must lie in 0..1 (fractions of the frame)")
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"detect_region.rect {list(self.rect)}: must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if not self.enabled:
            raise ValueError("detect_region.rect is set but enabled is false: set enabled: true to crop to it, or remove rect")
        return self

    def region(self, points: Sequence[tuple[float, float]]) -> Region | None:
        """The crop for rules whose zones and lines have these normalised vertices, or None (the whole frame)."""
        if not self.enabled:
            return None
        if self.rect is not None:
            return self.rect
        if not points:
            return None
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, y0 = max(0.0, min(xs) - self.margin), max(0.0, min(ys) - self.margin)
        x1, y1 = min(1.0, max(xs) + self.margin), min(1.0, max(ys) + self.margin)
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > self.max_area:
            return None
        return (x0, y0, x1, y1)


def region_window(region: Region, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region's (x0, y0, x1, y1) pixel window in a frame of ``size`` = (width, height)."""
    w, h = size
    x0, y0 = int(np.floor(region[0] * w)), int(np.floor(region[1] * h))
    x1, y1 = int(np.ceil(region[2] * w)), int(np.ceil(region[3] * h))
    return max(0, x0), max(0, y0), min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))


class _Detector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def tile_windows(size: tuple[int, int], config: TileConfig) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) pixel windows covering a frame of ``size`` = (width, height)."""
    w, h = size
    tw = w / (config.cols - (config.cols - 1) * config.overlap)
    th = h / (config.rows - (config.rows - 1) * config.overlap)
    windows = []
    for r in range(config.rows):
        for c in range(config.cols):
            x0 = round(c * tw * (1 - config.overlap))
            y0 = round(r * th * (1 - config.overlap))
            windows.append((x0, y0, min(w, round(x0 + tw)), min(h, round(y0 + th))))
    return windows


def detect_tiled(
    detector: _Detector,
    images: Sequence[np.ndarray],
    tiles: Sequence[TileConfig | None],
    regions: Sequence[Region | None] | None = None,
) -> list[sv.Detections]:
    """Detect on ``images``; an image whose ``regions`` entry is set is cut to that region
    first, one whose ``tiles`` entry is set is detected tile by tile (within its region).

    All crops of the call go to ``detector.detect`` at once (it batches them); boxes come
    back in each whole image's pixels. Images with neither are passed through untouched, so
    a call without any is exactly ``detector.detect(images)``.
    """
    areas = list(regions) if regions is not None else [None] * len(images)
    if all(t is None for t in tiles) and all(r is None for r in areas):
        return detector.detect(images)
    crops: list[np.ndarray] = []
    plan: list[list[tuple[int, int, int]]] = []  # per image: (crop index, dx, dy)
    for image, tiling, region in zip(images, tiles, areas, strict=True):
        ox = oy = 0
        if region is not None:
            ox, oy, x1, y1 = region_window(region, (image.shape[1], image.shape[0]))
            image = image[oy:y1, ox:x1]
        parts: list[tuple[int, int, int]] = []
        if tiling is None or tiling.full_frame:
            parts.append((len(crops), ox, oy))
            crops.append(image)
        if tiling is not None:
            h, w = image.shape[:2]
            for x0, y0, x1, y1 in tile_windows((w, h), tiling):
                parts.append((len(crops), ox + x0, oy + y0))
                crops.append(image[y0:y1, x0:x1])
        plan.append(parts)
    found = detector.detect(crops)
    out: list[sv.Detections] = []
    for parts, tiling in zip(plan, tiles, strict=True):
        shifted = [_shifted(found[index], dx, dy) for index, dx, dy in parts]
        if tiling is None:
            out.append(shifted[0])
            continue
        merged = sv.Detections.merge([d for d in shifted if len(d)]) if any(len(d) for d in shifted) else shifted[0]
        out.append(_merge(merged, tiling) if len(merged) else merged)
    return out


def _shifted(detections: sv.Detections, dx: int, dy: int) -> sv.Detections:
    """A copy moved by (dx, dy) pixels (the detector's own arrays are never touched)."""
    if not len(detections) or (dx == 0 and dy == 0):
        return detections
    moved = subset(detections, np.ones(len(detections), dtype=bool))
    moved.xyxy = moved.xyxy + np.array([dx, dy, dx, dy], dtype=moved.xyxy.dtype)
    return moved


def _merge(detections: sv.Detections, tiling: TileConfig) -> sv.Detections:
    """Class-aware NMS on intersection-over-smaller, with ``merge_classes`` groups as one class."""
    names = detections.data.get("class_name")
    groups = np.asarray(detections.class_id if detections.class_id is not None else np.zeros(len(detections)), dtype=np.float64)
    if names is not None:
        groups = groups + 1000.0  # model class ids stay clear of the group ids below
        for g, members in enumerate(tiling.merge_classes):
            groups[np.isin(np.asarray(names), members)] = float(g)
    conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    # on equal scores the bigger box wins: the whole object over a piece cut by a tile edge
    area = (detections.xyxy[:, 2] - detections.xyxy[:, 0]) * (detections.xyxy[:, 3] - detections.xyxy[:, 1])
    rank = conf.astype(np.float64) + 1e-9 * area / max(float(area.max()), 1.0)
    predictions = np.column_stack([detections.xyxy, rank, groups])
    keep = sv.box_non_max_suppression(predictions, iou_threshold=tiling.merge_threshold, overlap_metric=sv.OverlapMetric.IOS)
    return subset(detections, keep)
