"""Server-sent event feeds: one reader per feed, woken by the writer's commit, fanned out to
every open stream.

A feed is a table read by id (the outbox behind ``GET /events``, the work-order audit log
behind ``GET /console/events``), described by a :class:`FeedSource`. :meth:`Feeds.stream` is
the one helper both routes answer with:

* one :class:`FeedPoller` per feed and app reads the rows after the newest it has seen and
  offers each row to every subscriber. It reads when the writer in this process commits (the
  source's :class:`~gridworker.incidents.db.CommitSignal`, set after the commit of a
  transaction that wrote such rows) and otherwise only every ``fallback_poll_s`` (2 s), for
  rows written by another process; it runs only while a stream is open;
* each subscriber has a bounded queue. A subscriber whose queue is full (its client reads
  more slowly than events arrive) is dropped: its stream ends and the client reconnects
  with ``Last-Event-ID``, so nothing is lost and nothing grows;
* a stream that resumes from an older id reads the rows between its id and the poller's
  position itself, once (the "backfill"), then follows the queue;
* :class:`StreamSlots` caps the open streams per key and in total (``limits:`` in the
  config); beyond them the route answers 429 with ``Retry-After``;
* a keep-alive comment goes out after ``keepalive_s`` without a message, and a stream ends
  after ``max_s`` (the client reconnects);
* the stream asks its :class:`Caller` again whether they may still read it before each batch
  of messages it sends and at least every ``limits.event_stream_recheck_s`` (5 s) while idle
  (in the thread pool: it reads the database), and ends when not: an API key revoked, a session
  logged out, expired or ended (the person disabled, their role, unit or password changed).
  Each message is rendered for the caller as just checked (a unit handler's scope is today's);
  a check that fails (the database is down) ends the stream too (fail closed; the client
  reconnects and is checked like any request).

The poller runs as a task on the app's event loop; it ends when its last subscriber leaves
and with the app (:meth:`Feeds.close` in the lifespan).

Example (in a route handler)::

    source = FeedSource("outbox", outbox.events_after, outbox.last_id, outbox.committed)
    # caller: the route's ``Annotated[StreamCaller, Depends(stream_caller(*ANY_ROLE))]`` (api/auth.py)
    return await feeds.stream(source, caller, limits, start=None, render=lambda ev, actor: format_event(ev),
                              keepalive_s=15.0, max_s=300.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Protocol, TypeVar, cast

from fastapi import Depends, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from gridworker.cases.workflow import Actor
from gridworker.incidents.db import CommitSignal
from gridworker.settings import LimitsConfig

from .errors import Responses

__all__ = [
    "ACCESS_ENDED",
    "Caller",
    "FeedPoller",
    "FeedSource",
    "Feeds",
    "ResumeDep",
    "StreamMaxS",
    "StreamSlots",
    "Subscription",
    "TOO_MANY_STREAMS",
    "event_stream_responses",
    "parse_last_event_id",
    "resume_point",
]

log = logging.getLogger(__name__)

POLL_S = 0.25  # a poller nothing wakes reads this often
FALLBACK_POLL_S = 2.0  # a woken poller reads this often anyway (writes by other processes)
BATCH = 200
QUEUE_SIZE = 1000  # events a subscriber may lag behind before it is dropped
RETRY_MS = 3000
_DROPPED = None  # the queue's end-of-stream marker
#: The 429 of :meth:`Feeds.stream`, for the ``responses=`` of the routes that answer with it.
TOO_MANY_STREAMS: Responses = {429: {"description": "Too many event streams open (per key or in total; see limits in the config)"}}


def event_stream_responses(description: str) -> Responses:
    """The ``responses=`` of a route answering with :meth:`Feeds.stream`: a ``text/event-stream``
    of ``description``, or the 429 of :data:`TOO_MANY_STREAMS`."""
    return {200: {"content": {"text/event-stream": {}}, "description": description}, **TOO_MANY_STREAMS}


class HasId(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=HasId)


class Caller(Protocol):
    """Who reads a stream: as authorised when it opened, and how to ask again (api/auth.py:
    ``StreamCaller``, the same credentials checked like a new request)."""

    @property
    def actor(self) -> Actor:
        """The caller as authorised when the stream opened (its name is its stream-cap key)."""
        ...

    def recheck(self) -> Actor | None:
        """The caller as authorised now; None when they may no longer read the stream. Blocking
        (it reads the database): called in the thread pool. May raise (the database failed)."""
        ...


@dataclass(eq=False)
class Subscription(Generic[T]):
    """One open stream's view of a feed.

    Attributes:
        head: the poller's position when the stream subscribed; rows with a larger id arrive
            through :meth:`get`, older ones the stream reads itself.
        dropped: the subscriber fell a full queue behind (or the app stops) and was removed.
    """

    head: int
    queue: asyncio.Queue[T | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False

    def offer(self, item: T) -> bool:
        """Queue ``item``; False (and the subscriber is marked dropped) when the queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.end()
            return False

    def end(self) -> None:
        """End the stream: drop what is queued (the client resumes by id) and mark the end."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_DROPPED)

    async def get(self, timeout: float) -> T | None:
        """The next row; None when dropped. Raises ``TimeoutError`` after ``timeout`` seconds."""
        return await asyncio.wait_for(self.queue.get(), timeout)


@dataclass(frozen=True)
class FeedSource(Generic[T]):
    """What a feed follows: rows read by id, and the signal its writer sets after a commit.

    Attributes:
        name: the feed's name (one poller per name and app; also in logs).
        fetch_after: ``(after_id, limit) -> rows`` with ``id > after_id``, oldest first (blocking;
            run in the thread pool).
        last_id: the newest id now (blocking).
        committed: fired after this process commits rows of the feed; None: the feed is only polled.
    """

    name: str
    fetch_after: Callable[[int, int], Sequence[T]]
    last_id: Callable[[], int]
    committed: CommitSignal | None = None


class FeedPoller(Generic[T]):
    """Reads one feed for all its subscribers.

    Args:
        source: the rows to read, and the commit signal that wakes the poller (read as soon as
            it fires; without one, the poller only polls).
        poll_s: seconds between two reads while nothing new arrives and nothing wakes the
            poller; default ``POLL_S``, or ``FALLBACK_POLL_S`` with a commit signal.
        batch: rows per read; a full batch is followed at once by the next read.
        queue_size: rows a subscriber may lag behind before it is dropped.
    """

    def __init__(
        self, source: FeedSource[T], *, poll_s: float | None = None, batch: int = BATCH, queue_size: int = QUEUE_SIZE
    ) -> None:
        self.source = source
        self.name = source.name
        self.poll_s = poll_s if poll_s is not None else (FALLBACK_POLL_S if source.committed is not None else POLL_S)
        self.batch = batch
        self.queue_size = queue_size
        self.loop = asyncio.get_running_loop()
        self._subs: set[Subscription[T]] = set()
        self._head = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._woken = asyncio.Event()  # set by a commit (from any thread), by the last unsubscribe and by close
        self._starting = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def subscribe(self) -> Subscription[T]:
        """Register a stream; starts the poller if it was idle."""
        async with self._starting:
            if self._stop.is_set():
                raise RuntimeError(f"feed {self.name} is closed")
            if self._task is None or self._task.done():
                self._head = await run_in_threadpool(self.source.last_id)
                self._task = asyncio.create_task(self._run(), name=f"gw-feed-{self.name}")
            sub: Subscription[T] = Subscription(self._head, asyncio.Queue(self.queue_size))
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        self._subs.discard(sub)
        if not self._subs:
            self._woken.set()  # the poller ends now rather than at its next read

    async def close(self) -> None:
        """Stop the poller and end every subscriber's stream (app shutdown)."""
        self._stop.set()
        self._woken.set()
        for sub in list(self._subs):
            sub.end()
        self._subs.clear()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _nudge(self) -> None:
        """The writer committed (called in its thread): read now."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the app has stopped
            self.loop.call_soon_threadsafe(self._woken.set)

    async def _run(self) -> None:
        wake = self.source.committed
        if wake is not None:
            wake.listen(self._nudge)
        try:
            await self._follow()
        finally:
            if wake is not None:
                wake.unlisten(self._nudge)

    async def _follow(self) -> None:
        failures = 0
        while self._subs and not self._stop.is_set():
            self._woken.clear()  # a commit from here on wakes the wait below
            try:
                rows = await run_in_threadpool(self.source.fetch_after, self._head, self.batch)
                failures = 0
            except Exception:  # the database is down: keep the streams, try again later
                failures += 1
                if failures == 1:
                    log.exception("feed %s: reading the database failed; retrying", self.name)
                rows = []
            for row in rows:
                self._head = row.id
                for sub in list(self._subs):
                    if not sub.offer(row):
                        self._subs.discard(sub)
                        log.warning("feed %s: a stream fell %d events behind and was ended (it resumes by id)", self.name, self.queue_size)
            if len(rows) == self.batch:
                continue
            delay = self.poll_s * min(2**failures, 40)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), delay)


class StreamSlots:
    """Counts open streams per key and in total; thread-safe.

    Example:
        >>> slots = StreamSlots(total=2, per_key=1)
        >>> slots.acquire("key:a"), slots.acquire("key:a"), slots.acquire("key:b"), slots.acquire("key:c")
        (True, False, True, False)
    """

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    @property
    def open(self) -> int:
        return self._count

    def acquire(self, key: str) -> bool:
        with self._lock:
            mine = self._open.get(key, 0)
            if self._count >= self.total or mine >= self.per_key:
                return False
            self._open[key] = mine + 1
            self._count += 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            mine = self._open.get(key, 0)
            if mine <= 0:
                return
            if mine == 1:
                del self._open[key]
            else:
                self._open[key] = mine - 1
            self._count -= 1

    def refuse(self, key: str) -> HTTPException:
        """The 429 for a caller over a cap (the message says which one)."""
        with self._lock:
            mine = self._open.get(key, 0)
        if mine >= self.per_key:
            why = f"this key has {mine} event streams open (limits.max_event_streams_per_key = {self.per_key})"
        else:
            why = f"{self._count} event streams are open (limits.max_event_streams = {self.total})"
        return HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, f"too many event streams: {why}; close one and retry", headers={"Retry-After": "5"}
        )


class _SlotResponse(StreamingResponse):
    """A streaming response that gives its stream slot back however the stream ends."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class Feeds:
    """An app's event feeds: one poller per feed (on the app's event loop), one stream counter
    for all of them, and :meth:`stream`, the one way a route answers with a feed.

    Args:
        fallback_poll_s: how often a woken poller reads anyway (rows written by another process).
        queue_size: rows a subscriber may lag behind before it is dropped.
    """

    def __init__(self, *, fallback_poll_s: float = FALLBACK_POLL_S, queue_size: int = QUEUE_SIZE) -> None:
        self.fallback_poll_s = fallback_poll_s
        self.queue_size = queue_size
        self._pollers: dict[str, FeedPoller[Any]] = {}
        self._slots: StreamSlots | None = None

    def poller(self, source: FeedSource[T]) -> FeedPoller[T]:
        """The poller of ``source`` on the running event loop (made on first use, and again for
        another loop or another writer: a service started again)."""
        feed = self._pollers.get(source.name)
        if feed is None or feed.loop is not asyncio.get_running_loop() or feed.source.committed is not source.committed:
            feed = FeedPoller(source, poll_s=self.fallback_poll_s, queue_size=self.queue_size)
            self._pollers[source.name] = feed
        return cast(FeedPoller[T], feed)

    def slots(self, limits: LimitsConfig) -> StreamSlots:
        """The open-stream counter shared by every feed (its caps from the first ``limits``)."""
        if self._slots is None:
            self._slots = StreamSlots(limits.max_event_streams, limits.max_event_streams_per_key)
        return self._slots

    async def close(self) -> None:
        """Stop the pollers (call when the app shuts down)."""
        pollers, self._pollers = self._pollers, {}
        for feed in pollers.values():
            if feed.loop is asyncio.get_running_loop():
                await feed.close()

    async def stream(
        self,
        source: FeedSource[T],
        caller: Caller,
        limits: LimitsConfig,
        *,
        start: int | None,
        render: Callable[[T, Actor], str | None],
        keepalive_s: float,
        max_s: float,
    ) -> StreamingResponse:
        """A server-sent event stream of ``source`` after ``start`` (None: from now on), for
        ``caller`` (the per-key cap counts ``caller.actor.name``).

        ``render(row, actor)`` turns a row into its SSE message for the caller as checked last,
        or None when they may not see it. The stream checks the caller again before each batch it
        sends and every ``limits.event_stream_recheck_s`` while idle, and ends once they may no
        longer read it. Raises the 429 of :meth:`StreamSlots.refuse` when the caller is over a cap.
        """
        key = caller.actor.name
        slots = self.slots(limits)
        if not slots.acquire(key):
            raise slots.refuse(key)
        feed = self.poller(source)
        try:
            sub = await feed.subscribe()
            if start is None:
                start = await run_in_threadpool(feed.source.last_id)
        except BaseException:
            slots.release(key)
            raise

        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                feed.unsubscribe(sub)
                slots.release(key)

        gate = _Gate(caller, limits.event_stream_recheck_s, feed.name)
        return _SlotResponse(_messages(feed, sub, start, gate, render, keepalive_s, max_s), release)


