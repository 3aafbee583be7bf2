"""Scene and rule configuration: what to look for, where, and when.

Everything spatial is in normalised 0..1 image coordinates (x to the right, y down), so
one config fits any camera resolution. A camera's *scene* holds its zones (each with the
rules that apply inside it), ignore masks, counting lines, signal heads and an optional
ground-plane calibration. A rule is chosen by its ``type`` (a pydantic discriminated
union): adding a rule means one config class here and one module in ``vision/rules/``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from gridworker.fields import Fraction, PositiveFraction, SecondsUpToDay, SecondsUpToHour, SecondsUpToMinute
from gridworker.validation import first_repeat

VEHICLE_CLASSES = ["car", "bus", "truck", "motorcycle"]
NON_MOTOR_CLASSES = ["bicycle", "motorcycle"]
GOODS_CLASSES = ["umbrella", "chair", "dining table", "suitcase", "bench", "potted plant", "handbag", "backpack"]
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# an IANA zone key: slash-separated names (Asia/Shanghai, America/Argentina/Buenos_Aires, Etc/GMT+8)
_GROUND_MAX_M = 100_000.0  # a camera sees a few hundred metres; beyond this the homography's numbers lose meaning
_ZONE_PATTERN = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"

Point = tuple[float, float]
#: How long a lost object's stay or presence is kept for it to come back (occlusion, ID switch), seconds.
LostGraceSeconds = Annotated[float, Field(ge=0.0, le=600.0)]
#: One side of an M-of-N setting (M hits of the last N frames).
FrameCount = Annotated[int, Field(ge=1, le=30)]
#: Most names in one of a rule's or a counting line's lists (``classes``, ``goods_classes``,
#: ``exempt_zones``): each rule is judged on every analysed frame.
MAX_LISTED = 64


def _unique(names: list[str]) -> list[str]:
    """The names in their order, each once (a name listed twice means nothing more)."""
    return list(dict.fromkeys(names))


#: A detector class name, as the model's labels spell it ("person", "dining table").
ClassName = Annotated[str, Field(min_length=1, max_length=100)]
#: The detector classes a rule or a counting line looks at: 1 to ``MAX_LISTED`` names, repeats dropped.
ClassList = Annotated[list[ClassName], Field(min_length=1, max_length=MAX_LISTED), AfterValidator(_unique)]
#: Ids of other zones of the camera: up to ``MAX_LISTED``, repeats dropped.
ZoneIdList = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_LISTED), AfterValidator(_unique)]


class _Strict(BaseModel):
    # NaN and infinities parse from JSON (NaN, Infinity, 1e400) and YAML (.nan, .inf); no setting means them
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_unit_points(points: list[Point], what: str) -> list[Point]:
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what} point {i} ({x}, {y}) is outside 0..1: coordinates are normalised to the frame size")
    return points


def _check_polygon(polygon: list[Point]) -> list[Point]:
    _check_unit_points(polygon, "polygon")
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    area2 = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(polygon)))
    if abs(area2) < 1e-9:
        raise ValueError("polygon has no area (its vertices are collinear or repeated)")
    crossing = first_crossing(polygon)
    if crossing is not None:
        i, j = crossing
        n = len(polygon)
        raise ValueError(
            f"polygon crosses itself: edge {i}-{(i + 1) % n} (point {i} to point {(i + 1) % n}) crosses edge"
            f" {j}-{(j + 1) % n}; list the points in order around the area (the zone's ground area and its"
            " drawn area would differ)"
        )
    return polygon


def first_crossing(polygon: Sequence[tuple[float, float]]) -> tuple[int, int] | None:
    """The first pair of edges ``(i, j)``, ``i < j``, that properly cross (edge ``i`` runs from
    point ``i`` to point ``i + 1``, the last one back to point 0), or None for a simple polygon.
    Edges that only touch (a shared or repeated vertex, a vertex on another edge) do not count.
    All pairs at once in numpy: 256 points are 32 640 pairs.

    Example:
        >>> first_crossing([(0, 0), (1, 1), (1, 0), (0, 1)]), first_crossing([(0, 0), (1, 0), (1, 1), (0, 1)])
        ((0, 2), None)
    """
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    n = len(p)
    if n < 4:
        return None
    d = np.roll(p, -1, axis=0) - p  # edge k runs from p[k] by d[k]
    after = np.roll(d, -1, axis=0)
    turns = d[:, 0] * after[:, 1] - d[:, 1] * after[:, 0]  # at each vertex: left (> 0) or right
    if np.all(turns > 1e-12) or np.all(turns < -1e-12):
        winding = np.sum(np.arctan2(turns, np.sum(d * after, axis=1)))
        if abs(abs(winding) - 2 * np.pi) < 1e-6:
            return None  # convex, turning once around (not a star): the zones one draws, in O(n)
    # [i, j]: which side of edge i's line point j lies on (cross product of d[i] and p[j] - p[i])
    cross = np.outer(d[:, 0], p[:, 1]) - np.outer(d[:, 1], p[:, 0]) - (d[:, 0] * p[:, 1] - d[:, 1] * p[:, 0])[:, None]
    left, right = cross > 1e-12, cross < -1e-12
    straddles = (left & np.roll(right, -1, axis=1)) | (right & np.roll(left, -1, axis=1))  # [i, j]: edge j's ends on either side of edge i's line
    crosses = np.triu(straddles & straddles.T, k=2)  # i < j, not neighbours ...
    crosses[0, n - 1] = False  # ... the last edge and the first are neighbours too
    if not crosses.any():
        return None
    i, j = divmod(int(np.argmax(crosses)), n)  # the first in row order
    return i, j


def _check_segment(points: list[Point]) -> list[Point]:
    _check_unit_points(points, "line")
    (x0, y0), (x1, y1) = points
    if abs(x0 - x1) < 1e-6 and abs(y0 - y1) < 1e-6:
        raise ValueError("a line needs two distinct points")
    return points


FULL_FRAME: list[Point] = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


# --- schedules --------------------------------------------------------------------------


class TimeWindow(_Strict):
    """A daily window, e.g. school hours ``{days: [mon, tue, wed, thu, fri], start: "07:00", end: "17:30"}``.

    ``end`` before ``start`` wraps past midnight (``22:00``-``06:00``); the window then
    belongs to the day it starts on. ``end`` equal to ``start`` is refused: such a window
    would never be active (whole days: no schedule, or ``00:00``-``12:00`` plus ``12:00``-``00:00``).
    """

    days: list[Weekday] = Field(default_factory=lambda: list(_WEEKDAYS), min_length=1)
    start: dt.time = Field(description="Local start time, HH:MM.")
    end: dt.time = Field(description="Local end time, HH:MM (exclusive); not equal to start.")

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            shown = self.start.isoformat("minutes" if self.start.second == self.start.microsecond == 0 else "auto")
            raise ValueError(
                f"start and end are both {shown}: the window is never active (end is exclusive). "
                'For all day on every day leave the schedule out; for whole days on some days use two windows, '
                'start "00:00" end "12:00" and start "12:00" end "00:00"'
            )
        return self

    def contains(self, when: dt.datetime) -> bool:
        t = when.time()
        today = _WEEKDAYS[when.weekday()]
        yesterday = _WEEKDAYS[(when.weekday() - 1) % 7]
        if self.start <= self.end:
            return today in self.days and self.start <= t < self.end
        # wraps midnight: the evening part is today's window, the morning part yesterday's
        return (today in self.days and t >= self.start) or (yesterday in self.days and t < self.end)


class ScheduleConfig(_Strict):
    """When a rule is armed. Outside every window the rule is idle and forgets its state."""

    windows: list[TimeWindow] = Field(min_length=1, max_length=64)
    timezone: str | None = Field(
        None,
        max_length=64,
        pattern=_ZONE_PATTERN,
        description="IANA zone, e.g. Asia/Shanghai; default: the host's local time.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str | None) -> str | None:
        if tz is not None:
            try:
                zoneinfo.ZoneInfo(tz)
            # OSError: a key naming a folder of the zone database (America), or one too long for
            # the file system; ValueError: not a zone file, not a normalised relative key
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
                raise ValueError(f"unknown time zone {tz!r}: use an IANA name such as Asia/Shanghai") from exc
        return tz

    def active(self, ts: float) -> bool:
        """Whether the epoch time ``ts`` falls inside a window."""
        tz = zoneinfo.ZoneInfo(self.timezone) if self.timezone else None
        when = dt.datetime.fromtimestamp(ts, tz=tz) if tz else dt.datetime.fromtimestamp(ts)
        return any(w.contains(when) for w in self.windows)


# --- rules ------------------------------------------------------------------------------


class _RuleBase(_Strict):
    """Settings every rule has: which objects it looks at, and when and where it is quiet."""

    if TYPE_CHECKING:
        type: str  # each rule's config declares it as its Literal discriminator

    id: str | None = Field(None, pattern=_ID_PATTERN, description="Rule id, unique within its zone; defaults to the rule type.")
    classes: ClassList = Field(default_factory=lambda: ["person"], description="Detector class names the rule looks at.")
    min_confidence: Fraction = Field(0.3, description="Ignore detections below this score.")
    min_box_height: Fraction = Field(0.0, description="Ignore boxes shorter than this fraction of the frame height (far, tiny objects).")
    exempt_zones: ZoneIdList = Field(
        default_factory=list, description="Ids of other zones of the camera where the rule does not apply (crosswalks, parking bays)."
    )
    schedule: ScheduleConfig | None = Field(None, description="Only armed inside these time windows; always armed when unset.")
    detector: str | None = Field(
        None,
        pattern=_ID_PATTERN,
        description="Only this model's detections (an id of the camera's detectors: e.g. a fall model beside the COCO one); "
        "all of the camera's models when unset.",
    )
    clear_after_s: SecondsUpToHour = Field(10.0, description="An open incident closes once the condition has been clear this long.")
    cooldown_s: SecondsUpToDay = Field(
        10.0,
        description="After an incident of this rule closes, the same camera + zone + rule + object opens no new one for this long"
        " (0: at once); a condition back within it continues the closed incident. Stops a flickering condition from opening"
        " case after case (the campus crowd that dropped under its count for a second: 1.5 incidents per crowd at 0, 1.0 at"
        " 10 s; docs/rules-field.md).",
    )

    @property
    def rule_id(self) -> str:
        return self.id or self.type


#: What every rule's config has (the bound of ``Rule``'s config type).
RuleConfigBase = _RuleBase


class IntrusionRuleConfig(_RuleBase):
    """区域入侵 intrusion: listed classes inside a restricted zone (optionally only within a schedule)."""

    type: Literal["intrusion"] = "intrusion"
    min_duration_s: SecondsUpToHour = Field(0.0, description="A track must stay inside this long before it counts.")
    grace_s: SecondsUpToMinute = Field(
        1.0, description="A track missed by the detector for less than this keeps its clock (min_duration_s)."
    )


class LaneIntrusionRuleConfig(_RuleBase):
    """行人/非机动车闯入机动车道: a person or non-motor vehicle in a motor-lane zone; crosswalks exempt."""

    type: Literal["lane_intrusion"] = "lane_intrusion"
    classes: ClassList = Field(default_factory=lambda: ["person", "bicycle"])
    min_duration_s: SecondsUpToHour = Field(2.0, description="A track must stay in the lane this long before it counts.")
    grace_s: SecondsUpToMinute = Field(
        1.0, description="A track missed by the detector for less than this keeps its clock (min_duration_s)."
    )


class CrowdRuleConfig(_RuleBase):
    """人员聚集 crowd: at least ``min_count`` persons (or ``min_density`` per m²) in the zone for ``min_duration_s``."""

    type: Literal["crowd"] = "crowd"
    min_count: int = Field(5, ge=1, le=10_000, description="Objects needed in the zone at once.")
    min_density: float | None = Field(
        None, gt=0.0, le=10.0, description="Alternatively, persons per m² of zone (needs the camera's calibration)."
    )
    min_duration_s: SecondsUpToHour = Field(10.0, description="How long the count must hold.")
    grace_s: SecondsUpToMinute = Field(2.0, description="Dips below the count shorter than this don't reset the clock.")


class DwellRuleConfig(_RuleBase):
    """滞留 a stationary object in the zone for ``min_duration_s`` (the generic form of the parking rules)."""

    type: Literal["dwell"] = "dwell"
    classes: ClassList = Field(default_factory=lambda: list(VEHICLE_CLASSES))
    min_duration_s: SecondsUpToDay = Field(60.0, description="How long the object must stay still.")
    max_movement: float = Field(
        0.3,
        gt=0.0,
        le=5.0,
        description="Largest drift of the box's ground point, as a fraction of the box height, still called stationary.",
    )
    lost_grace_s: LostGraceSeconds = Field(
        10.0,
        description="A stay survives this long unseen; a new track at the same place within it continues the clock (occlusion, ID switch).",
    )
    max_travel: float = Field(
        0.6,
        gt=0.0,
        le=10.0,
        description="Largest distance, in box heights, the ground point may get from where the stay began, over the whole stay:"
        " a vehicle creeping forward (a queue, a truck inching away) starts a new stay instead of adding up to a parked one.",
    )
    rejoin_s: SecondsUpToHour = Field(
        300.0,
        description="A stay that had counted and went unseen longer than lost_grace_s is remembered this long: an object that"
        " stops at the same place (same anchor, similar box) continues it under the same object key (detector misses).",
    )
    cooldown_s: SecondsUpToDay = Field(
        300.0,
        description="After an incident closes, the same object (key) opens no new one for this long: with rejoin_s, an object"
        " the detector lost and found again at its place does not open a second incident.",
    )


class IllegalParkingRuleConfig(DwellRuleConfig):
    """机动车违停 illegal parking: a motor vehicle stationary in a no-parking zone for ≥ ``min_duration_s``."""

    type: Literal["illegal_parking"] = "illegal_parking"  # type: ignore[assignment]
    min_duration_s: SecondsUpToDay = Field(180.0, description="How long the vehicle must stay still.")


class NonMotorParkingRuleConfig(DwellRuleConfig):
    """非机动车乱停放: bicycles/motorcycles parked ≥ ``min_duration_s`` outside the allowed parking zones (``exempt_zones``)."""

    type: Literal["nonmotor_parking"] = "nonmotor_parking"  # type: ignore[assignment]
    classes: ClassList = Field(default_factory=lambda: list(NON_MOTOR_CLASSES))
    min_duration_s: SecondsUpToDay = Field(300.0, description="How long the vehicle must stay still.")


class LoiteringRuleConfig(_RuleBase):
    """徘徊 loitering: one person inside a key-site zone (a school gate) for ≥ ``min_duration_s``, moving or not."""

    type: Literal["loitering"] = "loitering"
    min_duration_s: SecondsUpToDay = Field(120.0, description="How long one person must stay in the zone.")
    lost_grace_s: LostGraceSeconds = Field(
        5.0, description="A presence survives this long unseen; a new track near where it vanished continues it."
    )
    rejoin_distance: float = Field(
        1.0, gt=0.0, le=10.0, description="How near (in box heights) a new track must appear to continue a vanished one."
    )


class StreetVendingRuleConfig(_RuleBase):
    """占道经营/游商 street vending: stationary persons with stationary goods-like objects in a kerb zone for ≥ T."""

    type: Literal["street_vending"] = "street_vending"
    classes: ClassList = Field(default_factory=lambda: ["person"], description="Who sells.")
    goods_classes: ClassList = Field(default_factory=lambda: list(GOODS_CLASSES), description="What counts as goods/stall.")
    min_duration_s: SecondsUpToDay = Field(300.0, description="How long person and goods must stay.")
    max_movement: float = Field(0.6, gt=0.0, le=5.0, description="Drift (in box heights) still called stationary; people fidget.")
    max_gap: float = Field(2.0, gt=0.0, le=20.0, description="How near (in person heights) goods must be to the person.")
    lost_grace_s: LostGraceSeconds = Field(15.0, description="A stay survives this long unseen.")


class WrongWayRuleConfig(_RuleBase):
    """车辆逆行 wrong-way driving: a vehicle whose smoothed motion runs against the lane's allowed direction."""

    type: Literal["wrong_way"] = "wrong_way"
    classes: ClassList = Field(default_factory=lambda: list(VEHICLE_CLASSES))
    direction: tuple[float, float] = Field(
        description="Allowed direction of travel as an image vector (dx, dy), y down: (0, 1) = towards the bottom of the frame."
    )
    min_distance: float = Field(
        1.0, gt=0.0, le=50.0, description="How far (in box heights) a vehicle must have moved before its direction is judged."
    )
    min_angle_deg: float = Field(
        120.0, ge=90.0, le=180.0, description="Angle between the motion and the allowed direction from which it is wrong-way."
    )
    window_s: float = Field(3.0, gt=0.0, le=60.0, description="Motion is smoothed over this much track history.")

    @field_validator("direction")
    @classmethod
    def _nonzero(cls, d: tuple[float, float]) -> tuple[float, float]:
        if abs(d[0]) < 1e-9 and abs(d[1]) < 1e-9:
            raise ValueError("direction must be a non-zero vector (dx, dy)")
        return d


