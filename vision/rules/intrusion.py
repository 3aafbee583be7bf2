"""区域入侵 intrusion: listed classes inside the zone (optionally for a minimum time)."""

from __future__ import annotations

import numpy as np
import supervision as sv

from ..config import IntrusionRuleConfig
from .base import INACTIVE, Rule, RuleResult


class IntrusionRule(Rule):
    """Fires while any listed object has been inside the zone for ``min_duration_s``.

    Example:
        >>> rule = IntrusionRule(IntrusionRuleConfig(classes=["person"]))
    """

    type = "intrusion"
    config: IntrusionRuleConfig

    def __init__(self, config: IntrusionRuleConfig) -> None:
        super().__init__(config)
        self._entered: dict[int, float] = {}

    def evaluate(self, detections: sv.Detections, in_zone: np.ndarray, now: float) -> RuleResult:
        hit = self.candidates(detections, in_zone)
        idx = np.flatnonzero(hit)
        min_s = self.config.min_duration_s
        if min_s > 0 and detections.tracker_id is not None:
            ids = detections.tracker_id[idx]
            present = {int(t) for t in ids if t >= 0}
            self._entered = {t: s for t, s in self._entered.items() if t in present}
            for t in present:
                self._entered.setdefault(t, now)
            ok = np.array([t >= 0 and now - self._entered[int(t)] >= min_s for t in ids], dtype=bool)
            idx = idx[ok] if len(idx) else idx
        elif min_s > 0:
            idx = idx[:0]
        if len(idx) == 0:
            return INACTIVE
        names = detections.data["class_name"][idx]
        labels = sorted(set(str(n) for n in names))
        return RuleResult(
            active=True,
            subjects=idx,
            count=len(idx),
            summary=f"{len(idx)} × {'/'.join(labels)} inside the zone",
            details={"classes": labels},
        )
