"""The detector seam: images in, ``supervision.Detections`` out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import supervision as sv


@runtime_checkable
class Detector(Protocol):
    """An object detector that runs a whole batch at once.

    ``detect`` takes ``(H, W, 3) uint8 RGB`` images (sizes may differ within a batch) and
    returns one ``sv.Detections`` per image with ``xyxy`` (n, 4) float32 in that image's
    pixels, ``confidence`` (n,) float32, ``class_id`` (n,) int and
    ``data["class_name"]`` (n,) str. Nothing downstream knows the tensor layout.
    """

    @property
    def class_names(self) -> list[str]: ...

    @property
    def max_batch(self) -> int: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def subset(detections: sv.Detections, index: np.ndarray | slice) -> sv.Detections:
    """``detections[index]`` for a boolean mask, an index array or a slice, typed as Detections.

    supervision types ``Detections.__getitem__`` for string keys too (which return the
    ``data`` column); a mask, indices or a slice always give ``sv.Detections``.
    """
    picked = detections[index]
    if not isinstance(picked, sv.Detections):  # only a str key returns something else
        raise TypeError(f"indexing Detections with {type(index).__name__} gave {type(picked).__name__}")
    return picked
