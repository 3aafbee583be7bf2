"""The work-order lifecycle: who may move a case from which state to which, and the clock.

::

    detected ──dispatch──▶ dispatched ──accept──▶ accepted ──handle──▶ handled ──close──▶ closed
        │                      │  ▲                  │                    │
        │                      │  └──dispatch────────┼────────────────────┘ (rework)
        ├──reject──▶ rejected ◀┴─────reject──────────┤   (also from accepted: a false alarm found on the scene)
        └──escalate──▶ escalated ◀──escalate─────────┘   (also from dispatched; by the clock when overdue)
                         │ accept / dispatch (never below the escalated level) / reject

``TRANSITIONS`` is the table (source states, target, roles). Beyond it:

- a unit handler acts only on cases currently held by their own unit;
- escalation moves a case to a unit of a strictly higher level (default: its unit's
  parent) and raises its *floor*: it can never again be dispatched below that level;
- ``WorkflowClock.tick(now)`` escalates running cases past their due time to the parent
  unit (actor ``system:overdue``); at the top it records the lateness once (until the case
  is dispatched back down);
- ``Workflow.verify_cleared`` closes a handled case when the camera shows the condition
  cleared (actor ``system:auto-verify``), or notes the clearing on a case not yet handled.

Every transition writes an audit row (``WorkOrders.record``) in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridworker.periodic import Periodic

from .idempotency import IdempotencyLog, KeyReused, valid_key
from .photos import JPEG_MAGIC, PhotoBusy, PhotoError, PhotoGate, PhotoLimits, normalise_photo
from .workorders import (
    ACCEPTED,
    CLOSED,
    DETECTED,
    DISPATCHED,
    ESCALATED,
    HANDLED,
    REJECTED,
    RUNNING,
    TERMINAL,
    WorkOrder,
    WorkOrderPhotoRow,
    WorkOrderRow,
    WorkOrders,
    to_order,
)

log = logging.getLogger(__name__)

# -- roles --------------------------------------------------------------------------------
VIEWER = "viewer"
OPERATOR = "operator"
UNIT_HANDLER = "unit_handler"
SUPERVISOR = "supervisor"
ADMIN = "admin"
SYSTEM = "system"
ROLES = (VIEWER, OPERATOR, UNIT_HANDLER, SUPERVISOR, ADMIN)  # the ones a key can have

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a key's name and role (and unit for a unit handler), a person logged in
    (``person``: their id, issue 15), or the system."""

    name: str
    role: str
    unit: str | None = None
    person: int | None = None

    def sees(self, order: WorkOrder) -> bool:
        """Whether this actor may see ``order`` at all (unit handlers: their unit's only; a
        unit handler who is a person: their unit's cases assigned to them only)."""
        return self.holds(order.unit, order.assignee)

    def holds(self, unit: str, assignee: int | None) -> bool:
        """``sees`` for a case held by ``unit`` and assigned to ``assignee``."""
        return self.role != UNIT_HANDLER or (unit == self.unit and (self.person is None or assignee == self.person))


SYSTEM_OVERDUE = Actor("system:overdue", SYSTEM)
SYSTEM_VERIFY = Actor("system:auto-verify", SYSTEM)


@dataclass(frozen=True, slots=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]


def _t(action: str, sources: set[str], target: str, roles: set[str]) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(roles))


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t("dispatch", {DETECTED, DISPATCHED, ESCALATED, HANDLED}, DISPATCHED, {OPERATOR, SUPERVISOR, ADMIN}),
        _t("accept", {DISPATCHED, ESCALATED}, ACCEPTED, {UNIT_HANDLER, SUPERVISOR, ADMIN}),
        _t("handle", {ACCEPTED}, HANDLED, {UNIT_HANDLER, SUPERVISOR, ADMIN}),
        _t("close", {HANDLED}, CLOSED, {OPERATOR, SUPERVISOR, ADMIN, SYSTEM}),
        # also from accepted: the grid worker on the scene finds a false alarm
        _t("reject", {DETECTED, DISPATCHED, ACCEPTED, ESCALATED}, REJECTED, {OPERATOR, SUPERVISOR, ADMIN}),
        _t("escalate", {DETECTED, DISPATCHED, ACCEPTED, ESCALATED}, ESCALATED, {SUPERVISOR, ADMIN, SYSTEM}),
    )
}


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition carries besides its action: the note (also the audit reason, unless
    ``reason`` is given), a unit (dispatch, escalate), a new grade (dispatch), a photo (handle)."""

    note: str = ""
    unit: str | None = None
    grade: int | None = None
    photo: bytes | None = None
    reason: str | None = None
    assignee: int | None = None  # dispatch, assign: a person of the unit (issue 15)


class WorkflowError(Exception):
    """A refused transition; ``reason`` says why in words an operator understands."""

    status = 409

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(WorkflowError):
    """No such work order, or one the actor may not see."""

    status = 404


class Forbidden(WorkflowError):
    """The actor's role may not do this."""

    status = 403


