"""The numbers (统计): cases by type, unit, site, state and person over a period, their
on-time rate and mean handling time, and trends per day and per week.

Everything is computed in the database (GROUP BY over ``work_orders``) over a bounded
period (:data:`MAX_PERIOD_S`), so memory does not grow with the number of cases. A case
belongs to the period in which it was *detected* (``[since, until)``), the same rule as
``GET /stats/workorders``; on time, judged and handling time are defined as in
:meth:`WorkOrders.stats <gridworker.cases.workorders.WorkOrders.stats>`.

Days and weeks are local to a fixed UTC offset (a command centre in China: +480 minutes);
weeks start on Monday (ISO 8601). Bucketing uses a floor that gives the same answer in
SQLite (``CAST`` truncates) and PostgreSQL (``CAST`` rounds).

Example:
    >>> period = Period.of(since=0.0, until=86400.0 * 7)
    >>> figures = CaseStats(orders).figures(period, now=86400.0 * 7)  # doctest: +SKIP
    >>> figures.totals.total  # doctest: +SKIP
    12
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal_column, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from .people import PersonRow
from .workorders import REJECTED, RUNNING, STATES, StatsGroup, WorkOrderRow, WorkOrders

DAY_S = 86_400
WEEK_S = 7 * DAY_S
#: the longest period one query may cover (a year and a day: a leap year, whole)
MAX_PERIOD_S = 367 * DAY_S
#: UTC offsets in minutes that exist somewhere (UTC-12:00 … UTC+14:00)
MIN_OFFSET_MIN, MAX_OFFSET_MIN = -720, 840
#: the most groups one grouping returns (sites can be many; types, units and people are bounded lists)
MAX_GROUPS = 2000
#: periods end by 2100-01-01 (every date in them can be written; nothing is detected later)
LATEST = 4_102_444_800.0
_EPOCH = date(1970, 1, 1)
_FIRST_MONDAY = 4  # 1970-01-05, a Monday, is day 4 of the epoch


class PeriodError(ValueError):
    """A period that is empty, reversed, too long, or has an impossible UTC offset."""


@dataclass(frozen=True, slots=True)
class Period:
    """Cases detected in ``[since, until)`` (epoch seconds); days and weeks at ``utc_offset_min``."""

    since: float
    until: float
    utc_offset_min: int = 0

    @classmethod
    def of(cls, *, since: float, until: float, utc_offset_min: int = 0) -> Period:
        """A checked period.

        Raises:
            PeriodError: ``since >= until``, longer than :data:`MAX_PERIOD_S`, before the epoch,
                after :data:`LATEST`, or an offset outside UTC-12:00 … UTC+14:00.
        """
        if not since < until:
            raise PeriodError("'since' must be before 'until'")
        if since < 0:
            raise PeriodError("'since' is before 1970")
        if until > LATEST:
            raise PeriodError("'until' is after 2100")
        if until - since > MAX_PERIOD_S:
            raise PeriodError(f"the period is longer than {MAX_PERIOD_S // DAY_S} days")
        if not MIN_OFFSET_MIN <= utc_offset_min <= MAX_OFFSET_MIN:
            raise PeriodError(f"utc_offset_min must be within {MIN_OFFSET_MIN}..{MAX_OFFSET_MIN}")
        return cls(since, until, utc_offset_min)

    @property
    def offset_s(self) -> int:
        return self.utc_offset_min * 60


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers of one period. Trend keys are ISO dates: the day, or the Monday of the week.
    ``by_person`` keys are the assignees' person ids (cases assigned to nobody count in no person)."""

    period: Period
    now: float
    totals: StatsGroup
    by_state: dict[str, int]
    by_type: list[StatsGroup]
    by_unit: list[StatsGroup]
    by_site: list[StatsGroup]
    by_person: list[StatsGroup]
    person_names: dict[str, str]  # person id → name, for by_person
    by_day: list[StatsGroup]
    by_week: list[StatsGroup]
    truncated: bool  # a grouping had more than MAX_GROUPS groups (the largest were kept)


def _int(value: int) -> ColumnElement[Any]:
    """An integer written into the SQL text (only ever a validated ``int``)."""
    return literal_column(str(int(value)), Integer)


def _floor(x: ColumnElement[Any]) -> ColumnElement[Any]:
    """``floor(x)`` as an integer, alike in SQLite (CAST truncates) and PostgreSQL (CAST rounds)."""
    whole = cast(x, Integer)
    return whole - case((x < whole, _int(1)), else_=_int(0))


def outcome_columns(now: float) -> tuple[ColumnElement[Any], ...]:
    """The aggregates of a group: total, finished, judged, on time, mean handling seconds.

    *Finished*: handled or closed (not rejected). *Judged*: finished, plus cases still running
    but already late at ``now``. *On time*: finished before the due time and never late.
    """
    finished = WorkOrderRow.handled_at.is_not(None) & (WorkOrderRow.state != REJECTED)
    late_running = WorkOrderRow.state.in_(sorted(RUNNING)) & (WorkOrderRow.overdue.is_(True) | (WorkOrderRow.due_at < now))
    return (
        func.count(),
        func.sum(case((finished, 1), else_=0)),
        func.sum(case((finished | late_running, 1), else_=0)),
        func.sum(case((finished & WorkOrderRow.on_time.is_(True), 1), else_=0)),
        func.avg(case((finished, WorkOrderRow.handled_at - WorkOrderRow.detected_at), else_=None)),
    )


