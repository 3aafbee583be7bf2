"""徘徊 loitering: one person in a key-site zone for at least T.

TODO(helper): implement; this skeleton only registers the type.
"""

from __future__ import annotations

from ..config import LoiteringRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class LoiteringRule(Rule):
    type = "loitering"
    kind = IncidentKind("loitering", "徘徊", "loitering", "public_safety")
    config: LoiteringRuleConfig

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
