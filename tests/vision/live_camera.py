"""A stand-in for a reader's push side: what ``CameraStream.on_frame`` does with the batcher."""

from __future__ import annotations

import time

import av
import numpy as np

from gridworker.streams.frame import DecodedFrame
from gridworker.vision.batcher import Batcher

_PICTURE = av.VideoFrame.from_ndarray(np.zeros((2, 2, 3), np.uint8), format="rgb24")


class LiveCamera:
    """Attached to ``batcher``; :meth:`publish` offers its next frame, as a reader does."""

    def __init__(self, batcher: Batcher, camera_id: str) -> None:
        self.batcher, self.camera_id, self.seq, self.dropped = batcher, camera_id, 0, 0
        batcher.attach(camera_id)

    def publish(self) -> None:
        self.seq += 1
        if self.batcher.offer(DecodedFrame(self.camera_id, self.seq, time.time(), _PICTURE)):
            self.dropped += 1


def live_cameras(batcher: Batcher, n: int, *, prefix: str = "c", publish: bool = True) -> list[LiveCamera]:
    cams = [LiveCamera(batcher, f"{prefix}{i}") for i in range(n)]
    if publish:
        for cam in cams:
            cam.publish()
    return cams
