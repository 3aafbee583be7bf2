"""闯红灯 red-light running: a vehicle crossing the stop line while the signal is red.

Each tracked vehicle's ground point (the bottom centre of its box) is followed relative to
the stop line. A vehicle must first be seen clearly on one side (at least ``margin`` box
heights from the line), then its ground point must pass through the line segment and get
clearly to the other side. The signal state that counts is the one on the frame the ground
point first passed the line, so a light turning red while the vehicle is already through
does not count. A vehicle standing on the line with its box jittering never gets clearly
across, and so never crosses.

Every crossing is its own incident: the rule is per-object, and each crossing is a hit of
the frame it is completed on, keyed ``"<track>@<crossed_at>"``, so two vehicles crossing
on the same frame, or one right after the other, are separate incidents. Each closes
``clear_after_s`` after its crossing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RedLightRuleConfig
from ..zones import ground_points
from .base import INACTIVE, Hit, IncidentKind, RuleResult, Scene, SignalState, TrackedRule

_FORGET_AFTER_S = 10.0  # a track unseen this long is forgotten


@dataclass(slots=True)
class _Track:
    side: int  # -1 left of the line, +1 right, 0 not yet clearly on a side
    point: np.ndarray
    last_seen: float
    passed: tuple[float, SignalState] | None = None  # when, and on what light, the ground point went through
    fired: bool = False


@dataclass(frozen=True, slots=True)
class _Crossing:
    track: int
    class_name: str
    at: float
    state: SignalState
    from_side: str


class RedLightRule(TrackedRule[RedLightRuleConfig, _Track]):
    """Fires once per vehicle whose ground point crosses the stop line (in the configured
    direction) while the configured signal is red.

    Example:
        >>> rule = RedLightRule(RedLightRuleConfig(stop_line=[(0.2, 0.5), (0.8, 0.5)], signal="main"))
    """

    type = "red_light"
    kind = IncidentKind("red_light", "闯红灯", "red-light running", "traffic")

    def _line_px(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        w, h = size
        scale = np.array([w - 1, h - 1], dtype=np.float64)
        (x0, y0), (x1, y1) = self.config.stop_line
        return np.array([x0, y0]) * scale, np.array([x1, y1]) * scale

    @staticmethod
    def _signed_distance(p0: np.ndarray, d: np.ndarray, q: np.ndarray) -> float:
        """Pixels from the line; > 0 on its right looking from p0 along d (image y points down)."""
        v = q - p0
        return float((d[0] * v[1] - d[1] * v[0]) / np.hypot(d[0], d[1]))

    @staticmethod
    def _through_segment(p0: np.ndarray, d: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the move a → b passes the line within the segment p0 → p0 + d."""
        m = b - a
        denom = d[0] * m[1] - d[1] * m[0]
        if abs(denom) < 1e-12:
            return False
        w = a - p0
        u = (w[0] * m[1] - w[1] * m[0]) / denom  # position along the segment, 0..1 inside
        return bool(-1e-6 <= u <= 1 + 1e-6)

    def _counts(self, from_side: int) -> bool:
        direction = self.config.direction
        return direction == "any" or (direction == "left_to_right") == (from_side < 0)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        state: SignalState = scene.signals.get(cfg.signal, "unknown")
        idx = np.flatnonzero(self.candidates(scene))
        p0, p1 = self._line_px(scene.size)
        d = p1 - p0
        ids = scene.tracker_ids
        names = scene.class_names
        crossings: list[_Crossing] = []
        if len(idx):
            points = ground_points(scene.detections.xyxy[idx]).astype(np.float64)
            heights = (scene.detections.xyxy[idx, 3] - scene.detections.xyxy[idx, 1]).astype(np.float64)
        for k, i in enumerate(idx):
            tid = int(ids[i])
            if tid < 0:
                continue
            q = points[k]
            dist = self._signed_distance(p0, d, q)
            clear = abs(dist) >= cfg.margin * heights[k] and dist != 0.0
            raw = 1 if dist > 0 else -1 if dist < 0 else 0
            tr = self._tracks.get(tid)
            if tr is None:
                self._tracks[tid] = _Track(side=raw if clear else 0, point=q, last_seen=now)
                continue
            if tr.side == 0:
                if clear:
                    tr.side = raw
            elif tr.passed is None:
                if raw == -tr.side:
                    if self._through_segment(p0, d, tr.point, q):
                        tr.passed = (now, state)
                    elif clear:  # went round the end of the line: just on the other side now
                        tr.side = raw
            if tr.passed is not None:
                if raw == tr.side:  # back to where it came from
                    tr.passed = None
                elif clear:
                    at, light = tr.passed
                    from_side = tr.side
                    tr.side, tr.passed = raw, None
                    if light == "red" and self._counts(from_side) and not tr.fired:
                        tr.fired = True
                        crossings.append(_Crossing(tid, str(names[i]), at, light, "left" if from_side < 0 else "right"))
            tr.point = q
            tr.last_seen = now
        self._forget(now, _FORGET_AFTER_S)
        if not crossings:
            return INACTIVE
        hits = tuple(
            Hit(
                key=f"{c.track}@{c.at:.3f}",
                subjects=np.flatnonzero(ids == c.track).astype(np.int64),
                summary=f"{c.class_name} #{c.track} crossed the stop line on {c.state} (signal {cfg.signal!r})",
                details={
                    "track": c.track,
                    "class": c.class_name,
                    "signal": cfg.signal,
                    "signal_state": c.state,
                    "crossed_at": round(c.at, 3),
                    "from_side": c.from_side,
                },
            )
            for c in crossings
        )
        return RuleResult(
            active=True,
            subjects=np.unique(np.concatenate([h.subjects for h in hits])).astype(np.int64),
            count=len(hits),
            summary=hits[0].summary if len(hits) == 1 else f"{len(hits)} vehicles crossed the stop line on red (signal {cfg.signal!r})",
            details={
                "signal": cfg.signal,
                "tracks": [c.track for c in crossings],
                "crossings": [h.details for h in hits],
            },
            hits=hits,
        )
