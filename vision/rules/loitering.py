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
from .stays import StayTracker, elsewhere, format_duration, tracked_candidates

_NAMED = 5


class LoiteringRule(Rule):
    """Fires while any one person has been in the zone for ``min_duration_s``.

    Per object: each loitering person is their own hit (key: the first track id of their
    presence, kept across ID switches).

    Example:
        >>> rule = LoiteringRule(LoiteringRuleConfig(min_duration_s=60))
    """

    type = "loitering"
    kind = IncidentKind("loitering", "徘徊", "loitering", "public_safety")
    config: LoiteringRuleConfig
    per_object = True

    def __init__(self, config: LoiteringRuleConfig) -> None:
        super().__init__(config)
        self._presence = StayTracker(max_movement=None, lost_grace_s=config.lost_grace_s, rejoin_distance=config.rejoin_distance)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        idx = tracked_candidates(scene, self.candidates(scene))
        present = self._presence.update(
            now, scene.tracker_ids[idx], scene.detections.xyxy[idx], scene.class_names[idx], scene.size, elsewhere(scene, idx)
        )
        visible = [(int(i), s) for i, s in zip(idx, present, strict=True) if s.held(now) >= cfg.min_duration_s]
        # already loitering when last seen, gone for less than the grace: still counts
        hidden = [s for s in self._presence.unseen() if s.seen_for >= cfg.min_duration_s]
        if not visible and not hidden:
            return INACTIVE
        where = {id(s): i for i, s in visible}
        people = [(s, True) for _, s in visible] + [(s, False) for s in hidden]
        people.sort(key=lambda p: -p[0].held(now))
        persons = [
            {
                "track": s.track,
                "in_zone_s": round(s.held(now), 1),
                "since": round(s.since, 3),
                "previous_tracks": list(s.previous),
                "visible": seen,
            }
            for s, seen in people
        ]
        hits = tuple(
            Hit(
                key=s.key,
                subjects=np.asarray([where[id(s)]] if seen else [], dtype=np.int64),
                summary=f"loitering: {s.label()} for {format_duration(s.held(now))}{'' if seen else ' (out of sight)'}",
                details={"threshold_s": cfg.min_duration_s, **person},
            )
            for (s, seen), person in zip(people, persons, strict=True)
        )
        longest = people[0][0].held(now)
        listed = ", ".join(
            f"{s.label()} for {format_duration(s.held(now))}{'' if seen else ' (out of sight)'}" for s, seen in people[:_NAMED]
        )
        more = f" and {len(people) - _NAMED} more" if len(people) > _NAMED else ""
        return RuleResult(
            active=True,
            subjects=np.asarray([i for i, _ in visible], dtype=np.int64),
            count=len(people),
            summary=f"{len(people)} loitering: {listed}{more}",
            details={
                "longest_s": round(longest, 1),
                "threshold_s": cfg.min_duration_s,
                "tracks": [s.track for s, _ in people],
                "persons": persons,
            },
            hits=hits,
        )
