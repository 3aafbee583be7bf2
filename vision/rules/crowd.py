"""人员聚集 crowd: at least N persons (or a density per m²) in the zone for at least T seconds."""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np

from ..config import CrowdRuleConfig
from .base import INACTIVE, HeldClock, IncidentKind, Rule, RuleResult, Scene


class CrowdRule(Rule[CrowdRuleConfig]):
    """Counts listed objects in the zone; fires once the count has held ``min_duration_s``.

    Short dips below the count (a missed detection, an occlusion) shorter than ``grace_s``
    do not restart the clock. Time without frames is not time the crowd was seen: after a gap
    longer than ``grace_s`` and than ``STALL_FACTOR`` usual frame intervals (a stalled
    stream, a reconnect, the clock jumping ahead) the count held before it does not count, and
    the clock starts again from the first frame after it.
    """

    type = "crowd"
    kind = IncidentKind("crowd", "人员聚集", "crowd gathering", "public_safety")

    def __init__(self, config: CrowdRuleConfig) -> None:
        super().__init__(config)
        self._held = HeldClock()
        self._last_frame: float | None = None
        self._gaps: deque[float] = deque(maxlen=STALL_WINDOW)  # the last gaps between frames

    def _stalled(self, now: float) -> bool:
        """Whether no frame came for much longer than usual before ``now`` (see the class docstring)."""
        last, self._last_frame = self._last_frame, now
        if last is None or now <= last:
            return False
        gap = now - last
        usual = statistics.median(self._gaps) if self._gaps else 0.0
        self._gaps.append(gap)
        return gap > max(self.config.grace_s, STALL_FACTOR * usual)

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
        if self._stalled(now):  # frames stopped: nobody saw the crowd meanwhile
            self._held = HeldClock()
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


#: A frame interval is "usual" as the median of the last this many gaps between frames ...
STALL_WINDOW = 9
#: ... and a gap longer than this many usual intervals (and than ``grace_s``) is a stall.
STALL_FACTOR = 3.0
