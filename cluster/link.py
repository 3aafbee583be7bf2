"""The process's NATS connection, its JetStream context and the cluster's KV buckets.

Every NATS call runs on the :class:`~gridworker.cluster.bridge.AsyncBridge`'s loop; threads go
through :meth:`NatsLink.call`, which bounds it by ``op_timeout_s``. After the first connect the
client reconnects forever (a NATS restart is a pause, not an end).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from gridworker.streams.redact import get_logger

from .bridge import AsyncBridge
from .config import ClusterConfig

__all__ = ["Buckets", "NatsLink", "NotConnected"]

log = get_logger(__name__)

T = TypeVar("T")


class NotConnected(RuntimeError):
    """The link has not connected yet (or is closed)."""


def _connected(handle: T | None) -> T:
    """A handle the link sets on connect (client, JetStream context, buckets), or NotConnected
    while it has none."""
    if handle is None:
        raise NotConnected("not connected to NATS")
    return handle


@dataclass(frozen=True, slots=True)
class Buckets:
    """The cluster's KV buckets (names carry the config's prefix)."""

    leases: KeyValue  # camera id -> lease (TTL lease_ttl_s)
    workers: KeyValue  # worker id -> heartbeat (TTL heartbeat_ttl_s)
    leader: KeyValue  # "leader" -> the placement leader (TTL leader_ttl_s)
    cameras: KeyValue  # camera id -> CameraConfig JSON (the catalogue; no TTL)
    assign: KeyValue  # camera id -> worker id (the leader's placement; no TTL)
    drain: KeyValue  # worker id -> "1" while an operator drains it (no TTL)


class NatsLink:
    """One NATS connection for the process.

    Example::

        link = NatsLink(config, bridge); link.connect()
        link.call(lambda: link.buckets.leases.get("gate-1"))
    """

    def __init__(self, config: ClusterConfig, bridge: AsyncBridge, *, name: str = "gridworker") -> None:
        self.config = config
        self.bridge = bridge
        self._name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._buckets: Buckets | None = None
        #: coroutines run on the loop after each reconnect (watchers re-created)
        self.on_reconnect: list[Callable[[], None]] = []
        self.reconnects = 0
        self._closing = False

    # -- handles (use inside coroutines on the bridge) -------------------------------------
    @property
    def nc(self) -> Client:
        return _connected(self._nc)

    @property
    def js(self) -> JetStreamContext:
        return _connected(self._js)

    @property
    def buckets(self) -> Buckets:
        return _connected(self._buckets)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def name(self, suffix: str) -> str:
        """A stream or bucket name under this cluster's prefix: ``gw_<suffix>``."""
        return f"{self.config.prefix}_{suffix}"

    def call(self, coro_fn: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run one NATS operation from a thread, bounded by ``op_timeout_s`` (or ``timeout``)."""
        return self.bridge.call(coro_fn, self.config.op_timeout_s if timeout is None else timeout)

    # -- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        """Connect (within ``connect_timeout_s``) and make sure the buckets exist.

        Raises:
            BridgeTimeout, OSError, nats errors: NATS could not be reached (the message never
            shows credentials of the URL).
        """
        cfg = self.config
        self.bridge.call(self._connect, cfg.connect_timeout_s + 2 * cfg.op_timeout_s + 1.0)
        log.info("connected to NATS at %s", cfg.public_url())

    async def _connect(self) -> None:
        cfg = self.config

        async def disconnected() -> None:
            if not self._closing:
                log.warning("NATS connection lost; reconnecting")

        async def reconnected() -> None:
            self.reconnects += 1
            log.info("NATS connection back")
            for hook in list(self.on_reconnect):
                hook()

        async def error(exc: Exception) -> None:
            log.debug("NATS client: %s", type(exc).__name__)

        self._nc = await nats.connect(
            cfg.nats_url,
            name=self._name,
            connect_timeout=cfg.connect_timeout_s,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            ping_interval=max(1, int(cfg.renew_interval_s)),
            max_outstanding_pings=3,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self._js = self._nc.jetstream(timeout=cfg.op_timeout_s)
        self._buckets = Buckets(
            leases=await self.open_bucket("leases", cfg.lease_ttl_s),
            workers=await self.open_bucket("workers", cfg.heartbeat_ttl_s),
            leader=await self.open_bucket("leader", cfg.leader_ttl_s),
            cameras=await self.open_bucket("cameras", None),
            assign=await self.open_bucket("assign", None),
            drain=await self.open_bucket("drain", None),
        )

    async def open_bucket(self, suffix: str, ttl: float | None, max_value_size: int = 256 * 1024) -> KeyValue:
        """The KV bucket ``<prefix>_<suffix>``, created when missing (file storage, one revision
        kept, keys aging out after ``ttl`` seconds when given, values capped). Run on the bridge."""
        js = self.js
        name = self.name(suffix)
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            pass
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, ttl=ttl, storage=StorageType.FILE, max_value_size=max_value_size)
        )

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        nc, self._nc, self._js, self._buckets = self._nc, None, None, None
        if nc is None or not self.bridge.running:
            return
        try:
            self.bridge.call(nc.close, timeout)
        except Exception as exc:  # closing a dead connection: nothing more to do
            log.debug("closing the NATS connection: %s", type(exc).__name__)
