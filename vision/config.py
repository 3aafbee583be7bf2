"""Zone and rule configuration: what to look for, where.

Zones are polygons in normalised 0..1 image coordinates (x to the right, y down), so one
config fits any camera resolution. Each zone lists the rules that apply inside it; a rule
is chosen by its ``type`` (a pydantic discriminated union), so adding a rule means adding
one config class here and one module in ``vision/rules/``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VEHICLE_CLASSES = ["car", "bus", "truck", "motorcycle"]
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RuleBase(_Strict):
    id: str | None = Field(
        None, pattern=_ID_PATTERN, description="Rule id, unique within its zone; defaults to the rule type."
    )
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1, description="Detector class names the rule looks at.")
    min_confidence: float = Field(0.3, ge=0.0, le=1.0, description="Ignore detections below this score.")
    clear_after_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="An open incident closes once the condition has been clear this long."
    )

    @property
    def rule_id(self) -> str:
        return self.id or self.type  # type: ignore[attr-defined, no-any-return]


class IntrusionRuleConfig(_RuleBase):
    """Listed classes inside the zone (区域入侵)."""

    type: Literal["intrusion"] = "intrusion"
    min_duration_s: float = Field(0.0, ge=0.0, le=3600.0, description="A track must stay inside this long before it counts.")


class CrowdRuleConfig(_RuleBase):
    """At least ``min_count`` objects in the zone for ``min_duration_s`` (人员聚集)."""

    type: Literal["crowd"] = "crowd"
    min_count: int = Field(5, ge=1, le=10_000, description="Objects needed in the zone at once.")
    min_duration_s: float = Field(10.0, ge=0.0, le=3600.0, description="How long the count must hold.")
    grace_s: float = Field(2.0, ge=0.0, le=60.0, description="Dips below the count shorter than this don't reset the clock.")


class DwellRuleConfig(_RuleBase):
    """A stationary object in the zone for ``min_duration_s`` — the basis of illegal parking."""

    type: Literal["dwell"] = "dwell"
    classes: list[str] = Field(default_factory=lambda: list(VEHICLE_CLASSES), min_length=1)
    min_duration_s: float = Field(60.0, ge=0.0, le=86_400.0, description="How long the object must stay still.")
    max_movement: float = Field(
        0.3,
        gt=0.0,
        le=5.0,
        description="Largest drift of the box's ground point, as a fraction of the box height, still called stationary.",
    )
    lost_grace_s: float = Field(5.0, ge=0.0, le=600.0, description="Keep a track's clock this long after it was last seen.")


RuleConfig = Annotated[
    IntrusionRuleConfig | CrowdRuleConfig | DwellRuleConfig,
    Field(discriminator="type"),
]


class ZoneConfig(_Strict):
    """A polygon (normalised 0..1 coordinates) and the rules that apply inside it.

    Example:
        >>> ZoneConfig(id="gate", polygon=[(0, 0), (1, 0), (1, 1)], rules=[{"type": "intrusion"}]).id
        'gate'
    """

    id: str = Field(pattern=_ID_PATTERN, description="Zone id, unique within its camera.")
    name: str | None = Field(None, max_length=200)
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=256, description="Vertices (x, y), each in 0..1.")
    rules: list[RuleConfig] = Field(default_factory=list)

    @field_validator("polygon")
    @classmethod
    def _in_unit_square(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for i, (x, y) in enumerate(polygon):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"vertex {i} ({x}, {y}) is outside 0..1: zone coordinates are normalised to the frame size")
        xs = [p[0] for p in polygon]
        ys = [p[1] for p in polygon]
        area2 = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(polygon)))
        if abs(area2) < 1e-9:
            raise ValueError("polygon has no area (its vertices are collinear or repeated)")
        return polygon

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> ZoneConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.rule_id in seen:
                raise ValueError(f"rule id {rule.rule_id!r} is used twice in zone {self.id!r}; give each rule an 'id'")
            seen.add(rule.rule_id)
        return self
