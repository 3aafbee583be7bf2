"""The transactional outbox: every work-order change leaves one outgoing message, committed
in the same transaction as the change.

Two tables beside the incidents (same ``Database``, same declarative base):

- ``outbox`` — one row per work-order change (creation included): the event name
  (``workorder.<action>``), the incident and its version, an idempotency key
  ``"<incident id>:<version>"`` (unique) and the JSON payload sent to every destination;
- ``deliveries`` — one row per (outbox row, destination) the message must reach: state
  ``pending`` → ``delivered`` or ``dead``, attempts, the next attempt's time, the last
  error. Written in the same transaction too, so a message can never exist without the
  rows that say where it must go.

``Outbox.on_change`` is a ``WorkOrders.on_change`` hook (``WorkOrders.record`` calls it
inside the change's transaction; an exception rolls the change back). ``attach(orders)``
registers it.

Ordering. Readers that follow the outbox by id (server-sent events, ``events_after``)
need ids to become visible in id order. SQLite serialises writers, so they do. On
PostgreSQL two transactions can take ids 5 and 6 and commit 6 first; a reader that has
seen 6 would then skip 5 for ever. The hook therefore takes a transaction-scoped advisory
lock before it inserts: outbox writes are serialised from the insert to the commit, and
commit order equals id order. The hook runs last in each work-order transaction (nothing
else is locked after it), so the lock cannot deadlock with the order's row lock.

The delivery workers (``delivery/``: dispatcher and senders) drain ``deliveries``; see
docs/forwarding.md.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from gridworker.incidents.db import Base, CommitSignal, Database, affected_rows, to_domain
from gridworker.incidents.store import IncidentRow

if TYPE_CHECKING:  # pragma: no cover
    from gridworker.cases.catalogue import Catalogue
    from gridworker.cases.workorders import AuditRow, WorkOrderRow, WorkOrders

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)

# an arbitrary constant naming gridworker's outbox lock among PostgreSQL advisory locks
_PG_LOCK_KEY = 0x67770B0C


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[str] = mapped_column(String(200), default="")
    camera_id: Mapped[str] = mapped_column(String(64), default="")
    unit: Mapped[str] = mapped_column(String(64), default="")
    from_unit: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_id", "destination", name="uq_delivery"),
        Index("ix_delivery_due", "destination", "state", "next_attempt_at"),
        Index("ix_delivery_incident", "destination", "incident_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(Integer, index=True)  # outbox.id (no FK: the outbox may be pruned first)
    destination: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int] = mapped_column(Integer)  # copied, for per-incident ordering
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    dead_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)


# -- values ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outgoing message. ``body()`` is what webhooks sign and send."""

    id: int
    event: str
    incident_id: int
    version: int
    idempotency_key: str
    type: str
    site: str
    camera_id: str
    unit: str
    from_unit: str
    payload: dict[str, Any]
    created_at: float

    def document(self) -> dict[str, Any]:
        """The message as sent: the stored payload with its event id first."""
        return {"event_id": self.id, **self.payload}

    def body(self) -> bytes:
        """Deterministic JSON (UTF-8): a retransmission is byte-identical."""
        return json.dumps(self.document(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    outbox_id: int
    destination: str
    incident_id: int
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str
    last_attempt_at: float | None
    delivered_at: float | None
    dead_at: float | None
    replays: int
    created_at: float
    event: str = ""
    idempotency_key: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class Due:
    """A pending delivery and its message, for a worker."""

    delivery_id: int
    attempts: int
    event: OutboxEvent


@dataclass(frozen=True, slots=True)
class Route:
    """A destination's name and which events it takes."""

    name: str
    events: tuple[str, ...] = ("*",)  # shell patterns on the event name
    types: tuple[str, ...] = ("*",)  # shell patterns on the incident type

    def takes(self, event: str, type: str) -> bool:
        return any(fnmatch.fnmatchcase(event, p) for p in self.events) and any(fnmatch.fnmatchcase(type, p) for p in self.types)


def _to_event(r: OutboxRow) -> OutboxEvent:
    return to_domain(OutboxEvent, r)


def _to_delivery(d: DeliveryRow, o: OutboxRow | None = None) -> Delivery:
    return to_domain(
        Delivery, d, event=o.event if o else "", idempotency_key=o.idempotency_key if o else "", version=o.version if o else 0
    )


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def idempotency_key(incident_id: int, version: int) -> str:
    return f"{incident_id}:{version}"


class Outbox:
    """The outbox and delivery tables in ``db``, the ``on_change`` hook that fills
    them, and the reads and state changes the delivery workers and the API need.

    Safe to share between threads.

    Example:
        >>> from gridworker.cases.workorders import WorkOrders
        >>> orders = WorkOrders(Database.open("sqlite:///:memory:"))
        >>> outbox = Outbox(orders.db).attach(orders)
        >>> outbox.last_id()
        0
    """

    def __init__(self, db: Database, *, catalogue: Catalogue | None = None, routes: Iterable[Route] = ()) -> None:
        self.db = db
        self.catalogue = catalogue
        self.routes: list[Route] = list(routes)
        self._tx = db.transaction
        #: fired after every commit that wrote outbox rows in this process (delivery workers and
        #: the ``/events`` streams wake on it)
        self.committed = CommitSignal("outbox")
        self._pg = db.dialect == "postgresql"

    @property
    def engine(self) -> Engine:
        """The database's engine."""
        return self.db.engine

    # -- wiring ---------------------------------------------------------------------------
    def attach(self, orders: WorkOrders) -> Outbox:
        """Register the hook on ``orders`` (once) and use its catalogue for type names."""
        if self.catalogue is None:
            self.catalogue = orders.catalogue
        if self.on_change not in orders.on_change:
            orders.on_change.append(self.on_change)
        return self

    def listen(self) -> threading.Event:
        """An event set after every commit that wrote outbox rows (in this process)."""
        ev = threading.Event()
        self.committed.listen(ev.set)
        return ev

    def unlisten(self, ev: threading.Event) -> None:
        self.committed.unlisten(ev.set)

    def notify(self) -> None:
        self.committed.fire()

    # -- the hook ---------------------------------------------------------------------------
    def on_change(self, session: Session, row: WorkOrderRow, audit: AuditRow) -> None:
        """``WorkOrders.on_change`` hook: one outbox row and its delivery rows, in the change's
        transaction."""
        if self._pg:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        incident = session.get(IncidentRow, row.incident_id)
        name = f"workorder.{audit.action}"
        payload = self.payload(row, audit, incident)
        out = OutboxRow(
            event=name,
            incident_id=row.incident_id,
            version=row.version,
            idempotency_key=idempotency_key(row.incident_id, row.version),
            type=row.type,
            site=row.site or "",
            camera_id=row.camera_id or "",
            unit=row.unit or "",
            from_unit=audit.from_unit or "",
            payload=payload,
            created_at=audit.at,
        )
        session.add(out)
        session.flush()
        for route in self.routes:
            if route.takes(name, row.type):
                session.add(
                    DeliveryRow(
                        outbox_id=out.id, destination=route.name, incident_id=row.incident_id, state=PENDING,
                        attempts=0, next_attempt_at=0.0, last_error="", replays=0, created_at=audit.at,
                    )
                )
        self.committed.arm(session)

    def payload(self, row: WorkOrderRow, audit: AuditRow, incident: IncidentRow | None) -> dict[str, Any]:
        """The message body (without ``event_id``). Nothing secret goes in: cameras are named
        by id and name, never by URL."""
        t = self.catalogue.type(row.type) if self.catalogue is not None else None
        inc: dict[str, Any] = {"id": row.incident_id, "type": row.type, "site": row.site, "camera_id": row.camera_id}
        if t is not None:
            inc.update(type_name_zh=t.name_zh, type_name_en=t.name_en, category=t.category)
        if incident is not None:
            inc.update(
                camera_name=incident.camera_name,
                zone_id=incident.zone_id,
                rule_id=incident.rule_id,
                status=incident.status,
                opened_at=iso(incident.opened_at),
                summary=incident.summary,
                peak_count=incident.peak_count,
            )
        inc["url"] = f"/incidents/{row.incident_id}"
        inc["snapshot_url"] = f"/incidents/{row.incident_id}/snapshot.jpg"
        return {
            "event": f"workorder.{audit.action}",
            "idempotency_key": idempotency_key(row.incident_id, row.version),
            "incident_id": row.incident_id,
            "version": row.version,
            "at": iso(audit.at),
            "incident": inc,
            "workorder": {
                "state": row.state,
                "grade": row.grade,
                "unit": row.unit,
                "first_unit": row.first_unit,
                "responsible_unit": row.responsible_unit,
                "escalations": row.escalations,
                "detected_at": iso(row.detected_at),
                "due_at": iso(row.due_at),
                "overdue": bool(row.overdue),
                "url": f"/workorders/{row.incident_id}",
            },
            "change": {
                "action": audit.action,
                "actor": audit.actor,
                "role": audit.role,
                "from_state": audit.from_state,
                "to_state": audit.to_state,
                "from_unit": audit.from_unit,
                "to_unit": audit.to_unit,
                "reason": audit.reason,
                "details": dict(audit.details or {}),
            },
        }

    # -- reads ------------------------------------------------------------------------------
    def last_id(self) -> int:
        with self._tx() as s:
            return int(s.scalar(select(func.max(OutboxRow.id))) or 0)

    def count(self) -> int:
        with self._tx() as s:
            return int(s.scalar(select(func.count()).select_from(OutboxRow)) or 0)

    def events_after(self, after: int, limit: int = 200) -> list[OutboxEvent]:
        """Outbox rows with ``id > after``, oldest first (server-sent events, resume)."""
        with self._tx() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.id > after).order_by(OutboxRow.id).limit(limit)).all()
            return [_to_event(r) for r in rows]

    def event(self, outbox_id: int) -> OutboxEvent | None:
        with self._tx() as s:
            r = s.get(OutboxRow, outbox_id)
            return None if r is None else _to_event(r)

    def due(self, destination: str, now: float, limit: int = 100) -> list[Due]:
        """Pending deliveries to ``destination`` whose time has come, oldest message first —
        except those queued behind an earlier message of the same incident that is still
        waiting for its retry (per-incident order)."""
        earlier = aliased(DeliveryRow)
        blocked = exists().where(
            earlier.destination == DeliveryRow.destination,
            earlier.incident_id == DeliveryRow.incident_id,
            earlier.state == PENDING,
            earlier.outbox_id < DeliveryRow.outbox_id,
            earlier.next_attempt_at > now,
        )
        with self._tx() as s:
            rows = s.execute(
                select(DeliveryRow.id, DeliveryRow.attempts, OutboxRow)
                .join(OutboxRow, OutboxRow.id == DeliveryRow.outbox_id)
                .where(
                    DeliveryRow.destination == destination,
                    DeliveryRow.state == PENDING,
                    DeliveryRow.next_attempt_at <= now,
                    ~blocked,
                )
                .order_by(DeliveryRow.outbox_id)
                .limit(limit)
            ).all()
            return [Due(did, attempts, _to_event(o)) for did, attempts, o in rows]

    def next_due_at(self, destination: str) -> float | None:
        with self._tx() as s:
            v = s.scalar(
                select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.destination == destination, DeliveryRow.state == PENDING)
            )
            return None if v is None else float(v)

    # -- state changes ------------------------------------------------------------------
    def mark_delivered(self, delivery_id: int, at: float) -> None:
        with self._tx() as s:
            s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state == PENDING)
                .values(state=DELIVERED, attempts=DeliveryRow.attempts + 1, delivered_at=at, last_attempt_at=at)
            )

    def mark_retry(self, delivery_id: int, at: float, next_at: float, error: str, *, count: bool = True) -> None:
        """A failed attempt: retry at ``next_at``. ``count=False`` when the message never
        reached the receiver (the destination was unreachable): the attempt is not counted
        against the message."""
        values: dict[str, Any] = {"next_attempt_at": next_at, "last_error": error[:2000], "last_attempt_at": at}
        if count:
            values["attempts"] = DeliveryRow.attempts + 1
        with self._tx() as s:
            s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id, DeliveryRow.state == PENDING).values(**values))

    def mark_dead(self, delivery_id: int, at: float, error: str) -> None:
        with self._tx() as s:
            s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state == PENDING)
                .values(state=DEAD, attempts=DeliveryRow.attempts + 1, dead_at=at, last_attempt_at=at, last_error=error[:2000])
            )

    def replay(self, delivery_id: int, now: float | None = None) -> Delivery | None:
        """Put a dead delivery back in the queue (attempts start again). Returns the
        delivery as it is now, None when there is no such delivery; raises ``ValueError``
        when it is not dead."""
        now = time.time() if now is None else now
        with self._tx() as s:
            d = s.get(DeliveryRow, delivery_id, with_for_update=True)
            if d is None:
                return None
            if d.state != DEAD:
                raise ValueError(f"delivery {delivery_id} is {d.state}, not dead")
            d.state = PENDING
            d.attempts = 0
            d.next_attempt_at = now
            d.dead_at = None
            d.replays = (d.replays or 0) + 1
            s.flush()
            out = _to_delivery(d, s.get(OutboxRow, d.outbox_id))
        self.notify()
        return out

    def replay_all(self, destination: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._tx() as s:
            n = affected_rows(
                s.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.destination == destination, DeliveryRow.state == DEAD)
                    .values(state=PENDING, attempts=0, next_attempt_at=now, dead_at=None, replays=DeliveryRow.replays + 1)
                )
            )
        self.notify()
        return n

    # -- the API's views ---------------------------------------------------------------------
    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._tx() as s:
            d = s.get(DeliveryRow, delivery_id)
            return None if d is None else _to_delivery(d, s.get(OutboxRow, d.outbox_id))

    def deliveries(self, *, destination: str | None = None, state: str | None = None, incident_id: int | None = None,
                   limit: int = 50, offset: int = 0, newest_first: bool = True) -> tuple[list[Delivery], int]:
        cond: list[Any] = []
        if destination is not None:
            cond.append(DeliveryRow.destination == destination)
        if state is not None:
            cond.append(DeliveryRow.state == state)
        if incident_id is not None:
            cond.append(DeliveryRow.incident_id == incident_id)
        order = DeliveryRow.id.desc() if newest_first else DeliveryRow.id
        with self._tx() as s:
            total = s.scalar(select(func.count()).select_from(DeliveryRow).where(*cond)) or 0
            rows = s.execute(
                select(DeliveryRow, OutboxRow)
                .outerjoin(OutboxRow, OutboxRow.id == DeliveryRow.outbox_id)
                .where(*cond)
                .order_by(order)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_to_delivery(d, o) for d, o in rows], int(total)

    def counters(self) -> dict[str, dict[str, Any]]:
        """Per destination: counts by state, the oldest pending message's time, the last
        delivery's time."""
        out: dict[str, dict[str, Any]] = {}
        with self._tx() as s:
            for dest, state, n in s.execute(
                select(DeliveryRow.destination, DeliveryRow.state, func.count()).group_by(DeliveryRow.destination, DeliveryRow.state)
            ).all():
                out.setdefault(dest, {st: 0 for st in DELIVERY_STATES})[state] = int(n)
            for dest, oldest in s.execute(
                select(DeliveryRow.destination, func.min(DeliveryRow.created_at))
                .where(DeliveryRow.state == PENDING)
                .group_by(DeliveryRow.destination)
            ).all():
                out.setdefault(dest, {st: 0 for st in DELIVERY_STATES})["oldest_pending_at"] = oldest
            for dest, last in s.execute(
                select(DeliveryRow.destination, func.max(DeliveryRow.delivered_at)).group_by(DeliveryRow.destination)
            ).all():
                out.setdefault(dest, {st: 0 for st in DELIVERY_STATES})["last_delivered_at"] = last
        return out


