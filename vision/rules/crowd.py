"""人员聚集 crowd: at least N persons (or a density per m²) in the zone for at least T seconds."""

from __future__ import annotations

import numpy as np

from ..config import CrowdRuleConfig
from .base import INACTIVE, HeldClock, IncidentKind, Rule, RuleResult, Scene


class CrowdRule(Rule[CrowdRuleConfig]):
    """Counts listed objects in the zone; fires once the count has held ``min_duration_s``.

    Short dips below the count (a missed detection, an occlusion) shorter than ``grace_s``
    do not restart the clock.
    """

    type = "crowd"
    kind = IncidentKind("crowd", "人员聚集", "crowd gathering", "public_safety")

    def __init__(self, config: CrowdRuleConfig) -> None:
        super().__init__(config)
        self._held = HeldClock()

    def _needed(self, scene: Scene) -> int:
        cfg = self.config
        if cfg.min_density is not None and scene.zone_area_m2:
            return max(1, int(np.ceil(cfg.min_density * scene.zone_area_m2)))
        return cfg.min_count

    def evaluate(self, scene: Scene) -> RuleResult:
        idx = np.flatnonzero(self.candidates(scene))
        cfg = self.config
        now = scene.now
        needed = self._needed(scene)
        held = self._held.update(now, len(idx) >= needed, grace_s=cfg.grace_s)
        if held is None or held < cfg.min_duration_s:
            return INACTIVE
        details: dict[str, float] = {"held_s": round(held, 1), "needed": needed}
        if scene.zone_area_m2:
            details["density_per_m2"] = round(len(idx) / scene.zone_area_m2, 3)
        return RuleResult(
            active=True,
            subjects=idx,
            count=len(idx),
            summary=f"{len(idx)} objects in the zone for {held:.0f} s (threshold {needed})",
            details=details,
        )
