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
  are re-confirmed by the model;
* with ``crop``, a frame whose change lies in a small part of the frame is inferred **there
  only** (Frigate's motion regions): the gate hands out the changed part's bounding box
  (:meth:`MotionGate.crop_region`), the pipeline grows it to hold every object the model saw
  there last time and runs the model on that window at the whole frame's scale (fewer input
  pixels, same object sizes), and the objects outside it keep their last detections, as a
  coasted frame's do (``vision/motioncrop.py``). Only the window's part of the reference
  image is renewed, and the ``refresh_s`` clock is not reset: the full-frame refresh stays.

The gate fails open: a picture it cannot scale is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gridworker.models.tiling import Region, region_window

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
    crop: bool = Field(
        False,
        description="When the change lies in a small part of the frame, infer only that part (grown to hold the objects last "
        "seen there) at the whole frame's scale; the rest keeps its last detections. Needs a model with a dynamic input "
        "size (YOLO exported with dynamic axes); other models and tiled cameras infer the whole frame.",
    )
    crop_max_area: float = Field(0.5, gt=0.0, le=1.0, description="Crop only when the grown part covers at most this fraction of the frame.")
    crop_margin: float = Field(0.04, ge=0.0, le=0.5, description="The changed part grown by this fraction of the frame on each side.")
    crop_hold_s: float = Field(2.0, ge=0.0, le=60.0, description="The window also holds every object the model saw in this many seconds.")


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
        self._region: Region | None = None  # the changed part of the last frame judged (crop only)
        self._partial: tuple[np.ndarray, float] | None = None  # that frame's small image and time, while only its part is renewed
        self._picture_size: tuple[int, int] | None = None  # the last judged picture's (width, height)

    def set_zones(self, zones: Sequence[Polygon]) -> None:
        """The camera's rule zones changed (a scene edit): watch the new ones from the next frame on."""
        self._zones = [list(z) for z in zones]
        self._mask = None
        self._size = None

    def should_infer(self, picture: av.VideoFrame, ts: float) -> bool:
        """True: run the model on this frame (and remember it as the reference); False: coast.
        With ``crop``, :meth:`crop_region` then says which part of it changed."""
        cfg = self.config
        self._region = self._partial = None
        try:
            small = self._small(picture)
        except (ValueError, av.FFmpegError):
            return True  # fail open
        due = self._inferred_at is None or ts - self._inferred_at >= cfg.refresh_s or ts < self._inferred_at
        size, self._picture_size = self._picture_size, (picture.width, picture.height)
        due = due or size != self._picture_size  # a new picture size (one with the same aspect too): look at all of it
        if not due and self._reference is not None and self._reference.shape == small.shape:
            diff = cv2.absdiff(small, self._reference) > cfg.threshold
            mask = self._watched(small.shape)
            moved = diff & mask if mask is not None else diff
            total = np.count_nonzero(mask) if mask is not None else diff.size
            if not (total > 0 and np.count_nonzero(moved) >= cfg.min_changed * total):
                return False
            if cfg.crop:
                self._region = self._changed_part(moved)
            if self._region is not None:  # only the part the model will see is renewed; the refresh clock runs on
                x0, y0, x1, y1 = region_window(self._region, (small.shape[1], small.shape[0]))
                self._reference[y0:y1, x0:x1] = small[y0:y1, x0:x1]
                self._partial = (small, ts)
                return True
        # first frame, refresh due, a new picture size (the camera changed its stream), or motion
        # over the whole frame: the model looks at all of it
        self._reference, self._inferred_at = small, ts
        return True

    def crop_region(self) -> Region | None:
        """The changed part of the frame :meth:`should_infer` last let through (normalised
        x0, y0, x1, y1, grown by ``crop_margin``), or None: infer the whole frame (no ``crop``,
        first frame, refresh, or the change covers more than ``crop_max_area``)."""
        return self._region

    def saw_whole(self, ts: float) -> None:
        """The frame of time ``ts`` that :meth:`crop_region` handed a part of was inferred whole
        after all (its window grew too big, or the model cannot crop): the whole reference is
        renewed and the refresh clock starts again, as for a frame let through whole. Nothing
        happens for another frame (a camera replaced while its frame was in flight has a new gate)."""
        partial = self._partial
        if partial is not None and partial[1] == ts:
            (self._reference, self._inferred_at), self._partial = partial, None

    def _changed_part(self, moved: np.ndarray) -> Region | None:
        ys, xs = np.nonzero(moved)
        if not len(xs):
            return None
        h, w = moved.shape
        m = self.config.crop_margin
        x0, y0 = max(0.0, xs.min() / w - m), max(0.0, ys.min() / h - m)
        x1, y1 = min(1.0, (xs.max() + 1) / w + m), min(1.0, (ys.max() + 1) / h + m)
        if (x1 - x0) * (y1 - y0) > self.config.crop_max_area:
            return None
        return (x0, y0, x1, y1)

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
