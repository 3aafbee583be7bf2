from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from typing import Any

import numpy as np
import pytest

from gridworker.models.nms import box_iou_matrix, nms

A = [0, 0, 10, 10]
A_SHIFTED = [1, 0, 11, 10]  # IoU with A: 90 / 110 = 0.818
A_HALF = [5, 0, 15, 10]  # IoU with A: 50 / 150 = 0.333
FAR = [100, 100, 110, 110]
DEGENERATE = [5, 5, 5, 9]  # zero area


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([A], [A], [[1.0]]),
        ([A], [A_SHIFTED], [[90 / 110]]),
        ([A], [A_HALF], [[50 / 150]]),
        ([A], [FAR], [[0.0]]),
        ([A], [DEGENERATE], [[0.0]]),
        ([A, FAR], [A_HALF, FAR, A], [[50 / 150, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        (np.zeros((0, 4)), [A], np.zeros((0, 1))),
        ([A], np.zeros((0, 4)), np.zeros((1, 0))),
    ],
)
def test_box_iou_matrix(a: Any, b: Any, expected: Any) -> None:
    iou = box_iou_matrix(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32))
    assert iou.dtype == np.float32
    np.testing.assert_allclose(iou, np.asarray(expected, dtype=np.float32), atol=1e-6)


@pytest.mark.parametrize(
    ("boxes", "scores", "iou", "class_ids", "max_det", "expected", "exception"),
    [
        # empty input
        (np.zeros((0, 4)), [], 0.5, None, None, [], does_not_raise()),
        (np.zeros((0, 4)), [], 0.5, [], 10, [], does_not_raise()),
        # one box
        ([A], [0.5], 0.5, None, None, [0], does_not_raise()),
        # overlapping pair: the better one survives, whatever the input order
        ([A, A_SHIFTED], [0.9, 0.8], 0.5, None, None, [0], does_not_raise()),
        ([A, A_SHIFTED], [0.8, 0.9], 0.5, None, None, [1], does_not_raise()),
        # overlap below the threshold: both kept, best first
        ([A, A_HALF], [0.6, 0.9], 0.5, None, None, [1, 0], does_not_raise()),
        # IoU exactly at the threshold is kept (suppression needs IoU > threshold)
        ([A, [0, 0, 10, 5]], [0.9, 0.8], 0.5, None, None, [0, 1], does_not_raise()),
        # class-aware: different classes never suppress each other
        ([A, A_SHIFTED], [0.9, 0.8], 0.5, [0, 1], None, [0, 1], does_not_raise()),
        ([A, A_SHIFTED], [0.9, 0.8], 0.5, [3, 3], None, [0], does_not_raise()),
        # a suppressed box does not suppress others (greedy)
        ([A, A_SHIFTED, [2, 0, 12, 10]], [0.9, 0.8, 0.7], 0.75, None, None, [0, 2], does_not_raise()),
        # ties keep input order
        ([A, FAR, [200, 200, 210, 210]], [0.5, 0.5, 0.5], 0.5, None, None, [0, 1, 2], does_not_raise()),
        # max_det
        ([A, FAR, A_HALF], [0.9, 0.8, 0.7], 0.5, None, 2, [0, 1], does_not_raise()),
        ([A, FAR], [0.9, 0.8], 0.5, None, 0, [], does_not_raise()),
        # zero-area boxes have IoU 0 with everything, so they are never suppressed
        ([A, DEGENERATE], [0.9, 0.8], 0.1, None, None, [0, 1], does_not_raise()),
        # mismatched lengths
        ([A, FAR], [0.9], 0.5, None, None, None, pytest.raises(ValueError, match="scores")),
        ([A, FAR], [0.9, 0.8], 0.5, [1], None, None, pytest.raises(ValueError, match="class_ids")),
    ],
)
def test_nms(
    boxes: Any, scores: Any, iou: float, class_ids: Any, max_det: int | None, expected: Any, exception: Any
) -> None:
    with exception:
        keep = nms(
            np.asarray(boxes, dtype=np.float32),
            np.asarray(scores, dtype=np.float32),
            iou,
            class_ids=None if class_ids is None else np.asarray(class_ids),
            max_det=max_det,
        )
        assert keep.dtype == np.int64
        assert keep.tolist() == expected


def test_nms_many_boxes_matches_bruteforce() -> None:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 200, size=(300, 2)).astype(np.float32)
    wh = rng.uniform(5, 60, size=(300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(size=300).astype(np.float32)
    classes = rng.integers(0, 3, size=300)

    keep = nms(boxes, scores, 0.45, class_ids=classes)

    expected: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        same = [k for k in expected if classes[k] == classes[i]]
        if not same or box_iou_matrix(boxes[[i]], boxes[same]).max() <= 0.45:
            expected.append(int(i))
    assert keep.tolist() == expected
