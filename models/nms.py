"""Vectorised non-maximum suppression in numpy.

This module depends on numpy only, so the offline conversion tool
(``models/tools/convert_ssd_mobilenet_v2.py``) can load it without the rest of the
package and check the very code that runs in production against the TFLite reference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou_matrix", "nms"]


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two box sets.

    Args:
        a: (n, 4) boxes ``x1, y1, x2, y2`` (any units, any float dtype).
        b: (m, 4) boxes in the same units.

    Returns:
        (n, m) float32 IoU. A pair where either box has zero or negative area has IoU 0
        (the convention of TFLite's detection post-process).
    """
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    valid = (area_a[:, None] > 0) & (area_b[None, :] > 0) & (union > 0)
    iou = np.zeros(inter.shape, dtype=np.float32)
    np.divide(inter, union, out=iou, where=valid)
    return iou


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_det: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression, class-aware when ``class_ids`` is given.

    Boxes are visited in order of decreasing score (a stable sort, so ties keep input
    order); a box is kept unless an already kept box of the same class overlaps it with
    IoU strictly greater than ``iou_threshold``. The IoU matrix is computed once; the
    Python loop only runs over boxes that survive.

    Args:
        xyxy: (n, 4) boxes ``x1, y1, x2, y2``.
        scores: (n,) scores.
        iou_threshold: suppression threshold in [0, 1].
        class_ids: (n,) int class ids for class-aware NMS; ``None`` suppresses across
            classes (class-agnostic).
        max_det: stop after this many kept boxes; ``None`` for no limit.

    Returns:
        (k,) int64 indices into the inputs, highest score first.

    Example:
        >>> keep = nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10]]), np.array([0.9, 0.8]), 0.5)
        >>> keep.tolist()
        [0]
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    n = scores.shape[0]
    if boxes.shape[0] != n:
        raise ValueError(f"xyxy has {boxes.shape[0]} boxes but scores has {n} entries")
    classes = None if class_ids is None else np.asarray(class_ids).reshape(-1)
    if classes is not None and classes.shape[0] != n:
        raise ValueError(f"class_ids has {classes.shape[0]} entries but scores has {n}")
    if n == 0 or max_det == 0:
        return np.zeros((0,), dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    overlaps = box_iou_matrix(boxes, boxes) > iou_threshold
    if classes is not None:
        classes = classes[order]
        overlaps &= classes[:, None] == classes[None, :]
    limit = n if max_det is None else min(n, max_det)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    i = 0
    while i < n and len(keep) < limit:
        keep.append(i)
        suppressed |= overlaps[i]
        suppressed[: i + 1] = True
        remaining = np.flatnonzero(~suppressed[i + 1 :])
        if remaining.size == 0:
            break
        i = i + 1 + int(remaining[0])
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)
