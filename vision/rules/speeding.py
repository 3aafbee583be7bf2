"""超速 speeding: ground speed from the camera calibration above the zone's limit.

TODO(helper): implement; this skeleton only registers the type.
"""

from __future__ import annotations

from ..config import SpeedingRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class SpeedingRule(Rule):
    type = "speeding"
    kind = IncidentKind("speeding", "超速", "speeding", "traffic")
    config: SpeedingRuleConfig

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