class _AccessEnded(Exception):
    """The stream's caller may no longer read it (raised by :meth:`_Gate.check`)."""


class _Gate:
    """One stream's caller, checked again (:meth:`check`) before each batch and when due.

    Args:
        caller: who reads the stream.
        every_s: the longest an idle stream goes without a check.
        feed: the feed's name (for the log).
    """

    def __init__(self, caller: Caller, every_s: float, feed: str) -> None:
        self.caller = caller
        self.every_s = every_s
        self.feed = feed
        self.actor: Actor = caller.actor
        self.checked = time.monotonic()  # the request itself was just authorised

    @property
    def due(self) -> float:
        """When the next check is due (``time.monotonic()``) if nothing is sent before."""
        return self.checked + self.every_s

    async def check(self) -> None:
        """Check the caller again now (in the thread pool) and keep them as :attr:`actor`.

        Raises:
            _AccessEnded: they may no longer read the stream, or the check failed (logged by
                the error's type only, never its message: fail closed).
        """
        try:
            actor = await run_in_threadpool(self.caller.recheck)
        except Exception as exc:
            log.warning("feed %s: checking a stream's caller failed (%s); the stream ends", self.feed, type(exc).__name__)
            raise _AccessEnded() from None
        self.checked = time.monotonic()
        if actor is None:
            log.info("feed %s: %s may no longer read the stream; it ends", self.feed, self.actor.name)
            raise _AccessEnded()
        self.actor = actor


