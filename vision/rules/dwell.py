"""Dwell: an object that stays still inside the zone — the basis of illegal parking (机动车违停)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import DwellRuleConfig, IllegalParkingRuleConfig, NonMotorParkingRuleConfig
from ..zones import ground_points
from .base import INACTIVE, IncidentKind, Rule, RuleResult, Scene


@dataclass(slots=True)
class _Stay:
    anchor: np.ndarray  # (2,) ground point where the stay began, pixels
    since: float
    last_seen: float


class DwellRule(Rule):
    """Fires while any tracked object has stood still in the zone for ``min_duration_s``.

    "Still" is judged on the box's ground point relative to the box height, so the same
    setting works near and far from the camera. Per-track state lives in a dict keyed by
    tracker id and is pruned once a track has been unseen for ``lost_grace_s``.
    """

    type = "dwell"
    kind = IncidentKind("dwell", "物体滞留", "stationary object", "street_order")
    config: DwellRuleConfig

    def __init__(self, config: DwellRuleConfig) -> None:
        super().__init__(config)
        self._stays: dict[int, _Stay] = {}

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        detections, now = scene.detections, scene.now
        idx = np.flatnonzero(self.candidates(scene))
        if detections.tracker_id is not None and len(idx):
            idx = idx[detections.tracker_id[idx] >= 0]
        dwelling: list[int] = []
        durations: list[float] = []
        if len(idx):
            xyxy = detections.xyxy[idx]
            points = ground_points(xyxy)
            heights = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)
            for j, det_i in enumerate(idx):
                track = int(detections.tracker_id[det_i])  # type: ignore[index]
                stay = self._stays.get(track)
                if stay is None or np.linalg.norm(points[j] - stay.anchor) > cfg.max_movement * heights[j]:
                    self._stays[track] = _Stay(anchor=points[j].copy(), since=now, last_seen=now)
                    continue
                stay.last_seen = now
                held = now - stay.since
                if held >= cfg.min_duration_s:
                    dwelling.append(int(det_i))
                    durations.append(held)
        self._stays = {t: s for t, s in self._stays.items() if now - s.last_seen <= cfg.lost_grace_s}
        if not dwelling:
            return INACTIVE
        longest = max(durations)
        return RuleResult(
            active=True,
            subjects=np.asarray(dwelling, dtype=np.int64),
            count=len(dwelling),
            summary=f"{len(dwelling)} stationary object(s), the longest for {longest:.0f} s",
            details={"longest_s": round(longest, 1), "tracks": [int(detections.tracker_id[i]) for i in dwelling]},  # type: ignore[index]
        )


class IllegalParkingRule(DwellRule):
    """机动车违停: a motor vehicle stationary in a no-parking zone for ``min_duration_s``."""

    type = "illegal_parking"
    kind = IncidentKind("illegal_parking", "机动车违停", "illegal parking", "traffic")
    config: IllegalParkingRuleConfig


class NonMotorParkingRule(DwellRule):
    """非机动车乱停放: a bicycle/motorcycle parked outside the allowed parking zones (``exempt_zones``)."""

    type = "nonmotor_parking"
    kind = IncidentKind("nonmotor_parking", "非机动车乱停放", "non-motor vehicle parking", "street_order")
    config: NonMotorParkingRuleConfig
