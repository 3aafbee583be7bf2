"""Tiled detection: small, far objects found by running the model on overlapping crops.

A detector with a fixed small input (SSD-MobileNet's 300x300) shrinks a 640x360 street
view until a parked car on the far kerb is ~30 px: below what the model finds. Cutting the
frame into overlapping tiles gives each object more input pixels, at the cost of one model
run per tile. Tiles of all frames of a batch go through the detector as one batch; boxes
are shifted back, and duplicates from overlaps (and from the optional whole-frame pass)
are merged with class-aware NMS on intersection-over-smaller, so a box cut by a tile edge
does not survive beside the whole object's box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from .base import subset


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
    merge_classes: list[list[str]] = Field(
        default_factory=lambda: [["car", "truck", "bus"]],
        description="Classes a model confuses on one object (a van as car in one tile, truck in another): merged as one class.",
    )

    @property
    def count(self) -> int:
        """Model runs per frame."""
        return self.rows * self.cols + (1 if self.full_frame else 0)


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


def detect_tiled(detector: _Detector, images: Sequence[np.ndarray], tiles: Sequence[TileConfig | None]) -> list[sv.Detections]:
    """Detect on ``images``; an image whose ``tiles`` entry is set is detected tile by tile.

    All crops of the call go to ``detector.detect`` at once (it batches them). Images with
    no tiling are passed through untouched, so a call without any tiling is exactly
    ``detector.detect(images)``.
    """
    if all(t is None for t in tiles):
        return detector.detect(images)
    crops: list[np.ndarray] = []
    plan: list[list[tuple[int, int, int]]] = []  # per image: (crop index, dx, dy)
    for image, tiling in zip(images, tiles, strict=True):
        parts: list[tuple[int, int, int]] = []
        if tiling is None or tiling.full_frame:
            parts.append((len(crops), 0, 0))
            crops.append(image)
        if tiling is not None:
            h, w = image.shape[:2]
            for x0, y0, x1, y1 in tile_windows((w, h), tiling):
                parts.append((len(crops), x0, y0))
                crops.append(image[y0:y1, x0:x1])
        plan.append(parts)
    found = detector.detect(crops)
    out: list[sv.Detections] = []
    for parts, tiling in zip(plan, tiles, strict=True):
        if tiling is None:
            out.append(found[parts[0][0]])
            continue
        shifted = []
        for index, dx, dy in parts:
            d = found[index]
            if len(d):
                d = subset(d, np.ones(len(d), dtype=bool))  # a copy: the offset must not touch the detector's arrays
                d.xyxy = d.xyxy + np.array([dx, dy, dx, dy], dtype=d.xyxy.dtype)
            shifted.append(d)
        merged = sv.Detections.merge([d for d in shifted if len(d)]) if any(len(d) for d in shifted) else found[parts[0][0]]
        out.append(_merge(merged, tiling) if len(merged) else merged)
    return out


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
