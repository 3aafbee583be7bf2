"""The rule interface.

A rule looks at one camera's tracked detections for one zone and says whether its
condition holds *now*. It is handed a :class:`Scene` (the frame's detections, which of
them stand in the rule's zone and in every other zone, the clock, ground-plane positions
and signal states), keeps whatever per-track state it needs, and never does I/O: opening,
updating and closing incidents is the incident manager's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
import supervision as sv

from ..config import RuleConfigBase

Category = Literal["traffic", "street_order", "city_appearance", "public_safety"]
SignalState = Literal["red", "yellow", "green", "unknown"]


@dataclass(frozen=True, slots=True)
class IncidentKind:
    """What an incident of a rule is called: a stable code and its Chinese and English names."""

    code: str
    name_zh: str
    name_en: str
    category: Category

    def names(self) -> dict[str, str]:
        """The type's names and category, as an incident's details and forwarded messages carry them."""
        return {"type_name_zh": self.name_zh, "type_name_en": self.name_en, "category": self.category}


@dataclass(frozen=True, slots=True)
class Hit:
    """One object's part in a per-object rule's verdict (one incident each).

    Attributes:
        key: identifies the object for as long as the rule follows it, stable across tracker
            ID switches (e.g. the first track id of a stay, or ``"<track>@<time>"`` for an
            event such as a red-light crossing). Unique among the hits of one result.
        subjects: (k,) int indices into the detections showing the object on this frame
            (empty while it is hidden but still counted).
        summary: one human-readable line about this object.
        details: JSON-able extras about this object.
        severity: how bad this object is on this frame, in the rule's own measure (km/h for
            speeding, seconds for a stay); its incident keeps the details and summary of the
            worst frame seen. None: every frame is as bad as the first.
    """

    key: str
    subjects: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    severity: float | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What a rule saw on one frame.

    Attributes:
        active: the rule's condition holds on this frame.
        subjects: (k,) int indices into the detections that make it hold (for evidence).
        count: how many objects take part (persons in a crowd, intruders, parked vehicles).
        summary: one human-readable line, e.g. "2 person in zone 'gate' for 4.0 s".
        details: JSON-able extras (track ids, durations, speeds).
        hits: per-object rules (``Rule.per_object``): one entry per object counted on this
            frame, each its own incident; empty for zone-level rules.
        severity: how bad the zone's condition is on this frame (the incident keeps the
            details and summary of its worst frame); None: ``count`` (a crowd's peak).
    """

    active: bool
    subjects: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    count: int = 0
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    hits: tuple[Hit, ...] = ()
    severity: float | None = None


INACTIVE = RuleResult(active=False)


@dataclass(frozen=True, slots=True)
class Scene:
    """One analysed frame as a rule of one zone sees it.

    Attributes:
        detections: tracked detections (``tracker_id``, ``class_name``), masks already applied.
        now: frame time, epoch seconds.
        size: frame (width, height) in pixels.
        in_zone: (n,) bool, ground point inside the rule's zone.
        zones: zone id → (n,) bool membership, for every zone of the camera (exemptions).
        ground: (n, 2) ground-plane positions in metres when the camera is calibrated, else None.
        signals: signal id → state, for red-light rules.
        image: the RGB frame (read-only), for rules that look at pixels; None in scripted tests.
        zone_area_m2: the zone's ground area when the camera is calibrated.
        roles: (n,) the class each detection stands for to the rules (``vision/riders.py``):
            a person riding a bicycle is ``""`` while the bicycle's own box is on the frame
            and ``"bicycle"`` while it is not; None: every box is its own class.
        identities: (n,) the track id each detection stands for (a rider standing in for its
            unseen vehicle has the vehicle's); None: the detections' own ``tracker_id``.
    """

    detections: sv.Detections
    now: float
    size: tuple[int, int]
    in_zone: np.ndarray
    zones: Mapping[str, np.ndarray] = field(default_factory=dict)
    ground: np.ndarray | None = None
    signals: Mapping[str, SignalState] = field(default_factory=dict)
    image: np.ndarray | None = None
    zone_area_m2: float | None = None
    roles: np.ndarray | None = None
    identities: np.ndarray | None = None

    @property
    def tracker_ids(self) -> np.ndarray:
        """(n,) int track ids (``identities`` when set); -1 for unconfirmed boxes (or all when untracked)."""
        ids = self.detections.tracker_id if self.identities is None else self.identities
        return np.full(len(self.detections), -1, dtype=np.int64) if ids is None else ids

    @property
    def class_names(self) -> np.ndarray:
        """(n,) the class each detection stands for in summaries and clocks: its own, except a
        rider standing in for its unseen vehicle (``roles``), which is the vehicle's class (a
        non-motor rule's summary names the bicycle it follows, not "person")."""
        names = self.detections.data.get("class_name")
        own = np.full(len(self.detections), "", dtype=object) if names is None else np.asarray(names)
        if self.roles is None or len(own) == 0:
            return own
        roles = np.asarray(self.roles, dtype=object)
        stand_in = (roles != "") & (roles != own.astype(object))
        if not stand_in.any():
            return own
        named = own.astype(object)
        named[stand_in] = roles[stand_in]
        return named


