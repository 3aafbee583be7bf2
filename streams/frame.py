"""The unit that flows from a stream reader into the batcher."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded, sampled frame of one camera.

    Attributes:
        camera_id: id of the camera (as in the config).
        seq: per-camera sequence number of the *published* frame, strictly increasing.
        ts: wall-clock time (``time.time()``) at which the frame was received and decoded.
        image: ``(H, W, 3) uint8`` **RGB** pixels, full source resolution.

    Example:
        >>> f = Frame("cam1", 1, 0.0, np.zeros((2, 2, 3), np.uint8))
        >>> f.height, f.width
        (2, 2)
    """

    camera_id: str
    seq: int
    ts: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
