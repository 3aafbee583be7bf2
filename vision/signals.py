"""Traffic-signal state for red-light rules: read from the image, or pushed by a controller.

TODO(red-light helper): a robust lamp-colour classifier and its tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from .config import SignalConfig
from .rules.base import SignalState
from .zones import polygon_mask


class SignalBoard:
    """Signal states pushed through the API, per camera and signal id, with their time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], tuple[SignalState, float]] = {}

    def push(self, camera_id: str, signal_id: str, state: SignalState, at: float) -> None:
        with self._lock:
            self._states[(camera_id, signal_id)] = (state, at)

    def get(self, camera_id: str, signal_id: str, now: float, stale_after_s: float) -> SignalState:
        with self._lock:
            entry = self._states.get((camera_id, signal_id))
        if entry is None or now - entry[1] > stale_after_s:
            return "unknown"
        return entry[0]


def classify_lamp(pixels: np.ndarray) -> SignalState:
    """Colour of the lit lamp among (k, 3) RGB pixels of a signal head."""
    if len(pixels) == 0:
        return "unknown"
    rgb = pixels.astype(np.int32)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    bright = rgb.max(axis=1) >= 150
    red = bright & (r > g + 60) & (r > b + 60)
    yellow = bright & (r > 150) & (g > 110) & (b < 110) & ~red
    green = bright & (g > r + 30) & (g >= b - 10)
    counts = {"red": int(red.sum()), "yellow": int(yellow.sum()), "green": int(green.sum())}
    best = max(counts, key=lambda k: counts[k])
    if counts[best] < max(3, 0.01 * len(pixels)):
        return "unknown"
    return best  # type: ignore[return-value]


class SignalReader:
    """The states of one camera's signals on one frame."""

    def __init__(self, camera_id: str, configs: Sequence[SignalConfig], board: SignalBoard | None) -> None:
        self.camera_id = camera_id
        self.configs = list(configs)
        self.board = board

    def read(self, image: np.ndarray | None, size: tuple[int, int], now: float) -> dict[str, SignalState]:
        states: dict[str, SignalState] = {}
        for cfg in self.configs:
            if cfg.source == "api":
                states[cfg.id] = self.board.get(self.camera_id, cfg.id, now, cfg.stale_after_s) if self.board else "unknown"
            elif image is None or cfg.region is None:
                states[cfg.id] = "unknown"
            else:
                states[cfg.id] = classify_lamp(image[polygon_mask(cfg.region, size)])
        return states
