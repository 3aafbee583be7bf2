"""The arrays of the detector contract, typed.

supervision declares ``confidence``, ``class_id`` and the ``data`` columns optional; a
:class:`~gridworker.models.base.Detector` always fills them. ``arrays`` checks that and hands
them out as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv


@dataclass(frozen=True)
class Arrays:
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_name: np.ndarray


def arrays(dets: sv.Detections) -> Arrays:
    names = dets.data.get("class_name")
    assert dets.confidence is not None, "detections without confidence"
    assert dets.class_id is not None, "detections without class_id"
    assert isinstance(names, np.ndarray), f"class_name is {type(names).__name__}, not an array"
    return Arrays(dets.xyxy, dets.confidence, dets.class_id, names)
