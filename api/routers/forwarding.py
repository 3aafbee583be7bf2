"""Forwarding status and dead letters (supervisors and admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from gridworker.delivery.dispatcher import DestinationState
from gridworker.delivery.outbox import DEAD, Delivery
from gridworker.cases.workflow import SUPERVISOR, Actor

from ..auth import require
from ..deps import DispatcherDep, OutboxDep
from ..schemas import utc

router = APIRouter(prefix="/forwarding", tags=["forwarding"])
Supervisor = Annotated[Actor, Depends(require(SUPERVISOR))]


class DestinationOut(BaseModel):
    name: str
    kind: str = Field(description="webhook, mqtt, gb28181 — or 'unknown' for a destination no longer configured")
    target: str = Field(description="Where it sends (credentials redacted)")
    configured: bool
    running: bool
    state: DestinationState
    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None
    last_delivered_at: datetime | None
    consecutive_failures: int
    paused_until: datetime | None
    last_error: str
    last_error_at: datetime | None


class OutboxOut(BaseModel):
    events: int
    last_event_id: int


class DestinationsOut(BaseModel):
    outbox: OutboxOut
    destinations: list[DestinationOut]


class DeliveryOut(BaseModel):
    id: int = Field(description="The delivery's id (replay with POST /forwarding/dead/{id}/replay)")
    outbox_id: int
    destination: str
    event: str
    incident_id: int
    version: int
    idempotency_key: str
    state: str
    attempts: int
    replays: int
    last_error: str
    created_at: datetime
    last_attempt_at: datetime | None
    dead_at: datetime | None
    delivered_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id, outbox_id=d.outbox_id, destination=d.destination, event=d.event, incident_id=d.incident_id,
            version=d.version, idempotency_key=d.idempotency_key, state=d.state, attempts=d.attempts, replays=d.replays,
            last_error=d.last_error, created_at=utc(d.created_at), last_attempt_at=utc(d.last_attempt_at),
            dead_at=utc(d.dead_at), delivered_at=utc(d.delivered_at),
            next_attempt_at=utc(d.next_attempt_at) if d.state == "pending" and d.next_attempt_at else None,
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


@router.get("/destinations", response_model=DestinationsOut)
def destinations(user: Supervisor, outbox: OutboxDep, dispatcher: DispatcherDep) -> DestinationsOut:
    """Every destination with its counters (from the database) and its worker's state."""
    counters = outbox.counters()
    rows: list[DestinationOut] = []
    seen: set[str] = set()
    for st in dispatcher.statuses():
        c = counters.get(st.name, {})
        seen.add(st.name)
        rows.append(
            DestinationOut(
                name=st.name, kind=st.kind, target=st.target, configured=True, running=st.running, state=st.state,
                pending=c.get("pending", 0), delivered=c.get("delivered", 0), dead=c.get("dead", 0),
                oldest_pending_at=utc(c.get("oldest_pending_at")), last_delivered_at=utc(c.get("last_delivered_at")),
                consecutive_failures=st.consecutive_failures, paused_until=utc(st.paused_until),
                last_error=st.last_error, last_error_at=utc(st.last_error_at),
            )
        )
    for name, c in sorted(counters.items()):
        if name in seen:
            continue
        rows.append(
            DestinationOut(
                name=name, kind="unknown", target="", configured=False, running=False, state="stopped",
                pending=c.get("pending", 0), delivered=c.get("delivered", 0), dead=c.get("dead", 0),
                oldest_pending_at=utc(c.get("oldest_pending_at")), last_delivered_at=utc(c.get("last_delivered_at")),
                consecutive_failures=0, paused_until=None, last_error="", last_error_at=None,
            )
        )
    return DestinationsOut(outbox=OutboxOut(events=outbox.count(), last_event_id=outbox.last_id()), destinations=rows)


@router.get("/dead", response_model=DeliveryPage)
def dead_letters(
    user: Supervisor,
    outbox: OutboxDep,
    destination: Annotated[str | None, Query(max_length=64)] = None,
    incident_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DeliveryPage:
    """Deliveries that gave up (newest first), with the last error."""
    items, total = outbox.deliveries(destination=destination, state=DEAD, incident_id=incident_id, limit=limit, offset=offset)
    return DeliveryPage(items=[DeliveryOut.of(d) for d in items], total=total, limit=limit, offset=offset)


@router.post(
    "/dead/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses={404: {"description": "No such delivery"}, 409: {"description": "The delivery is not dead"}},
)
def replay(
    delivery_id: Annotated[int, Path(ge=1, le=2**62)], user: Supervisor, outbox: OutboxDep, dispatcher: DispatcherDep
) -> DeliveryOut:
    """Queue a dead delivery again (its attempts start over); the worker tries it at once."""
    try:
        d = outbox.replay(delivery_id)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if d is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
    dispatcher.wake(d.destination)
    return DeliveryOut.of(d)
