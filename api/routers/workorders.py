"""Work orders over HTTP: list, read with audit history, lifecycle actions and the photo
(docs/workorders.md). Statistics, the catalogue and API keys have routers of their own
(``stats.py``, ``catalogue.py``, ``keys.py``)."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass

from gridworker.cases.idempotency import IDEMPOTENCY_KEY_PATTERN
from gridworker.cases.places import Position
from gridworker.cases.workflow import OPERATOR, SUPERVISOR, UNIT_HANDLER, Actor, Workflow, WorkflowError, may
from gridworker.cases.workorders import STATES, AuditEntry, AuditRecord, WorkOrder, WorkOrderQuery, WorkOrders

from ..auth import ANY_ROLE, require
from ..deps import OrdersDep, WorkflowDep
from ..security import EVIDENCE_CACHE
from ..schemas import utc

router = APIRouter(tags=["work orders"])

IncidentId = Annotated[int, Path(ge=1, le=2**62, description="Incident id (the work order's id)")]
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
Dispatcher = Annotated[Actor, Depends(require(OPERATOR, SUPERVISOR))]
Handler = Annotated[Actor, Depends(require(UNIT_HANDLER, SUPERVISOR))]
Escalator = Annotated[Actor, Depends(require(SUPERVISOR))]


def _rejecter(user: Reader) -> Actor:
    """Operators, supervisors, admins; and a grid worker logged in, for a case assigned to them (issue 15)."""
    if not may("reject", user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {user.role} role may not reject a case")
    return user


Rejecter = Annotated[Actor, Depends(_rejecter)]
#: a retried action (the phone page's offline queue) returns its first result (cases/idempotency.py)
IdemKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN, description="Repeat-safe action: a repeat with the same key returns the first result"),
]
PersonId = Annotated[int, Field(ge=1, le=2**62, description="A person's id (GET /people)")]
State = Literal["detected", "dispatched", "accepted", "handled", "closed", "rejected", "escalated"]
assert set(State.__args__) == set(STATES)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AuditOut(AuditRecord[datetime]):
    at: datetime  # declared again for the schema (pydantic does not read the base's type argument)
    details: dict[str, Any]

    @classmethod
    def of(cls, a: AuditEntry) -> AuditOut:
        return cls(
            version=a.version, at=utc(a.at), actor=a.actor, role=a.role, action=a.action,
            from_state=a.from_state, to_state=a.to_state, from_unit=a.from_unit, to_unit=a.to_unit,
            reason=a.reason, details=a.details,
        )


class WorkOrderOut(BaseModel):
    incident_id: int
    type: str
    type_name_zh: str
    type_name_en: str
    category: str
    site: str
    camera_id: str
    state: State
    grade: int = Field(description="1 (most serious) to 4")
    unit: str = Field(description="The unit holding the case now")
    first_unit: str = Field(description="Where the case was routed first")
    responsible_unit: str
    escalations: int
    floor_level: str = Field(description="The lowest unit level the case may still be dispatched to")
    detected_at: datetime
    due_at: datetime
    dispatched_at: datetime | None
    accepted_at: datetime | None
    handled_at: datetime | None
    closed_at: datetime | None
    cleared_at: datetime | None = Field(description="When the camera saw the condition clear")
    overdue: bool
    on_time: bool | None
    note: str
    version: int
    incident_url: str
    photo_url: str | None
    assignee: int | None = Field(None, description="The person holding the case (issue 15), or none")
    area: str = Field("", description="The grid area of the case's position ('' outside every area)")
    position: Position | None = Field(None, description="WGS84 position of the case (its camera, device or report)")
    audit: list[AuditOut] | None = None


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut]
    total: int
    limit: int
    offset: int


def _out(orders: WorkOrders, o: WorkOrder, now: float | None = None, audit: list[AuditEntry] | None = None) -> WorkOrderOut:
    cat = orders.catalogue
    t = cat.type(o.type)
    now = time.time() if now is None else now
    return WorkOrderOut(
        incident_id=o.incident_id, type=o.type, type_name_zh=t.name_zh, type_name_en=t.name_en, category=t.category,
        site=o.site, camera_id=o.camera_id, state=o.state, grade=o.grade, unit=o.unit, first_unit=o.first_unit,
        responsible_unit=o.responsible_unit, escalations=o.escalations, floor_level=cat.levels[o.floor_rank],
        detected_at=utc(o.detected_at), due_at=utc(o.due_at), dispatched_at=utc(o.dispatched_at),
        accepted_at=utc(o.accepted_at), handled_at=utc(o.handled_at), closed_at=utc(o.closed_at),
        cleared_at=utc(o.cleared_at), overdue=o.is_overdue(now), on_time=o.on_time, note=o.note, version=o.version,
        incident_url=f"/incidents/{o.incident_id}",
        photo_url=f"/workorders/{o.incident_id}/photo.jpg" if o.has_photo else None,
        assignee=o.assignee, area=o.area,
        position=None if o.lon is None or o.lat is None else Position(lon=o.lon, lat=o.lat),
        audit=None if audit is None else [AuditOut.of(a) for a in audit],
    )


def _error(exc: WorkflowError) -> HTTPException:
    return HTTPException(exc.status, exc.reason)


# -- reads --------------------------------------------------------------------------------
@router.get("/workorders", response_model=WorkOrderPage)
def list_workorders(
    user: Reader,
    orders: OrdersDep,
    state: State | None = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    assignee: Annotated[int | None, Query(ge=1, le=2**62, description="A person's cases")] = None,
    area: Annotated[str | None, Query(max_length=64)] = None,
) -> WorkOrderPage:
    """Newest first. A unit handler sees their own unit's cases only (a person: those assigned to them)."""
    if user.role == UNIT_HANDLER:
        if unit is not None and unit != user.unit:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a unit handler sees only their own unit's cases")
        unit = user.unit
        if user.person is not None:
            if assignee is not None and assignee != user.person:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "a person sees only the cases assigned to them")
            assignee = user.person
    items, total = orders.list(
        WorkOrderQuery(state=state, type=type, unit=unit, site=site, overdue=overdue, limit=limit, offset=offset, assignee=assignee, area=area)
    )
    return WorkOrderPage(items=[_out(orders, o) for o in items], total=total, limit=limit, offset=offset)


