"""Server-sent event feeds: one database poller per feed, fanned out to every open stream.

A feed is a table read by id (the outbox behind ``GET /events``, the work-order audit log
behind ``GET /console/events``). Without this module every open stream polled the database
on its own (300 streams: 1,200 queries a second). Now:

* one :class:`FeedPoller` per feed and app reads the rows after the newest it has seen, every
  ``poll_s``, while at least one stream is open, and offers each row to every subscriber;
* each subscriber has a bounded queue. A subscriber whose queue is full (its client reads
  more slowly than events arrive) is dropped: its stream ends and the client reconnects
  with ``Last-Event-ID``, so nothing is lost and nothing grows;
* a stream that resumes from an older id reads the rows between its id and the poller's
  position itself, once (the "backfill"), then follows the queue;
* :class:`StreamSlots` caps the open streams per key and in total (``limits:`` in the
  config); beyond them the route answers 429 with ``Retry-After``.

The poller runs as a task on the app's event loop (Frigate-style: a loop around one stop
event); it ends when its last subscriber leaves and with the app (:func:`close_feeds` in the
lifespan).

Example:
    >>> feed = FeedPoller("events", outbox.events_after, outbox.last_id)  # doctest: +SKIP
    >>> sub = await feed.subscribe()                                        # doctest: +SKIP
    >>> item = await sub.get(timeout=15.0)                                  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

__all__ = [
    "FeedPoller",
    "StreamSlots",
    "Subscription",
    "close_feeds",
    "feed_for",
    "slots_for",
    "sse_response",
]

log = logging.getLogger(__name__)

POLL_S = 0.25
BATCH = 200
QUEUE_SIZE = 1000  # events a subscriber may lag behind before it is dropped
RETRY_MS = 3000
_DROPPED = None  # the queue's end-of-stream marker


class HasId(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=HasId)


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


class FeedPoller(Generic[T]):
    """Reads one feed for all its subscribers.

    Args:
        name: for logs.
        fetch_after: ``(after_id, limit) -> rows`` with ``id > after_id``, oldest first (blocking;
            run in the thread pool).
        last_id: the newest id now (blocking).
        poll_s: seconds between two reads while nothing new arrives.
        batch: rows per read; a full batch is followed at once by the next read.
        queue_size: rows a subscriber may lag behind before it is dropped.
    """

    def __init__(
        self,
        name: str,
        fetch_after: Callable[[int, int], Sequence[T]],
        last_id: Callable[[], int],
        *,
        poll_s: float = POLL_S,
        batch: int = BATCH,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.name = name
        self.fetch_after = fetch_after
        self.last_id = last_id
        self.poll_s = poll_s
        self.batch = batch
        self.queue_size = queue_size
        self.loop = asyncio.get_running_loop()
        self._subs: set[Subscription[T]] = set()
        self._head = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
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
                self._head = await run_in_threadpool(self.last_id)
                self._task = asyncio.create_task(self._run(), name=f"gw-feed-{self.name}")
            sub: Subscription[T] = Subscription(self._head, asyncio.Queue(self.queue_size))
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        self._subs.discard(sub)

    async def close(self) -> None:
        """Stop the poller and end every subscriber's stream (app shutdown)."""
        self._stop.set()
        for sub in list(self._subs):
            sub.end()
        self._subs.clear()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        while self._subs and not self._stop.is_set():
            try:
                rows = await run_in_threadpool(self.fetch_after, self._head, self.batch)
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
                await asyncio.wait_for(self._stop.wait(), delay)


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
    """An app's pollers (one per feed name, on the app's event loop) and its stream counter,
    kept at ``app.state.gw_feeds``."""

    def __init__(self) -> None:
        self.pollers: dict[str, object] = {}
        self.slots: StreamSlots | None = None

    @staticmethod
    def of(app: FastAPI) -> Feeds:
        feeds = getattr(app.state, "gw_feeds", None)
        if not isinstance(feeds, Feeds):
            feeds = Feeds()
            app.state.gw_feeds = feeds
        return feeds


def feed_for(app: FastAPI, name: str, make: Callable[[], FeedPoller[T]]) -> FeedPoller[T]:
    """The app's poller of feed ``name`` on the running event loop (made on first use)."""
    feeds = Feeds.of(app)
    feed = feeds.pollers.get(name)
    if not isinstance(feed, FeedPoller) or feed.loop is not asyncio.get_running_loop():
        feed = make()
        feeds.pollers[name] = feed
    return feed


def slots_for(app: FastAPI, total: int, per_key: int) -> StreamSlots:
    """The app's stream counter, shared by all its feeds (made on first use)."""
    feeds = Feeds.of(app)
    if feeds.slots is None:
        feeds.slots = StreamSlots(total, per_key)
    return feeds.slots


async def close_feeds(app: FastAPI) -> None:
    """Stop the app's pollers (call when the app shuts down)."""
    feeds = Feeds.of(app)
    pollers, feeds.pollers = feeds.pollers, {}
    for feed in pollers.values():
        if isinstance(feed, FeedPoller) and feed.loop is asyncio.get_running_loop():
            await feed.close()


async def sse_response(
    feed: FeedPoller[T],
    slots: StreamSlots,
    key: str,
    *,
    start: int | None,
    render: Callable[[T], str | None],
    keepalive_s: float,
    max_s: float,
) -> StreamingResponse:
    """A server-sent event stream of ``feed`` after ``start`` (None: from now on).

    ``render`` turns a row into its SSE message, or None when this caller may not see it.
    Raises the 429 of :meth:`StreamSlots.refuse` when the caller is over a cap.
    """
    if not slots.acquire(key):
        raise slots.refuse(key)
    try:
        sub = await feed.subscribe()
        if start is None:
            start = await run_in_threadpool(feed.last_id)
    except BaseException:
        slots.release(key)
        raise
    begin = start

    async def stream() -> AsyncIterator[str]:
        last = begin
        began = time.monotonic()
        next_ping = began + keepalive_s
        try:
            yield f"retry: {RETRY_MS}\n: resuming after {last}\n\n"
            while last < sub.head:  # what happened between ``start`` and the poller's position
                rows = await run_in_threadpool(feed.fetch_after, last, feed.batch)
                for row in rows:
                    last = row.id
                    msg = render(row)
                    if msg is not None:
                        next_ping = time.monotonic() + keepalive_s
                        yield msg
                if len(rows) < feed.batch:
                    break
            while True:
                now = time.monotonic()
                if now - began >= max_s:
                    return
                try:
                    row = await sub.get(max(0.0, min(next_ping, began + max_s) - now))
                except TimeoutError:
                    if time.monotonic() >= next_ping:
                        next_ping = time.monotonic() + keepalive_s
                        yield ": keep-alive\n\n"
                    continue
                if row is None:
                    return  # dropped (too slow) or the app stops: the client reconnects and resumes
                if row.id <= last:
                    continue
                last = row.id
                msg = render(row)
                if msg is not None:
                    next_ping = time.monotonic() + keepalive_s
                    yield msg
        finally:
            feed.unsubscribe(sub)

    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            feed.unsubscribe(sub)
            slots.release(key)

    return _SlotResponse(stream(), release)

