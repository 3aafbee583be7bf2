"""Stays: how long each tracked object has been still (or merely present) in a zone.

Shared by the dwell/parking, loitering and street-vending rules. A :class:`StayTracker`
keeps one :class:`Stay` per track and carries it across the two things a real tracker
does to a parked car or a waiting person:

* **occlusion**: the object is unseen for a while (a bus drives past, the detector
  misses a few frames). The stay survives ``lost_grace_s`` unseen and its clock keeps
  running; the same track id coming back continues it.
* **ID switch**: the tracker gives the object a new id. A stay that has gone unseen is
  taken over by a track that *began* near where the stay was last seen (within
  ``rejoin_distance`` box heights), no later than ``lost_grace_s`` after it was last seen,
  with a box of similar size. The taking-over track inherits the start time, so the clock
  does not restart. This also covers a new id that shows up while the old one is still
  reported for a frame or two.

Two modes:

* ``max_movement`` set (**stationary** mode, for dwell/parking/vending): a stay lasts
  while the box's ground point stays within ``max_movement`` box heights of its *anchor*
  (the mean of the stay's ground points, so detector wobble averages out while a slow
  creep still drifts away from it). Judging the drift relative to the box height makes
  one setting work near and far from the camera. Only a move that lasts ``confirm_s``
  ends the stay (one bad box does not reset a three-minute clock); a new stay then begins
  where the object is. A stay taken over on an ID switch keeps its anchor, so the new
  track must also stand at the same place.
* ``max_movement=None`` (**presence** mode, for loitering): a stay lasts while the track
  is in the zone, however it moves. Because a moving object can really leave, a stay
  whose track was last seen at the frame border, or is seen outside the zone, is not
  handed to another track (only its own id may come back to it).

More guards, for stationary mode:

* **creeping** (``max_travel``): besides the running-mean anchor, the stay keeps where it
  *began* (the mean of its first few points). A ground point farther than ``max_travel``
  box heights from there, for ``confirm_s``, ends the stay: a queue inching forward or a
  truck moving half a length in a minute is never one long stay, however slowly it goes.
* **lost and found** (``rejoin_s``): a stay that had lasted ``remember_after_s`` (the
  rule's threshold: it had counted) and then went unseen longer than ``lost_grace_s`` is
  remembered, dormant, for ``rejoin_s``. A track that *begins* where it stood (as for an ID
  switch, at its anchor, with a similar box) takes it back over: same start time, same key,
  so the incident manager sees the same object again (and its per-key cooldown holds)
  instead of a new car. Only a track of the same class (or one the detector confuses it
  with: car, truck and bus, ``SAME_OBJECT_CLASSES``) that was never seen anywhere but at
  that place does: one seen outside the zone away from it (a car that drove along the road
  and pulled in sideways, its ground point entering the zone right at the spot) is another
  car, and a track that drives in from elsewhere never does.
* **two tracks on one object** (hand-on): a detector that boxes a car whole on some
  frames and only a part of it (its rear) on others gives the car two tracks, and their
  ids swap. When a stay ends because its track moved off (the id went over to the part
  box), a younger stay that stood at its anchor *before* that move began (two boxes at one
  place at once: one object, since two cars cannot overlap) continues it: same start time,
  same key, so the car keeps its one incident.

A tracker never does I/O and knows nothing of rules' thresholds: a rule reads ``held``
from the stays of the present tracks and ``unseen()`` for those within their grace.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from gridworker.models.tiling import CONFUSED_VEHICLES

from ..config import DwellRuleConfig, LoiteringRuleConfig
from ..zones import ground_points
from .base import INACTIVE, Hit, Rule, RuleResult, Scene

#: Default largest relative size change (of height and of width) between the box of a
#: vanished stay and the track that takes it over: 0.5 allows up to ×1.5.
SIZE_TOLERANCE = 0.5
#: Default time a ground point must stay beyond ``max_movement`` before the object counts as moved.
MOVE_CONFIRM_S = 1.0
#: A box within this fraction of the frame size from an edge touches the border.
BORDER = 0.01
#: Where a stay began is the mean of its first this many ground points (``max_travel``).
START_POINTS = 3
#: At most this many dormant stays are remembered per tracker (oldest forgotten first).
MAX_DORMANT = 256
#: At most this many tracks seen outside the zone are remembered per tracker (for lost and
#: found: where a track was before it entered the zone); the longest unseen forgotten first.
MAX_OUTSIDE = 1024
#: Labels a detector gives one object by turns, taken as one object when a lost stay is found
#: again (the SSD calls the kerb clip's white car "car" and "truck"; the tiling's default
#: ``merge_classes`` group).
SAME_OBJECT_CLASSES: tuple[frozenset[str], ...] = (frozenset(CONFUSED_VEHICLES),)


@dataclass(slots=True, eq=False)
class Stay:
    """One object's stay.

    Attributes:
        track: the track id now carrying the stay.
        class_name: its class on the last frame it was seen.
        since: when the stay began, epoch seconds (kept across occlusions and ID switches).
        anchor: (2,) ground point (px) the drift is measured from: the mean of the stay's points.
        point: (2,) ground point when last seen.
        box: (4,) xyxy box when last seen.
        last_seen: when the object was last seen in the zone.
        started: when *this track's own* record began (what an ID switch is judged on).
        origin: (2,) where this track's own record began.
        previous: earlier track ids of the same object, oldest first.
        left: the object was seen leaving (at the frame border, or outside the zone): another
            track may not take the stay over.
        moved_since: when the object was first seen beyond ``max_movement`` of the anchor in
            the current run of such frames; None while it is within.
    """

    track: int
    class_name: str
    since: float
    anchor: np.ndarray
    point: np.ndarray
    box: np.ndarray
    last_seen: float
    started: float
    origin: np.ndarray
    previous: list[int] = field(default_factory=list)
    left: bool = False
    moved_since: float | None = None
    n_points: int = 1
    start: np.ndarray | None = None
    #: the stay began with its track (not after the track moved): it may continue a lost stay
    fresh: bool = True
    #: (4,) xyxy box on the last frame the object was seen within ``max_movement`` of its anchor
    placed: np.ndarray | None = None
    #: (4,) bounds (x0, y0, x1, y1) of the ground points where this track was seen outside the
    #: zone before the stay began; None: never seen outside (lost and found judges on it)
    outside: np.ndarray | None = None

    def settle(self, point: np.ndarray) -> None:
        """Fold a ground point within the movement limit into the anchor (running mean)."""
        self.n_points += 1
        self.anchor = self.anchor + (point - self.anchor) / self.n_points
        if self.n_points <= START_POINTS:
            self.start = self.anchor.copy()
        self.moved_since = None

    @property
    def began(self) -> np.ndarray:
        """(2,) where the stay began: the mean of its first ``START_POINTS`` ground points."""
        return self.anchor if self.start is None else self.start

    @property
    def height(self) -> float:
        return max(float(self.box[3] - self.box[1]), 1.0)

    @property
    def width(self) -> float:
        return max(float(self.box[2] - self.box[0]), 1.0)

    @property
    def seen_for(self) -> float:
        """How long the stay had lasted when the object was last seen."""
        return self.last_seen - self.since

    def held(self, now: float) -> float:
        """How long the stay has lasted at ``now`` (the clock runs on while it is unseen)."""
        return now - self.since

    @property
    def key(self) -> str:
        """The object's key for per-object incidents (``Hit.key``): ``"<first track>@<since>"``.

        Both parts survive ID switches (a taking-over track inherits the start time and the
        earlier ids), while a new stay (the object moved away and stopped again, or a track
        id reused after the tracker restarted) gets a new key.
        """
        return f"{self.previous[0] if self.previous else self.track}@{self.since:.3f}"

    def label(self) -> str:
        """``car #12`` or ``car #12 (was #7)``, for summaries."""
        was = f" (was #{', #'.join(str(t) for t in self.previous)})" if self.previous else ""
        return f"{self.class_name} #{self.track}{was}"


