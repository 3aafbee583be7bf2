"""The units that flow from a stream reader into the batcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded, sampled frame of one camera.

    Attributes:
        camera_id: id of the camera (as in the config).
        seq: per-camera sequence number of the *published* frame, strictly increasing.
        ts: wall-clock time (``time.time()``) at which the frame was received and decoded.
        image: ``(H, W, 3) uint8`` **RGB** pixels, full source resolution.
        region: the part of the frame the model looks at (normalised x0, y0, x1, y1; the
            motion gate's crop, ``vision/motioncrop.py``); None: the whole frame.

    Example:
        >>> f = Frame("cam1", 1, 0.0, np.zeros((2, 2, 3), np.uint8))
        >>> f.height, f.width
        (2, 2)
    """

    camera_id: str
    seq: int
    ts: float
    image: np.ndarray
    region: tuple[float, float, float, float] | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def rgb_image(picture: av.VideoFrame) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB pixels of a decoded picture, read-only (every consumer of the
    frame shares them). One swscale thread: the consuming thread does the work, extra
    threads only contend with the decoders (~0.5 ms for 1280x960 here)."""
    image: np.ndarray = picture.to_ndarray(format="rgb24", threads=1)
    image.flags.writeable = False
    return image


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A frame a reader published, its pixels still in the decoder's picture.

    The reader pushes it to its :data:`FrameListener` (the pipeline's batcher); whoever takes
    it converts the picture to RGB, once, and only if it is analysed: a frame replaced by a
    newer one before a batch takes it is never converted.

    Attributes:
        camera_id: id of the camera.
        seq: per-camera sequence number, strictly increasing.
        ts: wall-clock time at which it was received and decoded.
        picture: the decoded PyAV frame (any pixel format).
    """

    camera_id: str
    seq: int
    ts: float
    picture: av.VideoFrame


#: Told of every frame a reader publishes, from the reader's thread, outside its lock.
#: Returns True when the frame replaced one the listener had not taken yet (the reader
#: counts that as dropped).
FrameListener = Callable[[DecodedFrame], bool]
