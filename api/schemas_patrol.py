"""Response models of the patrol API (``/patrol/plans``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import PatrolStatus


def _rounded(digits: int) -> AfterValidator:
    return AfterValidator(lambda value: round(value, digits))


class _Out(BaseModel):
    """Read from the patrol engine's dataclasses by attribute (its times, Unix seconds, become UTC
    datetimes; its state enum its value)."""

    model_config = ConfigDict(from_attributes=True)


class FailedVisitOut(_Out):
    camera_id: str
    reason: str


class OfflineCameraOut(_Out):
    camera_id: str
    reason: str
    failures: int = Field(description="Failed visits in a row.")
    since: datetime | None
    retry_cycle: int = Field(description="The cycle in which the camera is tried again.")


class CycleSummaryOut(_Out):
    cycle: int
    total: int
    ok: int
    failed: int
    skipped: int
    duration_s: Annotated[float, _rounded(3)]
    failed_visits: list[FailedVisitOut]


class PatrolStatusOut(_Out):
    plan_id: str
    state: str = Field(description="idle, running, paused, waiting, stopping, stopped or finished.")
    cycle: int = Field(description="The current (or last) cycle, from 1; 0 before the first.")
    cycles: int = Field(description="Cycles the plan runs; 0 = until stopped.")
    completed_cycles: int
    total: int = Field(description="Cameras in the current cycle.")
    visited: int = Field(description="Visits of the current cycle that ended (good or failed).")
    ok: int
    failed: int
    skipped: int = Field(description="Offline cameras sitting this cycle out (retry backoff).")
    progress: Annotated[float, _rounded(4)] = Field(description="(visited + skipped) / total.")
    in_flight: list[str] = Field(description="Cameras being visited now.")
    concurrency_limit: int = Field(
        0, description="Visits allowed in flight now: the plan's concurrency, or the adaptive controller's current limit."
    )
    started_at: datetime | None
    cycle_started_at: datetime | None
    last_cycle_s: Annotated[float, _rounded(3)] | None = Field(description="Duration of the last finished cycle.")
    eta_s: Annotated[float, _rounded(1)] | None = Field(description="Estimated seconds until the current cycle ends.")
    visits_total: int
    failed_this_cycle: list[FailedVisitOut]
    offline: list[OfflineCameraOut]
    last_cycle: CycleSummaryOut | None

    @classmethod
    def of(cls, st: PatrolStatus) -> PatrolStatusOut:
        return cls.model_validate(st)


class PatrolPlanOut(BaseModel):
    plan: PatrolPlan
    source: str = Field(
        "config",
        description="config: from the config file (cannot be deleted; a PUT lasts until restart); "
        "api: created through the API (saved, survives a restart, can be deleted).",
    )
    cameras: int = Field(description="Cameras the plan selects now.")
    status: PatrolStatusOut
