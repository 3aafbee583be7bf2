"""Motion crops: run the model only on the part of a frame that changed (``motion.crop``).

Frigate keeps small hardware ahead of many cameras by detecting in the regions where motion
is, not on whole frames. Here the camera's motion gate (``vision/motion.py``) hands out the
bounding box of what changed since the model last looked; this module turns it into a
detection window and puts the frame's detections back together:

* :func:`plan_crop` grows the changed part until it holds, whole, every object the model saw
  in the last ``crop_hold_s`` (:class:`SeenBoxes`): each is looked at again, so one that
  moves too slowly or too faintly for the motion mask, or that the model misses on one
  frame, is not left behind; a car that starts to move is looked at entirely, not cut at the
  window's edge. Then each side to a whole number of model strides at the **whole
  frame's scale**, and picks the input size that keeps that scale: a window a third of the
  frame wide is inferred at a third of ``imgsz``, unpadded, so objects keep the size the
  model sees them at on full frames and the model's cost falls with the pixels (a strip as
  wide as the frame keeps ``imgsz`` and loses height). A window that grows past ``max_area`` of the frame gives None: the whole
  frame is inferred.
* :func:`merge_outside` keeps the last detections of the objects outside the window (nothing
  moved there: they stand where the model last saw them, as on a coasted frame) beside the
  window's fresh ones.

Only models with a dynamic input size benefit (YOLO exported with dynamic axes): a fixed
300x300 model costs the same on any window, so the pipeline infers whole frames for those,
and for cameras with tiles or a ``detect_region`` (their windows have their own scale).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import supervision as sv

from gridworker.models.base import Detector, subset
from gridworker.models.tiling import Region, region_window
from gridworker.streams.redact import get_logger

__all__ = ["CropModels", "CropPlan", "SeenBoxes", "merge_outside", "plan_crop"]

log = get_logger(__name__)

#: The smallest model input a window is inferred at (long side, pixels): below it the
#: model's receptive field sees mostly padding.
MIN_CROP_IMGSZ = 128


@dataclass(frozen=True, slots=True)
class CropPlan:
    """Where and how big to infer a frame: ``region`` (normalised x0, y0, x1, y1) at model
    input size ``imgsz`` (long side)."""

    region: Region
    imgsz: int


def plan_crop(
    changed: Region,
    boxes: np.ndarray,
    size: tuple[int, int],
    imgsz: int,
    *,
    max_area: float,
    stride: int = 32,
) -> CropPlan | None:
    """The window to infer for a frame whose ``changed`` part moved, or None (the whole frame).

    Args:
        changed: the changed part (normalised), from ``MotionGate.crop_region``.
        boxes: ``(N, 4)`` xyxy pixel boxes of the objects the model saw lately (:class:`SeenBoxes`):
            the window holds them all.
        size: the frame's (width, height) in pixels.
        imgsz: the model's input size for the whole frame (long side).
        max_area: the grown window may cover at most this fraction of the frame.
        stride: the model's stride; the input size is a multiple of it.

    Example:
        >>> plan = plan_crop((0.1, 0.1, 0.3, 0.3), np.zeros((0, 4)), (1280, 720), 640, max_area=0.5)
        >>> plan.imgsz, [round(v * s) for v, s in zip(plan.region, (1280, 720, 1280, 720))]
        (128, [128, 48, 384, 240])
    """
    w, h = size
    x0, y0, x1, y1 = (float(v) for v in region_window(changed, size))
    held = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(held):  # every object the model knows is looked at again (it may have moved, or gone)
        x0, y0 = min(x0, float(held[:, 0].min())), min(y0, float(held[:, 1].min()))
        x1, y1 = max(x1, float(held[:, 2].max())), max(y1, float(held[:, 3].max()))
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
    if x1 <= x0 or y1 <= y0:
        return None
    # each side grown to a whole number of strides at the whole frame's scale: the window is
    # then letterboxed at exactly that scale, with no padding (as the frame would be seen)
    scale = imgsz / max(w, h)
    x0, x1 = _fit(x0, x1, float(w), stride / scale, 0.0)
    y0, y1 = _fit(y0, y1, float(h), stride / scale, 0.0)
    least = MIN_CROP_IMGSZ / scale  # the long side after fitting: at least the smallest input
    if x1 - x0 >= y1 - y0:
        x0, x1 = _fit(x0, x1, float(w), stride / scale, least)
    else:
        y0, y1 = _fit(y0, y1, float(h), stride / scale, least)
    if (x1 - x0) * (y1 - y0) > max_area * w * h or (x1 - x0 >= w and y1 - y0 >= h):
        return None
    crop_imgsz = min(imgsz, stride * math.ceil(round(max(x1 - x0, y1 - y0) * scale, 6) / stride))
    region = (x0 / w, y0 / h, x1 / w, y1 / h)
    return CropPlan(region, crop_imgsz)


def _fit(lo: float, hi: float, extent: float, step: float, least: float) -> tuple[float, float]:
    """``lo..hi`` grown about its middle to a whole number of ``step`` (and at least ``least``),
    shifted back inside ``0..extent`` (all of it when it does not fit)."""
    want = max(least, step * math.ceil(round((hi - lo) / step, 6)))
    if want >= extent:
        return 0.0, extent
    lo = max(0.0, (lo + hi - want) / 2)
    hi = lo + want
    if hi > extent:
        lo, hi = extent - want, extent
    return lo, hi


def merge_outside(last: sv.Detections, fresh: sv.Detections, region: Region, size: tuple[int, int]) -> sv.Detections:
    """``fresh`` (the window's detections) with the ``last`` detections lying wholly outside
    the window: the frame's detections as if the whole of it had been inferred. (The window is
    planned to hold every last box, so this keeps none unless the camera's last detections
    changed between planning and now; a box across the window's edge is never kept beside
    the window's own, cut, sighting of it.)"""
    if not len(last):
        return fresh
    x0, y0, x1, y1 = region_window(region, size)
    b = last.xyxy
    outside = (b[:, 2] <= x0) | (b[:, 0] >= x1) | (b[:, 3] <= y0) | (b[:, 1] >= y1)
    if not outside.any():
        return fresh
    kept = subset(last, outside)
    if not len(fresh):
        return kept
    return sv.Detections.merge([fresh, kept])


@runtime_checkable
class _Croppable(Protocol):
    """A detector that can run a window at the whole frame's scale (YOLO, dynamic input)."""

    @property
    def input_size(self) -> tuple[int, int]: ...

    @property
    def stride(self) -> int: ...

    def with_imgsz(self, imgsz: int) -> Detector: ...


class CropModels:
    """Plans a camera's motion crop and keeps each model at the crop sizes it runs at.

    A model at a crop size shares the model's session (``with_imgsz``, which runs the size
    once); sizes are multiples of the stride up to the camera's input size, so a model has at
    most ``imgsz / stride`` of them. A model that cannot change its input size is remembered
    and its cameras infer whole frames. Thread-safe.

    Example:
        >>> crops = CropModels()
        >>> crops.plan("ssd", object(), None, (0.1, 0.1, 0.2, 0.2), np.zeros((0, 4)), (640, 360), max_area=0.5) is None
        True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _made; a size is made under it (once)
        self._made: dict[tuple[str, int], Detector] = {}
        self._refused: set[str] = set()  # models that cannot infer at another size

    def plan(
        self,
        model_id: str,
        model: object,
        imgsz: int | None,
        changed: Region,
        boxes: np.ndarray,
        size: tuple[int, int],
        *,
        max_area: float,
    ) -> tuple[CropPlan, Detector] | None:
        """The window to infer and ``model`` at its size, or None (infer the whole frame).

        Args:
            model_id: the model's id (the key of the sizes made).
            model: the camera's model.
            imgsz: the camera's own input size (None: the model's).
            changed: the part that moved (``MotionGate.crop_region``).
            boxes: the objects the model saw lately (:class:`SeenBoxes`), xyxy pixels.
            size: the frame's (width, height).
            max_area: ``motion.crop_max_area``.
        """
        if not isinstance(model, _Croppable):
            return None
        full = int(imgsz) if imgsz is not None else max(model.input_size)
        plan = plan_crop(changed, boxes, size, full, max_area=max_area, stride=model.stride)
        if plan is None:
            return None
        detector = self._at(model_id, model, plan.imgsz)
        return None if detector is None else (plan, detector)

    def _at(self, model_id: str, model: _Croppable, imgsz: int) -> Detector | None:
        key = (model_id, imgsz)
        with self._lock:
            if model_id in self._refused:
                return None
            if key not in self._made:
                try:
                    self._made[key] = model.with_imgsz(imgsz)
                except Exception as exc:  # a fixed input size, or a model that fails at another size
                    log.warning("model %s cannot infer motion crops (at %d: %s); its cameras infer whole frames", model_id, imgsz, exc)
                    self._refused.add(model_id)
                    return None
            return self._made[key]


class SeenBoxes:
    """The boxes the model found on a camera's inferred frames of the last ``hold_s`` seconds
    (at most ``max_frames`` frames), and always those of its newest inferred frame, however old
    (the detections a cropped frame would otherwise keep outside its window): what a motion
    crop's window must hold. Thread-safe.

    Example:
        >>> seen = SeenBoxes(hold_s=2.0)
        >>> seen.add(0.0, np.array([[0.0, 0.0, 10.0, 10.0]])); seen.add(1.5, np.zeros((0, 4)))
        >>> len(seen.boxes(1.9)), len(seen.boxes(2.5)), len(seen.boxes(60.0))
        (1, 0, 0)
    """

    def __init__(self, hold_s: float, max_frames: int = 64) -> None:
        self.hold_s = hold_s
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=max_frames)
        self._size = (0, 0)  # the frames' (width, height)
        self._lock = threading.Lock()

    def add(self, ts: float, xyxy: np.ndarray, size: tuple[int, int] = (0, 0)) -> None:
        """The boxes found on the inferred frame of time ``ts`` and ``size`` (width, height)."""
        with self._lock:
            if size != self._size:  # the camera's picture changed size: older boxes are in other pixels
                self._frames.clear()
                self._size = size
            self._frames.append((ts, np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)))

    def boxes(self, now: float, size: tuple[int, int] = (0, 0)) -> np.ndarray:
        """``(N, 4)`` boxes seen from ``now - hold_s`` on and those of the newest frame, on frames
        of ``size`` (older frames are let go)."""
        with self._lock:
            if size != self._size:
                return np.zeros((0, 4))
            while len(self._frames) > 1 and self._frames[0][0] < now - self.hold_s:
                self._frames.popleft()
            parts = [b for _, b in self._frames]
        return np.concatenate(parts) if parts else np.zeros((0, 4))