@router.get("/workorders/{incident_id}", response_model=WorkOrderOut, responses={404: {"description": "No such work order"}})
def get_workorder(incident_id: IncidentId, user: Reader, orders: OrdersDep, workflow: WorkflowDep) -> WorkOrderOut:
    """The work order with its whole audit history (oldest first)."""
    try:
        order = workflow.visible(incident_id, user)
    except WorkflowError as exc:
        raise _error(exc) from None
    return _out(orders, order, audit=orders.audit(incident_id))


@router.get(
    "/workorders/{incident_id}/photo.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such work order or photo"}},
)
def get_photo(incident_id: IncidentId, user: Reader, orders: OrdersDep, workflow: WorkflowDep) -> Response:
    """The photo the handler sent with ``handle``."""
    try:
        workflow.visible(incident_id, user)
    except WorkflowError as exc:
        raise _error(exc) from None
    jpeg = orders.photo(incident_id)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo for work order {incident_id}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": EVIDENCE_CACHE})


# -- actions ------------------------------------------------------------------------------
class NoteIn(BaseModel):
    note: str = Field("", max_length=2000)


class DispatchIn(NoteIn):
    unit: str | None = Field(None, max_length=64, description="Default: the unit holding the case (the routed one at first)")
    grade: int | None = Field(None, ge=1, le=4, description="Re-grade the case (its due time follows)")
    assignee: PersonId | None = Field(None, description="A person of the unit; default: the routing's pick (area, then load)")


class AssignIn(NoteIn):
    assignee: PersonId


class EscalateIn(NoteIn):
    unit: str | None = Field(None, max_length=64, description="Default: the parent of the unit holding the case")


class RejectIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="Why it is a false alarm")


class HandleIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="What was done")
    photo_base64: str | None = Field(None, max_length=12_000_000, description="A JPEG of the result, base64 (stored re-encoded: bounded size, EXIF stripped but the location)")


