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

import numpy as np

from ..config import LoiteringRuleConfig
from .base import INACTIVE, Hit, IncidentKind, Rule, RuleResult, Scene
from .stays import StayTracker, counted_stays, format_duration, listing, tracked_candidates


class LoiteringRule(Rule[LoiteringRuleConfig]):
    """Fires while any one person has been in the zone for ``min_duration_s``.

    Per object: each loitering person is their own hit (key: the first track id of their
    presence, kept across ID switches).

    Example:
        >>> rule = LoiteringRule(LoiteringRuleConfig(min_duration_s=60))
    """

    type = "loitering"
    kind = IncidentKind("loitering", "徘徊", "loitering", "public_safety")
    per_object = True

    def __init__(self, config: LoiteringRuleConfig) -> None:
        super().__init__(config)
        self._presence = StayTracker(max_movement=None, lost_grace_s=config.lost_grace_s, rejoin_distance=config.rejoin_distance)

    def restore(self, key: str, box: tuple[float, float, float, float], class_name: str) -> bool:
        return self._presence.restore(key, box, class_name)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        idx = tracked_candidates(scene, self.candidates(scene))
        # already loitering when last seen, gone for less than the grace: still counts
        people = counted_stays(self._presence, scene, idx, cfg.min_duration_s)
        if not people:
            return INACTIVE
        persons = [
            {
                "track": s.track,
                "in_zone_s": round(s.held(now), 1),
                "since": round(s.since, 3),
                "previous_tracks": list(s.previous),
                "visible": i is not None,
            }
            for s, i in people
        ]
        hits = tuple(
            Hit(
                key=s.key,
                subjects=np.asarray([] if i is None else [i], dtype=np.int64),
                summary=f"loitering: {s.label()} for {format_duration(s.held(now))}{' (out of sight)' if i is None else ''}",
                details={"threshold_s": cfg.min_duration_s, **person},
                severity=s.held(now),
            )
            for (s, i), person in zip(people, persons, strict=True)
        )
        listed = listing([f"{s.label()} for {format_duration(s.held(now))}{' (out of sight)' if i is None else ''}" for s, i in people])
        return RuleResult(
            active=True,
            subjects=np.asarray(sorted(i for _, i in people if i is not None), dtype=np.int64),
            count=len(people),
            summary=f"{len(people)} loitering: {listed}",
            details={
                "longest_s": round(people[0][0].held(now), 1),
                "threshold_s": cfg.min_duration_s,
                "tracks": [s.track for s, _ in people],
                "persons": persons,
            },
            hits=hits,
        )
