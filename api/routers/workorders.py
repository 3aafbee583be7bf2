"""Work orders over HTTP: list, read with audit history, lifecycle actions, photo,
statistics, the catalogue, and API-key administration (docs/workorders.md)."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field

from gridworker.incidents.workflow import (
    ADMIN,
    OPERATOR,
    ROLES,
    SUPERVISOR,
    UNIT_HANDLER,
    Actor,
    Workflow,
    WorkflowError,
)
from gridworker.incidents.workorders import STATES, AuditEntry, LastAdminKey, StatsGroup, StoredKey, WorkOrder, WorkOrderQuery

from ..auth import ANY_ROLE, KeyError_, OrdersDep, create_key, key_admin, require

router = APIRouter(tags=["work orders"])

IncidentId = Annotated[int, Path(ge=1, le=2**62, description="Incident id (the work order's id)")]
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
Dispatcher = Annotated[Actor, Depends(require(OPERATOR, SUPERVISOR))]
Handler = Annotated[Actor, Depends(require(UNIT_HANDLER, SUPERVISOR))]
Escalator = Annotated[Actor, Depends(require(SUPERVISOR))]
Admin = Annotated[Actor, Depends(require(ADMIN))]
State = Literal["detected", "dispatched", "accepted", "handled", "closed", "rejected", "escalated"]
assert set(State.__args__) == set(STATES)  # type: ignore[attr-defined]


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


class AuditOut(BaseModel):
    version: int
    at: datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    from_unit: str | None
    to_unit: str | None
    reason: str
    details: dict[str, Any]

    @classmethod
    def of(cls, a: AuditEntry) -> AuditOut:
        return cls(
            version=a.version, at=_dt(a.at), actor=a.actor, role=a.role, action=a.action,  # type: ignore[arg-type]
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
    audit: list[AuditOut] | None = None


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut]
    total: int
    limit: int
    offset: int


def _out(orders: Any, o: WorkOrder, now: float | None = None, audit: list[AuditEntry] | None = None) -> WorkOrderOut:
    cat = orders.catalogue
    t = cat.type(o.type)
    now = time.time() if now is None else now
    return WorkOrderOut(
        incident_id=o.incident_id, type=o.type, type_name_zh=t.name_zh, type_name_en=t.name_en, category=t.category,
        site=o.site, camera_id=o.camera_id, state=o.state, grade=o.grade, unit=o.unit, first_unit=o.first_unit,  # type: ignore[arg-type]
        responsible_unit=o.responsible_unit, escalations=o.escalations, floor_level=cat.levels[o.floor_rank],
        detected_at=_dt(o.detected_at), due_at=_dt(o.due_at), dispatched_at=_dt(o.dispatched_at),  # type: ignore[arg-type]
        accepted_at=_dt(o.accepted_at), handled_at=_dt(o.handled_at), closed_at=_dt(o.closed_at),
        cleared_at=_dt(o.cleared_at), overdue=o.is_overdue(now), on_time=o.on_time, note=o.note, version=o.version,
        incident_url=f"/incidents/{o.incident_id}",
        photo_url=f"/workorders/{o.incident_id}/photo.jpg" if o.has_photo else None,
        audit=None if audit is None else [AuditOut.of(a) for a in audit],
    )


def _error(exc: WorkflowError) -> HTTPException:
    return HTTPException(exc.status, exc.reason)


# -- reads --------------------------------------------------------------------------------
@router.get("/workorders", response_model=WorkOrderPage)
def list_workorders(
    orders: OrdersDep,
    user: Reader,
    state: State | None = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> WorkOrderPage:
    """Newest first. A unit handler sees their own unit's cases only."""
    if user.role == UNIT_HANDLER:
        if unit is not None and unit != user.unit:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a unit handler sees only their own unit's cases")
        unit = user.unit
    items, total = orders.list(WorkOrderQuery(state=state, type=type, unit=unit, site=site, overdue=overdue, limit=limit, offset=offset))
    return WorkOrderPage(items=[_out(orders, o) for o in items], total=total, limit=limit, offset=offset)