_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller's role may not do this"},
    404: {"description": "No such work order (or not the caller's unit's)"},
    409: {"description": "Not allowed from the case's current state, or back down after an escalation"},
    422: {"description": "Bad unit, grade or photo"},
}


def _act(workflow: Workflow, fn: Callable[[Workflow], WorkOrder]) -> WorkOrderOut:
    try:
        order = fn(workflow)
    except WorkflowError as exc:
        raise _error(exc) from None
    return _out(workflow.orders, order)


@router.post("/workorders/{incident_id}/dispatch", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def dispatch(incident_id: IncidentId, body: DispatchIn, user: Dispatcher, workflow: WorkflowDep, key: IdemKey = None) -> WorkOrderOut:
    """Send the case to a unit (operator, supervisor) and one of its people (``assignee``, or the
    routing's pick). Never below the level it was escalated to."""
    return _act(workflow, lambda wf: wf.dispatch(incident_id, user, unit=body.unit, grade=body.grade, note=body.note, assignee=body.assignee, key=key))


@router.post("/workorders/{incident_id}/assign", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def assign(incident_id: IncidentId, body: AssignIn, user: Dispatcher, workflow: WorkflowDep, key: IdemKey = None) -> WorkOrderOut:
    """Give a dispatched case to another person of the unit holding it (operator, supervisor);
    audited with who had it and who has it now."""
    return _act(workflow, lambda wf: wf.assign(incident_id, user, assignee=body.assignee, note=body.note, key=key))


@router.post("/workorders/{incident_id}/accept", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def accept(incident_id: IncidentId, user: Handler, workflow: WorkflowDep, body: NoteIn | None = None, key: IdemKey = None) -> WorkOrderOut:
    """The unit holding the case takes it on (its unit handler, or a supervisor)."""
    return _act(workflow, lambda wf: wf.accept(incident_id, user, note=(body or NoteIn()).note, key=key))


@router.post(
    "/workorders/{incident_id}/handle", response_model=WorkOrderOut,
    responses={**_ACTION_RESPONSES, 503: {"description": "Too many photos are being processed; try again in a moment"}},
)
def handle(incident_id: IncidentId, body: HandleIn, user: Handler, workflow: WorkflowDep, key: IdemKey = None) -> WorkOrderOut:
    """Report the case handled: a note and optionally a JPEG photo (base64), stored re-encoded
    (at most ``reports.photos.max_side`` pixels a side, 1600 by default; of its EXIF only the GPS
    location is kept; cases/photos.py)."""
    photo = None
    if body.photo_base64:
        try:
            photo = base64.b64decode(body.photo_base64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "photo_base64 is not valid base64") from None
    return _act(workflow, lambda wf: wf.handle(incident_id, user, note=body.note, photo=photo, key=key))


@router.post("/workorders/{incident_id}/close", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def close(incident_id: IncidentId, user: Dispatcher, workflow: WorkflowDep, body: NoteIn | None = None, key: IdemKey = None) -> WorkOrderOut:
    """Close a handled case after checking it (operator, supervisor)."""
    return _act(workflow, lambda wf: wf.close(incident_id, user, note=(body or NoteIn()).note, key=key))


@router.post("/workorders/{incident_id}/reject", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def reject(incident_id: IncidentId, body: RejectIn, user: Rejecter, workflow: WorkflowDep, key: IdemKey = None) -> WorkOrderOut:
    """Close as a false alarm, with the reason (operator, supervisor; a grid worker logged in, for a case assigned to them)."""
    return _act(workflow, lambda wf: wf.reject(incident_id, user, note=body.note, key=key))


@router.post("/workorders/{incident_id}/escalate", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def escalate(incident_id: IncidentId, user: Escalator, workflow: WorkflowDep, body: EscalateIn | None = None, key: IdemKey = None) -> WorkOrderOut:
    """Move the case up a level (supervisor). It can never be sent back below that level."""
    b = body or EscalateIn()
    return _act(workflow, lambda wf: wf.escalate(incident_id, user, unit=b.unit, note=b.note, key=key))
