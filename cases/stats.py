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
    >>> from gridworker.incidents import IncidentStore
    >>> store = IncidentStore("sqlite:///:memory:")
    >>> orders = WorkOrders(store.db)
    >>> for at in (3600.0, 90000.0):  # two cases, on days 1 and 2
    ...     inc = store.open(camera_id="cam1", camera_name="Gate", site="market", zone_id="kerb", rule_id="r1",
    ...                      type="illegal_parking", at=at, count=1, summary="seen", details={}, snapshot=None)
    ...     _ = orders.on_incident_opened(inc)
    >>> period = Period.of(since=0.0, until=86400.0 * 7)
    >>> figures = CaseStats(orders).figures(period, now=86400.0 * 7)
    >>> figures.totals.total, figures.by_state["detected"]
    (2, 2)
    >>> [(g.key, g.total, g.on_time_rate) for g in figures.by_unit]  # both overdue, neither handled
    [('traffic-squad', 2, 0.0)]
    >>> [(g.key, g.total) for g in figures.by_day]
    [('1970-01-01', 1), ('1970-01-02', 1)]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, String, case, cast, func, literal_column, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from .people import PersonRow
from .workorders import STATES, StatsGroup, WorkOrderRow, WorkOrders, case_flags, outcome

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


class CaseStats:
    """The numbers of a work-order store, one bounded query per grouping.

    Args:
        orders: the work-order store.

    Example:
        >>> from gridworker.incidents import IncidentStore
        >>> orders = WorkOrders(IncidentStore("sqlite:///:memory:").db)  # no cases yet
        >>> f = CaseStats(orders).figures(Period.of(since=0.0, until=86400.0), now=86400.0)
        >>> f.totals.total, f.by_unit, f.truncated
        (0, [], False)
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
        # each case's local day and week (integers written into the SQL text, never bound)
        local = WorkOrderRow.detected_at + _int(period.offset_s)
        day = _floor(local / _int(DAY_S))
        week = _floor((local - _int(_FIRST_MONDAY * DAY_S)) / _int(WEEK_S))
        # the period's cases are read once (a materialised CTE: one pass over the index, whose
        # lookups are the cost), then every grouping is a GROUP BY over that, all in one statement
        cases = (
            select(
                WorkOrderRow.type, WorkOrderRow.unit, WorkOrderRow.site, WorkOrderRow.state, WorkOrderRow.assignee,
                day.label("day"), week.label("week"), *(flag.label(name) for name, flag in case_flags(now).items()),
            )
            .where(*cond)
            .cte("period_cases")
            .prefix_with("MATERIALIZED")
        )
        c = cases.c
        sums = (func.count(), func.sum(c.finished), func.sum(c.judged), func.sum(c.on_time), func.avg(c.handling_s))
        no_name = cast(literal_column("NULL"), String)

        def branch(section: str, *, by_count: bool = True, person: bool = False) -> Any:
            """One grouping: by the period's column named ``section`` (a person: by ``assignee``)."""
            key = c.assignee if person else c[section]
            label = literal_column(f"'{section}'", String).label("section")  # a fixed word of this module
            name = func.max(PersonRow.name) if person else no_name
            q = select(label, cast(key, String).label("key"), name.label("name"), *sums).select_from(cases)
            if person:
                q = q.outerjoin(PersonRow, PersonRow.id == c.assignee).where(c.assignee.is_not(None))
            q = q.group_by(key).order_by(func.count().desc(), key) if by_count else q.group_by(key).order_by(key)
            return select(q.limit(MAX_GROUPS + 1).subquery())

        totals = select(literal_column("'all'", String), literal_column("'all'", String), no_name, *sums).select_from(cases)
        statement = union_all(
            totals,
            branch("state"),
            branch("type"),
            branch("unit"),
            branch("site"),
            branch("person", person=True),
            branch("day", by_count=False),
            branch("week", by_count=False),
        )
        with self.orders.transaction() as s:
            rows = s.execute(statement).all()
        sections: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            sections.setdefault(str(row[0]), []).append(tuple(row[1:]))
        truncated = any(len(v) > MAX_GROUPS for k, v in sections.items() if k != "all")
        groups = {k: v[:MAX_GROUPS] for k, v in sections.items()}
        # bucket keys come back as text: order them as numbers
        by_day = [
            outcome((_EPOCH + timedelta(days=int(r[0]))).isoformat(), *r[2:]) for r in sorted(groups.get("day", []), key=lambda r: int(r[0]))
        ]
        by_week = [
            outcome((_EPOCH + timedelta(days=_FIRST_MONDAY + 7 * int(r[0]))).isoformat(), *r[2:])
            for r in sorted(groups.get("week", []), key=lambda r: int(r[0]))
        ]
        total_row = groups["all"][0]
        by_state = {st: 0 for st in STATES} | {str(r[0]): int(r[2]) for r in groups.get("state", [])}
        ranked = {section: [outcome(str(r[0]), *r[2:]) for r in groups.get(section, [])] for section in ("type", "unit", "site", "person")}
        person_names = {str(r[0]): str(r[1] or "") for r in groups.get("person", [])}
        return Figures(
            period=period,
            now=now,
            totals=outcome("all", *total_row[2:]),
            by_state=by_state,
            by_type=ranked["type"],
            by_unit=ranked["unit"],
            by_site=ranked["site"],
            by_person=ranked["person"],
            person_names=person_names,
            by_day=by_day,
            by_week=by_week,
            truncated=truncated,
        )
