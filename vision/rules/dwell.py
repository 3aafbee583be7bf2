"""Dwell: an object that stays still inside the zone — the basis of 机动车违停 (illegal
parking) and 非机动车乱停放 (non-motor vehicles parked outside the allowed bays)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..config import DwellRuleConfig, IllegalParkingRuleConfig, NonMotorParkingRuleConfig
from .base import IncidentKind
from .stays import Stay, StayRule, StayTracker


class DwellRule(StayRule[DwellRuleConfig]):
    """Fires while any tracked object has stood still in the zone for ``min_duration_s``.

    "Still" is judged on the box's ground point relative to the box height (a drift of at
    most ``max_movement`` heights), so the same setting works near and far from the camera.
    Stays survive occlusions and tracker ID switches (see :mod:`.stays`): while a stay that
    already counted is unseen for at most ``lost_grace_s`` the rule stays active and its
    clock keeps running, and a new track that begins at the same place with a similar box
    inherits the start time. A track seen to move away (even out of the zone) ends its stay,
    and so does creeping farther than ``max_travel`` box heights from where the stay began (a
    queue inching forward is not parked). A stay that had counted and was lost for longer than
    ``lost_grace_s`` comes back, with its key, to a track that appears at its place within
    ``rejoin_s`` (the detector lost the car; see :mod:`.stays`).

    Per object: each stationary object is its own hit (key: the stay's first track id), so
    three cars parked on one kerb are three incidents.
    """

    type = "dwell"
    kind = IncidentKind("dwell", "物体滞留", "stationary object", "street_order")
    noun: ClassVar[str] = "object"
    hidden_note = " (hidden)"
    described_as = "objects"

    def __init__(self, config: DwellRuleConfig) -> None:
        super().__init__(
            config,
            StayTracker(
                max_movement=config.max_movement,
                lost_grace_s=config.lost_grace_s,
                max_travel=config.max_travel,
                rejoin_s=config.rejoin_s,
                remember_after_s=config.min_duration_s,
            ),
        )

    def title(self, *, plural: bool) -> str:
        return f"stationary {self.noun}{'(s)' if plural else ''}"

    def describe(self, stay: Stay, now: float, *, visible: bool) -> dict[str, Any]:
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
