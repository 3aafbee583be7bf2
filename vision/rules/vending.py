"""占道经营/游商 street vending: stationary persons with stationary goods in a kerb zone.

A vendor is a person who stays still (ground point within ``max_movement`` box heights)
with goods-like objects (``goods_classes``: a stall umbrella, a table, chairs, a suitcase
of wares…) that stay still too, within ``max_gap`` person heights of them. The rule fires
once a person and goods have been still *together* for ``min_duration_s`` (the clock of a
pair starts when the later of the two began to stay). A person standing alone, or goods
with nobody by them (a bench), never fire.

Both kinds of stay are kept by :class:`.stays.StayTracker`, so they survive occlusions and
tracker ID switches like parked cars do; a pair that already counted stays counted while
one side is unseen for at most ``lost_grace_s``.

Goods that a person carries or wears (a backpack, a handbag) are not goods on the kerb:
an object mostly inside a person's box whose bottom is well above that person's feet is
ignored.
"""

from __future__ import annotations

import numpy as np

from ..config import StreetVendingRuleConfig
from .base import INACTIVE, Hit, IncidentKind, Rule, RuleResult, Scene, class_mask
from .stays import Stay, StayTracker, elsewhere, format_duration, listing, tracked_candidates

#: Goods with at least this fraction of their box inside a person's box ...
CARRIED_OVERLAP = 0.7
#: ... and a bottom edge more than this many person heights above the person's feet are carried.
CARRIED_LIFT = 0.15


class StreetVendingRule(Rule[StreetVendingRuleConfig]):
    """Fires while a still person and still goods near them have been in the zone for ``min_duration_s``.

    Per object: each vendor is their own hit (key: the first track id of the person's
    stay), with their goods as its subjects too.

    Example:
        >>> rule = StreetVendingRule(StreetVendingRuleConfig(min_duration_s=120))
    """

    type = "street_vending"
    kind = IncidentKind("street_vending", "占道经营", "street vending", "street_order")
    per_object = True

    def __init__(self, config: StreetVendingRuleConfig) -> None:
        super().__init__(config)
        self._goods_classes = set(config.goods_classes)
        self._persons = StayTracker(max_movement=config.max_movement, lost_grace_s=config.lost_grace_s)
        self._goods = StayTracker(max_movement=config.max_movement, lost_grace_s=config.lost_grace_s)

    def evaluate(self, scene: Scene) -> RuleResult:
        cfg = self.config
        now = scene.now
        dets = scene.detections
        p_idx = tracked_candidates(scene, self.candidates(scene))
        g_mask = self.candidates(scene, classes=self._goods_classes) & ~self._carried(scene)
        g_idx = tracked_candidates(scene, g_mask)
        g_idx = g_idx[~np.isin(g_idx, p_idx)]
        persons = self._persons.update(
            now, scene.tracker_ids[p_idx], dets.xyxy[p_idx], scene.class_names[p_idx], scene.size, elsewhere(scene, p_idx)
        )
        goods = self._goods.update(
            now, scene.tracker_ids[g_idx], dets.xyxy[g_idx], scene.class_names[g_idx], scene.size, elsewhere(scene, g_idx)
        )
        all_persons = [(s, int(i)) for i, s in zip(p_idx, persons, strict=True)] + [(s, -1) for s in self._persons.unseen()]
        all_goods = [(s, int(i)) for i, s in zip(g_idx, goods, strict=True)] + [(s, -1) for s in self._goods.unseen()]

        vendors: list[tuple[Stay, float, list[Stay]]] = []
        subjects: set[int] = set()
        own: dict[int, list[int]] = {}  # id(person stay) → its visible detections (person, goods)
        for p, pi in all_persons:
            held, stock = 0.0, []
            mine: list[int] = [pi] if pi >= 0 else []
            for g, gi in all_goods:
                if _gap(p, g) > cfg.max_gap * p.height:
                    continue
                start = max(p.since, g.since)
                # still together when both were last seen, for long enough
                if min(p.last_seen, g.last_seen) - start < cfg.min_duration_s:
                    continue
                held = max(held, now - start)
                stock.append(g)
                if gi >= 0:
                    mine.append(gi)
            if stock:
                vendors.append((p, held, stock))
                subjects.update(mine)
                own[id(p)] = sorted(set(mine))
        if not vendors:
            return INACTIVE
        vendors.sort(key=lambda v: -v[1])
        longest = vendors[0][1]
        listed = listing([f"{p.label()} with {', '.join(g.label() for g in stock)} for {format_duration(held)}" for p, held, stock in vendors], "; ")
        described = [
            {
                "track": p.track,
                "together_s": round(held, 1),
                "previous_tracks": list(p.previous),
                "goods": [{"track": g.track, "class": g.class_name} for g in stock],
            }
            for p, held, stock in vendors
        ]
        hits = tuple(
            Hit(
                key=p.key,
                subjects=np.asarray(own[id(p)], dtype=np.int64),
                summary=f"street vendor: {p.label()} with {', '.join(g.label() for g in stock)} for {format_duration(held)}",
                details={"threshold_s": cfg.min_duration_s, **vendor},
            )
            for (p, held, stock), vendor in zip(vendors, described, strict=True)
        )
        return RuleResult(
            active=True,
            subjects=np.asarray(sorted(subjects), dtype=np.int64),
            count=len(vendors),
            summary=f"{len(vendors)} street vendor(s): {listed}",
            details={
                "longest_s": round(longest, 1),
                "threshold_s": cfg.min_duration_s,
                "tracks": [p.track for p, _, _ in vendors],
                "vendors": described,
            },
            hits=hits,
        )

    def _carried(self, scene: Scene) -> np.ndarray:
        """(n,) bool: goods-class boxes worn or carried by a person (anywhere in the frame)."""
        dets = scene.detections
        n = len(dets)
        carried = np.zeros(n, dtype=bool)
        people = np.flatnonzero(class_mask(dets, self._classes, self.config.min_confidence))
        things = np.flatnonzero(class_mask(dets, self._goods_classes, 0.0))
        if not len(people) or not len(things):
            return carried
        g = dets.xyxy[things].astype(np.float64)[:, None, :]
        p = dets.xyxy[people].astype(np.float64)[None, :, :]
        iw = np.clip(np.minimum(g[..., 2], p[..., 2]) - np.maximum(g[..., 0], p[..., 0]), 0, None)
        ih = np.clip(np.minimum(g[..., 3], p[..., 3]) - np.maximum(g[..., 1], p[..., 1]), 0, None)
        area = np.maximum((g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]), 1e-9)
        inside = iw * ih / area >= CARRIED_OVERLAP
        lifted = p[..., 3] - g[..., 3] > CARRIED_LIFT * np.maximum(p[..., 3] - p[..., 1], 1.0)
        carried[things] = (inside & lifted).any(axis=1)
        return carried


def _gap(person: Stay, goods: Stay) -> float:
    """Distance between the ground points of a person and goods, pixels."""
    return float(np.hypot(*(person.point - goods.point)))
