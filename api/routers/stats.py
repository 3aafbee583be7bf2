"""``GET /stats/workorders``: counts by state; on-time rate and mean handling time by type,
unit and site (docs/workorders.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from gridworker.cases.workflow import UNIT_HANDLER, Actor
from gridworker.cases.workorders import StatsGroup

from ..auth import ANY_ROLE, require
from ..deps import OrdersDep

router = APIRouter(tags=["work orders"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]


class StatsGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    total: int
    finished: int = Field(description="Handled or closed")
    judged: int = Field(description="Finished, plus running cases already late: the on-time rate's denominator")
    on_time: int
    on_time_rate: float | None
    mean_handling_s: float | None = Field(description="Detection → handled, over finished cases")

    @classmethod
    def of(cls, g: StatsGroup) -> StatsGroupOut:
        return cls.model_validate(g)


class WorkOrderStats(BaseModel):
    by_state: dict[str, int]
    by_type: list[StatsGroupOut]
    by_unit: list[StatsGroupOut]
    by_site: list[StatsGroupOut]


@router.get("/stats/workorders", response_model=WorkOrderStats)
def workorder_stats(
    user: Reader,
    orders: OrdersDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> WorkOrderStats:
    """Counts by state; on-time rate and mean handling time by type, unit and site
    (cases detected in [since, until)). A unit handler gets their unit's figures."""
    try:
        s = orders.stats(
            since=None if since is None else since.timestamp(),
            until=None if until is None else until.timestamp(),
            unit=user.unit if user.role == UNIT_HANDLER else None,
        )
    except (OverflowError, OSError, ValueError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "'since' or 'until' is out of range") from None
    return WorkOrderStats(
        by_state=s["by_state"],
        by_type=[StatsGroupOut.of(g) for g in s["by_type"]],
        by_unit=[StatsGroupOut.of(g) for g in s["by_unit"]],
        by_site=[StatsGroupOut.of(g) for g in s["by_site"]],
    )
