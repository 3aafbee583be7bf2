"""Rules: one module per rule type; ``RULE_TYPES`` maps a config's ``type`` to its class.

Adding a rule: a config class in ``vision/config.py`` (added to ``RuleConfig``), a module
here with a ``Rule`` subclass, and one line in ``RULE_TYPES``.
"""

from __future__ import annotations

from typing import Any

from .base import Rule, RuleResult, class_mask
from .crowd import CrowdRule
from .dwell import DwellRule
from .intrusion import IntrusionRule

RULE_TYPES: dict[str, type[Rule]] = {
    IntrusionRule.type: IntrusionRule,
    CrowdRule.type: CrowdRule,
    DwellRule.type: DwellRule,
}


def build_rule(config: Any) -> Rule:
    return RULE_TYPES[config.type](config)


__all__ = ["RULE_TYPES", "CrowdRule", "DwellRule", "IntrusionRule", "Rule", "RuleResult", "build_rule", "class_mask"]