# -- repair after a crash ------------------------------------------------------------------
def reconcile_workorders(orders: WorkOrders, *, limit: int = 10_000) -> int:
    """Create the missing work orders of incidents opened since the oldest one that has a
    work order.

    An incident is stored (``IncidentStore.open``) and its work order created
    (``WorkOrders.on_incident_opened``, which writes the outbox row) in two transactions;
    a process killed between them, or a listener that failed once (a locked database),
    leaves an incident with no work order and so no message — also below the newest one
    that has one, since several threads open incidents at once. Call this at start-up,
    before the cameras run; :class:`WorkOrderRepair` does the same while the service runs.
    Incidents older than the first work order (a database from before work orders
    existed) are left alone, so an upgrade does not forward the whole history. Returns how
    many were made."""
    from gridworker.cases.workorders import WorkOrderRow

    with orders.transaction() as s:
        oldest = s.scalar(select(func.min(WorkOrderRow.incident_id)))
    # no work order at all yet: only incidents that are still open are worth one
    cond = [IncidentRow.status == "open"] if oldest is None else [IncidentRow.id >= oldest]
    made, _, _ = _create_missing(orders, cond, limit)
    if made:
        log.warning("created %d missing work order(s) of incidents stored just before a crash", made)
    return made


def _create_missing(orders: WorkOrders, cond: list[ColumnElement[bool]], limit: int) -> tuple[int, list[int], int | None]:
    """Work orders for the first ``limit`` incidents matching ``cond`` that have none: (how
    many were made, the ids whose creation failed, the last id looked at when there were
    ``limit`` of them — more may follow — else None)."""
    from gridworker.cases.workorders import WorkOrderRow
    from gridworker.incidents.store import _to_incident

    with orders.transaction() as s:
        has = exists().where(WorkOrderRow.incident_id == IncidentRow.id)
        rows = s.scalars(select(IncidentRow).where(*cond, ~has).order_by(IncidentRow.id).limit(limit)).all()
        incidents = [_to_incident(r, False) for r in rows]
    made, failed = 0, []
    for inc in incidents:
        try:
            if orders.on_incident_opened(inc) is not None:
                made += 1
        except Exception:  # one bad row must not stop the others; it is tried again next time
            log.exception("incident %s: creating its missing work order failed", inc.id)
            failed.append(inc.id)
    return made, failed, incidents[-1].id if len(incidents) >= limit else None