class Conflict(WorkflowError):
    """Not allowed from the case's current state (or would send it back down)."""

    status = 409


class Invalid(WorkflowError):
    """A bad argument: unknown unit, bad grade, a photo that is not a JPEG."""

    status = 422


class Busy(WorkflowError):
    """Too many photos are being decoded in the process right now (cases/photos.py); try again."""

    status = 503


class Assigner(Protocol):
    """Who a case goes to within its unit (``cases/people.py: People``), asked inside the
    transition's transaction."""

    def pick(self, s: Session, unit: str, area: str) -> tuple[int, str] | None:
        """A person id for a case of ``unit`` in ``area`` and why (``"area"``, ``"load"``); None: nobody."""
        ...

    def assignable(self, s: Session, person_id: int, unit: str) -> bool:
        """Whether the person may hold a case of ``unit``."""
        ...


#: roles that may (re)assign a case to a person without moving it
ASSIGNERS = frozenset({OPERATOR, SUPERVISOR, ADMIN})

#: what a *person* logged in may do beyond their role's row of ``TRANSITIONS`` (issue 15): a grid
#: worker rejects, as a false alarm with a reason, a case assigned to them; a unit's API key still may not
PERSON_EXTRA: dict[str, frozenset[str]] = {"reject": frozenset({UNIT_HANDLER})}


def may(action: str, actor: Actor) -> bool:
    """Whether ``actor``'s role (and, for a person, ``PERSON_EXTRA``) allows ``action`` at all."""
    t = TRANSITIONS.get(action)
    if t is None:
        return False
    return actor.role in t.roles or actor.role == ADMIN or (actor.person is not None and actor.role in PERSON_EXTRA.get(action, frozenset()))


def allowed(action: str, state: str, role: str) -> bool:
    t = TRANSITIONS.get(action)
    return t is not None and state in t.sources and (role in t.roles or role == ADMIN)


def _keep_lateness(row: WorkOrderRow, now: float) -> None:
    """Before the due time moves (escalation, re-grade): a case running late at ``now`` stays
    overdue ("late now, or ever"), even if the clock has not ticked since it became late."""
    if row.state in RUNNING and now > row.due_at:
        row.overdue = True


