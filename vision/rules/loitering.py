"""徘徊 loitering: one person inside a key-site zone (a school gate, a bank door) for at least T.

Each person is judged on their own: a clock starts when the person's track enters the
zone and runs while the track stays inside, moving or not. A person briefly unseen or
stepping out for at most ``lost_grace_s`` keeps the clock (the same track id coming back
continues it), and a *new* track that begins within ``rejoin_distance`` box heights of
where a person vanished, within ``lost_grace_s`` and with a similar box, continues the
vanished person's clock (a tracker ID switch). A person last seen at the frame border or
seen outside the zone has left: another track may not take their clock over, so a stream
of passers-by never adds up.
"""

from __future__ import annotations

from typing import Any

from ..config import LoiteringRuleConfig
from .base import IncidentKind
from .stays import Stay, StayRule, StayTracker


class LoiteringRule(StayRule[LoiteringRuleConfig]):
    """Fires while any one person has been in the zone for ``min_duration_s``.

    Per object: each loitering person is their own hit (key: the first track id of their
    presence, kept across ID switches).

    Example:
        >>> rule = LoiteringRule(LoiteringRuleConfig(min_duration_s=60))
    """

    type = "loitering"
    kind = IncidentKind("loitering", "徘徊", "loitering", "public_safety")
    hidden_note = " (out of sight)"
    described_as = "persons"

    def __init__(self, config: LoiteringRuleConfig) -> None:
        super().__init__(config, StayTracker(max_movement=None, lost_grace_s=config.lost_grace_s, rejoin_distance=config.rejoin_distance))

    def title(self, *, plural: bool) -> str:
        return "loitering"

    def describe(self, stay: Stay, now: float, *, visible: bool) -> dict[str, Any]:
        return {
            "track": stay.track,
            "in_zone_s": round(stay.held(now), 1),
            "since": round(stay.since, 3),
            "previous_tracks": list(stay.previous),
            "visible": visible,
        }
