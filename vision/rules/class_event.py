"""Model-class events: any detector class → an incident type, with confidence and persistence.

A user who trains a model (the fall model's ``Fall`` → 人员倒地, a garbage model's class →
暴露垃圾) gets incidents from configuration alone: the rule's ``classes`` name the model's
classes, ``incident`` names the incident type it opens.

Persistence is judged for the zone as a whole, not per track: a detector that flickers on
and off, or a tracker that gives the fallen person a new id, still adds up to one event.
"""

from __future__ import annotations

import numpy as np

from ..config import ClassEventRuleConfig
from .base import INACTIVE, HeldClock, IncidentKind, Rule, RuleResult, Scene


class ClassEventRule(Rule[ClassEventRuleConfig]):
    """Fires once a listed class has been seen in the zone (at ``min_confidence``) for
    ``min_duration_s``; gaps in the detections shorter than ``grace_s`` don't restart the clock.

    Example:
        >>> cfg = ClassEventRuleConfig(
        ...     classes=["Fall"], incident={"code": "person_fallen", "name_zh": "人员倒地", "name_en": "person fallen"}
        ... )
        >>> ClassEventRule(cfg).incident_kind.code
        'person_fallen'
    """

    type = "class_event"
    kind = IncidentKind("class_event", "模型类别事件", "model-class event", "public_safety")

    def __init__(self, config: ClassEventRuleConfig) -> None:
        super().__init__(config)
        self._held = HeldClock()

    @property
    def incident_kind(self) -> IncidentKind:
        inc = self.config.incident
        return IncidentKind(inc.code, inc.name_zh, inc.name_en, inc.category)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        idx = np.flatnonzero(self.candidates(scene))
        # frames stop while a stream stalls: seen again after the grace time is a new event
        held = self._held.update(now, len(idx) > 0, grace_s=cfg.grace_s, gap_restarts=True)
        if held is None or held < cfg.min_duration_s:
            return INACTIVE
        dets = scene.detections
        labels = sorted({str(n) for n in scene.class_names[idx]})
        best = float(dets.confidence[idx].max()) if dets.confidence is not None else None
        inc = cfg.incident
        return RuleResult(
            active=True,
            subjects=idx,
            count=len(idx),
            summary=f"{inc.name_en} ({inc.name_zh}): {len(idx)} × {'/'.join(labels)} for {held:.1f} s",
            details={
                "classes": labels,
                "tracks": [int(t) for t in scene.tracker_ids[idx] if t >= 0],
                "confidence": None if best is None else round(best, 3),
                "held_s": round(held, 1),
                "incident_code": inc.code,
                "name_zh": inc.name_zh,
                "name_en": inc.name_en,
            },
        )
