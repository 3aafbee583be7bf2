"""超速 speeding: ground speed from the camera calibration above the zone's limit.

Speeds are measured on the ground plane (``Scene.ground``, metres, from the camera's
four-point calibration), never in pixels, so a car far from the camera is judged like
one close to it. Each track keeps its ground positions over the last ``window_s``; its
velocity is the Theil–Sen estimate of that history: per axis, the median of the slopes
between every pair of sightings. Box jitter averages out over the pairs (as in a
least-squares fit), while one bad box (a detector glitch, a box cut by an occluder)
moves the median little. A track younger than ``min_track_s`` or with fewer than three
sightings in its window is not judged.

Each speeding vehicle is its own incident. A vehicle missed for a moment keeps its track
record for ``KEEP_S``, and a new track id that appears where a recently lost vehicle was
predicted to be (an ID switch) takes its record over, so neither splits the incident.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config import SpeedingRuleConfig
from .base import INACTIVE, Hit, IncidentKind, RuleResult, Scene, TrackedRule

_MIN_SAMPLES = 3
_MAX_SAMPLES = 40
MS_TO_KMH = 3.6


#: A lost track is remembered this long (at least ``window_s``), so a vehicle missed for a
#: moment, or renamed by the tracker, stays the same vehicle (and the same incident).
KEEP_S = 5.0
#: A new track takes over a lost one whose predicted position is within this many metres ...
REJOIN_M = 3.0
#: ... or this fraction of the distance the lost one is predicted to have travelled since.
REJOIN_FRACTION = 0.2


@dataclass(slots=True)
class _Track:
    first_seen: float
    key: str = ""  # "<first track id>@<first seen>": the vehicle's Hit.key, kept by a taking-over id
    first_track: int = -1
    ts: deque[float] = field(default_factory=deque)
    xy: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, t: float, point: np.ndarray, window_s: float) -> None:
        self.ts.append(t)
        self.xy.append((float(point[0]), float(point[1])))
        while self.ts and self.ts[0] < t - window_s - 1e-9:
            self.ts.popleft()
            self.xy.popleft()

    @property
    def last_seen(self) -> float:
        return self.ts[-1]

    def speed_ms(self) -> float | None:
        """Theil–Sen ground speed (m/s), or None with fewer than three sightings."""
        v = self.velocity_ms()
        return None if v is None else float(np.linalg.norm(v))

    def velocity_ms(self) -> np.ndarray | None:
        """Theil–Sen ground velocity (m/s, per axis), or None with fewer than three sightings."""
        if len(self.ts) < _MIN_SAMPLES:
            return None
        t = np.asarray(self.ts, dtype=np.float64)
        xy = np.asarray(self.xy, dtype=np.float64)
        if len(t) > _MAX_SAMPLES:  # pairs grow quadratically: thin a long, dense window evenly
            keep = np.linspace(0, len(t) - 1, _MAX_SAMPLES).round().astype(int)
            t, xy = t[keep], xy[keep]
        i, j = np.triu_indices(len(t), 1)
        dt = t[j] - t[i]
        ok = dt > 0
        if not ok.any():
            return None
        slopes = (xy[j[ok]] - xy[i[ok]]) / dt[ok, None]
        return np.median(slopes, axis=0)

    def predict(self, t: float) -> np.ndarray:
        """Where the vehicle should be at ``t`` (m), from its last sighting and velocity."""
        last = np.asarray(self.xy[-1], dtype=np.float64)
        v = self.velocity_ms()
        return last if v is None else last + v * (t - self.last_seen)


def speed_kmh(ts: np.ndarray, ground: np.ndarray) -> float | None:
    """The rule's speed estimate (km/h) for sightings at times ``ts`` (s) and ground points (n, 2) m.

    Example:
        >>> round(speed_kmh(np.array([0.0, 0.5, 1.0]), np.array([[0, 0], [5, 0], [10, 0]])), 1)
        36.0
    """
    track = _Track(first_seen=float(ts[0]))
    for t, p in zip(ts, ground):
        track.add(float(t), np.asarray(p), window_s=float("inf"))
    v = track.speed_ms()
    return None if v is None else v * MS_TO_KMH


class SpeedingRule(TrackedRule[SpeedingRuleConfig, _Track]):
    """Fires while a vehicle in the zone is measured above ``max_speed_kmh + tolerance_kmh``.

    Per object: each speeding vehicle is its own hit (key: its track id and when the
    track was first seen).
    """

    type = "speeding"
    kind = IncidentKind("speeding", "超速", "speeding", "traffic")

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        if scene.ground is None:  # not calibrated (the scene config refuses that; be safe)
            return INACTIVE
        ids = scene.tracker_ids
        idx = np.flatnonzero(self.candidates(scene) & (ids >= 0))
        limit = cfg.max_speed_kmh + cfg.tolerance_kmh
        fast: list[int] = []
        speeds: list[float] = []
        seen_now = {int(ids[i]) for i in idx}
        for det_i in idx:
            track_id = int(ids[det_i])
            track = self._tracks.get(track_id)
            if track is None:
                track = self._rejoin(scene.ground[det_i], now, seen_now)
                if track is None:
                    track = _Track(first_seen=now, key=f"{track_id}@{now:.3f}", first_track=track_id)
                self._tracks[track_id] = track
            track.add(now, scene.ground[det_i], cfg.window_s)
            if now - track.first_seen < cfg.min_track_s:
                continue
            v = track.speed_ms()
            if v is not None and v * MS_TO_KMH > limit:
                fast.append(int(det_i))
                speeds.append(v * MS_TO_KMH)
        self._forget(now, max(KEEP_S, cfg.window_s))
        if not fast:
            return INACTIVE
        top = max(speeds)
        names = scene.class_names
        hits = tuple(
            Hit(
                key=self._tracks[int(ids[i])].key,
                subjects=np.asarray([i], dtype=np.int64),
                summary=f"{names[i]} #{int(ids[i])} at {v:.0f} km/h, limit {cfg.max_speed_kmh:g} km/h",
                details={
                    "track": int(ids[i]),
                    "first_track": self._tracks[int(ids[i])].first_track,
                    "speed_kmh": round(v, 1),
                    "limit_kmh": cfg.max_speed_kmh,
                    "tolerance_kmh": cfg.tolerance_kmh,
                },
                severity=v,  # the case keeps the highest speed measured
            )
            for i, v in zip(fast, speeds, strict=True)
        )
        return RuleResult(
            active=True,
            subjects=np.asarray(fast, dtype=np.int64),
            count=len(fast),
            summary=f"{len(fast)} vehicle(s) above {cfg.max_speed_kmh:g} km/h, fastest {top:.0f} km/h",
            details={
                "speed_kmh": round(top, 1),
                "speeds_kmh": [round(s, 1) for s in speeds],
                "limit_kmh": cfg.max_speed_kmh,
                "tolerance_kmh": cfg.tolerance_kmh,
                "tracks": [int(ids[i]) for i in fast],
            },
            hits=hits,
            severity=top,
        )

    def _rejoin(self, point: np.ndarray, now: float, seen_now: set[int]) -> _Track | None:
        """The record of a vehicle lost recently (not seen on this frame) that was predicted
        to be where the new track ``point`` appears, removed from the table; else None."""
        best: tuple[float, int] | None = None
        for tid, tr in self._tracks.items():
            if tid in seen_now or not tr.ts or now - tr.last_seen > KEEP_S:
                continue
            predicted = tr.predict(now)
            travelled = float(np.linalg.norm(predicted - np.asarray(tr.xy[-1])))
            gap = float(np.linalg.norm(np.asarray(point, dtype=np.float64) - predicted))
            if gap <= max(REJOIN_M, REJOIN_FRACTION * travelled) and (best is None or gap < best[0]):
                best = (gap, tid)
        return None if best is None else self._tracks.pop(best[1])
