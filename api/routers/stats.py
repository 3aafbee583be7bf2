"""``GET /stats/workorders``: counts by state; on-time rate and mean handling time by type,
unit and site (docs/workorders.md), over a period bounded as ``/stats/cases``'s is.

``GET /stats/cases`` (the console's statistics page, docs/people.md "The numbers"): the same
figures over a chosen, bounded period, also by person, with trends per day and per week;
``/stats/cases.csv`` and ``/stats/cases.xlsx`` export them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from gridworker.cases.stats import MAX_OFFSET_MIN, MIN_OFFSET_MIN, CaseStats, Figures, Period, PeriodError
from gridworker.cases.workflow import UNIT_HANDLER, Actor
from gridworker.cases.workorders import StatsGroup

from ..errors import Responses
from ..schemas import epoch
from ..stats_export import XLSX_MEDIA_TYPE, FiguresTable, Lang

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


# -- the period of every statistics route: bounded (cases/stats.py Period) -----------------------
DEFAULT_PERIOD = timedelta(days=30)
_PERIOD_ERRORS: Responses = {422: {"description": "A bad period: reversed, empty, longer than the cap, or out of range"}}
SinceQuery = Annotated[datetime | None, Query(description="Cases detected from (default: 30 days before `until`); no zone: UTC")]
UntilQuery = Annotated[datetime | None, Query(description="Cases detected before (default: now); no zone: UTC")]


def chosen_period(
    since: SinceQuery = None,
    until: UntilQuery = None,
    utc_offset_min: Annotated[
        int, Query(ge=MIN_OFFSET_MIN, le=MAX_OFFSET_MIN, description="Where days and weeks start: minutes east of UTC (China: 480)")
    ] = 0,
) -> Period:
    """The period a statistics request asks for, at most ``MAX_PERIOD_S`` long (422 otherwise)."""
    try:
        end = time.time() if until is None else epoch(until)
        start = end - DEFAULT_PERIOD.total_seconds() if since is None else epoch(since)
        return Period.of(since=start, until=end, utc_offset_min=utc_offset_min)
    except (OverflowError, OSError, ValueError) as exc:  # PeriodError is a ValueError
        detail = str(exc) if isinstance(exc, PeriodError) else "'since' or 'until' is out of range"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None


def chosen_span(since: SinceQuery = None, until: UntilQuery = None) -> Period:
    """:func:`chosen_period` for a route without days and weeks (no ``utc_offset_min``): the
    same defaults, the same cap, the same 422s."""
    return chosen_period(since, until)


PeriodDep = Annotated[Period, Depends(chosen_period)]
SpanDep = Annotated[Period, Depends(chosen_span)]


@router.get("/stats/workorders", response_model=WorkOrderStats, responses=_PERIOD_ERRORS)
def workorder_stats(user: Reader, orders: OrdersDep, period: SpanDep) -> WorkOrderStats:
    """Counts by state; on-time rate and mean handling time by type, unit and site
    (cases detected in [since, until), at most 367 days). A unit handler's key gets their unit's
    figures; a unit handler who is a person, their own cases'."""
    handler = user.role == UNIT_HANDLER
    s = orders.stats(
        since=period.since,
        until=period.until,
        unit=user.unit if handler else None,
        assignee=user.person if handler else None,
    )
    return WorkOrderStats(
        by_state=s["by_state"],
        by_type=[StatsGroupOut.of(g) for g in s["by_type"]],
        by_unit=[StatsGroupOut.of(g) for g in s["by_unit"]],
        by_site=[StatsGroupOut.of(g) for g in s["by_site"]],
    )


# -- the statistics page: a chosen period, trends, exports ----------------------------------------
class CaseStatsOut(BaseModel):
    since: datetime
    until: datetime
    utc_offset_min: int
    computed_at: datetime
    totals: StatsGroupOut
    by_state: dict[str, int]
    by_type: list[StatsGroupOut]
    by_unit: list[StatsGroupOut]
    by_site: list[StatsGroupOut]
    by_person: list[StatsGroupOut] = Field(description="By the person the case is assigned to (key: the person's id); unassigned cases count in none")
    person_names: dict[str, str] = Field(description="Person id → name, for by_person")
    by_day: list[StatsGroupOut] = Field(description="key: the local date (YYYY-MM-DD)")
    by_week: list[StatsGroupOut] = Field(description="key: the local date of the week's Monday")
    truncated: bool = Field(description="A grouping had more groups than the cap; the largest were kept")

    @classmethod
    def of(cls, f: Figures) -> CaseStatsOut:
        p = f.period
        return cls(
            since=_utc(p.since), until=_utc(p.until), utc_offset_min=p.utc_offset_min, computed_at=_utc(f.now),
            totals=StatsGroupOut.of(f.totals), by_state=f.by_state, by_type=groups(f.by_type), by_unit=groups(f.by_unit),
            by_site=groups(f.by_site), by_person=groups(f.by_person), person_names=f.person_names,
            by_day=groups(f.by_day), by_week=groups(f.by_week), truncated=f.truncated,
        )


def groups(gs: list[StatsGroup]) -> list[StatsGroupOut]:
    return [StatsGroupOut.of(g) for g in gs]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


LangQuery = Annotated[Lang, Query(description="Language of the names and column headers")]


def _figures(user: Actor, orders: OrdersDep, period: Period) -> Figures:
    """A unit handler's key: their unit's figures; a unit handler who is a person: their own cases' only."""
    handler = user.role == UNIT_HANDLER
    return CaseStats(orders).figures(
        period, now=time.time(), unit=user.unit if handler else None, assignee=user.person if handler else None
    )


@router.get("/stats/cases", response_model=CaseStatsOut, responses=_PERIOD_ERRORS)
def case_stats(user: Reader, orders: OrdersDep, period: PeriodDep) -> CaseStatsOut:
    """Cases detected in [since, until) (at most 367 days) by state, type, unit, site and
    person, with their on-time rate and mean handling time, and per day and per week. A unit
    handler's key gets their unit's figures; a unit handler who is a person, their own cases'."""
    return CaseStatsOut.of(_figures(user, orders, period))


def _download(f: Figures, body: bytes, media_type: str, ext: str) -> Response:
    p = f.period
    name = f"gridworker-stats-{_utc(p.since):%Y%m%d}-{_utc(p.until):%Y%m%d}.{ext}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/stats/cases.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}, **_PERIOD_ERRORS})
def case_stats_csv(user: Reader, orders: OrdersDep, period: PeriodDep, lang: LangQuery = "zh") -> Response:
    """``/stats/cases`` as one CSV table (UTF-8 with BOM): section, key, name and the figures."""
    f = _figures(user, orders, period)
    return _download(f, FiguresTable(f, orders.catalogue, lang).csv_bytes(), "text/csv; charset=utf-8", "csv")


@router.get("/stats/cases.xlsx", response_class=Response, responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}, **_PERIOD_ERRORS})
def case_stats_xlsx(user: Reader, orders: OrdersDep, period: PeriodDep, lang: LangQuery = "zh") -> Response:
    """``/stats/cases`` as an Excel workbook: sheet ``figures`` (the CSV's table), sheet ``period``."""
    f = _figures(user, orders, period)
    return _download(f, FiguresTable(f, orders.catalogue, lang).xlsx_bytes(), XLSX_MEDIA_TYPE, "xlsx")
