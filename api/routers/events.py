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

All open streams share one reader of the outbox (``api/feeds.py``), woken when a work-order
change commits in this process (and every 2 s for changes written by another process),
however many consoles listen. Open streams are capped per key and in total
(``limits.max_event_streams_per_key`` / ``limits.max_event_streams``); beyond them: 429.
A stream checks its key (or session) again before each batch and every
``limits.event_stream_recheck_s`` (``StreamCaller``, api/auth.py): once the key is revoked it ends
(``: access ended``) and sends nothing raised after.

Keys go in a header (``Authorization``/``X-API-Key``), never in the URL (URLs end up in
access logs): a console uses a fetch-based EventSource, or a proxy that adds the header.
Unit handlers get the events of cases that are or were with their unit.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from gridworker.delivery.outbox import Outbox, OutboxEvent
from gridworker.cases.workflow import UNIT_HANDLER, Actor

from ..auth import ANY_ROLE, StreamCaller, stream_caller
from ..deps import DispatcherDep, FeedsDep, LimitsDep, OutboxDep
from ..feeds import FeedSource, ResumeDep, StreamMaxS, event_stream_responses

router = APIRouter(tags=["forwarding"])
#: Any role, checked again while the stream runs (api/feeds.py)
Reader = Annotated[StreamCaller, Depends(stream_caller(*ANY_ROLE))]


def format_event(ev: OutboxEvent) -> str:
    data = json.dumps(ev.document(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {ev.id}\ndata: {data}\n\n"


def _visible(ev: OutboxEvent, user: Actor) -> bool:
    # a person who is a unit handler sees only their own cases: the outbox's events do not say
    # whose a case is, so they get none here (their feed: /console/events; issue 15)
    return user.role != UNIT_HANDLER or (user.person is None and user.unit in (ev.unit, ev.from_unit))


def outbox_source(outbox: Outbox) -> FeedSource[OutboxEvent]:
    """The outbox as a feed, woken by the outbox's commits."""
    return FeedSource("outbox", outbox.events_after, outbox.last_id, outbox.committed)


@router.get("/events", response_class=StreamingResponse, responses=event_stream_responses("A stream of work-order events"))
async def events(
    caller: Reader,
    outbox: OutboxDep,
    dispatcher: DispatcherDep,
    feeds: FeedsDep,
    limits: LimitsDep,
    start: ResumeDep,
    keepalive_s: Annotated[float | None, Query(ge=1, le=300, description="Keep-alive comment interval; default from the config (15 s)")] = None,
    max_s: StreamMaxS = 300.0,
) -> StreamingResponse:
    """Work-order events as server-sent events, resumable with ``Last-Event-ID``; the stream
    ends once its caller may no longer read it (key revoked, session over; checked every
    ``limits.event_stream_recheck_s`` and before each batch)."""

    def render(ev: OutboxEvent, user: Actor) -> str | None:  # ``user``: the caller as checked last
        return format_event(ev) if _visible(ev, user) else None

    return await feeds.stream(
        outbox_source(outbox),
        caller,
        limits,
        start=start,
        render=render,
        keepalive_s=keepalive_s or dispatcher.sse_keepalive_s,
        max_s=max_s,
    )
