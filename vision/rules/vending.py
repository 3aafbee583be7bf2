"""占道经营/游商 street vending: stationary persons with stationary goods in a kerb zone.

TODO(helper): implement; this skeleton only registers the type.
"""

from __future__ import annotations

from ..config import StreetVendingRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class StreetVendingRule(Rule):
    type = "street_vending"
    kind = IncidentKind("street_vending", "占道经营", "street vending", "street_order")
    config: StreetVendingRuleConfig

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
