"""区域入侵 intrusion, and its traffic form 行人/非机动车闯入机动车道 (lane intrusion)."""

from __future__ import annotations

import numpy as np

from ..config import IntrusionRuleConfig, LaneIntrusionRuleConfig
from .base import INACTIVE, IncidentKind, Rule, RuleResult, Scene


class IntrusionRule(Rule[IntrusionRuleConfig | LaneIntrusionRuleConfig]):
    """Fires while any listed object has been inside the zone for ``min_duration_s``
    (per track; missed detections shorter than ``grace_s`` don't restart its clock).

    Example:
        >>> rule = IntrusionRule(IntrusionRuleConfig(classes=["person"]))
    """

    type = "intrusion"
    kind = IncidentKind("intrusion", "区域入侵", "intrusion", "public_safety")

    def __init__(self, config: IntrusionRuleConfig | LaneIntrusionRuleConfig) -> None:
        super().__init__(config)
        self._entered: dict[int, float] = {}
        self._seen: dict[int, float] = {}

    def evaluate(self, scene: Scene) -> RuleResult:
        idx = np.flatnonzero(self.candidates(scene))
        min_s = self.config.min_duration_s
        if min_s > 0:
            ids = scene.tracker_ids[idx]
            present = {int(t) for t in ids if t >= 0}
            for t in present:
                self._entered.setdefault(t, scene.now)
                self._seen[t] = scene.now
            # a track missed for a frame or two (detector flicker) keeps its clock
            gone = [t for t, s in self._seen.items() if scene.now - s > self.config.grace_s]
            for t in gone:
                del self._seen[t]
                self._entered.pop(t, None)
            ok = np.array([t >= 0 and scene.now - self._entered[int(t)] >= min_s for t in ids], dtype=bool)
            idx = idx[ok] if len(idx) else idx
        if len(idx) == 0:
            return INACTIVE
        labels = sorted({str(n) for n in scene.class_names[idx]})
        return RuleResult(
            active=True,
            subjects=idx,
            count=len(idx),
            summary=f"{len(idx)} × {'/'.join(labels)} inside the zone",
            details={"classes": labels, "tracks": [int(t) for t in scene.tracker_ids[idx]]},
        )


class LaneIntrusionRule(IntrusionRule):
    """A person or non-motor vehicle in a motor lane for ``min_duration_s``; ``exempt_zones``
    (crosswalks) are where crossing is allowed."""

    type = "lane_intrusion"
    kind = IncidentKind("lane_intrusion", "行人/非机动车闯入机动车道", "pedestrian or non-motor vehicle in motor lane", "traffic")
