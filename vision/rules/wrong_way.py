"""车辆逆行 wrong-way driving: smoothed motion against the lane's allowed direction.

Each vehicle's ground point (bottom centre of its box, pixels) is kept over the last
``window_s`` seconds. Its motion is the least-squares velocity of that history times the
history's time span: box jitter averages out, a single bad box barely moves it. Only once
that displacement reaches ``min_distance`` box heights is the direction judged, so a
parked car wobbling in place is never judged at all. A vehicle whose displacement makes an
angle of at least ``min_angle_deg`` with the lane's ``direction`` is wrong-way; a lane
change (about 90°) is not. The direction is only judged on a fresh step that agrees: the
last two sightings at most a third of ``window_s`` apart (a jump over a gap, where the
tracker may have given a lost car's id to another car, is no step) and moving the same way
along the lane as the smoothed displacement (a vehicle seen driving the right way just now
is not made wrong-way by older points, nor cleared by one wobble back).

A verdict sticks to the track while it stands still (a wrong-way car that stops is still
the wrong-way car) and is revised whenever it has moved far enough again. When the tracker
loses a vehicle and a new id appears where the lost one was heading, the new id inherits
the history (an ID switch neither hides a wrong-way vehicle nor starts its clock anew).
Only a lost track's history is inherited: one the tracker still reports (outside the zone,
scoring under ``min_confidence``, too small) keeps its own.

Each wrong-way vehicle is its own incident: its hit's key is the track id its history
began under and when, which an inherited history keeps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config import WrongWayRuleConfig
from ..zones import ground_points
from .base import INACTIVE, Hit, IncidentKind, RuleResult, Scene, TrackedRule

_MIN_SAMPLES = 3
_MAX_STEP_SHARE = 1.0 / 3.0  # a judged step spans at most this share of window_s


@dataclass(slots=True)
class _History:
    """One track's recent ground points."""

    first_track: int = -1  # the track id this history began under (kept when a new id inherits it)
    key: str = ""  # "<first track>@<first seen>": the vehicle's Hit.key
    ts: deque[float] = field(default_factory=deque)
    xy: deque[tuple[float, float]] = field(default_factory=deque)
    heights: deque[float] = field(default_factory=deque)
    last_seen: float = 0.0
    wrong: bool = False
    angle_deg: float | None = None

    def add(self, t: float, point: np.ndarray, height: float, window_s: float) -> None:
        self.ts.append(t)
        self.xy.append((float(point[0]), float(point[1])))
        self.heights.append(height)
        self.last_seen = t
        while self.ts and self.ts[0] < t - window_s:
            self.ts.popleft()
            self.xy.popleft()
            self.heights.popleft()

    def velocity(self) -> np.ndarray | None:
        """Least-squares velocity (px/s) of the history, or None with too little of it."""
        if len(self.ts) < _MIN_SAMPLES:
            return None
        t = np.asarray(self.ts, dtype=np.float64)
        t = t - t.mean()
        denom = float(np.dot(t, t))
        if denom <= 0.0:
            return None
        xy = np.asarray(self.xy, dtype=np.float64)
        return (t @ (xy - xy.mean(axis=0))) / denom  # type: ignore[no-any-return]

    def displacement(self) -> np.ndarray | None:
        """Smoothed displacement over the history's time span (px)."""
        v = self.velocity()
        return None if v is None else v * (self.ts[-1] - self.ts[0])

    def height(self) -> float:
        return float(np.median(np.asarray(self.heights)))

    def last_step(self) -> tuple[np.ndarray, float]:
        """The move (px) and the time (s) between the last two sightings; needs two of them."""
        (x0, y0), (x1, y1) = self.xy[-2], self.xy[-1]
        return np.asarray((x1 - x0, y1 - y0), dtype=np.float64), self.ts[-1] - self.ts[-2]


