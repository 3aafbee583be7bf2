"""Rules: one module per rule family; ``RULE_TYPES`` maps a config's ``type`` to its class.

Adding a rule: a config class in ``vision/config.py`` (added to ``RuleConfig``), a
``Rule`` subclass here with its ``type`` and ``kind``, and one entry in ``RULE_TYPES``.
"""

from __future__ import annotations

from ..config import RuleConfig, RuleConfigBase
from .base import INACTIVE, Hit, IncidentKind, Rule, RuleResult, Scene, class_mask
from .class_event import ClassEventRule
from .crowd import CrowdRule
from .dwell import DwellRule, IllegalParkingRule, NonMotorParkingRule
from .intrusion import IntrusionRule, LaneIntrusionRule
from .loitering import LoiteringRule
from .red_light import RedLightRule
from .speeding import SpeedingRule
from .vending import StreetVendingRule
from .wrong_way import WrongWayRule

RULE_TYPES: dict[str, type[Rule[RuleConfigBase]]] = {
    cls.type: cls
    for cls in (
        IllegalParkingRule,
        NonMotorParkingRule,
        LaneIntrusionRule,
        WrongWayRule,
        CrowdRule,
        LoiteringRule,
        IntrusionRule,
        StreetVendingRule,
        SpeedingRule,
        RedLightRule,
        ClassEventRule,
        DwellRule,
    )
}


def build_rule(config: RuleConfig) -> Rule[RuleConfigBase]:
    return RULE_TYPES[config.type](config)


def incident_kinds() -> list[IncidentKind]:
    """The incident types of the built-in rules (class events define their own)."""
    return [cls.kind for cls in RULE_TYPES.values() if cls is not ClassEventRule]


__all__ = [
    "INACTIVE",
    "RULE_TYPES",
    "ClassEventRule",
    "CrowdRule",
    "DwellRule",
    "Hit",
    "IllegalParkingRule",
    "IncidentKind",
    "IntrusionRule",
    "LaneIntrusionRule",
    "LoiteringRule",
    "NonMotorParkingRule",
    "RedLightRule",
    "Rule",
    "RuleResult",
    "Scene",
    "SpeedingRule",
    "StreetVendingRule",
    "WrongWayRule",
    "build_rule",
    "class_mask",
    "incident_kinds",
]