def outcome(key: str, total: Any, finished: Any, judged: Any, on_time: Any, mean: Any) -> StatsGroup:
    """One group from a row of :func:`outcome_columns` (SUM of nothing is NULL)."""
    judged_n, on_time_n = int(judged or 0), int(on_time or 0)
    return StatsGroup(
        key=key,
        total=int(total or 0),
        finished=int(finished or 0),
        judged=judged_n,
        on_time=on_time_n,
        on_time_rate=on_time_n / judged_n if judged_n else None,
        mean_handling_s=None if mean is None else float(mean),
    )


class CaseStats:
    """The numbers of a work-order store, one bounded query per grouping.

    Args:
        orders: the work-order store.

    Example:
        >>> f = CaseStats(orders).figures(Period.of(since=t0, until=t1))  # doctest: +SKIP
        >>> [(g.key, g.on_time_rate) for g in f.by_unit]  # doctest: +SKIP
        [('traffic-squad', 0.75)]
    """

    def __init__(self, orders: WorkOrders) -> None:
        self.orders = orders

    def figures(self, period: Period, *, now: float, unit: str | None = None, assignee: int | None = None) -> Figures:
        """The numbers of cases detected in ``period``; only ``unit``'s cases, and only those
        assigned to the person ``assignee``, when given."""
        cond: list[ColumnElement[bool]] = [WorkOrderRow.detected_at >= period.since, WorkOrderRow.detected_at < period.until]
        if unit is not None:
            cond.append(WorkOrderRow.unit == unit)
        if assignee is not None:
            cond.append(WorkOrderRow.assignee == assignee)
        cols = outcome_columns(now)
        # constants inline, not bound: PostgreSQL matches a GROUP BY expression to the selected one
        # only when they are written alike (two bind parameters are two different expressions)
        local = WorkOrderRow.detected_at + _int(period.offset_s)
        day = _floor(local / _int(DAY_S))
        week = _floor((local - _int(_FIRST_MONDAY * DAY_S)) / _int(WEEK_S))
        truncated = False
        with self.orders.transaction() as s:

            def grouped(column: ColumnElement[Any] | InstrumentedAttribute[Any], order_by_count: bool = True) -> list[tuple[Any, ...]]:
                nonlocal truncated
                q = select(column, *cols).where(*cond).group_by(column)
                q = q.order_by(func.count().desc(), column) if order_by_count else q.order_by(column)
                rows = [tuple(r) for r in s.execute(q.limit(MAX_GROUPS + 1)).all()]
                truncated = truncated or len(rows) > MAX_GROUPS
                return rows[:MAX_GROUPS]

            total_row = s.execute(select(*cols).where(*cond)).one()
            by_state = {st: 0 for st in STATES} | {
                str(st): int(n) for st, n in s.execute(select(WorkOrderRow.state, func.count()).where(*cond).group_by(WorkOrderRow.state)).all()
            }
            by_type = [outcome(str(r[0]), *r[1:]) for r in grouped(WorkOrderRow.type)]
            by_unit = [outcome(str(r[0]), *r[1:]) for r in grouped(WorkOrderRow.unit)]
            by_site = [outcome(str(r[0]), *r[1:]) for r in grouped(WorkOrderRow.site)]
            people = select(WorkOrderRow.assignee, func.max(PersonRow.name), *cols).outerjoin(PersonRow, PersonRow.id == WorkOrderRow.assignee)
            people_rows = s.execute(
                people.where(*cond, WorkOrderRow.assignee.is_not(None))
                .group_by(WorkOrderRow.assignee)
                .order_by(func.count().desc(), WorkOrderRow.assignee)
                .limit(MAX_GROUPS + 1)
            ).all()
            truncated = truncated or len(people_rows) > MAX_GROUPS
            by_person = [outcome(str(r[0]), *r[2:]) for r in people_rows[:MAX_GROUPS]]
            person_names = {str(r[0]): str(r[1] or "") for r in people_rows[:MAX_GROUPS]}
            by_day = [outcome((_EPOCH + timedelta(days=int(r[0]))).isoformat(), *r[1:]) for r in grouped(day, order_by_count=False)]
            by_week = [
                outcome((_EPOCH + timedelta(days=_FIRST_MONDAY + 7 * int(r[0]))).isoformat(), *r[1:])
                for r in grouped(week, order_by_count=False)
            ]
        return Figures(
            period=period,
            now=now,
            totals=outcome("all", *total_row),
            by_state=by_state,
            by_type=by_type,
            by_unit=by_unit,
            by_site=by_site,
            by_person=by_person,
            person_names=person_names,
            by_day=by_day,
            by_week=by_week,
            truncated=truncated,
        )