class WrongWayRule(TrackedRule[WrongWayRuleConfig, _History]):
    """Fires while a vehicle in the lane zone is judged to travel against its ``direction``."""

    type = "wrong_way"
    kind = IncidentKind("wrong_way", "车辆逆行", "wrong-way driving", "traffic")

    def __init__(self, config: WrongWayRuleConfig) -> None:
        super().__init__(config)
        d = np.asarray(config.direction, dtype=np.float64)
        self._direction = d / np.linalg.norm(d)
        self._cos_limit = math.cos(math.radians(config.min_angle_deg))

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        ids = scene.tracker_ids
        idx = np.flatnonzero(self.candidates(scene) & (ids >= 0))
        xyxy = scene.detections.xyxy[idx] if len(idx) else np.zeros((0, 4), dtype=np.float32)
        points = ground_points(xyxy)
        heights = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)

        alive = {int(t) for t in ids[ids >= 0]}  # every track the tracker reports, in the zone or not
        for j, det_i in enumerate(idx):
            track = int(ids[det_i])
            if track not in self._tracks:
                inherited = self._rejoin(points[j], float(heights[j]), now, alive)
                self._tracks[track] = inherited if inherited is not None else _History(first_track=track, key=f"{track}@{now:.3f}")
            self._tracks[track].add(now, points[j], float(heights[j]), cfg.window_s)

        wrong: list[int] = []
        angles: list[float] = []
        hits: list[Hit] = []
        for j, det_i in enumerate(idx):
            track = int(ids[det_i])
            hist = self._tracks[track]
            self._judge(hist)
            if hist.wrong:
                angle = hist.angle_deg or 180.0
                wrong.append(int(det_i))
                angles.append(angle)
                was = "" if hist.first_track == track else f" (was #{hist.first_track})"
                hits.append(
                    Hit(
                        key=hist.key,
                        subjects=np.asarray([det_i], dtype=np.int64),
                        summary=f"{scene.class_names[det_i]} #{track}{was} driving against the lane direction ({angle:.0f}°)",
                        details={"track": track, "first_track": hist.first_track, "angle_deg": round(angle, 1), "direction": list(cfg.direction)},
                    )
                )

        self._forget(now, cfg.window_s)
        if not wrong:
            return INACTIVE
        tracks = [int(ids[i]) for i in wrong]
        return RuleResult(
            active=True,
            subjects=np.asarray(wrong, dtype=np.int64),
            count=len(wrong),
            summary=f"{len(wrong)} vehicle(s) driving against the lane direction",
            details={"tracks": tracks, "angle_deg": [round(a, 1) for a in angles], "direction": list(cfg.direction)},
            hits=tuple(hits),
        )

    def _judge(self, hist: _History) -> None:
        disp = hist.displacement()
        if disp is None:
            return
        dist = float(np.linalg.norm(disp))
        if dist < self.config.min_distance * hist.height():
            return  # too little motion to judge: keep the previous verdict
        step, step_s = hist.last_step()
        if step_s > _MAX_STEP_SHARE * self.config.window_s:
            return  # the last sighting came after a gap: no fresh step, keep the previous verdict
        if float(np.dot(disp, self._direction)) * float(np.dot(step, self._direction)) < 0.0:
            return  # the latest step goes the other way along the lane: keep the previous verdict
        cos = float(np.dot(disp, self._direction)) / dist
        hist.angle_deg = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
        hist.wrong = cos <= self._cos_limit + 1e-12

    def _rejoin(self, point: np.ndarray, height: float, now: float, alive: set[int]) -> _History | None:
        """The history of a track lost recently whose predicted position is within one box
        height of ``point`` (the same vehicle under a new id), removed from the table. A track
        in ``alive`` (still reported by the tracker this frame, anywhere) is not lost."""
        best: tuple[float, int] | None = None
        for track, hist in self._tracks.items():
            if track in alive or not hist.ts or now - hist.last_seen > self.config.window_s:
                continue
            v = hist.velocity()
            predicted = np.asarray(hist.xy[-1]) + (v * (now - hist.last_seen) if v is not None else 0.0)
            gap = float(np.linalg.norm(point - predicted))
            if gap <= max(height, hist.height()) and (best is None or gap < best[0]):
                best = (gap, track)
        return None if best is None else self._tracks.pop(best[1])