@router.get("/workorders/{incident_id}", response_model=WorkOrderOut, responses={404: {"description": "No such work order"}})
def get_workorder(incident_id: IncidentId, orders: OrdersDep, user: Reader) -> WorkOrderOut:
    """The work order with its whole audit history (oldest first)."""
    try:
        order = Workflow(orders).visible(incident_id, user)
    except WorkflowError as exc:
        raise _error(exc) from None
    return _out(orders, order, audit=orders.audit(incident_id))


@router.get(
    "/workorders/{incident_id}/photo.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such work order or photo"}},
)
def get_photo(incident_id: IncidentId, orders: OrdersDep, user: Reader) -> Response:
    """The photo the handler sent with ``handle``."""
    try:
        Workflow(orders).visible(incident_id, user)
    except WorkflowError as exc:
        raise _error(exc) from None
    jpeg = orders.photo(incident_id)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo for work order {incident_id}")
    return Response(jpeg, media_type="image/jpeg")


# -- actions ------------------------------------------------------------------------------
class NoteIn(BaseModel):
    note: str = Field("", max_length=2000)


class DispatchIn(NoteIn):
    unit: str | None = Field(None, max_length=64, description="Default: the unit holding the case (the routed one at first)")
    grade: int | None = Field(None, ge=1, le=4, description="Re-grade the case (its due time follows)")


class EscalateIn(NoteIn):
    unit: str | None = Field(None, max_length=64, description="Default: the parent of the unit holding the case")


class RejectIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="Why it is a false alarm")


class HandleIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="What was done")
    photo_base64: str | None = Field(None, max_length=12_000_000, description="A JPEG of the result, base64")


_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller's role may not do this"},
    404: {"description": "No such work order (or not the caller's unit's)"},
    409: {"description": "Not allowed from the case's current state, or back down after an escalation"},
    422: {"description": "Bad unit, grade or photo"},
}


def _act(orders: Any, fn: Any) -> WorkOrderOut:
    try:
        order = fn(Workflow(orders))
    except WorkflowError as exc:
        raise _error(exc) from None
    return _out(orders, order)