#: The last comment of a stream whose caller may no longer read it (reconnecting gets the 401/403).
ACCESS_ENDED = ": access ended\n\n"


def _take_queued(sub: Subscription[T], first: T, limit: int) -> tuple[list[T], bool]:
    """``first`` and what else ``sub`` has queued (up to ``limit`` rows); whether the stream was
    dropped behind them."""
    rows = [first]
    while len(rows) < limit and not sub.queue.empty():
        row = sub.queue.get_nowait()
        if row is None:
            return rows, True
        rows.append(row)
    return rows, False


async def _messages(
    feed: FeedPoller[T],
    sub: Subscription[T],
    start: int,
    gate: _Gate,
    render: Callable[[T, Actor], str | None],
    keepalive_s: float,
    max_s: float,
) -> AsyncIterator[str]:
    """One stream's messages: the backfill from ``start``, then the subscription's rows, with
    keep-alive comments, until ``max_s``, the subscriber is dropped or the caller may no longer
    read the stream (checked before each batch and when ``gate`` is due)."""
    last = start
    began = time.monotonic()
    next_ping = began + keepalive_s

    async def deliver(rows: Sequence[T]) -> str:
        """The messages of the rows after ``last``, for the caller checked just now (nothing
        new: no check, no messages)."""
        nonlocal last, next_ping
        new = [row for row in rows if row.id > last]
        if not new:
            return ""
        await gate.check()
        last = new[-1].id
        out = "".join(msg for msg in (render(row, gate.actor) for row in new) if msg is not None)
        if out:
            next_ping = time.monotonic() + keepalive_s
        return out

    try:
        yield f"retry: {RETRY_MS}\n: resuming after {last}\n\n"
        while last < sub.head:  # what happened between ``start`` and the poller's position
            rows = await run_in_threadpool(feed.source.fetch_after, last, feed.batch)
            if msgs := await deliver(rows):
                yield msgs
            if len(rows) < feed.batch:
                break
        while True:
            now = time.monotonic()
            if now - began >= max_s:
                return
            if now >= gate.due:
                await gate.check()
                continue
            try:
                row = await sub.get(max(0.0, min(next_ping, began + max_s, gate.due) - now))
            except TimeoutError:
                if time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + keepalive_s
                    yield ": keep-alive\n\n"
                continue
            if row is None:
                return  # dropped (too slow) or the app stops: the client reconnects and resumes
            rows, dropped = _take_queued(sub, row, feed.batch)
            if msgs := await deliver(rows):
                yield msgs
            if dropped:
                return
    except _AccessEnded:
        yield ACCESS_ENDED  # the client's reconnect is refused (401/403) like any request
    finally:
        feed.unsubscribe(sub)


def resume_point(
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Start after this event id (first connection)")] = None,
) -> int | None:
    """Where an event stream starts: after the id a reconnecting client sends in ``Last-Event-ID``,
    else after ``after`` (a first connection), else at the newest event (None)."""
    start = parse_last_event_id(last_event_id)
    return after if start is None else start


#: A route's event-stream start (:func:`resume_point`), as a parameter.
ResumeDep = Annotated[int | None, Depends(resume_point)]
#: How long an event stream runs before it ends (the client reconnects), as a query parameter.
StreamMaxS = Annotated[float, Query(ge=1, le=3600, description="End the stream after this long (the client reconnects)")]


def parse_last_event_id(raw: str | None, what: str = "an event id") -> int | None:
    """The ``Last-Event-ID`` header as an id (None when absent or blank); 422 when it is not
    an integer from 0 to 2^62 (ids are database integers: a longer one would overflow the query)."""
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Last-Event-ID must be {what} (an integer)") from None
    if not 0 <= value <= 2**62:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Last-Event-ID must be {what} between 0 and 2^62")
    return value
