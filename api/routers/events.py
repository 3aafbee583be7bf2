"""Server-sent events: the outbox as a live stream for consoles.

``GET /events`` sends each work-order event as::

    id: 42
    data: {"event_id":42,"event":"workorder.dispatch","incident_id":7,"version":2,...}

(no ``event:`` field: every message arrives on ``EventSource.onmessage``; the JSON says
which event it is). A reconnecting ``EventSource`` sends ``Last-Event-ID`` and the stream
resumes right after that event — nothing is missed while the console was away, as long
as the outbox still holds it. ``?after=<id>`` does the same for a first connection;
with neither, the stream starts with the events that happen from now on. A comment line
(``: keep-alive``) goes out every ``keepalive_s`` so proxies keep the connection; a
stream ends after ``max_s`` (the browser reconnects by itself after ``retry``).

All open streams share one reader of the outbox (``api/feeds.py``): the database is read
every 250 ms however many consoles listen. Open streams are capped per key and in total
(``limits.max_event_streams_per_key`` / ``limits.max_event_streams``); beyond them: 429.

Keys go in a header (``Authorization``/``X-API-Key``), never in the URL (URLs end up in
access logs): a console uses a fetch-based EventSource, or a proxy that adds the header.
Unit handlers get the events of cases that are or were with their unit.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from gridworker.incidents.outbox import Outbox, OutboxEvent
from gridworker.incidents.workflow import UNIT_HANDLER, Actor

from ..auth import ANY_ROLE, require
from ..feeds import FeedPoller, feed_for, slots_for, sse_response
from ..limits import limits_of
from .forwarding import get_dispatcher, get_outbox

router = APIRouter(tags=["forwarding"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
_TOO_MANY = {429: {"description": "Too many event streams open (per key or in total; see limits in the config)"}}


def format_event(ev: OutboxEvent) -> str:
    data = json.dumps(ev.document(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {ev.id}\ndata: {data}\n\n"


def _visible(ev: OutboxEvent, user: Actor) -> bool:
    return user.role != UNIT_HANDLER or user.unit in (ev.unit, ev.from_unit)


def parse_last_event_id(raw: str | None) -> int | None:
    """The ``Last-Event-ID`` header as an id; 422 when it is not a non-negative integer."""
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must be an event id (an integer)") from None
    if not 0 <= value <= 2**62:  # ids are database integers: a longer one would overflow the query
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must be an event id between 0 and 2^62")
    return value


def outbox_feed(request: Request, outbox: Outbox) -> FeedPoller[OutboxEvent]:
    """The app's one poller of the outbox (all ``/events`` streams share it)."""
    return feed_for(request.app, "outbox", lambda: FeedPoller("outbox", outbox.events_after, outbox.last_id))


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "A stream of work-order events"}, **_TOO_MANY},
)
async def events(
    request: Request,
    user: Reader,
    outbox: Annotated[Outbox, Depends(get_outbox)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Start after this event id (first connection)")] = None,
    keepalive_s: Annotated[float | None, Query(ge=1, le=300, description="Keep-alive comment interval; default from the config (15 s)")] = None,
    max_s: Annotated[float, Query(ge=1, le=3600, description="End the stream after this long (the client reconnects)")] = 300.0,
) -> StreamingResponse:
    """Work-order events as server-sent events, resumable with ``Last-Event-ID``."""
    start = parse_last_event_id(last_event_id)
    if start is None:
        start = after
    disp = get_dispatcher(request)
    keepalive = keepalive_s or getattr(disp, "sse_keepalive_s", None) or 15.0
    limits = limits_of(request.app)

    def render(ev: OutboxEvent) -> str | None:
        return format_event(ev) if _visible(ev, user) else None

    return await sse_response(
        outbox_feed(request, outbox),
        slots_for(request.app, limits.max_event_streams, limits.max_event_streams_per_key),
        user.name,
        start=start,
        render=render,
        keepalive_s=keepalive,
        max_s=max_s,
    )
