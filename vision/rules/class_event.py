"""Model-class events: any detector class → an incident type, with confidence and persistence.

A user who trains a model (the fall model's ``Fall`` → 人员倒地, a garbage model's class →
暴露垃圾) gets incidents from configuration alone.

TODO(helper): implement evaluate.
"""

from __future__ import annotations

from ..config import ClassEventRuleConfig
from .base import IncidentKind, Rule, RuleResult, Scene


class ClassEventRule(Rule):
    type = "class_event"
    kind = IncidentKind("class_event", "模型类别事件", "model-class event", "public_safety")
    config: ClassEventRuleConfig

    @property
    def incident_kind(self) -> IncidentKind:
        inc = self.config.incident
        return IncidentKind(inc.code, inc.name_zh, inc.name_en, inc.category)

    def evaluate(self, scene: Scene) -> RuleResult:
        raise NotImplementedError
