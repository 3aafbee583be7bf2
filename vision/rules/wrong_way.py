"""车辆逆行 wrong-way driving: smoothed motion against the lane's allowed direction.

TODO(helper): implement; this skeleton only registers the type.
"""

from __future__ import annotations

from ..config import WrongWayRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class WrongWayRule(Rule):
    type = "wrong_way"
    kind = IncidentKind("wrong_way", "车辆逆行", "wrong-way driving", "traffic")
    config: WrongWayRuleConfig

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
