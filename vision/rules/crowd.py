"""人员聚集 crowd: at least N objects in the zone for at least T seconds."""

from __future__ import annotations

import numpy as np
import supervision as sv

from ..config import CrowdRuleConfig
from .base import INACTIVE, Rule, RuleResult


class CrowdRule(Rule):
    """Counts listed objects in the zone; fires once the count has held ``min_duration_s``.

    Short dips below the count (a missed detection, an occlusion) shorter than ``grace_s``
    do not restart the clock.
    """

    type = "crowd"
    config: CrowdRuleConfig

    def __init__(self, config: CrowdRuleConfig) -> None:
        super().__init__(config)
        self._since: float | None = None
        self._last_ok: float | None = None

    def evaluate(self, detections: sv.Detections, in_zone: np.ndarray, now: float) -> RuleResult:
        idx = np.flatnonzero(self.candidates(detections, in_zone))
        cfg = self.config
        if len(idx) >= cfg.min_count:
            if self._since is None:
                self._since = now
            self._last_ok = now
        elif self._last_ok is None or now - self._last_ok > cfg.grace_s:
            self._since = None
            self._last_ok = None
        if self._since is None or len(idx) < cfg.min_count:
            return INACTIVE
        held = now - self._since
        if held < cfg.min_duration_s:
            return INACTIVE
        return RuleResult(
            active=True,
            subjects=idx,
            count=len(idx),
            summary=f"{len(idx)} objects in the zone for {held:.0f} s (threshold {cfg.min_count})",
            details={"held_s": round(held, 1)},
        )
