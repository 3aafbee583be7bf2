"""Work orders (工单): the case-handling state of each incident and its audit trail.

Tables beside the incidents, in the same ``Database`` and on the same declarative base
(``incidents/db.py``):

- ``work_orders`` — one row per incident (keyed by its id): state, grade, current unit,
  first unit, responsible unit, escalation floor, due time, handling times, version;
- ``work_order_photos`` — the handler's photo (JPEG), apart so listings stay light;
- ``incident_audit`` — every transition: who, when, from, to, why.

API keys live beside them in ``gridworker/keystore.py``.

The schema comes from the migrations (``incidents/migrations``). SQLite (WAL) and
PostgreSQL both work.

Every write to a work order goes through ``transaction()`` (the database's) and ``record()``: ``record``
bumps the order's version, appends the audit row and then calls each ``on_change``
hook *inside the same transaction* — the place where a transactional outbox writes its
message so that the change and the message commit together (or neither does).

The lifecycle rules (who may move a case where) live in ``workflow.py``.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    case,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.orm import Mapped, Session, mapped_column

from gridworker.incidents.db import Base, CommitSignal, Database, equal_filters, part_of, to_domain
from gridworker.incidents.store import Incident

from .catalogue import Catalogue, load_catalogue
from .places import AreaMap, Position, reported_position

# -- states -------------------------------------------------------------------------------
DETECTED = "detected"
DISPATCHED = "dispatched"
ACCEPTED = "accepted"
HANDLED = "handled"
CLOSED = "closed"
REJECTED = "rejected"
ESCALATED = "escalated"
STATES = (DETECTED, DISPATCHED, ACCEPTED, HANDLED, CLOSED, REJECTED, ESCALATED)
TERMINAL = frozenset({CLOSED, REJECTED})
# states whose clock runs: a case in one of them past its due time is overdue
RUNNING = frozenset({DETECTED, DISPATCHED, ACCEPTED, ESCALATED})


class WorkOrdersConfig(BaseModel):
    """``workorders:`` in the service config."""

    model_config = ConfigDict(extra="forbid")

    catalogue: Path | None = Field(None, description="Catalogue YAML; default: the one shipped with gridworker.")
    tick_interval_s: float = Field(30.0, gt=0, le=3600.0, allow_inf_nan=False, description="How often overdue cases are looked for (at most hourly).")


# -- tables -------------------------------------------------------------------------------
class WorkOrderRow(Base):
    __tablename__ = "work_orders"

    incident_id: Mapped[int] = part_of("incidents.id")
    type: Mapped[str] = mapped_column(String(64), index=True)
    site: Mapped[str] = mapped_column(String(200), default="", index=True)
    camera_id: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    grade: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(64), index=True)  # who holds the case now
    first_unit: Mapped[str] = mapped_column(String(64))  # where it was routed first
    responsible_unit: Mapped[str] = mapped_column(String(64))  # the competent department (catalogue)
    floor_rank: Mapped[int] = mapped_column(Integer, default=0)  # never dispatched below this level again
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    detected_at: Mapped[float] = mapped_column(Float, index=True)
    clock_start: Mapped[float] = mapped_column(Float)  # detection, or the latest escalation
    due_at: Mapped[float] = mapped_column(Float, index=True)
    dispatched_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    accepted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    handled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    cleared_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # the camera saw the condition clear
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)  # once late, always counted late
    top_overdue_noted: Mapped[bool] = mapped_column(Boolean, default=False)
    on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # set when handled
    note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float)
    # people and places (issue 15, migration 0004): the person the case is assigned to, the
    # grid area of its position, and the position (WGS84) of its camera, device or report
    assignee: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    area: Mapped[str] = mapped_column(String(64), default="", index=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)


class WorkOrderPhotoRow(Base):
    __tablename__ = "work_order_photos"

    incident_id: Mapped[int] = part_of("work_orders.incident_id")
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    taken_at: Mapped[float] = mapped_column(Float)


AUDIT_ACTOR_MAX = 200  # incident_audit.actor is VARCHAR(200) in every existing database


def fit_actor(actor: str) -> str:
    """``actor`` cut to what ``incident_audit.actor`` holds. Actors are ``key:<key id>:<key
    name>`` or ``system:<what>``, so the cut falls in the free-text name and the key id stays
    whole. (Widening the column would not reach existing databases: nothing alters a table.)"""
    if len(actor) <= AUDIT_ACTOR_MAX:
        return actor
    return actor[: AUDIT_ACTOR_MAX - 1] + "…"


class AuditRow(Base):
    __tablename__ = "incident_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("work_orders.incident_id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(AUDIT_ACTOR_MAX))  # bounded in record(): existing tables keep 200
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    from_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- values -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorkOrder:
    incident_id: int
    type: str
    site: str
    camera_id: str
    state: str
    grade: int
    unit: str
    first_unit: str
    responsible_unit: str
    floor_rank: int
    escalations: int
    detected_at: float
    due_at: float
    dispatched_at: float | None
    accepted_at: float | None
    handled_at: float | None
    closed_at: float | None
    cleared_at: float | None
    overdue: bool
    on_time: bool | None
    note: str
    version: int
    updated_at: float
    has_photo: bool = False
    assignee: int | None = None  # a person's id (issue 15)
    area: str = ""  # the grid area of the case's position ("" outside every area, or no position)
    lon: float | None = None  # WGS84
    lat: float | None = None

    def is_overdue(self, now: float) -> bool:
        """Late now: flagged late before, or still running past its due time."""
        return self.overdue or (self.state in RUNNING and now > self.due_at)


_When = TypeVar("_When")


@dataclass(frozen=True, slots=True)
class AuditRecord(Generic[_When]):
    """One transition of a case: who moved it from where to where, and why. gridworker keeps
    ``at`` as epoch seconds (:class:`AuditEntry`); the API shows it as a datetime (``AuditOut``)."""

    version: int
    at: _When
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    from_unit: str | None
    to_unit: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class AuditEntry(AuditRecord[float]):
    id: int
    incident_id: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkOrderQuery:
    state: str | None = None
    type: str | None = None
    unit: str | None = None
    site: str | None = None
    overdue: bool | None = None
    now: float | None = None  # for ``overdue``; default time.time()
    assignee: int | None = None  # a person's cases only (issue 15)
    area: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StatsGroup:
    key: str
    total: int
    finished: int  # handled or closed
    judged: int  # finished, or still running but already late
    on_time: int
    on_time_rate: float | None
    mean_handling_s: float | None  # detection → handled, over finished cases


def to_order(row: WorkOrderRow, has_photo: bool = False) -> WorkOrder:
    return to_domain(WorkOrder, row, has_photo=has_photo)


def _to_audit(row: AuditRow) -> AuditEntry:
    return to_domain(AuditEntry, row)


ChangeHook = Callable[[Session, WorkOrderRow, AuditRow], None]


class WorkOrders:
    """The work-order store: one ``transaction()`` for every lifecycle write, read views,
    statistics. Safe to share between threads.

    Args:
        db: the process's ``Database`` (the incident store's).
        catalogue: incident types, units and routing; default: the shipped catalogue.

    Example:
        >>> orders = WorkOrders(Database.open("sqlite:///:memory:"))
        >>> orders.list(WorkOrderQuery())[1]
        0
    """

    def __init__(self, db: Database, catalogue: Catalogue | None = None, areas: AreaMap | None = None) -> None:
        self.db = db
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        #: the grid's areas: a new case gets the area of its position (issue 15)
        self.areas = areas if areas is not None else AreaMap([])
        #: where a new case is: its report's position by default; the composition root adds the
        #: camera's and the IoT device's (docs/people.md)
        self.locate: Callable[[Incident], Position | None] = reported_position
        # called inside the transaction of every change, after the audit row is flushed:
        # hook(session, order_row, audit_row). An exception rolls the change back.
        self.on_change: list[ChangeHook] = []
        #: fired after every commit that wrote audit rows in this process (the console's feed wakes on it)
        self.committed = CommitSignal("work orders")
        self._open_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The database's engine."""
        return self.db.engine

    # -- the unit of work ----------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[Session]:
        """One database transaction; commits on success, rolls back on an exception."""
        return self.db.transaction()

    def lock(self, session: Session, incident_id: int) -> WorkOrderRow | None:
        """The order's row, locked for update until the transaction ends.

        PostgreSQL: ``SELECT … FOR UPDATE``. SQLite has no row locks and pysqlite runs a
        plain SELECT outside any transaction, so two writers could both read the old
        state; an UPDATE first takes the database's write lock (other writers wait on the
        busy timeout), and the SELECT after it reads the latest committed row."""
        if self.engine.dialect.name == "sqlite":
            session.execute(
                update(WorkOrderRow).where(WorkOrderRow.incident_id == incident_id).values(version=WorkOrderRow.version)
            )
        return session.scalars(
            select(WorkOrderRow).where(WorkOrderRow.incident_id == incident_id).with_for_update()
        ).one_or_none()

    def record(
        self,
        session: Session,
        row: WorkOrderRow,
        *,
        at: float,
        actor: str,
        role: str,
        action: str,
        from_state: str | None,
        from_unit: str | None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> AuditRow:
        """Bump the order's version, write its audit row and run the ``on_change`` hooks,
        all in ``session``'s transaction. Every lifecycle write ends here."""
        row.version = (row.version or 0) + 1
        row.updated_at = at
        audit = AuditRow(
            incident_id=row.incident_id,
            version=row.version,
            at=at,
            actor=fit_actor(actor),
            role=role,
            action=action,
            from_state=from_state,
            to_state=row.state,
            from_unit=from_unit,
            to_unit=row.unit,
            reason=reason,
            details=details or {},
        )
        session.add(audit)
        session.flush()
        for hook in self.on_change:
            hook(session, row, audit)
        self.committed.arm(session)
        return audit

    # -- creation -------------------------------------------------------------------------
    def on_incident_opened(self, incident: Incident) -> WorkOrder | None:
        """Create the incident's work order in ``detected``, graded and routed by the
        catalogue. Meant for ``IncidentManager.on_open``; a second call for the same
        incident is a no-op (returns None)."""
        cat = self.catalogue
        itype = cat.type(incident.type)
        unit = cat.route(incident.type, site=incident.site, camera=incident.camera_id, zone=incident.zone_id)
        at = incident.opened_at
        position = self.locate(incident)
        area = self.areas.area_of(position)
        with self._open_lock, self.transaction() as s:
            if s.get(WorkOrderRow, incident.id) is not None:
                return None
            row = WorkOrderRow(
                incident_id=incident.id,
                type=incident.type,
                site=incident.site,
                camera_id=incident.camera_id,
                state=DETECTED,
                grade=itype.grade,
                unit=unit.code,
                first_unit=unit.code,
                responsible_unit=itype.unit,
                floor_rank=0,
                escalations=0,
                detected_at=at,
                clock_start=at,
                due_at=at + itype.time_limit_s(itype.grade),
                overdue=False,
                top_overdue_noted=False,
                note="",
                version=0,
                updated_at=at,
                area="" if area is None else area.id,
                lon=None if position is None else position.lon,
                lat=None if position is None else position.lat,
            )
            s.add(row)
            s.flush()
            self.record(
                s,
                row,
                at=at,
                actor="system:detector",
                role="system",
                action="detect",
                from_state=None,
                from_unit=None,
                reason=f"{incident.type} on camera {incident.camera_id}: {incident.summary}"[:1000],
                details={"grade": itype.grade, "routed_to": unit.code, "listed_type": cat.is_listed(incident.type)},
            )
            return to_order(row)

    # -- reads ----------------------------------------------------------------------------
    def get(self, incident_id: int) -> WorkOrder | None:
        with self.transaction() as s:
            row = s.get(WorkOrderRow, incident_id)
            if row is None:
                return None
            has = s.get(WorkOrderPhotoRow, incident_id) is not None
            return to_order(row, has)

    def photo(self, incident_id: int) -> bytes | None:
        with self.transaction() as s:
            p = s.get(WorkOrderPhotoRow, incident_id)
            return None if p is None else bytes(p.jpeg)

    def last_close_by(self, session: Session, incident_id: int) -> str | None:
        """Who closed the case last (its newest ``close`` audit entry's actor), in ``session``;
        None when it was never closed (or that entry is gone to retention)."""
        return session.scalar(
            select(AuditRow.actor)
            .where(AuditRow.incident_id == incident_id, AuditRow.action == "close")
            .order_by(AuditRow.version.desc(), AuditRow.id.desc())
            .limit(1)
        )

    def audit(self, incident_id: int) -> list[AuditEntry]:
        with self.transaction() as s:
            rows = s.scalars(select(AuditRow).where(AuditRow.incident_id == incident_id).order_by(AuditRow.version, AuditRow.id)).all()
            return [_to_audit(r) for r in rows]

    def _conditions(self, q: WorkOrderQuery) -> list[Any]:
        cond: list[Any] = equal_filters(
            (WorkOrderRow.state, q.state), (WorkOrderRow.type, q.type), (WorkOrderRow.unit, q.unit), (WorkOrderRow.site, q.site),
            (WorkOrderRow.assignee, q.assignee), (WorkOrderRow.area, q.area),
        )
        if q.overdue is not None:
            now = time.time() if q.now is None else q.now
            late = WorkOrderRow.overdue.is_(True) | (WorkOrderRow.state.in_(sorted(RUNNING)) & (WorkOrderRow.due_at < now))
            cond.append(late if q.overdue else ~late)
        return cond

    def list(self, q: WorkOrderQuery) -> tuple[list[WorkOrder], int]:
        """Newest first."""
        return self._page(self._conditions(q), (), q.limit, q.offset)

    def queue(self, assignee: int, now: float, *, limit: int = 50, offset: int = 0, finished: bool = False) -> tuple[builtins.list[WorkOrder], int]:
        """A person's cases (issue 15): those not closed or rejected (``finished``: all), the
        running late ones first, then newest first."""
        cond = [WorkOrderRow.assignee == assignee]
        if not finished:
            cond.append(WorkOrderRow.state.not_in(sorted(TERMINAL)))
        late = WorkOrderRow.state.in_(sorted(RUNNING)) & (WorkOrderRow.overdue.is_(True) | (WorkOrderRow.due_at < now))  # still to do, and late
        return self._page(cond, (case((late, 0), else_=1),), limit, offset)

    def _page(
        self, cond: Sequence[ColumnElement[bool]], first: Sequence[ColumnElement[int]], limit: int, offset: int
    ) -> tuple[builtins.list[WorkOrder], int]:
        """One page of the orders matching ``cond``, ordered by ``first`` then newest first, and their total."""
        with self.transaction() as s:
            total = s.scalar(select(func.count()).select_from(WorkOrderRow).where(*cond)) or 0
            rows = s.execute(
                select(WorkOrderRow, WorkOrderPhotoRow.incident_id)
                .outerjoin(WorkOrderPhotoRow, WorkOrderPhotoRow.incident_id == WorkOrderRow.incident_id)
                .where(*cond)
                .order_by(*first, WorkOrderRow.detected_at.desc(), WorkOrderRow.incident_id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return [to_order(r, p is not None) for r, p in rows], int(total)

    def due_ids(self, now: float, limit: int = 500) -> builtins.list[int]:
        """Running orders past their due time not yet dealt with by the clock."""
        with self.transaction() as s:
            return list(
                s.scalars(
                    select(WorkOrderRow.incident_id)
                    .where(
                        WorkOrderRow.state.in_(sorted(RUNNING)),
                        WorkOrderRow.due_at < now,
                        WorkOrderRow.top_overdue_noted.is_(False),
                    )
                    .order_by(WorkOrderRow.due_at)
                    .limit(limit)
                ).all()
            )

    def case_counts(self, now: float) -> tuple[dict[str, int], int]:
        """Cases not finished, by state, and how many of them are past their due time (metrics)."""
        with self.transaction() as s:
            by_state = {st: 0 for st in STATES if st not in TERMINAL} | {
                st: int(n)
                for st, n in s.execute(
                    select(WorkOrderRow.state, func.count()).where(WorkOrderRow.state.not_in(sorted(TERMINAL))).group_by(WorkOrderRow.state)
                ).all()
            }
            overdue = s.scalar(
                select(func.count()).select_from(WorkOrderRow).where(WorkOrderRow.state.in_(sorted(RUNNING)), WorkOrderRow.due_at < now)
            )
        return by_state, int(overdue or 0)

    def stats(
        self, *, now: float | None = None, since: float | None = None, until: float | None = None, unit: str | None = None,
        assignee: int | None = None,
    ) -> dict[str, Any]:
        """Counts by state; on-time rate and mean handling time by type, unit and site.

        A case is *on time* when it was handled before its due time and was never late.
        The rate's denominator (``judged``) is the finished cases (handled or closed) plus
        the cases still running but already late (they can no longer be on time);
        rejected cases (false alarms) count in no rate. Handling time is detection →
        handled. ``since``/``until`` select by detection time.
        """
        now = time.time() if now is None else now
        cond: list[Any] = []
        if since is not None:
            cond.append(WorkOrderRow.detected_at >= since)
        if until is not None:
            cond.append(WorkOrderRow.detected_at < until)
        if unit is not None:
            cond.append(WorkOrderRow.unit == unit)
        if assignee is not None:  # a person's own cases (issue 15)
            cond.append(WorkOrderRow.assignee == assignee)
        aggregates = (func.count(), *(func.sum(f) if name != "handling_s" else func.avg(f) for name, f in case_flags(now).items()))
        out: dict[str, Any] = {"now": now}
        with self.transaction() as s:
            out["by_state"] = {st: 0 for st in STATES} | {
                st: int(n) for st, n in s.execute(select(WorkOrderRow.state, func.count()).where(*cond).group_by(WorkOrderRow.state)).all()
            }
            for name, column in (("by_type", WorkOrderRow.type), ("by_unit", WorkOrderRow.unit), ("by_site", WorkOrderRow.site)):
                rows = s.execute(select(column, *aggregates).where(*cond).group_by(column).order_by(column)).all()
                out[name] = [outcome(key, *sums) for key, *sums in rows]
        return out


def case_flags(now: float) -> dict[str, ColumnElement[Any]]:
    """Per case, as SQL: ``finished``, ``judged``, ``on_time`` (each 0/1) and ``handling_s``
    (NULL unless finished) — the one definition the statistics sum (here and cases/stats.py).

    *Finished*: handled or closed (not rejected). *Judged*: finished, plus cases still running
    but already late at ``now`` (they can no longer be on time). *On time*: finished before the
    due time and never late. Rejected cases (false alarms) count in no rate.
    """
    finished = WorkOrderRow.handled_at.is_not(None) & (WorkOrderRow.state != REJECTED)
    late_running = WorkOrderRow.state.in_(sorted(RUNNING)) & (WorkOrderRow.overdue.is_(True) | (WorkOrderRow.due_at < now))
    return {
        "finished": case((finished, 1), else_=0),
        "judged": case((finished | late_running, 1), else_=0),
        "on_time": case((finished & WorkOrderRow.on_time.is_(True), 1), else_=0),
        "handling_s": case((finished, WorkOrderRow.handled_at - WorkOrderRow.detected_at), else_=None),
    }


def outcome(key: str, total: Any, finished: Any, judged: Any, on_time: Any, mean: Any) -> StatsGroup:
    """One group from its count, the sums of :func:`case_flags` and the mean handling time (SUM of nothing is NULL)."""
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


def build_workorders(db: Database, config: WorkOrdersConfig, areas: AreaMap | None = None) -> WorkOrders:
    """The work-order store of a service, from its ``workorders:`` settings (and the grid's
    ``areas:``). The composition root registers ``orders.on_incident_opened`` on the incident
    manager (a graded work order per incident, docs/workorders.md)."""
    return WorkOrders(db, load_catalogue(config.catalogue), areas)
