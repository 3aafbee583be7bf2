"""The rule interface.

A rule looks at one camera's tracked detections for one zone and says whether its
condition holds *now*. It keeps whatever per-track state it needs, is handed the clock
(``now``) instead of reading it, and never does I/O: opening, updating and closing
incidents is the incident manager's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import supervision as sv


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What a rule saw on one frame.

    Attributes:
        active: the rule's condition holds on this frame.
        subjects: (k,) int indices into the detections that make it hold (for evidence).
        count: how many objects take part (persons in a crowd, intruders, parked vehicles).
        summary: one human-readable line, e.g. "2 person in zone 'gate' for 4.0 s".
        details: JSON-able extras (track ids, durations).
    """

    active: bool
    subjects: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    count: int = 0
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


INACTIVE = RuleResult(active=False)


def class_mask(detections: sv.Detections, classes: set[str], min_confidence: float) -> np.ndarray:
    """(n,) bool: detections of one of ``classes`` at or above ``min_confidence``."""
    if len(detections) == 0:
        return np.zeros(0, dtype=bool)
    names = detections.data.get("class_name")
    if names is None:
        return np.zeros(len(detections), dtype=bool)
    keep = np.isin(np.asarray(names), list(classes))
    if detections.confidence is not None:
        keep &= detections.confidence >= min_confidence
    return keep


class Rule(ABC):
    """One rule instance, bound to one zone of one camera.

    Subclasses set ``type`` and implement ``evaluate``. ``in_zone`` is the zone's
    (n,) membership mask, computed once per frame and shared by all rules of the zone.
    """

    type: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config
        self.id: str = config.rule_id
        self._classes = set(config.classes)

    def candidates(self, detections: sv.Detections, in_zone: np.ndarray) -> np.ndarray:
        """(n,) bool: detections in the zone, of the rule's classes and confidence."""
        return in_zone & class_mask(detections, self._classes, self.config.min_confidence)

    @abstractmethod
    def evaluate(self, detections: sv.Detections, in_zone: np.ndarray, now: float) -> RuleResult:
        """Judge one frame. ``detections`` carry ``tracker_id``; ``now`` is the frame time (s)."""