class Workflow:
    """Applies lifecycle actions to the work orders of ``orders`` (thread-safe: each
    action is one transaction with the order's row locked).

    Example:
        >>> from gridworker.incidents import IncidentStore
        >>> wf = Workflow(WorkOrders(IncidentStore("sqlite:///:memory:")))
        >>> allowed("escalate", "dispatched", "operator"), allowed("escalate", "dispatched", "supervisor")
        (False, True)
    """

    def __init__(
        self, orders: WorkOrders, clock: Callable[[], float] = time.time, *, assigner: Assigner | None = None,
        idempotency: IdempotencyLog | None = None, photo_gate: PhotoGate | None = None, photo_limits: PhotoLimits | None = None,
    ) -> None:
        self.orders = orders
        self.catalogue = orders.catalogue
        self.clock = clock
        #: routing to people (issue 15): None, cases stay with their unit only
        self.assigner = assigner
        self.idempotency = idempotency if idempotency is not None else IdempotencyLog()
        #: the decoding slots a handling photo waits for (the service's one gate, shared with its photo store)
        self.photo_gate = photo_gate if photo_gate is not None else PhotoGate()
        #: the handling photo's size limits (the service's ``reports.photos`` max_side and max_input_megapixels)
        self.photo_limits = photo_limits if photo_limits is not None else PhotoLimits()

    # -- the actions ----------------------------------------------------------------------
    def dispatch(
        self, incident_id: int, actor: Actor, *, unit: str | None = None, grade: int | None = None, note: str = "",
        assignee: int | None = None, at: float | None = None, key: str | None = None,
    ) -> WorkOrder:
        """Send the case to ``unit`` (default: the unit holding it) — never below its floor —
        and to ``assignee`` (a person of that unit), or to the person the routing picks."""
        return self._apply("dispatch", incident_id, actor, at, Change(note, unit=unit, grade=grade, assignee=assignee), key)

    def assign(self, incident_id: int, actor: Actor, *, assignee: int, note: str = "", at: float | None = None, key: str | None = None) -> WorkOrder:
        """Give a running case to another person of the unit holding it (operator, supervisor);
        the case's state does not change; the audit row says who had it and who has it now."""
        return self._apply("assign", incident_id, actor, at, Change(note, assignee=assignee), key)

    def accept(self, incident_id: int, actor: Actor, *, note: str = "", at: float | None = None, key: str | None = None) -> WorkOrder:
        return self._apply("accept", incident_id, actor, at, Change(note), key)

    def handle(
        self, incident_id: int, actor: Actor, *, note: str, photo: bytes | None = None, at: float | None = None, key: str | None = None
    ) -> WorkOrder:
        """Report the case handled, with a note (required) and optionally a JPEG photo, stored as
        ``normalise_photo`` re-encodes it under ``photo_limits`` (bounded pixels, no EXIF but the
        location, nothing trailing; cases/photos.py)."""
        if not note.strip():
            raise Invalid("a handling note is required")
        if photo is not None:
            if len(photo) > MAX_PHOTO_BYTES:
                raise Invalid(f"the photo is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB")
            if not photo.startswith(JPEG_MAGIC):
                raise Invalid("the photo is not a JPEG")
            try:
                limits = self.photo_limits
                photo = normalise_photo(photo, max_side=limits.max_side, max_input_pixels=limits.max_input_pixels, gate=self.photo_gate).jpeg
            except PhotoBusy as exc:
                raise Busy(exc.reason) from None
            except PhotoError as exc:
                raise Invalid(f"the photo is not a usable JPEG: {exc.reason}") from None
        return self._apply("handle", incident_id, actor, at, Change(note, photo=photo), key)

    def close(self, incident_id: int, actor: Actor, *, note: str = "", at: float | None = None, key: str | None = None) -> WorkOrder:
        return self._apply("close", incident_id, actor, at, Change(note), key)

    def reject(self, incident_id: int, actor: Actor, *, note: str, at: float | None = None, key: str | None = None) -> WorkOrder:
        """Close as a false alarm; the reason is required."""
        if not note.strip():
            raise Invalid("say why the case is a false alarm")
        return self._apply("reject", incident_id, actor, at, Change(note), key)

    def escalate(
        self, incident_id: int, actor: Actor, *, unit: str | None = None, note: str = "", at: float | None = None, key: str | None = None
    ) -> WorkOrder:
        """Move the case up to ``unit`` (default: the parent of the unit holding it)."""
        return self._apply("escalate", incident_id, actor, at, Change(note, unit=unit), key)

    def visible(self, incident_id: int, actor: Actor) -> WorkOrder:
        """The order if ``actor`` may see it; ``NotFound`` otherwise (no existence leak)."""
        order = self.orders.get(incident_id)
        if order is None or not actor.sees(order):
            raise NotFound(f"no work order {incident_id}")
        return order

    # -- the engine -----------------------------------------------------------------------
    def _apply(self, action: str, incident_id: int, actor: Actor, at: float | None, change: Change, key: str | None = None) -> WorkOrder:
        """One action in one transaction. ``key``: an idempotency key (``Idempotency-Key``):
        a repeat returns the first result and changes nothing (cases/idempotency.py)."""
        now = self.clock() if at is None else at
        if key is not None and not valid_key(key):
            raise Invalid("an Idempotency-Key has 8-100 characters of A-Z a-z 0-9 _ . : -")
        try:
            with self.orders.transaction() as s:
                row = self.orders.lock(s, incident_id)
                if row is None:
                    raise NotFound(f"no work order {incident_id}")
                # the caller's own first result even if the case has moved away from them since
                # (the key is theirs: stored under their name); nothing about others' cases
                sees = actor.holds(row.unit, row.assignee)
                if key is not None:
                    try:
                        first = self.idempotency.replay(s, actor.name, key, incident_id, action)
                    except KeyReused as exc:
                        raise (Invalid(str(exc)) if sees else NotFound(f"no work order {incident_id}")) from None
                    if first is not None:
                        log.info("work order %s: %s repeated with the same idempotency key by %s: first result returned", incident_id, action, actor.name)
                        return first
                if not sees:
                    raise NotFound(f"no work order {incident_id}")
                if action == "assign":
                    self._assign(s, row, actor, now, change)
                else:
                    self._transition(s, row, action, actor, now, change)
                order = to_order(row, s.get(WorkOrderPhotoRow, incident_id) is not None)
                if key is not None:
                    self.idempotency.remember(s, actor.name, key, incident_id, action, order, now)
        except IntegrityError:
            if key is None:
                raise
            # the same key stored at the same moment by a concurrent request on another case
            raise Conflict("this Idempotency-Key is being used by another request") from None
        log.info("work order %s: %s → %s by %s (%s)", incident_id, action, order.state, actor.name, actor.role)
        return order

    def _transition(self, s: Session, row: WorkOrderRow, action: str, actor: Actor, now: float, change: Change) -> None:
        """Check and apply one transition to a locked row inside the caller's transaction."""
        t = TRANSITIONS[action]
        note = change.note.strip()[:MAX_TEXT]
        unit, grade, photo = change.unit, change.grade, change.photo
        cat = self.catalogue
        if not may(action, actor):
            raise Forbidden(f"the {actor.role} role may not {action} a case (allowed: {', '.join(sorted(t.roles))})")
        if row.state not in t.sources:
            raise Conflict(f"cannot {action} a case that is {row.state} (only from {', '.join(sorted(t.sources))})")
        incident_id = row.incident_id
        from_state, from_unit = row.state, row.unit
        details: dict[str, object] = {}
        if action == "dispatch":
            target = unit or row.unit
            if cat.unit(target) is None:
                raise Invalid(f"unknown unit {target!r}")
            rank = cat.rank(target)
            if rank < row.floor_rank:
                raise Conflict(
                    f"the case was escalated to the {cat.levels[row.floor_rank]} level; "
                    f"it cannot be sent back down to {target!r} ({cat.levels[rank]} level)"
                )
            if grade is not None and grade != row.grade:
                if grade not in (1, 2, 3, 4):
                    raise Invalid(f"grade must be 1-4, not {grade}")
                details["grade"] = [row.grade, grade]
                row.grade = grade
                _keep_lateness(row, now)
                row.due_at = row.clock_start + cat.type(row.type).time_limit_s(grade)
            if from_state == HANDLED:  # rework: the handling did not pass the check
                row.handled_at = None
                row.on_time = None
                details["rework"] = True
            row.unit = target
            row.dispatched_at = now
            self._route(s, row, change.assignee, details)
        elif action == "accept":
            row.accepted_at = now
        elif action == "handle":
            row.handled_at = now
            row.on_time = (not row.overdue) and now <= row.due_at
            if not row.on_time:
                row.overdue = True
            row.note = note
            if photo is not None:
                existing = s.get(WorkOrderPhotoRow, incident_id)
                if existing is None:
                    s.add(WorkOrderPhotoRow(incident_id=incident_id, jpeg=photo, taken_at=now))
                else:
                    existing.jpeg, existing.taken_at = photo, now
                details["photo_bytes"] = len(photo)
        elif action in ("close", "reject"):
            row.closed_at = now
        elif action == "escalate":
            parent = cat.parent(row.unit)
            above = unit or (parent.code if parent else None)
            if above is None:
                raise Conflict(f"{row.unit!r} is at the top level; there is no one to escalate to")
            if cat.unit(above) is None:
                raise Invalid(f"unknown unit {above!r}")
            if cat.rank(above) <= cat.rank(row.unit):
                raise Conflict(f"escalation must go up: {above!r} is not above {row.unit!r}")
            row.unit = above
            row.floor_rank = max(row.floor_rank, cat.rank(above))
            row.escalations += 1
            _keep_lateness(row, now)
            row.clock_start = now  # the upper level gets a fresh time limit
            row.due_at = now + cat.type(row.type).time_limit_s(row.grade)
            self._route(s, row, None, details)
        if action in ("dispatch", "escalate") and cat.parent(row.unit) is not None:
            row.top_overdue_noted = False  # below the top level the clock escalates it again when late
        row.state = t.target
        self.orders.record(
            s,
            row,
            at=now,
            actor=actor.name,
            role=actor.role,
            action=action,
            from_state=from_state,
            from_unit=from_unit,
            reason=change.reason if change.reason is not None else note,
            details=details,
        )

    # -- people (issue 15) ---------------------------------------------------------------
    def _route(self, s: Session, row: WorkOrderRow, wanted: int | None, details: dict[str, object]) -> None:
        """Who in the unit holds the case after a dispatch or an escalation: ``wanted`` (a
        person of the unit), else the person holding it if they still may, else the routing's
        pick (by area, then load); nobody without an assigner or anyone to pick."""
        before = row.assignee
        assigner = self.assigner
        if wanted is not None:
            if assigner is None or not assigner.assignable(s, wanted, row.unit):
                raise Invalid(f"person {wanted} is not an active unit handler of {row.unit!r}")
            row.assignee, why = wanted, "chosen"
        elif before is not None and assigner is not None and assigner.assignable(s, before, row.unit):
            return
        else:
            picked = assigner.pick(s, row.unit, row.area) if assigner is not None else None
            row.assignee, why = (None, "nobody") if picked is None else picked
        if row.assignee != before:
            details["assignee"] = [before, row.assignee]
            details["assigned_by"] = why

    def _assign(self, s: Session, row: WorkOrderRow, actor: Actor, now: float, change: Change) -> None:
        """The ``assign`` action: another person of the unit holds the case; state unchanged."""
        if actor.role not in ASSIGNERS:
            raise Forbidden(f"the {actor.role} role may not assign a case (allowed: {', '.join(sorted(ASSIGNERS))})")
        if row.state in TERMINAL or row.state == DETECTED:
            raise Conflict(f"cannot assign a case that is {row.state} (dispatch it first)")
        if change.assignee is None:
            raise Invalid("say who gets the case")
        details: dict[str, object] = {}
        self._route(s, row, change.assignee, details)
        note = change.note.strip()[:MAX_TEXT]
        self.orders.record(
            s, row, at=now, actor=actor.name, role=actor.role, action="assign", from_state=row.state, from_unit=row.unit,
            reason=note, details=details,
        )

    # -- system transitions -------------------------------------------------------------
    def verify_cleared(self, incident_id: int, at: float | None = None) -> str:
        """The camera shows the incident's condition cleared (its detection incident
        closed). A ``handled`` case closes (actor ``system:auto-verify``); a case still
        running gets ``cleared_at`` and an audit note. Returns what happened:
        ``"closed"``, ``"noted"`` or ``"ignored"`` (no order, or already finished)."""
        now = self.clock() if at is None else at
        with self.orders.transaction() as s:
            row = self.orders.lock(s, incident_id)
            if row is None or row.state in TERMINAL:
                return "ignored"
            row.cleared_at = now
            if row.state == HANDLED:
                self._transition(s, row, "close", SYSTEM_VERIFY, now, Change(reason="closing verified on camera: the condition cleared"))
                return "closed"
            self._camera_note(s, row, now, "the camera shows the condition cleared; the case is not handled yet")
            return "noted"

    def condition_back(self, incident_id: int, at: float | None = None) -> str:
        """The camera shows the condition again within the rule's cooldown (the detector had
        lost the object for a while, or the handling did not last): the incident continued,
        and so does its case. A case still running loses its ``cleared_at`` and gets an audit
        note. A case the camera itself closed as verified (:meth:`verify_cleared`) was closed
        too soon: it goes back to its unit as rework (``dispatch`` by ``system:auto-verify``,
        ``"reopened"``). One a person finished (closed, rejected) gets the note only.
        Returns ``"noted"``, ``"reopened"``, ``"noted-finished"`` or ``"ignored"`` (no order)."""
        now = self.clock() if at is None else at
        with self.orders.transaction() as s:
            row = self.orders.lock(s, incident_id)
            if row is None:
                return "ignored"
            if row.state == CLOSED and self.orders.last_close_by(s, incident_id) == SYSTEM_VERIFY.name:
                from_state = row.state
                row.state, row.closed_at, row.handled_at, row.on_time, row.cleared_at = DISPATCHED, None, None, None, None
                row.dispatched_at = now
                self.orders.record(
                    s, row, at=now, actor=SYSTEM_VERIFY.name, role=SYSTEM, action="dispatch", from_state=from_state, from_unit=row.unit,
                    reason="the camera shows the condition again within the cooldown: the close verified on camera is undone (rework)",
                    details={"rework": True, "reopened": True},
                )
                return "reopened"
            finished = row.state in TERMINAL
            if not finished:
                row.cleared_at = None
            self._camera_note(
                s, row, now, "the camera shows the condition again: the incident continues" + ("; the case was already finished" if finished else "")
            )
            return "noted-finished" if finished else "noted"

    def _camera_note(self, s: Session, row: WorkOrderRow, now: float, reason: str) -> None:
        """An audit entry by the camera (``system:auto-verify``, action ``verify``) that changes
        neither the case's state nor its unit: what the camera saw."""
        self.orders.record(
            s, row, at=now, actor=SYSTEM_VERIFY.name, role=SYSTEM, action="verify", from_state=row.state, from_unit=row.unit, reason=reason
        )

    def overdue_one(self, incident_id: int, now: float) -> str:
        """Deal with one late case: escalate it to its unit's parent, or at the top note the
        lateness once. Returns ``"escalated"``, ``"noted"`` or ``"skipped"`` (not late now)."""
        cat = self.catalogue
        with self.orders.transaction() as s:
            row = self.orders.lock(s, incident_id)
            if row is None or row.state not in RUNNING or row.due_at >= now or row.top_overdue_noted:
                return "skipped"
            row.overdue = True
            limit_min = cat.type(row.type).time_limits_min[row.grade]
            why = f"overdue: the {limit_min:g} min limit of grade {row.grade} ran out"
            if cat.parent(row.unit) is None:
                row.top_overdue_noted = True
                self.orders.record(
                    s, row, at=now, actor=SYSTEM_OVERDUE.name, role=SYSTEM, action="overdue",
                    from_state=row.state, from_unit=row.unit, reason=why + f"; {row.unit!r} is the top level",
                )
                return "noted"
            self._transition(s, row, "escalate", SYSTEM_OVERDUE, now, Change(reason=why))
            return "escalated"


