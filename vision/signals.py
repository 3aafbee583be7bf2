"""Traffic-signal state for red-light rules: read from the image, or pushed by a controller.

Two sources, chosen per signal in the camera config (``SignalConfig.source``):

* ``image``: the lit lamp's colour is classified from the signal head's region of every
  frame (:func:`classify_lamp`); a frame that can't be read (LED flicker, a truck in front)
  keeps the last readable colour for ``hold_s``.
* ``api``: a signal controller pushes the state (``PUT /cameras/{id}/signals/{signal}``)
  into the service's :class:`SignalBoard`; a push older than ``stale_after_s`` counts as
  ``unknown``, so a controller that goes silent never leaves a light stuck on red.
"""

from __future__ import annotations

import functools

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .sizecache import SizeCache
from .config import SignalConfig
from .rules.base import SignalState
from .zones import polygon_mask

# OpenCV hue runs 0..179. Red wraps around 0; amber lamps sit around 15-30; signal greens
# are bluish (LED "green" is often cyan-green, hue 70-95).
_HUES: dict[str, tuple[tuple[int, int], ...]] = {
    "red": ((0, 10), (165, 179)),
    "yellow": ((14, 34),),
    "green": ((42, 100),),
}
_MIN_PEAK_V = 80  # the lit lamp is at least this bright (V of HSV, 0..255)
_MIN_CONTRAST_V = 40  # ... and this much brighter than the median of the region (the dark housing)
_MIN_SATURATION = 80  # lamp colour, not a white glare or grey housing
_DOMINANCE = 3.0  # the winning colour has this many times the pixels of the runner-up
_MIN_BLOB_SHARE = 0.5  # ... and most of them form one blob (a lamp), not scattered specks
_MIN_BLOB_PX = 6
_MIN_BLOB_FILL = 0.35  # ... and the blob is compact (a disc or ring fills its box; speckle does not)
_MIN_REGION_PX = 100  # below this (e.g. 8 x 12 px) a head is too small to read reliably


def classify_lamp(rgb: np.ndarray, mask: np.ndarray | None = None) -> SignalState:
    """Colour of the lit lamp of a signal head.

    Args:
        rgb: (h, w, 3) uint8 RGB crop around the signal head.
        mask: optional (h, w) bool, the pixels that belong to the head's region.

    Returns:
        ``red``, ``yellow`` or ``green`` when one lamp clearly shines: its pixels are bright
        (well above the region's median, the dark housing), saturated, of one hue family,
        outnumber every other colour ``_DOMINANCE`` times and mostly form one blob.
        ``unknown`` otherwise (all lamps dark, glare, noise, an empty region).

    Example:
        >>> head = np.zeros((60, 24, 3), np.uint8)
        >>> _ = cv2.circle(head, (12, 10), 7, (255, 30, 20), -1)
        >>> classify_lamp(head)
        'red'
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return "unknown"
    valid = np.ones(rgb.shape[:2], dtype=bool) if mask is None else mask.astype(bool)
    if valid.sum() < _MIN_REGION_PX:
        return "unknown"
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    values = v[valid]
    background = float(np.median(values))
    peak = float(np.percentile(values, 99.5))
    if peak < _MIN_PEAK_V or peak - background < _MIN_CONTRAST_V:
        return "unknown"
    bright = valid & (v >= max(_MIN_PEAK_V, background + 0.5 * (peak - background))) & (s >= _MIN_SATURATION)
    masks: dict[str, np.ndarray] = {}
    for colour, ranges in _HUES.items():
        hue = np.zeros_like(bright)
        for lo, hi in ranges:
            hue |= (h >= lo) & (h <= hi)
        masks[colour] = bright & hue
    counts = {c: int(m.sum()) for c, m in masks.items()}
    ranked = sorted(counts, key=lambda c: counts[c], reverse=True)
    best, second = ranked[0], ranked[1]
    if counts[best] < _MIN_BLOB_PX or counts[best] < _DOMINANCE * counts[second]:
        return "unknown"
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(masks[best].astype(np.uint8), connectivity=8)
    if n <= 1:
        return "unknown"
    blob = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = int(stats[blob, cv2.CC_STAT_AREA])
    box = int(stats[blob, cv2.CC_STAT_WIDTH]) * int(stats[blob, cv2.CC_STAT_HEIGHT])
    if area < _MIN_BLOB_PX or area < _MIN_BLOB_SHARE * counts[best] or area < _MIN_BLOB_FILL * box:
        return "unknown"
    return best  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class SignalStatus:
    """One signal's state as the API shows it."""

    state: SignalState
    updated_at: float | None


