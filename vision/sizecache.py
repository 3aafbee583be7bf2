"""What a camera's scene builds per frame size (a zone's mask, a line's pixel end points, a
signal's crop, the annotators' line widths), kept for the few sizes in use.

A stream may change its picture size at any keyframe (a camera reconfigured, a hostile one
doing it on purpose): a cache keyed by size that never forgets grows by one full-frame array
per size. :class:`SizeCache` keeps the ``keep`` most recently used sizes (a camera has one
size, two across a change) and builds the rest again when they come back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SIZES_KEPT", "SizeCache"]

SIZES_KEPT = 2
"""How many frame sizes each cache keeps by default (least recently used dropped first)."""

V = TypeVar("V")


class SizeCache(Generic[V]):
    """``build(size)`` for a frame ``size`` = (width, height), the ``keep`` most recently
    used sizes kept. Safe to share between threads (a value may be built twice at once).

    Example:
        >>> built = []
        >>> cache = SizeCache(lambda size: built.append(size) or size[0] * size[1], keep=2)
        >>> [cache.get(s) for s in [(4, 3), (8, 6), (4, 3), (2, 1), (8, 6)]]
        [12, 48, 12, 2, 48]
        >>> built  # (8, 6) was the least recently used when (2, 1) came: built again
        [(4, 3), (8, 6), (2, 1), (8, 6)]
        >>> len(cache)
        2
    """

    def __init__(self, build: Callable[[tuple[int, int]], V], keep: int = SIZES_KEPT) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._build = build
        self._keep = keep
        self._values: OrderedDict[tuple[int, int], V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, size: tuple[int, int]) -> V:
        with self._lock:
            if size in self._values:
                self._values.move_to_end(size)
                return self._values[size]
        value = self._build(size)  # outside the lock: building a full-frame mask takes a while
        with self._lock:
            self._values[size] = value
            self._values.move_to_end(size)
            while len(self._values) > self._keep:
                self._values.popitem(last=False)
        return value

    def __contains__(self, size: object) -> bool:
        with self._lock:
            return size in self._values

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