class WorkflowClock:
    """Escalates overdue cases. ``tick(now)`` is safe to call from any thread; ``start``
    runs it every ``interval_s`` in a daemon thread until ``stop``."""

    def __init__(
        self,
        workflow: Workflow,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        repair: Callable[[float], int] | None = None,
    ) -> None:
        """``repair``: called with the time on every tick first, to make the work orders
        incidents missed (``delivery.outbox.WorkOrderRepair.run``)."""
        self.workflow = workflow
        self.interval_s = interval_s
        self.clock = clock
        self.repair = repair
        self._timer = Periodic("gw-workflow-clock", self.tick, interval_s)
        self._tick_lock = threading.Lock()

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One pass over the late cases; returns counts of what was done."""
        now = self.clock() if now is None else now
        done = {"escalated": 0, "noted": 0, "skipped": 0}
        with self._tick_lock:
            if self.repair is not None:  # (its count is in the result only then)
                try:
                    done["repaired"] = self.repair(now)
                except Exception:  # the database away for a moment: the next tick tries again
                    log.exception("making missed work orders failed")
            for incident_id in self.workflow.orders.due_ids(now):
                try:
                    done[self.workflow.overdue_one(incident_id, now)] += 1
                except Exception:  # one bad row must not stop the others
                    log.exception("work order %s: overdue handling failed", incident_id)
        if done["escalated"] or done["noted"]:
            log.info("overdue cases: %d escalated, %d late at the top level", done["escalated"], done["noted"])
        return done

    def start(self) -> None:
        self._timer.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._timer.stop(timeout)