class WorkOrderRepair:
    """While the service runs: the work orders incidents missed because creating one failed
    (``IncidentManager`` logs a failing ``on_open`` listener and carries on), made on the
    next :meth:`run` once the incident is ``settle_s`` old (so a case the live listener is
    creating at that moment is not raced). Only incidents from the start on are looked at
    (``reconcile_workorders`` covers what came before): a watermark moves past every
    incident that has its work order, and stays at one whose creation keeps failing; at most
    ``page`` are made per run (the watermark stops after the last one looked at).

    Example:
        >>> from gridworker.incidents.db import Database
        >>> from gridworker.cases.workorders import WorkOrders
        >>> repair = WorkOrderRepair(WorkOrders(Database.open("sqlite:///:memory:")))
        >>> repair.run(now=1000.0)
        0
    """

    def __init__(self, orders: WorkOrders, settle_s: float = 30.0, page: int = 1_000) -> None:
        self.orders = orders
        self.settle_s = settle_s
        self.page = page
        with orders.transaction() as s:
            newest = s.scalar(select(func.max(IncidentRow.id)))
        self._from_id = (newest or 0) + 1  # incidents before this were reconciled at start

    def run(self, now: float) -> int:
        """Create the missing work orders of settled incidents since the watermark; returns how many."""
        settled = now - self.settle_s
        with self.orders.transaction() as s:
            unsettled = s.scalar(select(func.min(IncidentRow.id)).where(IncidentRow.id >= self._from_id, IncidentRow.opened_at >= settled))
            newest = s.scalar(select(func.max(IncidentRow.id)).where(IncidentRow.id >= self._from_id))
        if newest is None:
            return 0
        upto = unsettled if unsettled is not None else newest + 1
        made, failed, last = _create_missing(self.orders, [IncidentRow.id >= self._from_id, IncidentRow.id < upto], self.page)
        self._from_id = min([upto if last is None else last + 1, *failed])
        if made:
            log.warning("created %d work order(s) that incidents had missed (a failed listener)", made)
        return made


__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "Delivery",
    "DeliveryRow",
    "Due",
    "Outbox",
    "OutboxEvent",
    "OutboxRow",
    "Route",
    "idempotency_key",
    "iso",
    "WorkOrderRepair",
    "reconcile_workorders",
]