class StayTracker:
    """Per-track stays of one rule (see the module docstring).

    Args:
        max_movement: stationary mode: largest drift of the ground point, in box heights,
            still called the same stay; None for presence mode.
        lost_grace_s: how long a stay survives unseen.
        rejoin_distance: how near (in box heights of the vanished object) a new track must
            begin to take a stay over; defaults to ``max_movement`` (stationary mode) or 1.0.
        size_tolerance: largest relative size change for a take-over (see ``SIZE_TOLERANCE``).
        confirm_s: how long a move must last to end a stay (stationary mode).
        max_travel: stationary mode: largest distance, in box heights, from where the stay
            began (creeping objects); None: only the anchor drift counts.
        rejoin_s: how long a lost stay that had lasted ``remember_after_s`` is remembered
            for a track beginning at its place to continue it (0: not at all).
        remember_after_s: what a stay must have lasted to be remembered (the rule's threshold).

    Example:
        >>> stays = StayTracker(max_movement=0.3, lost_grace_s=5.0)
        >>> boxes = np.array([[0.0, 0.0, 60.0, 40.0]])
        >>> _ = stays.update(0.0, np.array([1]), boxes, np.array(["car"]), (100, 100))
        >>> stays.update(7.0, np.array([1]), boxes + 2, np.array(["car"]), (100, 100))[0].held(7.0)
        7.0
    """

    def __init__(
        self,
        *,
        max_movement: float | None,
        lost_grace_s: float,
        rejoin_distance: float | None = None,
        size_tolerance: float = SIZE_TOLERANCE,
        confirm_s: float = MOVE_CONFIRM_S,
        max_travel: float | None = None,
        rejoin_s: float = 0.0,
        remember_after_s: float = 0.0,
    ) -> None:
        self.max_movement = max_movement
        self.max_travel = max_travel if max_movement is not None else None
        self.rejoin_s = rejoin_s if max_movement is not None else 0.0
        self.remember_after_s = remember_after_s
        self._dormant: list[Stay] = []
        self.lost_grace_s = lost_grace_s
        self.rejoin_distance = rejoin_distance if rejoin_distance is not None else (max_movement if max_movement is not None else 1.0)
        self.size_tolerance = size_tolerance
        self.confirm_s = confirm_s
        self._stays: dict[int, Stay] = {}
        self._present: set[int] = set()
        self._restored: list[tuple[int, float, tuple[float, float, float, float], str]] = []
        self._ghosts = 0
        #: track id → (last seen outside the zone, bounds of its ground points there), oldest first
        self._outside: dict[int, tuple[float, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._stays)

    def restore(self, key: str, box: tuple[float, float, float, float], class_name: str) -> bool:
        """Bring back a stay known from before a restart (an open incident's object, whose
        ``key`` is a stay key ``"<track>@<since>"``); False, and nothing changes, for any other key.

        It enters on the next frame as a stay whose object has just gone out of sight at
        ``box`` (normalised xyxy): reported while within ``lost_grace_s``, and taken over, with
        its start time ``since`` and its key ``"<track>@<since>"``, by the track that appears
        where it stands, exactly as after an ID switch. A car parked for ten minutes before the
        restart is still parked for ten minutes after it, not newly arrived.
        """
        parsed = parse_stay_key(key)
        if parsed is None:
            return False
        self._restored.append((parsed[0], parsed[1], box, str(class_name)))
        return True

    def _bring_back(self, now: float, size: tuple[int, int]) -> None:
        w, h = size
        for track, since, (x0, y0, x1, y1), name in self._restored:
            box = np.array([x0 * w, y0 * h, x1 * w, y1 * h], dtype=np.float64)
            point = ground_points(box[None])[0].astype(np.float64)
            self._ghosts += 1  # negative keys: never a real track id, so never confused with one
            self._stays[-self._ghosts] = Stay(track, name, since, point.copy(), point.copy(), box, now, since, point.copy())
        self._restored = []

    def update(
        self,
        now: float,
        ids: np.ndarray,
        boxes: np.ndarray,
        class_names: np.ndarray,
        size: tuple[int, int],
        elsewhere: Mapping[int, np.ndarray] | None = None,
    ) -> list[Stay]:
        """Take one frame's objects in the zone; returns their stays, in the order given.

        Args:
            now: frame time.
            ids: (n,) track ids (all >= 0) of the objects in the zone.
            boxes: (n, 4) their xyxy boxes, pixels.
            class_names: (n,) their classes.
            size: frame (width, height).
            elsewhere: track id → box of tracked objects on this frame that are *not* among
                ``ids`` (outside the zone, filtered out): a stationary stay whose track is
                seen to have moved away (for ``confirm_s``) ends; a presence whose track
                is seen outside is marked as left.
        """
        if self._restored:
            self._bring_back(now, size)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        points = ground_points(boxes).astype(np.float64)
        if self.rejoin_s > 0:
            self._note_outside(now, elsewhere)
        present: dict[int, Stay] = {}
        out: list[Stay] = []
        ended: list[Stay] = []  # stays whose track moved off this frame (for the hand-on)
        for tid, box, point, name in zip((int(t) for t in ids), boxes, points, class_names, strict=True):
            stay = self._stays.get(tid)
            fresh = stay is None
            if stay is not None and self._moved(stay, point, max(float(box[3] - box[1]), 1.0), now):
                ended.append(stay)
                stay = None  # it moved away: a new stay begins where it is now
            if stay is None:
                stay = Stay(tid, str(name), now, point.copy(), point.copy(), box.copy(), now, now, point.copy(), fresh=fresh)
                seen_outside = self._outside.pop(tid, None) if self._outside else None
                if seen_outside is not None:
                    stay.outside = seen_outside[1]
            stay.class_name = str(name)
            stay.point, stay.box, stay.last_seen, stay.left = point.copy(), box.copy(), now, False
            if stay.moved_since is None:
                stay.placed = stay.box
            present[tid] = stay
            out.append(stay)

        unseen: dict[int, Stay] = {}
        for tid, stay in self._stays.items():
            if tid in present:
                continue
            if now - stay.last_seen > self.lost_grace_s:
                self._fall_dormant(stay)
                continue
            seen = elsewhere.get(tid) if elsewhere else None
            if seen is not None:
                if self.max_movement is not None:
                    seen_box = np.asarray(seen, dtype=np.float64)
                    seen_point = ground_points(seen_box[None])[0].astype(np.float64)
                    if self._moved(stay, seen_point, max(float(seen_box[3] - seen_box[1]), 1.0), now):
                        continue  # seen driving away (out of the zone): the stay is over
                else:
                    stay.left = True
            elif self.max_movement is None and _at_border(stay.box, size):
                stay.left = True  # walked out of the picture
            unseen[tid] = stay

        self._take_over(present, unseen)
        if ended:
            self._hand_on(present, ended)
        if self._dormant:
            self._rejoin(present, now)
        self._stays = {**unseen, **present}
        self._present = set(present)
        return out

    def _note_outside(self, now: float, elsewhere: Mapping[int, np.ndarray] | None) -> None:
        """Remember where tracks were seen outside the zone (bounded: ``MAX_OUTSIDE`` tracks,
        none unseen there for longer than a lost stay is remembered)."""
        for tid, box in (elsewhere or {}).items():
            b = np.asarray(box, dtype=np.float64)
            x, y = float((b[0] + b[2]) / 2.0), float(b[3])  # the ground point (zones.ground_points)
            seen = self._outside.pop(int(tid), None)
            bounds = np.array([x, y, x, y]) if seen is None else np.array([min(seen[1][0], x), min(seen[1][1], y), max(seen[1][2], x), max(seen[1][3], y)])
            self._outside[int(tid)] = (now, bounds)  # (re)inserted last: the dict runs oldest first
        horizon = now - (self.lost_grace_s + self.rejoin_s)
        while self._outside:
            tid, (last, _) = next(iter(self._outside.items()))
            if last >= horizon and len(self._outside) <= MAX_OUTSIDE:
                break
            del self._outside[tid]

    def _fall_dormant(self, stay: Stay) -> None:
        """A stay gone past its grace: remember it for ``rejoin_s`` if it had counted."""
        if self.rejoin_s > 0 and stay.seen_for >= self.remember_after_s:
            self._dormant.append(stay)
            del self._dormant[:-MAX_DORMANT]

    def _rejoin(self, present: dict[int, Stay], now: float) -> None:
        """Give dormant stays back to fresh tracks that begin where they stood (lost and found)."""
        limit = self.lost_grace_s + self.rejoin_s
        self._dormant = [o for o in self._dormant if now - o.last_seen <= limit]
        for p in present.values():
            if not p.fresh or p.previous or p.started != p.since:  # drove in, or has a history of its own
                continue
            fits = [
                o
                for o in self._dormant
                if p.started - o.last_seen <= limit
                and self._same_kind(p.class_name, o.class_name)
                and self._only_seen_there(p, o)
                and self._may_take_over(p, o, late=True)
            ]
            if not fits:
                continue
            o = min(fits, key=lambda d: _dist(p.origin, d.point) / d.height)
            self._dormant.remove(o)
            self._inherit(p, o)

    @staticmethod
    def _same_kind(a: str, b: str) -> bool:
        """One object's label either way: the same class, or two a detector confuses on one
        object (``SAME_OBJECT_CLASSES``: a parked van is "car" one minute and "truck" the next)."""
        return a == b or any(a in group and b in group for group in SAME_OBJECT_CLASSES)

    def _only_seen_there(self, p: Stay, o: Stay) -> bool:
        """``p``'s track was seen nowhere but where ``o`` stood (within ``rejoin_distance`` of its
        last point): never outside the zone, or outside only at that place."""
        if p.outside is None:
            return True
        reach = self.rejoin_distance * o.height
        x0, y0, x1, y1 = (float(v) for v in p.outside)
        far_x = max(abs(x0 - float(o.point[0])), abs(x1 - float(o.point[0])))
        far_y = max(abs(y0 - float(o.point[1])), abs(y1 - float(o.point[1])))
        return bool(np.hypot(far_x, far_y) <= reach)

    def _hand_on(self, present: dict[int, Stay], ended: list[Stay]) -> None:
        """Give stays whose track moved off to the stays standing at their place since before
        the move began (two tracks on one object; see the module docstring)."""
        if self.max_movement is None:
            return
        for o in ended:
            moving_from = o.moved_since if o.moved_since is not None else o.last_seen  # set by _moved
            box = o.placed if o.placed is not None else o.box  # its size where it stood
            height, width = max(float(box[3] - box[1]), 1.0), max(float(box[2] - box[0]), 1.0)
            reach = self.max_movement * height
            fits = [
                p
                for p in present.values()
                if p.track != o.track
                and o.since < p.since <= moving_from
                and _dist(p.anchor, o.anchor) <= reach
                and _dist(p.point, o.anchor) <= reach
                and self._same_size(p, height, width)
            ]
            if fits:
                self._inherit(min(fits, key=lambda p: _dist(p.anchor, o.anchor)), o)

    def _inherit(self, p: Stay, o: Stay) -> None:
        """``p`` continues ``o``: its start time, anchor (stationary mode) and earlier ids."""
        p.since = o.since
        if self.max_movement is not None:
            p.anchor, p.n_points, p.start = o.anchor, o.n_points, o.start
        p.previous = [*o.previous, o.track]

    def _moved(self, stay: Stay, point: np.ndarray, height: float, now: float) -> bool:
        """Stationary mode: fold ``point`` into the stay, or say whether it has moved for good
        (from its anchor, or, with ``max_travel``, from where it began)."""
        if self.max_movement is None:
            return False
        near = _dist(point, stay.anchor) <= self.max_movement * height
        if near and (self.max_travel is None or _dist(point, stay.began) <= self.max_travel * height):
            stay.settle(point)
            return False
        if stay.moved_since is None:
            stay.moved_since = now
        return now - stay.moved_since >= self.confirm_s

    def unseen(self) -> list[Stay]:
        """Stays not seen on the last frame but still within their grace."""
        return [s for t, s in self._stays.items() if t not in self._present]

    def _take_over(self, present: dict[int, Stay], unseen: dict[int, Stay]) -> None:
        """Hand vanished stays to the tracks that began where they vanished (ID switches)."""
        pairs: list[tuple[float, int, int]] = []
        for pid, p in present.items():
            for oid, o in unseen.items():
                if not o.left and self._may_take_over(p, o):
                    pairs.append((_dist(p.origin, o.point) / o.height, pid, oid))
        taken: set[int] = set()
        done: set[int] = set()
        for _, pid, oid in sorted(pairs):
            if pid in done or oid in taken:
                continue
            p, o = present[pid], unseen.pop(oid)
            self._inherit(p, o)
            taken.add(oid)
            done.add(pid)

    def _same_size(self, p: Stay, height: float, width: float) -> bool:
        """``p``'s box is within ``size_tolerance`` of ``height`` x ``width`` both ways."""
        tol = 1.0 + self.size_tolerance
        return _ratio(p.height, height) <= tol and _ratio(p.width, width) <= tol

    def _may_take_over(self, p: Stay, o: Stay, *, late: bool = False) -> bool:
        """Whether ``p`` (a present stay) may continue ``o`` (one unseen, or dormant when ``late``)."""
        if o.since >= p.since:  # only an older stay is worth inheriting
            return False
        if not late and p.started - o.last_seen > self.lost_grace_s:  # began too long after it vanished
            return False
        if _dist(p.origin, o.point) > self.rejoin_distance * o.height:  # began somewhere else
            return False
        if not self._same_size(p, o.height, o.width):
            return False
        return self.max_movement is None or _dist(p.point, o.anchor) <= self.max_movement * o.height


def parse_stay_key(key: str) -> tuple[int, float] | None:
    """``"<track>@<since>"`` (``Stay.key``) → (track, since); None for any other key.

    Example:
        >>> parse_stay_key("7@1700000000.125")
        (7, 1700000000.125)
    """
    track, sep, since = key.partition("@")
    try:
        return (int(track), float(since)) if sep else None
    except ValueError:
        return None


def tracked_candidates(scene: Scene, mask: np.ndarray) -> np.ndarray:
    """Indices of the ``mask``-selected detections that have a confirmed track id."""
    idx = np.flatnonzero(mask)
    return idx[scene.tracker_ids[idx] >= 0] if len(idx) else idx


def elsewhere(scene: Scene, idx: np.ndarray) -> dict[int, np.ndarray]:
    """Track id → box of the tracked detections not among ``idx`` (for ``StayTracker.update``)."""
    ids = scene.tracker_ids
    if len(ids) == 0:
        return {}
    rest = np.ones(len(ids), dtype=bool)
    rest[idx] = False
    rest &= ids >= 0
    return {int(ids[i]): scene.detections.xyxy[i] for i in np.flatnonzero(rest)}


#: How many objects a summary names before it says "and N more".
NAMED = 5


def counted_stays(tracker: StayTracker, scene: Scene, idx: np.ndarray, min_duration_s: float) -> list[tuple[Stay, int | None]]:
    """Feed the detections ``idx`` to ``tracker``; the stays held at least ``min_duration_s``,
    longest first, each with its detection index — or None for a stay that had counted before
    it went out of sight and is still within its grace (still there as far as we know)."""
    now = scene.now
    present = tracker.update(now, scene.tracker_ids[idx], scene.detections.xyxy[idx], scene.class_names[idx], scene.size, elsewhere(scene, idx))
    visible: list[tuple[Stay, int | None]] = [(s, int(i)) for i, s in zip(idx, present, strict=True) if s.held(now) >= min_duration_s]
    hidden: list[tuple[Stay, int | None]] = [(s, None) for s in tracker.unseen() if s.seen_for >= min_duration_s]
    return sorted(visible + hidden, key=lambda item: -item[0].held(now))


def listing(items: Sequence[str], sep: str = ", ") -> str:
    """The first ``NAMED`` items joined, then "and N more"."""
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return sep.join(items[:NAMED]) + more


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


StayConfigT = TypeVar("StayConfigT", bound=DwellRuleConfig | LoiteringRuleConfig, covariant=True)


class StayRule(Rule[StayConfigT]):
    """A per-object rule whose hits are the stays of one :class:`StayTracker` held at least
    ``min_duration_s`` (dwell/parking, loitering): each stay is its own hit (key: the stay's
    key), longest first, a stay out of sight within its grace included.

    A subclass builds the tracker and says how its stays read: :meth:`title`, :meth:`describe`,
    ``hidden_note`` (after the label of a stay out of sight) and ``described_as`` (the key
    of the per-stay descriptions in the result's details).
    """

    per_object = True
    hidden_note: ClassVar[str]
    described_as: ClassVar[str]

    def __init__(self, config: StayConfigT, stays: StayTracker) -> None:
        super().__init__(config)
        self._stays = stays

    @abstractmethod
    def title(self, *, plural: bool) -> str:
        """What the summaries call one stay (``plural``: the zone's count of them)."""

    @abstractmethod
    def describe(self, stay: Stay, now: float, *, visible: bool) -> dict[str, Any]:
        """One stay in the details of its hit and of the result."""

    def restore(self, key: str, box: tuple[float, float, float, float], class_name: str) -> bool:
        return self._stays.restore(key, box, class_name)

    def evaluate(self, scene: Scene) -> RuleResult:
        threshold = self.config.min_duration_s
        now = scene.now
        stays = counted_stays(self._stays, scene, tracked_candidates(scene, self.candidates(scene)), threshold)
        if not stays:
            return INACTIVE
        described = [self.describe(s, now, visible=i is not None) for s, i in stays]
        labels = [f"{s.label()} for {format_duration(s.held(now))}{self.hidden_note if i is None else ''}" for s, i in stays]
        hits = tuple(
            Hit(
                key=s.key,
                subjects=np.asarray([] if i is None else [i], dtype=np.int64),
                summary=f"{self.title(plural=False)}: {label}",
                details={"threshold_s": threshold, **details},
                severity=s.held(now),  # the longest stay: the case shows how long it has lasted
            )
            for (s, i), label, details in zip(stays, labels, described, strict=True)
        )
        return RuleResult(
            active=True,
            subjects=np.asarray(sorted(i for _, i in stays if i is not None), dtype=np.int64),
            count=len(stays),
            summary=f"{len(stays)} {self.title(plural=True)}: {listing(labels)}",
            details={
                "longest_s": round(stays[0][0].held(now), 1),
                "threshold_s": threshold,
                "tracks": [s.track for s, _ in stays],
                self.described_as: described,
            },
            hits=hits,
        )


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _ratio(a: float, b: float) -> float:
    return max(a, b) / max(min(a, b), 1e-9)


def _at_border(box: np.ndarray, size: tuple[int, int]) -> bool:
    w, h = size
    mx, my = BORDER * w, BORDER * h
    return bool(box[0] <= mx or box[1] <= my or box[2] >= w - 1 - mx or box[3] >= h - 1 - my)
