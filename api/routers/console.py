"""The command-centre console's server side: the static files at ``/console/``, who the
caller is (``GET /auth/me``) and a live feed of case changes (``GET /console/events``).

The console itself is plain HTML/CSS/JS in ``api/console/`` (no build step) and talks
only to the public JSON API with the key in a header (docs/console.md).

``/console/events`` streams the work-order audit log (every case opened, every
transition, every "the camera shows it cleared" note) as server-sent events::

    id: 57
    data: {"audit_id":57,"incident_id":12,"action":"dispatch","state":"dispatched","version":2,"at":"..."}

``id:`` is the audit row id (monotonic), so a reconnecting client resumes after
``Last-Event-ID``. It exists because the outbox behind ``GET /events`` is filled only when
forwarding is wired into the service; ``/auth/me`` tells the console which feed to read
(``events_url``). Both carry ``incident_id``, which is all the console needs: it re-reads
the case, so a repeated or reordered message does no harm. Like ``/events``, a stream ends once
its caller may no longer read it (a key revoked, a session over: api/feeds.py), and each change
is filtered for the caller as checked last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from gridworker.cases.workflow import ADMIN, OPERATOR, SUPERVISOR, TRANSITIONS, UNIT_HANDLER, VIEWER, Actor, may
from gridworker.cases.workorders import AuditRow, WorkOrderRow, WorkOrders

from ..auth import ANY_ROLE, StreamCaller, require, stream_caller
from ..deps import FeedsDep, KeysDep, LimitsDep, OrdersDep, OutboxDep
from ..feeds import FeedSource, ResumeDep, StreamMaxS, event_stream_responses
from ..schemas_people import PersonOut  # issue 15
from ..sessions import session_of

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
BATCH = 200

router = APIRouter(tags=["console"])
Anyone = Annotated[Actor, Depends(require(*ANY_ROLE))]
#: Any role, on a stream that checks them again while it runs (api/feeds.py)
AnyStreamCaller = Annotated[StreamCaller, Depends(stream_caller(*ANY_ROLE))]


class MeOut(BaseModel):
    name: str
    role: str
    unit: str | None
    auth_required: bool = Field(description="Whether this service asks for API keys at all.")
    actions: dict[str, list[str]] = Field(description="Work-order actions this role may take → the states they start from.")
    may: dict[str, bool] = Field(description="Console features for this role: wall, patrol, patrol_control, edit_scene.")
    events_url: str = Field(description="The server-sent event feed of case changes the console should read.")
    person: PersonOut | None = Field(None, description="The person logged in (a session), none for an API key (issue 15).")
    csrf_token: str | None = Field(None, description="The session's CSRF token: send it as X-CSRF-Token on POST/PUT/PATCH/DELETE.")


@router.get("/auth/me", response_model=MeOut)
def me(request: Request, user: Anyone, orders: OrdersDep, keys: KeysDep, outbox: OutboxDep) -> MeOut:
    """The caller's name, role and unit, and what the console should offer them."""
    role = user.role
    session = session_of(request)  # a person logged in (issue 15)
    actions = {name: sorted(t.sources) for name, t in TRANSITIONS.items() if may(name, user)}
    readers = (VIEWER, OPERATOR, SUPERVISOR, ADMIN)
    return MeOut(
        name=user.name,
        role=role,
        unit=user.unit,
        auth_required=keys.auth_required(),
        actions=actions,
        may={
            "wall": role in readers,
            "patrol": role in readers,
            "patrol_control": role in (OPERATOR, SUPERVISOR, ADMIN),
            "edit_scene": role in (SUPERVISOR, ADMIN),
        },
        events_url="/events" if outbox.on_change in orders.on_change and user.person is None else "/console/events",  # is the outbox filled?
        person=None if session is None else PersonOut.of(session[0]),
        csrf_token=None if session is None else session[1].csrf,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


@dataclass(frozen=True, slots=True)
class AuditChange:
    """One audit row as the console feed sends it, with the unit that holds the case."""

    id: int
    incident_id: int
    action: str
    state: str
    version: int
    at: float
    unit: str | None
    assignee: int | None = None  # the person holding the case (issue 15)

    def message(self) -> str:
        data = {"audit_id": self.id, "incident_id": self.incident_id, "action": self.action, "state": self.state,
                "version": self.version, "at": _iso(self.at)}
        return f"id: {self.id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class AuditFeed:
    """The work-order audit log as a feed: its rows with the unit holding the case, woken by
    the work orders' commits."""

    def __init__(self, orders: WorkOrders) -> None:
        self.orders = orders

    def changes_after(self, after: int, limit: int = BATCH) -> list[AuditChange]:
        q = (
            select(
                AuditRow.id, AuditRow.incident_id, AuditRow.action, AuditRow.to_state, AuditRow.version, AuditRow.at, WorkOrderRow.unit,
                WorkOrderRow.assignee,
            )
            .join(WorkOrderRow, WorkOrderRow.incident_id == AuditRow.incident_id)
            .where(AuditRow.id > after)
            .order_by(AuditRow.id)
            .limit(limit)
        )
        with self.orders.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [AuditChange(r.id, r.incident_id, r.action, r.to_state, r.version, r.at, r.unit, r.assignee) for r in rows]

    def last_id(self) -> int:
        with self.orders.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(AuditRow.id), 0))).scalar_one())

    def source(self) -> FeedSource[AuditChange]:
        return FeedSource("audit", self.changes_after, self.last_id, self.orders.committed)


@router.get("/console/events", response_class=StreamingResponse, responses=event_stream_responses("A stream of case changes"))
async def console_events(
    caller: AnyStreamCaller, orders: OrdersDep, feeds: FeedsDep, limits: LimitsDep, start: ResumeDep, max_s: StreamMaxS = 300.0
) -> StreamingResponse:
    """Case changes (the work-order audit log) as server-sent events, resumable with
    ``Last-Event-ID`` (the events' ids are audit ids); a unit handler gets those of cases their unit
    holds, a person who is one those of the cases assigned to them (now). The stream ends once
    its caller may no longer read it (key revoked, session over; checked every
    ``limits.event_stream_recheck_s`` and before each batch)."""

    def render(change: AuditChange, user: Actor) -> str | None:  # ``user``: the caller as checked last
        return change.message() if user.holds(change.unit or "", change.assignee) else None

    # one reader of the audit log for all console streams (api/feeds.py); streams capped per key and in total
    return await feeds.stream(AuditFeed(orders).source(), caller, limits, start=start, render=render, keepalive_s=15.0, max_s=max_s)


def mount_console(app: FastAPI) -> None:
    """Serve the console at ``/console/`` and send ``/`` there. Call after the API routers."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")
