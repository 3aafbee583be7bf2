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

Keys go in a header (``Authorization``/``X-API-Key``), never in the URL (URLs end up in
access logs): a console uses a fetch-based EventSource, or a proxy that adds the header.
Unit handlers get the events of cases that are or were with their unit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from gridworker.incidents.outbox import Outbox, OutboxEvent
from gridworker.incidents.workflow import UNIT_HANDLER, Actor

from ..auth import ANY_ROLE, require
from .forwarding import get_dispatcher, get_outbox

router = APIRouter(tags=["forwarding"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
POLL_S = 0.25
RETRY_MS = 3000


def format_event(ev: OutboxEvent) -> str:
    data = json.dumps(ev.document(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {ev.id}\ndata: {data}\n\n"


def _visible(ev: OutboxEvent, user: Actor) -> bool:
    return user.role != UNIT_HANDLER or user.unit in (ev.unit, ev.from_unit)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "A stream of work-order events"}},
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
    start: int | None = None
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id.strip())
        except ValueError:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must be an event id (an integer)") from None
        if start < 0:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must not be negative")
    elif after is not None:
        start = after
    if start is None:
        start = await run_in_threadpool(outbox.last_id)
    disp = get_dispatcher(request)
    keepalive = keepalive_s or getattr(disp, "sse_keepalive_s", None) or 15.0

    async def stream() -> AsyncIterator[str]:
        last = start
        began = time.monotonic()
        next_ping = began + keepalive
        yield f"retry: {RETRY_MS}\n: resuming after {last}\n\n"
        while True:
            if await request.is_disconnected():
                return
            batch = await run_in_threadpool(outbox.events_after, last, 200)
            for ev in batch:
                last = ev.id
                if _visible(ev, user):
                    yield format_event(ev)
            if batch:
                next_ping = time.monotonic() + keepalive
                if len(batch) == 200:
                    continue
            now = time.monotonic()
            if now - began >= max_s:
                return
            if now >= next_ping:
                next_ping = now + keepalive
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )
