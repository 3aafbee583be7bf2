"""闯红灯 red-light running: a vehicle crossing the stop line while the signal is red.

TODO(helper): implement; this skeleton only registers the type.
"""

from __future__ import annotations

from ..config import RedLightRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class RedLightRule(Rule):
    type = "red_light"
    kind = IncidentKind("red_light", "闯红灯", "red-light running", "traffic")
    config: RedLightRuleConfig

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
