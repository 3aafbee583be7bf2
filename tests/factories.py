"""Builders for test inputs from plain lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import supervision as sv


def make_detections(
    xyxy: Sequence[Sequence[float]] = (),
    class_name: Sequence[str] | None = None,
    confidence: Sequence[float] | None = None,
    tracker_id: Sequence[int] | None = None,
) -> sv.Detections:
    n = len(xyxy)
    if n == 0:
        dets = sv.Detections.empty()
        dets.data["class_name"] = np.zeros(0, dtype=str)
        if tracker_id is not None:
            dets.tracker_id = np.zeros(0, dtype=np.int64)
        return dets
    names = list(class_name) if class_name is not None else ["person"] * n
    return sv.Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32),
        confidence=np.asarray(confidence if confidence is not None else [0.9] * n, dtype=np.float32),
        class_id=np.zeros(n, dtype=np.int64),
        tracker_id=None if tracker_id is None else np.asarray(tracker_id, dtype=np.int64),
        data={"class_name": np.asarray(names)},
    )
