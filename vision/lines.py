"""Directed counting lines (越线): per-class in/out counts from tracked ground points.

A line runs from ``start`` to ``end`` (normalised points). Looking from start to end, a
tracked object's ground point (bottom centre of its box) going from the left side to the
right side crosses ``in``; the other way ``out``. On screen (y down) a line drawn left to
right has its left side above it, so objects moving down the frame cross it ``in``.

Each track remembers the side it was last *clearly* on: a point counts as on a side only
once it is more than ``hysteresis`` box heights (at least 2 px) away from the line, so an
object parked on the line with a wobbling box never counts, and one that crosses counts
once. A crossing counts only where the path crosses the segment itself, not its
extension. Tracks unseen for ``forget_after_s`` are forgotten.

Riders (``vision/riders.py``): given the frame's :class:`~.riders.Roles`, a line counts what
the rules see. A cyclist counts once, as the bicycle: the rider's own box is left out while
the bicycle's is on the frame, and stands in for it, under the bicycle's track id and class,
on frames where the detector missed the bicycle (its side is kept, not restarted).

Counts are flow statistics, not incidents: the service turns them into a Prometheus
counter and per-minute rows (``incidents/flows.py``).

``sv.LineZone`` was considered: its debouncing counts frames on a side rather than
distance from the line (a parked, jittering box keeps producing runs of frames on the
far side), it keys classes by id, and it gives no timestamps; the rule here is a few
lines of geometry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import supervision as sv

from .sizecache import SizeCache
from .config import LineConfig
from .riders import Roles
from .rules.base import class_mask
from .zones import ground_points

Direction = Literal["in", "out"]
_MIN_BAND_PX = 2.0


@dataclass(frozen=True, slots=True)
class Crossing:
    """One tracked object crossing one line."""

    line_id: str
    tracker_id: int
    class_name: str
    direction: Literal["in", "out"]
    ts: float


@dataclass(slots=True)
class _Side:
    side: int  # -1 left, +1 right, 0 not yet clearly on either
    point: np.ndarray  # last point clearly on ``side`` (pixels)
    last_seen: float


class _Line:
    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self.classes = set(config.classes)
        self.tracks: dict[int, _Side] = {}
        self._px = SizeCache(self._endpoints)

    def endpoints(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return self._px.get(size)

    def _endpoints(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        scale = np.array([max(size[0] - 1, 1), max(size[1] - 1, 1)], dtype=np.float64)
        (x0, y0), (x1, y1) = self.config.points
        return np.array([x0, y0]) * scale, np.array([x1, y1]) * scale

    def signed_distance(self, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(n,) pixels from the line; positive on its right side (y-down image coordinates)."""
        start, end = self.endpoints(size)
        d = end - start
        rel = points - start
        distance: np.ndarray = (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / float(np.linalg.norm(d))
        return distance

    def crosses_segment(self, a: np.ndarray, b: np.ndarray, size: tuple[int, int]) -> bool:
        """Whether the path a → b (on opposite sides) meets the line between start and end."""
        start, end = self.endpoints(size)
        da, db = self.signed_distance(np.stack([a, b]), size)
        if da == db:
            return False
        hit = a + (da / (da - db)) * (b - a)
        d = end - start
        u = float(np.dot(hit - start, d) / np.dot(d, d))
        return 0.0 <= u <= 1.0


class LineCounter:
    """All counting lines of one camera.

    ``update`` takes one frame's tracked detections (and, with rider pairing on, the roles
    the rules got: ``RiderLinker.update``) and returns the crossings completed on it;
    ``counts`` holds the running totals per line, class and direction.

    Example:
        >>> counter = LineCounter([LineConfig(id="gate", points=[(0, 0.5), (1, 0.5)], classes=["person"])])
    """

    def __init__(self, configs: Sequence[LineConfig], forget_after_s: float = 10.0) -> None:
        self.configs = list(configs)
        self.forget_after_s = forget_after_s
        self._lines = [_Line(c) for c in self.configs]
        self.counts: dict[str, Counter[tuple[str, Direction]]] = {c.id: Counter() for c in self.configs}

    def update(self, detections: sv.Detections, size: tuple[int, int], now: float, *, roles: Roles | None = None) -> list[Crossing]:
        """The crossings completed on this frame. ``roles``: what each box stands for
        (``RiderLinker.update`` on the same detections): a rider riding along with its
        vehicle's box is not counted, one standing in for its missed vehicle counts as that
        vehicle's class and track; None: every box is its own class and track."""
        out: list[Crossing] = []
        n = len(detections)
        if n and detections.tracker_id is not None:
            ids = detections.tracker_id if roles is None else roles.ids
            names = detections.data.get("class_name") if roles is None else roles.classes
            names = np.asarray(names) if names is not None else np.full(n, "", dtype=object)
            points = ground_points(detections.xyxy).astype(np.float64)
            heights = np.maximum(detections.xyxy[:, 3] - detections.xyxy[:, 1], 1.0)
            single = self._one_stand_in(detections.tracker_id, roles)
            for line in self._lines:
                wanted = class_mask(detections, line.classes, line.config.min_confidence, None if roles is None else roles.classes)
                keep = np.flatnonzero(wanted & (ids >= 0) & single)
                if not len(keep):
                    continue
                dist = line.signed_distance(points[keep], size)
                band = np.maximum(line.config.hysteresis * heights[keep], _MIN_BAND_PX)
                for j, i in enumerate(keep):
                    crossing = self._step(line, int(ids[i]), str(names[i]), points[i], float(dist[j]), float(band[j]), size, now)
                    if crossing is not None:
                        out.append(crossing)
                        self.counts[line.config.id][(crossing.class_name, crossing.direction)] += 1
        for line in self._lines:
            line.tracks = {t: s for t, s in line.tracks.items() if now - s.last_seen <= self.forget_after_s}
        return out

    @staticmethod
    def _one_stand_in(own: np.ndarray, roles: Roles | None) -> np.ndarray:
        """(n,) bool: False for a second rider standing in for the same missed vehicle (a
        pillion passenger): the vehicle counts once."""
        single = np.ones(len(own), dtype=bool)
        if roles is None:
            return single
        seen: set[int] = set()
        for i in np.flatnonzero(roles.ids != own):
            single[i] = int(roles.ids[i]) not in seen
            seen.add(int(roles.ids[i]))
        return single

    @staticmethod
    def _step(
        line: _Line, track: int, class_name: str, point: np.ndarray, dist: float, band: float, size: tuple[int, int], now: float
    ) -> Crossing | None:
        side = 1 if dist >= band else -1 if dist <= -band else 0
        state = line.tracks.get(track)
        if state is None:
            line.tracks[track] = _Side(side, point.copy(), now)
            return None
        state.last_seen = now
        if side == 0:
            return None  # on the line (within the band): keep the side it was clearly on
        previous = state.side
        crossed = previous != 0 and side != previous and line.crosses_segment(state.point, point, size)
        state.side, state.point = side, point.copy()
        if not crossed:
            return None
        return Crossing(line.config.id, track, class_name, "in" if previous < 0 else "out", now)
