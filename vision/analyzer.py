"""One camera's analysis step: tracked detections → zones → rule verdicts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from gridworker.streams.frame import Frame

from .config import ZoneConfig
from .rules import Rule, RuleResult, build_rule
from .tracker import ByteTracker, TrackerConfig
from .zones import Zone


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    zone_id: str
    rule_id: str
    rule_type: str
    clear_after_s: float
    result: RuleResult


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """Everything known about one analysed frame: the frame, its tracked detections and verdicts."""

    frame: Frame
    detections: sv.Detections
    verdicts: tuple[RuleVerdict, ...]
    zones: tuple[Zone, ...]

    @property
    def active(self) -> tuple[RuleVerdict, ...]:
        return tuple(v for v in self.verdicts if v.result.active)


class _ZoneRules:
    def __init__(self, config: ZoneConfig) -> None:
        self.zone = Zone(config)
        self.rules: list[Rule] = [build_rule(r) for r in config.rules]


class CameraAnalyzer:
    """Tracker, zones and rules of one camera.

    ``analyze`` is called from the pipeline's post-processing thread only; ``set_zones``
    may come from the API thread, so the zone list is swapped under a lock.

    Example:
        >>> analyzer = CameraAnalyzer("cam1", fps=5, zones=[])
    """

    def __init__(self, camera_id: str, fps: float, zones: Sequence[ZoneConfig], tracker: TrackerConfig | None = None) -> None:
        self.camera_id = camera_id
        self._tracker = ByteTracker(fps=fps, config=tracker)
        self._lock = threading.Lock()
        self._zones = [_ZoneRules(z) for z in zones]

    def set_zones(self, zones: Sequence[ZoneConfig]) -> None:
        built = [_ZoneRules(z) for z in zones]
        with self._lock:
            self._zones = built

    @property
    def zones(self) -> tuple[Zone, ...]:
        with self._lock:
            return tuple(z.zone for z in self._zones)

    def analyze(self, frame: Frame, detections: sv.Detections) -> FrameAnalysis:
        tracked = self._tracker.update(detections, ts=frame.ts)
        size = (frame.width, frame.height)
        with self._lock:
            zone_rules = list(self._zones)
        verdicts: list[RuleVerdict] = []
        for zr in zone_rules:
            in_zone = zr.zone.contains(tracked, size) if len(tracked) else np.zeros(0, dtype=bool)
            for rule in zr.rules:
                result = rule.evaluate(tracked, in_zone, frame.ts)
                verdicts.append(RuleVerdict(zr.zone.id, rule.id, rule.type, rule.config.clear_after_s, result))
        return FrameAnalysis(frame, tracked, tuple(verdicts), tuple(zr.zone for zr in zone_rules))
