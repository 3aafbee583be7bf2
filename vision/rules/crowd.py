"""人员聚集 crowd: at least N persons (or a density per m²) in the zone for at least T seconds."""

from __future__ import annotations

import numpy as np

from ..config import CrowdRuleConfig
from .base import INACTIVE, IncidentKind, Rule, RuleResult, Scene


class CrowdRule(Rule[CrowdRuleConfig]):
    """Counts listed objects in the zone; fires once the count has held ``min_duration_s``.

    Short dips below the count (a missed detection, an occlusion) shorter than ``grace_s``
    do not restart the clock.
    """

    type = "crowd"
    kind = IncidentKind("crowd", "人员聚集", "crowd gathering", "public_safety")

    def __init__(self, config: CrowdRuleConfig) -> None:
        super().__init__(config)
        self._since: float | None = None
        self._last_ok: float | None = None

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
        if len(idx) >= needed:
            if self._since is None:
                self._since = now
            self._last_ok = now
        elif self._last_ok is None or now - self._last_ok > cfg.grace_s:
            self._since = None
            self._last_ok = None
        if self._since is None or len(idx) < needed:
            return INACTIVE
        held = now - self._since
        if held < cfg.min_duration_s:
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