class SpeedingRuleConfig(_RuleBase):
    """超速 speeding: a vehicle's ground speed (from the camera's calibration) above ``max_speed_kmh``."""

    type: Literal["speeding"] = "speeding"
    classes: ClassList = Field(default_factory=lambda: list(VEHICLE_CLASSES))
    max_speed_kmh: float = Field(gt=0.0, le=400.0, description="Speed limit in this zone.")
    tolerance_kmh: float = Field(0.0, ge=0.0, le=100.0, description="Only speeds above limit + tolerance fire.")
    window_s: float = Field(1.0, gt=0.0, le=30.0, description="Speed is measured over this much track history.")
    min_track_s: float = Field(0.5, ge=0.0, le=30.0, description="A track must be this old before its speed is trusted.")


class RedLightRuleConfig(_RuleBase):
    """闯红灯 red-light running: a vehicle crossing the stop line while the signal is red."""

    type: Literal["red_light"] = "red_light"
    classes: ClassList = Field(default_factory=lambda: list(VEHICLE_CLASSES))
    stop_line: list[Point] = Field(min_length=2, max_length=2, description="The stop line, two points (normalised).")
    signal: str = Field(pattern=_ID_PATTERN, description="Id of the camera signal (``signals``) that governs this approach.")
    direction: Literal["left_to_right", "right_to_left", "any"] = Field(
        "any",
        description=(
            "Which crossing counts, looking along the line from its first to its second point on the image:"
            " left_to_right = vehicles come from the left of the line and leave on its right."
        ),
    )
    margin: float = Field(
        0.1,
        ge=0.0,
        le=2.0,
        description="How far (in box heights) past the line the ground point must get to count as crossed; jitter on the line never crosses.",
    )
    clear_after_s: SecondsUpToHour = Field(5.0, description="Every crossing is its own incident; it closes this long after the crossing.")

    _segment = field_validator("stop_line")(classmethod(lambda cls, v: _check_segment(v)))


