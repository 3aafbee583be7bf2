"""Motion gating: run the model on a camera's frame only when something moved where a rule looks.

Most of a street camera's frames show nothing new: the same parked cars, an empty crossing.
Frigate fits many cameras onto small hardware by detecting only where there is motion; this is
the same idea, per camera, cheap enough to run on every sampled frame:

* the decoder's picture is scaled to a small grey image by swscale (``width`` pixels wide, no
  RGB conversion of the full frame), blurred a little against sensor noise and compression;
* it is compared with the small image of the **last inferred** frame: what changed since the
  model last looked, so slow change (a car creeping forward) adds up instead of hiding below a
  per-frame threshold;
* only pixels inside the camera's rule zones, grown by ``margin``, count (a tree moving outside
  every zone costs nothing); a camera without zones watches the whole frame;
* when more than ``min_changed`` of those pixels changed by more than ``threshold`` grey
  levels, the frame is inferred; otherwise it is **coasted**: the pipeline analyses it with the
  last inferred frame's detections (the tracker and the rules' clocks keep running, so a parked
  car's stay keeps counting), and
* at least every ``refresh_s`` a frame is inferred whatever the motion, so stationary objects
  are re-confirmed by the model.

The gate fails open: a picture it cannot scale is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MotionConfig", "MotionGate"]

Polygon = Sequence[tuple[float, float]]


class MotionConfig(BaseModel):
    """Per-camera motion gating (``motion:`` of a camera; off unless ``enabled``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Infer only frames with motion in a rule zone (plus a refresh every refresh_s).")
    refresh_s: float = Field(
        2.0, gt=0.0, le=60.0,
        description="Infer at least this often, motion or not: re-confirms stationary objects. Keep it below tracker.lost_track_s.",
    )
    threshold: int = Field(25, ge=1, le=255, description="Grey-level change (0-255) that counts a pixel as changed.")
    min_changed: float = Field(0.002, gt=0.0, le=1.0, description="Fraction of the watched pixels that must change.")
    width: int = Field(160, ge=32, le=640, description="Width of the small grey image motion is judged on.")
    margin: float = Field(0.05, ge=0.0, le=0.5, description="Rule zones grown by this fraction of the frame.")


class MotionGate:
    """Decides, frame by frame, whether a camera's frame goes to the model.

    Not thread-safe: one camera's frames are judged by one gathering thread at a time.

    Example:
        >>> gate = MotionGate(MotionConfig(enabled=True))
        >>> still = av.VideoFrame.from_ndarray(np.zeros((90, 160, 3), np.uint8), format="rgb24")
        >>> gate.should_infer(still, 0.0), gate.should_infer(still, 0.5)
        (True, False)
    """

    def __init__(self, config: MotionConfig, zones: Sequence[Polygon] = ()) -> None:
        self.config = config
        self._zones = [list(z) for z in zones]
        self._mask: np.ndarray | None = None  # watched pixels at the small size (None: all)
        self._size: tuple[int, int] | None = None
        self._reference: np.ndarray | None = None  # small grey image of the last inferred frame
        self._inferred_at: float | None = None

    def set_zones(self, zones: Sequence[Polygon]) -> None:
        """The camera's rule zones changed (a scene edit): watch the new ones from the next frame on."""
        self._zones = [list(z) for z in zones]
        self._mask = None
        self._size = None

    def should_infer(self, picture: av.VideoFrame, ts: float) -> bool:
        """True: run the model on this frame (and remember it as the reference); False: coast."""
        cfg = self.config
        try:
            small = self._small(picture)
        except (ValueError, av.FFmpegError):
            return True  # fail open
        due = self._inferred_at is None or ts - self._inferred_at >= cfg.refresh_s or ts < self._inferred_at
        if not due and self._reference is not None and self._reference.shape == small.shape:
            diff = cv2.absdiff(small, self._reference) > cfg.threshold
            mask = self._watched(small.shape)
            changed = np.count_nonzero(diff & mask) if mask is not None else np.count_nonzero(diff)
            total = np.count_nonzero(mask) if mask is not None else diff.size
            due = bool(total > 0 and changed >= cfg.min_changed * total)
        elif not due:
            due = True  # a new picture size (the camera changed its stream): look at it
        if due:
            self._reference, self._inferred_at = small, ts
        return due

    def _small(self, picture: av.VideoFrame) -> np.ndarray:
        w = self.config.width
        h = max(8, round(w * picture.height / max(1, picture.width)))
        grey = picture.reformat(width=w, height=h, format="gray").to_ndarray()
        return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), dtype=np.uint8)

    def _watched(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self._zones:
            return None
        h, w = int(shape[0]), int(shape[1])
        if self._mask is None or self._size != (w, h):
            mask = np.zeros((h, w), np.uint8)
            for zone in self._zones:
                pts = np.round(np.asarray(zone, dtype=np.float32) * np.array([w - 1, h - 1], dtype=np.float32)).astype(np.int32)
                cv2.fillPoly(mask, [pts], 1)
            grow = round(self.config.margin * max(w, h))
            grown = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) if grow > 0 else mask
            self._mask, self._size = np.asarray(grown, dtype=bool), (w, h)
        return self._mask
