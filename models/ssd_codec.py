"""SSD box coding and anchors, in numpy only.

Like :mod:`.nms`, this module imports nothing but numpy (and ``.nms``), so the offline
conversion tool can load it without the rest of the package and prove that these functions reproduce TFLite's own
``TFLite_Detection_PostProcess`` output.

Conventions:
    * anchors: (A, 4) float32 ``ycenter, xcenter, height, width``, normalised to [0, 1]
      (the layout TFLite's post-process op takes);
    * box encodings: (..., A, 4) float32 ``ty, tx, th, tw`` as the SSD box predictor emits;
    * decoded boxes: (..., A, 4) float32 ``x1, y1, x2, y2`` normalised to the model input.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .nms import nms

__all__ = [
    "BoxCoderScales",
    "best_class",
    "decode_boxes",
    "generate_ssd_anchors",
    "select_detections",
]


class BoxCoderScales(NamedTuple):
    """Divisors of the Faster R-CNN box coder (``y_scale, x_scale, h_scale, w_scale``)."""

    y: float = 10.0
    x: float = 10.0
    h: float = 5.0
    w: float = 5.0


def decode_boxes(
    encodings: np.ndarray, anchors: np.ndarray, scales: BoxCoderScales = BoxCoderScales()
) -> np.ndarray:
    """Turn raw box encodings into corner boxes, for a whole batch at once.

    Args:
        encodings: (..., A, 4) float32 ``ty, tx, th, tw``.
        anchors: (A, 4) float32 ``ycenter, xcenter, h, w`` (normalised).
        scales: the box coder's divisors.

    Returns:
        (..., A, 4) float32 ``x1, y1, x2, y2`` normalised to the model input (not clipped).
    """
    enc = np.asarray(encodings, dtype=np.float32)
    anc = np.asarray(anchors, dtype=np.float32)
    ya, xa, ha, wa = anc[:, 0], anc[:, 1], anc[:, 2], anc[:, 3]
    yc = enc[..., 0] / np.float32(scales.y) * ha + ya
    xc = enc[..., 1] / np.float32(scales.x) * wa + xa
    half_h = np.exp(enc[..., 2] / np.float32(scales.h)) * ha * np.float32(0.5)
    half_w = np.exp(enc[..., 3] / np.float32(scales.w)) * wa * np.float32(0.5)
    return np.stack([xc - half_w, yc - half_h, xc + half_w, yc + half_h], axis=-1)


def best_class(scores: np.ndarray, label_offset: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Best non-background class of every anchor.

    Args:
        scores: (..., A, C) float32 class scores; the first ``label_offset`` columns are
            background and ignored.
        label_offset: number of leading background columns.

    Returns:
        ``(score, class_id)``: (..., A) float32 and (..., A) int64, where ``class_id`` is
        the column index minus ``label_offset`` (ties go to the lowest id).
    """
    real = np.asarray(scores, dtype=np.float32)[..., label_offset:]
    class_id = np.argmax(real, axis=-1)
    score = np.take_along_axis(real, class_id[..., None], axis=-1)[..., 0]
    return score, class_id.astype(np.int64)


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    confidence: float,
    iou: float,
    max_det: int,
    class_agnostic: bool = False,
    max_candidates: int | None = None,
) -> np.ndarray:
    """Indices of one image's detections after the score threshold and NMS.

    Args:
        boxes: (A, 4) float32 ``x1, y1, x2, y2``.
        scores: (A,) float32 best-class score per anchor.
        class_ids: (A,) int class per anchor.
        confidence: keep anchors with ``score >= confidence``.
        iou: NMS IoU threshold (a box is dropped when IoU > ``iou``).
        max_det: most detections returned.
        class_agnostic: suppress across classes (TFLite's "fast NMS") instead of per class.
        max_candidates: keep only this many best-scoring anchors before NMS (``None``: all).

    Returns:
        (k,) int64 indices into the anchors, highest score first.
    """
    candidates = np.flatnonzero(scores >= confidence)
    if max_candidates is not None and candidates.size > max_candidates:
        top = np.argpartition(-scores[candidates], max_candidates - 1)[:max_candidates]
        candidates = np.sort(candidates[top])
    keep = nms(
        boxes[candidates],
        scores[candidates],
        iou,
        class_ids=None if class_agnostic else class_ids[candidates],
        max_det=max_det,
    )
    selected: np.ndarray = candidates[keep]
    return selected


def generate_ssd_anchors(
    feature_map_sizes: tuple[int, ...] = (19, 10, 5, 3, 2, 1),
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    lowest_layer_scale: float = 0.1,
) -> np.ndarray:
    """Anchors of the TF Object Detection API's ``ssd_anchor_generator``.

    Uses the settings of the stock ``ssd_mobilenet_v2_coco`` pipeline: the lowest layer
    has three boxes (``lowest_layer_scale`` at ratio 1, then ``min_scale`` at ratios 2 and
    1/2); every other layer has one box per aspect ratio plus one of ratio 1 at the
    geometric mean of its scale and the next layer's (1.0 after the last).

    Returns:
        (A, 4) float32 ``ycenter, xcenter, h, w``; 1917 anchors with the defaults.
    """
    layers = len(feature_map_sizes)
    layer_scales = [
        min_scale + (max_scale - min_scale) * i / (layers - 1) for i in range(layers)
    ] + [1.0]
    per_layer: list[np.ndarray] = []
    for i, size in enumerate(feature_map_sizes):
        if i == 0:
            specs = [(lowest_layer_scale, 1.0), (layer_scales[0], 2.0), (layer_scales[0], 0.5)]
        else:
            specs = [(layer_scales[i], ratio) for ratio in aspect_ratios]
            specs.append((math.sqrt(layer_scales[i] * layer_scales[i + 1]), 1.0))
        spec = np.asarray(specs, dtype=np.float64)
        heights = spec[:, 0] / np.sqrt(spec[:, 1])
        widths = spec[:, 0] * np.sqrt(spec[:, 1])
        centres = (np.arange(size, dtype=np.float64) + 0.5) / size
        yc, xc = np.meshgrid(centres, centres, indexing="ij")
        k = len(specs)
        layer = np.empty((size, size, k, 4), dtype=np.float64)
        layer[..., 0] = yc[:, :, None]
        layer[..., 1] = xc[:, :, None]
        layer[..., 2] = heights
        layer[..., 3] = widths
        per_layer.append(layer.reshape(-1, 4))
    return np.concatenate(per_layer).astype(np.float32)
