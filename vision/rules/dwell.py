"""Dwell: an object that stays still inside the zone — the basis of 机动车违停 (illegal
parking) and 非机动车乱停放 (non-motor vehicles parked outside the allowed bays)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..config import DwellRuleConfig, IllegalParkingRuleConfig, NonMotorParkingRuleConfig
from .base import INACTIVE, Hit, IncidentKind, Rule, RuleResult, Scene
from .stays import Stay, StayTracker, elsewhere, format_duration, tracked_candidates

#: How many objects a summary names before it says "and N more".
_NAMED = 5


class DwellRule(Rule):
    """Fires while any tracked object has stood still in the zone for ``min_duration_s``.

    "Still" is judged on the box's ground point relative to the box height (a drift of at
    most ``max_movement`` heights), so the same setting works near and far from the camera.
    Stays survive occlusions and tracker ID switches (see :mod:`.stays`): while a stay that
    already counted is unseen for at most ``lost_grace_s`` the rule stays active and its
    clock keeps running, and a new track that begins at the same place with a similar box
    inherits the start time. A track seen to move away (even out of the zone) ends its stay.

    Per object: each stationary object is its own hit (key: the stay's first track id), so
    three cars parked on one kerb are three incidents.
    """

    type = "dwell"
    per_object = True
    kind = IncidentKind("dwell", "物体滞留", "stationary object", "street_order")
    config: DwellRuleConfig
    noun: ClassVar[str] = "object"

    def __init__(self, config: DwellRuleConfig) -> None:
        super().__init__(config)
        self._stays = StayTracker(max_movement=config.max_movement, lost_grace_s=config.lost_grace_s)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        idx = tracked_candidates(scene, self.candidates(scene))
        dets = scene.detections
        present = self._stays.update(
            now, scene.tracker_ids[idx], dets.xyxy[idx], scene.class_names[idx], scene.size, elsewhere(scene, idx)
        )
        visible = [(int(i), s) for i, s in zip(idx, present, strict=True) if s.held(now) >= cfg.min_duration_s]
        # counted before it went out of sight: still there as far as we know (no second incident)
        hidden = [s for s in self._stays.unseen() if s.seen_for >= cfg.min_duration_s]
        if not visible and not hidden:
            return INACTIVE
        where = {id(s): i for i, s in visible}
        stays = [(s, True) for _, s in visible] + [(s, False) for s in hidden]
        stays.sort(key=lambda sv: -sv[0].held(now))
        hits = tuple(
            Hit(
                key=s.key,
                subjects=np.asarray([where[id(s)]] if seen else [], dtype=np.int64),
                summary=f"stationary {self.noun}: {s.label()} for {format_duration(s.held(now))}{'' if seen else ' (hidden)'}",
                details={"threshold_s": cfg.min_duration_s, **_describe(s, now, visible=seen)},
            )
            for s, seen in stays
        )
        longest = stays[0][0].held(now)
        listed = ", ".join(f"{s.label()} for {format_duration(s.held(now))}{'' if seen else ' (hidden)'}" for s, seen in stays[:_NAMED])
        more = f" and {len(stays) - _NAMED} more" if len(stays) > _NAMED else ""
        return RuleResult(
            active=True,
            subjects=np.asarray([i for i, _ in visible], dtype=np.int64),
            count=len(stays),
            summary=f"{len(stays)} stationary {self.noun}(s): {listed}{more}",
            details={
                "longest_s": round(longest, 1),
                "threshold_s": cfg.min_duration_s,
                "tracks": [s.track for s, _ in stays],
                "objects": [_describe(s, now, visible=seen) for s, seen in stays],
            },
            hits=hits,
        )


def _describe(stay: Stay, now: float, *, visible: bool) -> dict[str, Any]:
    return {
        "track": stay.track,
        "class": stay.class_name,
        "stationary_s": round(stay.held(now), 1),
        "since": round(stay.since, 3),
        "previous_tracks": list(stay.previous),
        "visible": visible,
    }


class IllegalParkingRule(DwellRule):
    """机动车违停: a motor vehicle stationary in a no-parking zone for ``min_duration_s``."""

    type = "illegal_parking"
    kind = IncidentKind("illegal_parking", "机动车违停", "illegal parking", "traffic")
    config: IllegalParkingRuleConfig
    noun = "vehicle"


class NonMotorParkingRule(DwellRule):
    """非机动车乱停放: a bicycle/motorcycle parked outside the allowed parking zones (``exempt_zones``)."""

    type = "nonmotor_parking"
    kind = IncidentKind("nonmotor_parking", "非机动车乱停放", "non-motor vehicle parking", "street_order")
    config: NonMotorParkingRuleConfig
    noun = "non-motor vehicle"