class SignalBoard:
    """Signal states of all cameras: pushed by controllers, and the latest image readings.

    Shared by the service's analyzers and the API (thread-safe).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pushed: dict[tuple[str, str], tuple[SignalState, float]] = {}
        self._read: dict[tuple[str, str], tuple[SignalState, float]] = {}

    def push(self, camera_id: str, signal_id: str, state: SignalState, at: float) -> None:
        """A controller's report (``source: api``)."""
        with self._lock:
            self._pushed[(camera_id, signal_id)] = (state, at)

    def get(self, camera_id: str, signal_id: str, now: float, stale_after_s: float) -> SignalState:
        """The pushed state, ``unknown`` when none came or it is older than ``stale_after_s``."""
        with self._lock:
            entry = self._pushed.get((camera_id, signal_id))
        if entry is None or now - entry[1] > stale_after_s:
            return "unknown"
        return entry[0]

    def record(self, camera_id: str, signal_id: str, state: SignalState, at: float) -> None:
        """The state an analyzer read from a frame (``source: image``), for the API to show."""
        with self._lock:
            self._read[(camera_id, signal_id)] = (state, at)

    def status(self, camera_id: str, config: SignalConfig, now: float) -> SignalStatus:
        """What the API reports for one configured signal at ``now``."""
        with self._lock:
            entry = (self._pushed if config.source == "api" else self._read).get((camera_id, config.id))
        if entry is None:
            return SignalStatus("unknown", None)
        state, at = entry
        return SignalStatus("unknown" if now - at > config.stale_after_s else state, at)

    def forget(self, camera_id: str) -> None:
        """Drop every state of a removed camera."""
        self.keep(camera_id, ())

    def keep(self, camera_id: str, signal_ids: Collection[str]) -> None:
        """Drop the camera's states of every signal not in ``signal_ids`` (its scene changed)."""
        with self._lock:
            for table in (self._pushed, self._read):
                for key in [k for k in table if k[0] == camera_id and k[1] not in signal_ids]:
                    del table[key]


def _crop_of(cfg: SignalConfig, size: tuple[int, int]) -> tuple[slice, slice, np.ndarray]:
    """The rows and columns of ``cfg``'s region in a frame of ``size``, and its mask there."""
    full = polygon_mask(cfg.region or [], size)
    ys, xs = np.nonzero(full)
    if len(ys) == 0:
        rows, cols = slice(0, 0), slice(0, 0)
    else:
        rows, cols = slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)
    return rows, cols, full[rows, cols]


class SignalReader:
    """The states of one camera's signals on one frame."""

    def __init__(self, camera_id: str, configs: Sequence[SignalConfig], board: SignalBoard | None) -> None:
        self.camera_id = camera_id
        self.configs = list(configs)
        self.board = board
        # per signal (bounded by the scene's limit), per frame size (the last few)
        self._crops = {cfg.id: SizeCache(functools.partial(_crop_of, cfg)) for cfg in self.configs}
        self._held: dict[str, tuple[SignalState, float]] = {}

    def _crop(self, cfg: SignalConfig, size: tuple[int, int]) -> tuple[slice, slice, np.ndarray]:
        return self._crops[cfg.id].get(size)

    def _from_image(self, cfg: SignalConfig, image: np.ndarray, size: tuple[int, int], now: float) -> SignalState:
        rows, cols, mask = self._crop(cfg, size)
        state = classify_lamp(image[rows, cols], mask)
        if state != "unknown":
            self._held[cfg.id] = (state, now)
            return state
        held = self._held.get(cfg.id)
        if held is not None and 0.0 <= now - held[1] <= cfg.hold_s:
            return held[0]
        return "unknown"

    def read(self, image: np.ndarray | None, size: tuple[int, int], now: float) -> dict[str, SignalState]:
        states: dict[str, SignalState] = {}
        for cfg in self.configs:
            if cfg.source == "api":
                states[cfg.id] = self.board.get(self.camera_id, cfg.id, now, cfg.stale_after_s) if self.board else "unknown"
                continue
            if image is None or cfg.region is None:
                states[cfg.id] = "unknown"
            else:
                states[cfg.id] = self._from_image(cfg, image, size, now)
            if self.board is not None:
                self.board.record(self.camera_id, cfg.id, states[cfg.id], now)
        return states
