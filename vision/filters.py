"""Sanity filters between the detector and the rules (a camera's ``filters:`` and ``masks``).

Any detector flickers, mislabels and misses; these filters take out what no real object
looks like, each switchable in the scene config so the rule benchmark can measure it:

* **masks** (before tracking): a detection whose ground point (``by: ground_point``) or
  most of whose box (``by: box``, for on-screen text) lies in an ignore region;
* **class confidence** (before tracking): a per-class score floor above the detector's;
* **shape** (before tracking): a box too large for its class (a whole-frame "person") or
  of a shape its class never has;
* **confirmation** (after tracking): a track counts only once seen on M of its last N
  inferred frames; boxes without a track id (below the tracker's activation score and
  matched to nothing) are not confirmed either. A coasted frame (motion gating: the last
  inferred frame's boxes replayed, see ``coasting``) is no sighting: it shows the confirmed
  tracks and counts nothing.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import supervision as sv

from gridworker.models.base import subset

from .coasting import current
from .config import ConfirmConfig, FilterConfig, MaskConfig
from .zones import Zone, ground_points

#: At most this many tracks are remembered by the confirmation filter (oldest forgotten first).
MAX_TRACKS = 4096


def _names(detections: sv.Detections) -> np.ndarray:
    names = detections.data.get("class_name")
    return np.full(len(detections), "", dtype=object) if names is None else np.asarray(names, dtype=object)


def box_fraction_inside(xyxy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n,) fraction of each pixel box's area that lies on the True pixels of ``mask`` (h, w)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.float64)
    h, w = mask.shape
    integral = cv2.integral(mask.astype(np.uint8))  # (h+1, w+1), integral[y, x] = sum of mask[:y, :x]
    x0 = np.clip(np.floor(boxes[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(boxes[:, 1]), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil(boxes[:, 2]), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil(boxes[:, 3]), 0, h).astype(np.int64)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return np.asarray(inside / area, dtype=np.float64)


def masked(detections: sv.Detections, masks: list[Zone], size: tuple[int, int]) -> np.ndarray:
    """(n,) bool: detections an ignore mask takes out (by ground point or by box area)."""
    out = np.zeros(len(detections), dtype=bool)
    if not masks or len(detections) == 0:
        return out
    points = ground_points(detections.xyxy)
    for mask in masks:
        cfg = mask.config
        if isinstance(cfg, MaskConfig) and cfg.by == "box":
            out |= box_fraction_inside(detections.xyxy, mask.mask(size)) >= cfg.min_overlap
        else:
            out |= mask.contains_points(points, size)
    return out


def implausible(detections: sv.Detections, config: FilterConfig, size: tuple[int, int]) -> np.ndarray:
    """(n,) bool: boxes below their class's score floor, or too large or oddly shaped for their class."""
    n = len(detections)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    names = _names(detections)
    if config.min_confidence and detections.confidence is not None:
        floors = np.array([config.min_confidence.get(str(c), 0.0) for c in names], dtype=np.float64)
        out |= detections.confidence < floors
    if config.shapes and config.shape_limits:
        w, h = size
        xyxy = np.asarray(detections.xyxy, dtype=np.float64)
        bw = np.maximum(xyxy[:, 2] - xyxy[:, 0], 1e-6)
        bh = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
        area = bw * bh / max(w * h, 1)
        aspect = bh / bw
        for i, name in enumerate(names):
            lim = config.shape_limits.get(str(name))
            if lim is not None and (area[i] > lim.max_area or not lim.min_aspect <= aspect[i] <= lim.max_aspect):
                out[i] = True
    return out


def prefilter(detections: sv.Detections, masks: list[Zone], config: FilterConfig, size: tuple[int, int]) -> sv.Detections:
    """The detections that pass the masks, class confidence and shape filters (before tracking)."""
    if len(detections) == 0:
        return detections
    drop = masked(detections, masks, size) | implausible(detections, config, size)
    return subset(detections, ~drop) if drop.any() else detections


class TrackConfirmer:
    """M-of-N confirmation of tracks: ``update(ids) -> (n,) bool`` says which boxes count.

    A track is confirmed once it has been seen on ``hits`` of the last ``frames`` inferred
    frames, and stays confirmed while it keeps being seen within ``frames`` frames; a track
    missing longer starts over. Untracked boxes (id -1) are never confirmed.

    Frames are counted only when the model ran on them: a coasted frame (inside
    ``coasting.analysing(coasted=True)``) shows the tracks already confirmed and moves no
    count, so a track is never confirmed by its own box replayed. Inside ``analysing`` a frame
    holding a track not yet confirmed sets ``Sighting.unsure`` (the pipeline infers the
    camera's next frame).

    Example:
        >>> c = TrackConfirmer(ConfirmConfig(hits=2, frames=3))
        >>> c.update(np.array([7])).tolist(), c.update(np.array([7])).tolist()
        ([False], [True])
    """

    def __init__(self, config: ConfirmConfig) -> None:
        self._hits = config.hits
        self._frames = config.frames
        self._seen: dict[int, deque[int]] = {}
        self._confirmed: set[int] = set()
        self._frame = 0

    def update(self, ids: np.ndarray) -> np.ndarray:
        sighting = current()
        if sighting is not None and sighting.coasted:
            out = np.array([int(t) in self._confirmed for t in ids], dtype=bool)
        else:
            out = self._sighted(ids)
        if sighting is not None and bool(((np.asarray(ids) >= 0) & ~out).any()):
            sighting.unsure = True  # a track not confirmed yet: the model looks again
        return out

    def _sighted(self, ids: np.ndarray) -> np.ndarray:
        self._frame += 1
        now = self._frame
        out = np.zeros(len(ids), dtype=bool)
        for i, t in enumerate(int(t) for t in ids):
            if t < 0:
                continue
            seen = self._seen.pop(t, None)  # re-inserted: the dict stays ordered by last sighting
            if seen is None or now - seen[-1] > self._frames:
                seen = deque(maxlen=self._hits)
                self._confirmed.discard(t)
            if not seen or seen[-1] != now:
                seen.append(now)
            self._seen[t] = seen
            if t in self._confirmed or (len(seen) >= self._hits and now - seen[0] < self._frames):
                self._confirmed.add(t)
                out[i] = True
        while len(self._seen) > MAX_TRACKS:
            oldest = next(iter(self._seen))
            del self._seen[oldest]
            self._confirmed.discard(oldest)
        return out