class IncidentTypeConfig(_Strict):
    """The incident type a model-class event opens, e.g. code ``person_fallen``, 人员倒地, person fallen."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$", description="Incident type code.")
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    category: Literal["traffic", "street_order", "city_appearance", "public_safety"] = "public_safety"


class ClassEventRuleConfig(_RuleBase):
    """Model-class event: any detector class → an incident type, with confidence and persistence thresholds."""

    type: Literal["class_event"] = "class_event"
    incident: IncidentTypeConfig
    min_confidence: Fraction = Field(0.5, description="Ignore detections below this score.")
    min_duration_s: SecondsUpToHour = Field(1.0, description="The class must persist this long (gaps under grace_s allowed).")
    grace_s: SecondsUpToMinute = Field(1.0, description="Missed detections shorter than this don't reset the clock.")


RuleConfig = Annotated[
    IntrusionRuleConfig
    | LaneIntrusionRuleConfig
    | CrowdRuleConfig
    | DwellRuleConfig
    | IllegalParkingRuleConfig
    | NonMotorParkingRuleConfig
    | LoiteringRuleConfig
    | StreetVendingRuleConfig
    | WrongWayRuleConfig
    | SpeedingRuleConfig
    | RedLightRuleConfig
    | ClassEventRuleConfig,
    Field(discriminator="type"),
]


# --- scene parts ------------------------------------------------------------------------


class ZoneConfig(_Strict):
    """A polygon (normalised 0..1 coordinates) and the rules that apply inside it.

    Example:
        >>> ZoneConfig(id="gate", polygon=[(0, 0), (1, 0), (1, 1)], rules=[{"type": "intrusion"}]).id
        'gate'
    """

    id: str = Field(pattern=_ID_PATTERN, description="Zone id, unique within its camera.")
    name: str | None = Field(None, max_length=200)
    polygon: list[Point] = Field(
        default_factory=lambda: list(FULL_FRAME), min_length=3, max_length=256, description="Vertices (x, y), each in 0..1; default: the whole frame."
    )
    rules: list[RuleConfig] = Field(default_factory=list, max_length=64)

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> ZoneConfig:
        if (rule_id := first_repeat(rule.rule_id for rule in self.rules)) is not None:
            raise ValueError(f"rule id {rule_id!r} is used twice in zone {self.id!r}; give each rule an 'id'")
        return self


class MaskConfig(_Strict):
    """An ignore region: detections whose ground point falls inside are dropped before tracking
    (a flag waving, a billboard with people on it). ``by: box`` drops detections whose *box*
    lies mostly inside instead (``min_overlap`` of its area): the camera's own on-screen text
    (timestamp, camera name), where the detector sees "book", "person" or "clock" boxes that may
    reach below the text."""

    id: str = Field(pattern=_ID_PATTERN)
    polygon: list[Point] = Field(min_length=3, max_length=256)
    by: Literal["ground_point", "box"] = Field("ground_point", description="What of a detection must fall inside to drop it.")
    min_overlap: PositiveFraction = Field(0.5, description="by: box: the fraction of the box's area inside the mask that drops it.")

    _poly = field_validator("polygon")(classmethod(lambda cls, v: _check_polygon(v)))


class LineConfig(_Strict):
    """A directed counting line (越线). Crossings from its left to its right side, looking from
    ``start`` to ``end``, count as ``in``; the other way as ``out``. Counts are statistics,
    not incidents."""

    id: str = Field(pattern=_ID_PATTERN)
    name: str | None = Field(None, max_length=200)
    points: list[Point] = Field(min_length=2, max_length=2, description="start and end (normalised).")
    classes: ClassList = Field(default_factory=lambda: ["person", "bicycle", *VEHICLE_CLASSES])
    min_confidence: Fraction = 0.3
    hysteresis: float = Field(
        0.1,
        ge=0.0,
        le=2.0,
        description="A ground point is on a side only this far (in box heights, at least 2 px) from the line: no counts from a box wobbling on it.",
    )

    _segment = field_validator("points")(classmethod(lambda cls, v: _check_segment(v)))


class CalibrationConfig(_Strict):
    """Ground-plane calibration: four image points and where they lie on the ground, in metres.

    Example: the corners of a lane segment ``image: [[0.40,0.55],[0.55,0.55],[0.70,0.95],[0.30,0.95]]``,
    ``ground: [[0,0],[3.5,0],[3.5,30],[0,30]]`` (3.5 m wide, 30 m long).
    """

    image: list[Point] = Field(min_length=4, max_length=4, description="Four image points (normalised), in order around the quadrilateral.")
    ground: list[tuple[float, float]] = Field(min_length=4, max_length=4, description="The same four points on the ground, metres.")

    @field_validator("image")
    @classmethod
    def _image_quad(cls, image: list[Point]) -> list[Point]:
        return _check_quad(_check_polygon(image), "image", 1e-6)

    @field_validator("ground")
    @classmethod
    def _ground_quad(cls, ground: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(abs(v) > _GROUND_MAX_M for point in ground for v in point):
            raise ValueError(f"ground points must lie within {_GROUND_MAX_M:g} m of the origin")
        return _check_quad(ground, "ground", 1e-3)


def _check_quad(points: list[tuple[float, float]], what: str, eps: float) -> list[tuple[float, float]]:
    """Four points going around a convex quadrilateral: no three on one line and not in
    crossed ("Z") order, which would fold the plane through the homography."""
    turns = []
    for i in range(4):
        (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[(i + 1) % 4]
        turns.append((bx - ax) * (cy - by) - (by - ay) * (cx - bx))
    if any(abs(t) < eps for t in turns):
        raise ValueError(f"{what} points must span an area (no three on one line)")
    if not (all(t > 0 for t in turns) or all(t < 0 for t in turns)):
        raise ValueError(f"{what} points must go around a convex quadrilateral in order (not crosswise)")
    return points


class SignalConfig(_Strict):
    """A traffic signal head the camera's red-light rules listen to.

    ``source: image`` reads the lamp colour from ``region`` of each frame; ``source: api``
    takes the state a signal controller pushes to ``PUT /cameras/{id}/signals/{signal}``,
    treated as unknown once older than ``stale_after_s``.
    """

    id: str = Field(pattern=_ID_PATTERN)
    source: Literal["image", "api"] = "image"
    region: list[Point] | None = Field(None, min_length=3, max_length=64, description="Where the signal head is in the frame (image source).")
    stale_after_s: float = Field(5.0, gt=0.0, le=3600.0, description="A pushed (or last read) state older than this counts as unknown.")
    hold_s: SecondsUpToMinute = Field(
        1.0,
        description="Image source: a frame where no lamp can be read keeps the last read colour this long (LED flicker, occlusion).",
    )

    @model_validator(mode="after")
    def _region_for_image(self) -> SignalConfig:
        if self.source == "image":
            if self.region is None:
                raise ValueError(f"signal {self.id!r} reads the image, so it needs a 'region' around the signal head")
            _check_polygon(self.region)
        return self


class ShapeLimits(_Strict):
    """What a plausible box of one class looks like: a whole-frame "person" or a flat sliver
    "car" is a detector error, not an object. ``aspect`` is box height / width."""

    max_area: PositiveFraction = Field(1.0, description="Largest box area as a fraction of the frame.")
    min_aspect: float = Field(0.0, ge=0.0, le=100.0, description="Smallest height / width.")
    max_aspect: float = Field(100.0, gt=0.0, le=100.0, description="Largest height / width.")

    @model_validator(mode="after")
    def _ordered(self) -> ShapeLimits:
        if self.min_aspect > self.max_aspect:
            raise ValueError(f"min_aspect {self.min_aspect} is above max_aspect {self.max_aspect}")
        return self


def _hits_within(hits: int, frames: int) -> None:
    """An M-of-N setting: M cannot be more than N."""
    if hits > frames:
        raise ValueError(f"hits ({hits}) cannot be more than frames ({frames})")


def _default_shapes() -> dict[str, ShapeLimits]:
    person = ShapeLimits(max_area=0.3, min_aspect=0.2, max_aspect=8.0)  # 0.2: a person lying down is wider than tall
    vehicle = ShapeLimits(max_area=0.7, min_aspect=0.15, max_aspect=3.0)
    two_wheels = ShapeLimits(max_area=0.4, min_aspect=0.3, max_aspect=5.0)
    return {"person": person, **{c: vehicle for c in ("car", "bus", "truck")}, **{c: two_wheels for c in NON_MOTOR_CLASSES}}


class ConfirmConfig(_Strict):
    """A track counts for the rules only once seen on ``hits`` of its last ``frames`` analysed
    frames (a box that flickers into one frame is not an object). ``hits: 1`` switches it off."""

    hits: FrameCount = Field(2, description="Frames the track must be seen on ...")
    frames: FrameCount = Field(3, description="... out of its last this many analysed frames.")

    @model_validator(mode="after")
    def _fits(self) -> ConfirmConfig:
        _hits_within(self.hits, self.frames)
        return self


class FilterConfig(_Strict):
    """Sanity filters between the detector and the rules (``filters:`` of a camera), each
    switchable. Class confidence and shape act on the raw boxes before tracking; confirmation
    on the tracks after it. Dropped boxes are neither tracked nor drawn (see docs/rules.md)."""

    min_confidence: dict[str, float] = Field(
        default_factory=dict,
        max_length=256,
        description="Class → lowest score kept (e.g. {person: 0.4}); classes not listed keep the detector's threshold.",
    )
    shapes: bool = Field(True, description="Drop boxes too large or oddly shaped for their class (``shape_limits``).")
    shape_limits: dict[str, ShapeLimits] = Field(
        default_factory=_default_shapes, max_length=256, description="Class → plausible box; classes not listed are not checked."
    )
    confirm: ConfirmConfig | None = Field(
        None, description="M-of-N confirmation of tracks before they count, e.g. {hits: 2, frames: 3}; null (default): off."
    )

    @field_validator("min_confidence")
    @classmethod
    def _scores(cls, v: dict[str, float]) -> dict[str, float]:
        for name, score in v.items():
            if not (0.0 <= score <= 1.0) or not name or len(name) > 100:
                raise ValueError(f"min_confidence[{name!r}] must be a class name with a score in 0..1, got {score}")
        return v


class RiderConfig(_Strict):
    """Riders: a person box on a bicycle or motorcycle box, moving with it, is the vehicle's
    rider. To the rules it is that vehicle: it is left out of rules about persons (a crowd,
    a pedestrian in the motor lane, loitering, vending) and counted, as the vehicle, by rules
    about the vehicle's class (while the vehicle's own box is on the frame the rider is not
    counted twice)."""

    enabled: bool = Field(True, description="Pair riders with their vehicles.")
    person_classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1, max_length=16)
    vehicle_classes: list[str] = Field(default_factory=lambda: list(NON_MOTOR_CLASSES), min_length=1, max_length=16)
    min_overlap: PositiveFraction = Field(0.3, description="Part of the person's box that must lie on the vehicle's box.")
    hits: FrameCount = Field(3, description="Frames the pair must be seen together on ...")
    frames: FrameCount = Field(5, description="... out of the person's last this many frames.")
    max_drift: float = Field(
        0.5, gt=0.0, le=5.0, description="How far, and how fast per second, the person may move relative to the vehicle, in vehicle box heights: they move together."
    )
    hold_s: SecondsUpToMinute = Field(2.0, description="A rider stays a rider this long after the pair was last seen together.")

    @model_validator(mode="after")
    def _fits(self) -> RiderConfig:
        _hits_within(self.hits, self.frames)
        return self


def reference_problems(scene: object) -> list[str]:
    """Every broken reference in a scene: repeated ids, exempt zones and signals that do not
    exist, rules that need a calibration. Works on the raw mapping too (a config that fails
    other checks), so ``gridworker check`` reports these with the rest in one pass.

    Example:
        >>> reference_problems({"zones": [{"id": "a", "rules": [{"type": "crowd", "exempt_zones": ["b"]}]}]})
        ["zones.a.rules.crowd: exempt zone 'b' is not a zone of this camera (zones: ['a'])"]
    """
    data = scene.model_dump() if isinstance(scene, BaseModel) else scene
    if not isinstance(data, dict):
        return []

    def items(key: str) -> list[dict[str, object]]:
        value = data.get(key)
        return [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []

    out: list[str] = []
    for what in ("zone", "mask", "line", "signal"):
        ids = [str(i.get("id")) for i in items(what + "s")]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            out.append(f"{what} ids must be unique within a camera; repeated: {dup}")
    zone_ids = {str(z.get("id")) for z in items("zones")}
    signal_ids = {str(s.get("id")) for s in items("signals")}
    for z in items("zones"):
        rules = z.get("rules")
        for r in rules if isinstance(rules, list) else []:
            if not isinstance(r, dict):
                continue
            where = f"zones.{z.get('id')}.rules.{r.get('id') or r.get('type')}"
            exempt = r.get("exempt_zones")
            for ex in exempt if isinstance(exempt, list) else []:
                if ex not in zone_ids:
                    out.append(f"{where}: exempt zone {ex!r} is not a zone of this camera (zones: {sorted(zone_ids)})")
                elif ex == z.get("id"):
                    out.append(f"{where}: a zone cannot exempt itself")
            if r.get("type") == "red_light" and r.get("signal") not in signal_ids:
                out.append(f"{where}: signal {r.get('signal')!r} is not configured under 'signals' (have: {sorted(signal_ids)})")
            needs_plane = r.get("type") == "speeding" or (r.get("type") == "crowd" and r.get("min_density") is not None)
            if data.get("calibration") is None and needs_plane:
                out.append(f"{where}: needs the camera's ground-plane 'calibration' (four image points with distances in metres)")
    return out


class SceneConfig(_Strict):
    """Everything spatial about one camera: zones and their rules, masks, lines, signals, calibration."""

    zones: list[ZoneConfig] = Field(default_factory=list, max_length=256)
    masks: list[MaskConfig] = Field(default_factory=list, max_length=256, description="Ignore regions, applied before tracking.")
    lines: list[LineConfig] = Field(default_factory=list, max_length=256, description="Counting lines.")
    signals: list[SignalConfig] = Field(default_factory=list, max_length=64, description="Signal heads, for red-light rules.")
    calibration: CalibrationConfig | None = Field(None, description="Ground-plane calibration, for speeds and densities.")
    filters: FilterConfig = Field(default_factory=FilterConfig, description="Sanity filters between detector and rules.")
    riders: RiderConfig = Field(default_factory=RiderConfig, description="Persons riding bicycles/motorcycles count as the vehicle.")

    @model_validator(mode="after")
    def _references(self) -> SceneConfig:
        problems = reference_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SceneLimits(_Strict):
    """Caps on a camera's scene (``limits.scene`` in the config file): every zone, rule, mask,
    line, polygon vertex and listed class costs work on every analysed frame. The schema's own
    caps (the ``le`` bounds here, ``MAX_LISTED`` names in a list) hold whatever the config says.

    Example:
        >>> SceneLimits(zones=2).problems(SceneConfig(zones=[{"id": z} for z in "abc"]))
        ['3 zones, more than limits.scene.zones (2)']
    """

    zones: int = Field(64, ge=1, le=256, description="Most zones per camera.")
    rules_per_zone: int = Field(16, ge=1, le=64, description="Most rules in one zone.")
    masks: int = Field(64, ge=0, le=256, description="Most ignore masks per camera.")
    lines: int = Field(64, ge=0, le=256, description="Most counting lines per camera.")
    signals: int = Field(16, ge=0, le=64, description="Most signal heads per camera.")
    polygon_points: int = Field(128, ge=3, le=256, description="Most vertices of one zone, mask or signal region.")
    classes: int = Field(
        MAX_LISTED,
        ge=1,
        le=MAX_LISTED,
        description="Most class names in one list of a rule or counting line (classes, goods_classes).",
    )

    def problems(self, scene: SceneConfig | Mapping[str, object]) -> list[str]:
        """What in ``scene`` exceeds these caps (empty when it fits). ``scene`` may be the raw
        mapping of a config that fails other checks, so that ``gridworker check`` lists these too."""
        data = scene.model_dump() if isinstance(scene, BaseModel) else scene

        def items(holder: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
            value = holder.get(key)
            return [i for i in value if isinstance(i, Mapping)] if isinstance(value, list) else []

        def size(value: object) -> int:
            return len(value) if isinstance(value, list) else 0

        out: list[str] = []
        for what, cap in (("zones", self.zones), ("masks", self.masks), ("lines", self.lines), ("signals", self.signals)):
            n = size(data.get(what))
            if n > cap:
                out.append(f"{n} {what}, more than limits.scene.{what} ({cap})")
        for z in items(data, "zones"):
            rules = items(z, "rules")
            if len(rules) > self.rules_per_zone:
                out.append(f"zone {z.get('id')!r} has {len(rules)} rules, more than limits.scene.rules_per_zone ({self.rules_per_zone})")
            for r in rules:
                for key in ("classes", "goods_classes"):
                    if size(r.get(key)) > self.classes:
                        where = f"zone {z.get('id')!r} rule {r.get('id') or r.get('type')!r}"
                        out.append(f"{where} lists {size(r.get(key))} {key}, more than limits.scene.classes ({self.classes})")
        for line in items(data, "lines"):
            if size(line.get("classes")) > self.classes:
                out.append(f"line {line.get('id')!r} lists {size(line.get('classes'))} classes, more than limits.scene.classes ({self.classes})")
        shapes = [(f"zone {z.get('id')!r}", z.get("polygon")) for z in items(data, "zones")]
        shapes += [(f"mask {m.get('id')!r}", m.get("polygon")) for m in items(data, "masks")]
        shapes += [(f"signal {s.get('id')!r} region", s.get("region")) for s in items(data, "signals")]
        for name, points in shapes:
            if size(points) > self.polygon_points:
                out.append(f"{name} has {size(points)} points, more than limits.scene.polygon_points ({self.polygon_points})")
        return out
