"""Who is in the cluster: worker heartbeats, drain marks, the placement leader, and mirrors of
the catalogue and placement buckets.

* A worker puts its :class:`WorkerInfo` under its id in the workers bucket every
  ``renew_interval_s``; the bucket's ``max_age`` (``heartbeat_ttl_s``) drops a worker that
  stops (nats-server 2.9 leaves no marker when a key ages out, so heartbeats are listed, not watched).
* One case service is the placement leader: the one whose ``create`` of the ``leader`` key in
  the leader bucket (``max_age`` ``leader_ttl_s``) succeeded and whose renewals keep succeeding.
* :class:`KvMirror` keeps a bucket without TTL (the camera catalogue, the placement, drain
  marks) in memory through a watcher, re-created after a reconnect and every ``resync_s``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import nats.errors
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridworker.streams.redact import get_logger

from .config import WORKER_ID_PATTERN
from .link import Buckets, NatsLink

__all__ = ["KvMirror", "LeaderElection", "WorkerInfo", "list_workers", "read_workers"]

log = get_logger(__name__)

MAX_HEARTBEAT_BYTES = 256 * 1024
LEADER_KEY = "leader"


class WorkerInfo(BaseModel):
    """A worker's heartbeat: who it is and its load (the API's and the console's view of it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    worker: str = Field(pattern=WORKER_ID_PATTERN)
    instance: str = Field(max_length=64)
    started_at: float
    at: float = Field(description="When this heartbeat was sent (the worker's clock, epoch seconds).")
    draining: bool = False
    capacity: int = Field(ge=0)
    cameras: list[str] = Field(default_factory=list, max_length=10_000, description="Continuous cameras it runs now.")
    fps: float = Field(0.0, ge=0, description="Live frames analysed per second, all its cameras.")
    visits: int = Field(0, ge=0, description="Patrol visits done since it started.")
    live: dict[str, float] = Field(default_factory=dict, description="Continuous cameras whose stream is live here -> analysed fps.")
    health_url: str | None = Field(None, max_length=300)

    @classmethod
    def parse(cls, value: bytes | None) -> WorkerInfo | None:
        if not value or len(value) > MAX_HEARTBEAT_BYTES:
            return None
        try:
            return cls.model_validate_json(value)
        except ValidationError:
            return None


async def list_workers(kv: KeyValue) -> list[WorkerInfo]:
    """Every worker with a live heartbeat (its key has not aged out of the bucket)."""
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    out = []
    for key in keys:
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            continue  # aged out between the listing and the read
        info = WorkerInfo.parse(entry.value)
        if info is not None and info.worker == key:
            out.append(info)
    return sorted(out, key=lambda w: w.worker)


async def read_workers(kv: KeyValue, worker_ids: list[str]) -> list[WorkerInfo]:
    """The live heartbeats of these workers, each read directly (one that aged out is left out).

    A listing (:func:`list_workers`) can miss a key whose heartbeat is being replaced at that
    moment; a direct read of the key cannot, so it tells a worker that is gone from one that
    a listing missed.
    """

    async def one(worker_id: str) -> WorkerInfo | None:
        try:
            entry = await kv.get(worker_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        info = WorkerInfo.parse(entry.value)
        return info if info is not None and info.worker == worker_id else None

    found = await asyncio.gather(*(one(w) for w in worker_ids))
    return [info for info in found if info is not None]


class KvMirror:
    """An in-memory copy of one bucket without TTL, kept by a watcher on the bridge's loop.

    Example::

        mirror = KvMirror(link, lambda b: b.assign); bridge.spawn(mirror.run)
        mirror.wait_ready(5.0); mirror.snapshot()
    """

    def __init__(
        self,
        link: NatsLink,
        bucket: Callable[[Buckets], KeyValue],
        *,
        resync_s: float = 30.0,
        max_keys: int = 100_000,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._link = link
        self._on_change = on_change  # called on the loop after the copy changed (must not block)
        self._bucket = bucket
        self._resync_s = resync_s
        self._max_keys = max_keys
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._resync = asyncio.Event()

    def snapshot(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._data)

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def resync_soon(self) -> None:
        """Re-create the watcher (call on the loop: after a reconnect)."""
        self._resync.set()

    async def run(self) -> None:
        while True:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away, a stream being recreated: watch again shortly
                log.debug("mirror watcher: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def _watch_once(self) -> None:
        self._resync.clear()
        watcher = await self._bucket(self._link.buckets).watchall()
        fresh: dict[str, bytes] | None = {}
        until = time.monotonic() + self._resync_s
        try:
            while time.monotonic() < until and not self._resync.is_set():
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
                except nats.errors.TimeoutError:
                    continue
                if entry is None:  # the initial values are in: swap them in whole
                    if fresh is not None:
                        with self._lock:
                            self._data = fresh
                        fresh = None
                        self._ready.set()
                        self._changed()
                    continue
                deleted = entry.operation is not None or entry.value is None
                with self._lock:  # the initial values gather aside; later updates go straight in
                    live = fresh is None
                    data = self._data if fresh is None else fresh
                    if deleted:
                        data.pop(entry.key, None)
                    elif entry.key in data or len(data) < self._max_keys:
                        data[entry.key] = entry.value or b""
                if live:
                    self._changed()
        finally:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except Exception as exc:
                log.debug("stopping a mirror watcher: %s", type(exc).__name__)


class LeaderElection:
    """One placement leader among the case services (``create`` on a TTL key, renewed by ``update``).

    Call :meth:`tick` every ``renew_interval_s`` from one thread; it answers whether this
    instance leads now. A leader that cannot renew (refused, or no answer before its key may
    have lapsed) stops leading at once.
    """

    def __init__(self, link: NatsLink, instance: str, ttl_s: float) -> None:
        self._link = link
        self._instance = instance.encode()
        self._ttl = ttl_s
        self._revision: int | None = None
        self._deadline = 0.0

    @property
    def leading(self) -> bool:
        return self._revision is not None and time.monotonic() < self._deadline

    def tick(self) -> bool:
        kv = self._link.buckets.leader
        sent = time.monotonic()
        try:
            if self._revision is None:
                rev = self._link.call(lambda: kv.create(LEADER_KEY, self._instance))
                log.info("this case service leads placement now")
            else:
                last = self._revision
                rev = self._link.call(lambda: kv.update(LEADER_KEY, self._instance, last=last))
        except KeyWrongLastSequenceError:
            if self._revision is not None:
                log.warning("placement leadership lost")
            self._revision = None
            return False
        except Exception as exc:  # no answer: lead only while the key surely stands
            log.debug("leader renewal: %s", type(exc).__name__)
            if not self.leading:
                self._revision = None
            return self.leading
        self._revision = rev
        self._deadline = sent + self._ttl - min(1.0, self._ttl / 5)
        return True

    def resign(self) -> None:
        """Give the key up so another case service leads without waiting for the TTL."""
        last, self._revision = self._revision, None
        if last is None:
            return
        kv = self._link.buckets.leader
        try:
            self._link.call(lambda: kv.delete(LEADER_KEY, last=last))
        except Exception as exc:
            log.debug("resigning leadership: %s", type(exc).__name__)
