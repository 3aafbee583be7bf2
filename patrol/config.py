"""Patrol configuration: what a camera is (site type, tags, priority) and what a plan does.

A *plan* is plain data. Which cameras it visits and in what order is decided by the pure
functions in :mod:`gridworker.patrol.selection`; :class:`gridworker.patrol.engine.PatrolRun`
executes it.

Example (YAML)::

    id: schools-am
    name: Schools and hospitals, morning
    select: {site_types: [school, hospital], tags: [gate], tags_mode: any}
    mode: glance
    keyframes: 1
    concurrency: 64
    cycles: 0                  # forever
    min_cycle_s: 60            # a short cycle waits out the minute
    schedule: {windows: [{days: [mon, tue, wed, thu, fri], start: "07:00", end: "18:00"}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridworker.fields import SecondsUpToDay
from gridworker.vision.config import ScheduleConfig, TimeWindow

__all__ = [
    "SITE_TYPES",
    "CameraPatrolConfig",
    "PatrolMode",
    "PatrolPlan",
    "PatrolSelection",
    "PatrolTarget",
    "ScheduleConfig",
    "SiteType",
    "TimeWindow",
]

SiteType = Literal[
    "school", "hospital", "transport_hub", "market", "street", "park", "government", "residential", "commercial", "other"
]
SITE_TYPES: tuple[str, ...] = SiteType.__args__  # type: ignore[attr-defined]
PatrolMode = Literal["glance", "watch"]
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_TAG_PATTERN = r"^[^\s,]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN, Infinity, 1e400: never a setting


class CameraPatrolConfig(_Strict):
    """Patrol attributes of one camera (a section of the camera's config in the service).

    Example:
        >>> CameraPatrolConfig(site_type="school", tags=["gate", "district-3"], priority=8).priority
        8
    """

    enabled: bool = Field(True, description="Whether patrol plans may visit this camera at all.")
    site_type: SiteType = Field("other", description="The kind of site the camera watches.")
    tags: list[str] = Field(default_factory=list, max_length=32, description="Free labels used by plan selection.")
    priority: int = Field(
        5, ge=0, le=9, description="0 (lowest) .. 9 (highest). Higher-priority cameras are visited first in a cycle."
    )

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        cleaned = [t.strip() for t in tags]
        for tag in cleaned:
            if not tag or any(c.isspace() for c in tag) or "," in tag or len(tag) > 64:
                raise ValueError(f"bad tag {tag!r}: 1-64 characters, no spaces or commas")
        return list(dict.fromkeys(cleaned))


@dataclass(frozen=True, slots=True)
class PatrolTarget:
    """A camera as the patrol sees it: id, URL (may hold credentials: never log it) and attributes."""

    camera_id: str
    url: str
    patrol: CameraPatrolConfig = field(default_factory=CameraPatrolConfig)


class PatrolSelection(_Strict):
    """Which cameras a plan visits.

    A camera is selected when it is listed in ``camera_ids``, or when it matches the group
    filters: its site type is in ``site_types`` (if given) **and** its tags match ``tags``
    (any or all of them, if given). With no criterion at all every patrol-enabled camera is
    selected. ``exclude`` always wins. Cameras with ``patrol.enabled = false`` are only
    visited when listed explicitly.
    """

    site_types: list[SiteType] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, max_length=32)
    tags_mode: Literal["any", "all"] = Field("any", description="A camera needs any / all of ``tags``.")
    camera_ids: list[str] = Field(default_factory=list, max_length=100_000, description="Explicitly listed cameras.")
    exclude: list[str] = Field(default_factory=list, max_length=100_000)

    @property
    def is_empty(self) -> bool:
        return not (self.site_types or self.tags or self.camera_ids)


class PatrolPlan(_Strict):
    """A patrol plan: cameras, order, per-stop mode, concurrency budget, repetition, windows.

    Example:
        >>> plan = PatrolPlan(id="schools", select={"site_types": ["school"]}, concurrency=32)
        >>> plan.mode, plan.keyframes, plan.cycles
        ('glance', 1, 1)
    """

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field("", max_length=200)
    select: PatrolSelection = Field(default_factory=PatrolSelection)
    order: Literal["priority", "listed"] = Field(
        "priority",
        description="priority: highest priority first; within a priority, site types take turns (round-robin) "
        "and the starting camera rotates every cycle. listed: camera_ids order, then the rest by id.",
    )
    mode: PatrolMode = Field("glance", description="glance: a few keyframes per stop; watch: watch_s of tracked video.")
    keyframes: int = Field(1, ge=1, le=10, description="Keyframes taken per glance.")
    watch_s: float = Field(10.0, gt=0, le=600, description="Seconds of video per stop in watch mode.")
    watch_fps: float = Field(5.0, gt=0, le=30, description="Analysis rate during a watch stop.")
    concurrency: int = Field(
        32, ge=1, le=512, description="Most visits in flight at once (the service allows up to limits.max_patrol_concurrency, 128 by default)."
    )
    concurrency_mode: Literal["fixed", "adaptive"] = Field(
        "fixed",
        description="fixed: always up to 'concurrency' visits in flight. adaptive: an AIMD controller sets the limit "
        "between min_concurrency and 'concurrency' from the CPU, the inference queue and failures (docs/patrol.md).",
    )
    min_concurrency: int = Field(4, ge=1, le=512, description="Fewest visits in flight an adaptive plan goes down to.")
    overlap_cycles: bool = Field(
        True,
        description="Start the next cycle while the last visits of the previous one still wait for their keyframes "
        "(a camera still being visited is visited at the end of the new cycle). false: drain each cycle first.",
    )
    stagger_s: float = Field(
        0.01, ge=0, le=10, description="Least time between two visit starts (spreads RTSP handshakes)."
    )
    cycles: int = Field(1, ge=0, description="Number of passes over the cameras; 0 = repeat until stopped.")
    min_cycle_s: SecondsUpToDay = Field(
        0.0,
        description="A cycle shorter than this waits before the next one. A cycle that started no visit (no camera "
        "selected, or all of them offline) is followed by at least 5 s (engine.IDLE_CYCLE_S), even when this is shorter.",
    )
    open_timeout_s: float = Field(5.0, gt=0, le=120, description="Longest RTSP handshake of a visit.")
    keyframe_timeout_s: float = Field(
        8.0, gt=0, le=300, description="Longest wait for the keyframes once connected (exceed the longest GOP)."
    )
    retry_max_skip_cycles: int = Field(
        8,
        ge=0,
        le=1000,
        description="A camera that failed k times in a row sits out min(2**(k-1) - 1, this) cycles before "
        "the next try (retried next cycle after its first failure), and is not retried before "
        "min(open_timeout_s * 2**(k-2), 300) seconds after the failure either.",
    )
    schedule: ScheduleConfig | None = Field(None, description="Only patrol inside these time windows.")

    @model_validator(mode="after")
    def _floor_below_cap(self) -> PatrolPlan:
        if self.concurrency_mode == "adaptive" and self.min_concurrency > self.concurrency:
            raise ValueError(f"min_concurrency ({self.min_concurrency}) is more than concurrency ({self.concurrency})")
        return self

    def visit_budget_s(self) -> float:
        """Upper bound of one visit's duration (for ETAs and for joining stuck workers)."""
        if self.mode == "watch":
            return self.open_timeout_s + self.watch_s + self.keyframe_timeout_s
        return self.open_timeout_s + self.keyframe_timeout_s * 1.5 + 1.0