@router.post("/workorders/{incident_id}/dispatch", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def dispatch(incident_id: IncidentId, body: DispatchIn, orders: OrdersDep, user: Dispatcher) -> WorkOrderOut:
    """Send the case to a unit (operator, supervisor). Never below the level it was escalated to."""
    return _act(orders, lambda wf: wf.dispatch(incident_id, user, unit=body.unit, grade=body.grade, note=body.note))


@router.post("/workorders/{incident_id}/accept", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def accept(incident_id: IncidentId, orders: OrdersDep, user: Handler, body: NoteIn | None = None) -> WorkOrderOut:
    """The unit holding the case takes it on (its unit handler, or a supervisor)."""
    return _act(orders, lambda wf: wf.accept(incident_id, user, note=(body or NoteIn()).note))


@router.post("/workorders/{incident_id}/handle", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def handle(incident_id: IncidentId, body: HandleIn, orders: OrdersDep, user: Handler) -> WorkOrderOut:
    """Report the case handled: a note and optionally a JPEG photo (base64)."""
    photo = None
    if body.photo_base64:
        try:
            photo = base64.b64decode(body.photo_base64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "photo_base64 is not valid base64") from None
    return _act(orders, lambda wf: wf.handle(incident_id, user, note=body.note, photo=photo))


@router.post("/workorders/{incident_id}/close", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def close(incident_id: IncidentId, orders: OrdersDep, user: Dispatcher, body: NoteIn | None = None) -> WorkOrderOut:
    """Close a handled case after checking it (operator, supervisor)."""
    return _act(orders, lambda wf: wf.close(incident_id, user, note=(body or NoteIn()).note))


@router.post("/workorders/{incident_id}/reject", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def reject(incident_id: IncidentId, body: RejectIn, orders: OrdersDep, user: Dispatcher) -> WorkOrderOut:
    """Close as a false alarm, with the reason (operator, supervisor)."""
    return _act(orders, lambda wf: wf.reject(incident_id, user, note=body.note))


@router.post("/workorders/{incident_id}/escalate", response_model=WorkOrderOut, responses=_ACTION_RESPONSES)
def escalate(incident_id: IncidentId, orders: OrdersDep, user: Escalator, body: EscalateIn | None = None) -> WorkOrderOut:
    """Move the case up a level (supervisor). It can never be sent back below that level."""
    b = body or EscalateIn()
    return _act(orders, lambda wf: wf.escalate(incident_id, user, unit=b.unit, note=b.note))


# -- statistics and catalogue -----------------------------------------------------------------
class StatsGroupOut(BaseModel):
    key: str
    total: int
    finished: int = Field(description="Handled or closed")
    judged: int = Field(description="Finished, plus running cases already late: the on-time rate's denominator")
    on_time: int
    on_time_rate: float | None
    mean_handling_s: float | None = Field(description="Detection → handled, over finished cases")

    @classmethod
    def of(cls, g: StatsGroup) -> StatsGroupOut:
        return cls(**{k: getattr(g, k) for k in cls.model_fields})


class WorkOrderStats(BaseModel):
    by_state: dict[str, int]
    by_type: list[StatsGroupOut]
    by_unit: list[StatsGroupOut]
    by_site: list[StatsGroupOut]


@router.get("/stats/workorders", response_model=WorkOrderStats)
def workorder_stats(
    orders: OrdersDep,
    user: Reader,
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


@router.get("/catalogue")
def get_catalogue(orders: OrdersDep, user: Reader) -> dict[str, Any]:
    """The incident catalogue in use: levels, units, type defaults, types and routing."""
    return orders.catalogue.model_dump(mode="json")


# -- API keys -------------------------------------------------------------------------------
class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "operator", "unit_handler", "supervisor", "admin"]
    unit: str | None = Field(None, max_length=64, description="Required for unit_handler, refused otherwise")


assert set(KeyIn.model_fields["role"].annotation.__args__) == set(ROLES)  # type: ignore[union-attr]


class KeyOut(BaseModel):
    id: int
    key_id: str
    name: str
    role: str
    unit: str | None
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: StoredKey) -> KeyOut:
        return cls(id=k.id, key_id=k.key_id, name=k.name, role=k.role, unit=k.unit, created_at=_dt(k.created_at), last_used_at=_dt(k.last_used_at))  # type: ignore[arg-type]


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, store it now")


@router.post("/keys", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED, tags=["api keys"])
def post_key(body: KeyIn, orders: OrdersDep, user: Annotated[Actor, Depends(key_admin)]) -> NewKeyOut:
    """Create a key (an admin *key*: never an anonymous caller, so the first key comes from
    ``gridworker keys create``). The response is the only place the key ever appears."""
    try:
        stored, raw = create_key(orders, name=body.name, role=body.role, unit=body.unit)
    except KeyError_ as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return NewKeyOut(**KeyOut.of(stored).model_dump(), key=raw)


@router.get("/keys", response_model=list[KeyOut], tags=["api keys"])
def list_keys(orders: OrdersDep, user: Admin) -> list[KeyOut]:
    """The unrevoked keys (never the keys themselves)."""
    return [KeyOut.of(k) for k in orders.keys()]


@router.delete(
    "/keys/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["api keys"],
    responses={404: {"description": "No such key"}, 409: {"description": "The last admin key (create another admin key first)"}},
)
def delete_key(key: Annotated[int, Path(ge=1, le=2**62)], orders: OrdersDep, user: Admin) -> Response:
    """Revoke a key at once. The last unrevoked admin key cannot be revoked (409)."""
    try:
        revoked = orders.revoke_key(key, time.time())
    except LastAdminKey as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if not revoked:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