def class_mask(detections: sv.Detections, classes: AbstractSet[str], min_confidence: float, roles: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: detections of one of ``classes`` at or above ``min_confidence``; with
    ``roles`` (``Scene.roles``), the class each detection stands for replaces its own.

    One set lookup per box: the cost does not grow with the number of classes (a rule's set is
    built once, when the rule is).

    Example:
        >>> dets = sv.Detections(xyxy=np.zeros((3, 4)), confidence=np.array([0.9, 0.9, 0.1]), data={"class_name": np.array(["car", "bus", "car"])})
        >>> class_mask(dets, frozenset({"car"}), 0.3).tolist()
        [True, False, False]
    """
    if len(detections) == 0:
        return np.zeros(0, dtype=bool)
    names = detections.data.get("class_name") if roles is None else roles
    if names is None:
        return np.zeros(len(detections), dtype=bool)
    listed = np.asarray(names).tolist()
    keep = np.fromiter((name in classes for name in listed), dtype=bool, count=len(listed))
    if detections.confidence is not None:
        keep &= detections.confidence >= min_confidence
    return keep


ConfigT = TypeVar("ConfigT", bound=RuleConfigBase, covariant=True)


@dataclass(slots=True)
class HeldClock:
    """How long a zone-level condition has held, through gaps shorter than a grace time: one
    clock for the rules that fire once a condition has lasted (a crowd, a model class).

    ``update`` is called each frame with whether the condition holds on it. A frame where it
    does not hold ends the hold only once the condition was last met more than ``grace_s``
    ago, so a missed detection or an occlusion does not restart the clock.

    Example:
        >>> clock = HeldClock()
        >>> [clock.update(now, met, grace_s=2.0) for now, met in ((10.0, True), (11.0, False), (12.0, True))]
        [0.0, None, 2.0]
    """

    since: float | None = None  # when the current hold began
    last_met: float | None = None  # the last frame the condition held on

    def update(self, now: float, met: bool, *, grace_s: float, gap_restarts: bool = False) -> float | None:
        """Seconds the condition has held at ``now``; None when it does not hold on this frame.

        ``gap_restarts``: a frame that meets the condition more than ``grace_s`` after the last
        one that did (no frame judged in between, a stalled stream) starts a new hold.
        """
        if not met:
            if self.last_met is None or now - self.last_met > grace_s:
                self.since = self.last_met = None
            return None
        stale = gap_restarts and self.last_met is not None and now - self.last_met > grace_s
        if self.since is None or stale:
            self.since = now
        self.last_met = now
        return now - self.since


class Rule(ABC, Generic[ConfigT]):
    """One rule instance, bound to one zone of one camera.

    Subclasses set ``type`` and ``kind`` and implement ``evaluate``. A rule about individual
    road users (a parked car, a speeding car) sets ``per_object`` and reports each object as
    a :class:`Hit` of its results, so each object is its own incident; other rules are
    zone-level (one incident per zone while the condition holds). The common filters of
    every rule (classes, confidence, minimum box size, exempt zones) are applied by
    ``candidates``; schedules are applied by the analyzer, which calls ``reset`` when a
    rule goes idle so no stale clock survives the night.
    """

    type: ClassVar[str]
    kind: ClassVar[IncidentKind]
    #: Each object is its own incident (``RuleResult.hits``), rather than one per zone.
    per_object: ClassVar[bool] = False

    def __init__(self, config: ConfigT) -> None:
        self.config: ConfigT = config
        self.id: str = config.rule_id
        self._classes = frozenset(config.classes)  # once per rule: class_mask looks each box's class up in it

    @property
    def incident_kind(self) -> IncidentKind:
        """The incident type this rule opens (a class-event rule takes it from its config)."""
        return self.kind

    def candidates(self, scene: Scene, classes: AbstractSet[str] | None = None) -> np.ndarray:
        """(n,) bool: detections in the zone, of the rule's (or the given) classes, confident
        and big enough, and not standing in an exempt zone. A rider counts as its vehicle
        (``Scene.roles``): not for person rules, once for the vehicle's rules."""
        dets = scene.detections
        wanted = self._classes if classes is None else classes
        keep: np.ndarray = scene.in_zone & class_mask(dets, wanted, self.config.min_confidence, scene.roles)
        if self.config.min_box_height > 0 and len(dets):
            keep &= (dets.xyxy[:, 3] - dets.xyxy[:, 1]) >= self.config.min_box_height * scene.size[1]
        for zone_id in self.config.exempt_zones:
            inside = scene.zones.get(zone_id)
            if inside is not None and len(inside) == len(keep):
                keep &= ~inside
        return keep

    def restore(self, key: str, box: tuple[float, float, float, float], class_name: str) -> bool:
        """After a restart: bring back the clock of the object ``key`` of an open incident, last
        seen at ``box`` (normalised xyxy). True if this rule keeps such clocks (stays)."""
        return False

    def reset(self) -> None:
        """Forget all per-track state (called when the rule's schedule closes)."""
        state = type(self)(self.config).__dict__
        self.__dict__.update(state)

    @abstractmethod
    def evaluate(self, scene: Scene) -> RuleResult:
        """Judge one frame."""


class _Sighted(Protocol):
    @property
    def last_seen(self) -> float: ...


TrackT = TypeVar("TrackT", bound=_Sighted)


class TrackedRule(Rule[ConfigT], Generic[ConfigT, TrackT]):
    """A per-object rule that keeps a record of each tracked vehicle (red light, speeding,
    wrong way): the records by track id, and the forgetting of vehicles gone for a while."""

    per_object = True

    def __init__(self, config: ConfigT) -> None:
        super().__init__(config)
        self._tracks: dict[int, TrackT] = {}

    def _forget(self, now: float, keep_s: float) -> None:
        """Drop the records of the tracks last seen more than ``keep_s`` before ``now``."""
        self._tracks = {t: tr for t, tr in self._tracks.items() if now - tr.last_seen <= keep_s}
