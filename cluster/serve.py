"""``gridworker serve``: the case service of a cluster (API, console, incidents, cases, delivery)
and, when elected, the placement leader.

:class:`ClusterService` sits beside the usual :class:`~gridworker.service.Service` (whose
cameras are listed and edited as always but read by no local reader: :class:`RemoteStream`).
Its control thread, every ``renew_interval_s``: renews or contends for leadership; the leader
publishes the camera catalogue (config file + cameras added through the API, so a new camera is
placed without a restart), lists live workers, places the continuous cameras on the eligible
ones (:func:`~gridworker.cluster.placement.place`) and writes what changed.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from gridworker.api.deps import CameraOwner
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger

from .bridge import AsyncBridge, BridgeTimeout
from .leases import LeaseRecord
from .link import NatsLink
from .membership import KvMirror, LeaderElection, WorkerInfo, list_workers, read_workers
from .observations import read_leases
from .placement import Placement, place
from .visits import VisitLedger
from .worker import ClusterContext, Stoppable

__all__ = ["ClusterService", "ClusterView", "RemoteStream", "ServeContext", "require_postgres"]

log = get_logger(__name__)


class RemoteStream(CameraStream):
    """A camera of the case service: listed, edited, never read here (a worker reads it)."""

    def start(self) -> None:
        return


def require_postgres(settings: Settings) -> str | None:
    """Why ``serve`` cannot run on these settings, or None."""
    if settings.cluster is None:
        return "gridworker serve needs a cluster: section (cluster: {nats_url: nats://host:4222}); use gridworker run for one process"
    if not settings.database.url.startswith("postgresql"):
        return "cluster mode needs PostgreSQL (database.url: postgresql+psycopg://user@host/db); SQLite serves one process only (gridworker run)"
    return None


@dataclass(frozen=True, slots=True)
class ServeContext(ClusterContext):
    """What the case service hands the parts that plug into it (the observation consumer, the visit
    publisher). ``visits``: the patrol visits queued here, shared by the two."""

    service: Service
    visits: VisitLedger = field(default_factory=VisitLedger)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The cluster as the API shows it: workers with their load, each camera's placement and owner."""

    leader: bool
    workers: list[WorkerInfo]
    drained: list[str]
    assignment: dict[str, str]
    owners: dict[str, LeaseRecord]


#: the plug-ins of H5's half (module, function), started with the service when present
PLUGINS: tuple[tuple[str, str], ...] = (
    ("gridworker.cluster.observations", "start_observation_consumer"),
    ("gridworker.cluster.visits", "start_visit_publisher"),
)


class ClusterService:
    """The case service's cluster side: leadership, the catalogue, placement, drain marks.

    Example::

        cluster = ClusterService(service); cluster.start()
        cluster.view().workers; cluster.drain("w2"); cluster.stop()
    """

    def __init__(self, service: Service, *, plugins: tuple[tuple[str, str], ...] = PLUGINS) -> None:
        settings = service.settings
        if settings.cluster is None:
            raise ValueError("ClusterService needs a cluster: section")
        self.service = service
        self.config = settings.cluster
        self.instance = uuid.uuid4().hex[:16]
        self.bridge = AsyncBridge("nats-bridge-serve")
        self.link = NatsLink(self.config, self.bridge, name="gridworker-serve")
        self.visits = VisitLedger()
        self.election = LeaderElection(self.link, self.instance, self.config.leader_ttl_s)
        self._assign = KvMirror(self.link, lambda b: b.assign)
        self._catalogue = KvMirror(self.link, lambda b: b.cameras)
        self._drain = KvMirror(self.link, lambda b: b.drain)
        self.link.on_reconnect.extend([self._assign.resync_soon, self._catalogue.resync_soon, self._drain.resync_soon])
        self._plugins = plugins
        self._started: list[Stoppable] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_placement: Placement | None = None
        self._owners: dict[str, CameraOwner] = {}
        self._last_listed: list[WorkerInfo] = []
        self._owners_lock = threading.Lock()

    @property
    def context(self) -> ServeContext:
        return ServeContext(self.service.settings, self.config, self.bridge, self.link, self.service, self.visits)

    def start(self) -> None:
        self.bridge.start()
        self.link.connect()
        for mirror in (self._assign, self._catalogue, self._drain):
            self.bridge.spawn(mirror.run)
        for mirror in (self._assign, self._catalogue, self._drain):
            mirror.wait_ready(self.config.op_timeout_s)
        for module_name, function in self._plugins:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                log.warning("%s is not installed: %s not started", module_name, function)
                continue
            starter: Callable[[ServeContext], Stoppable] = getattr(module, function)
            self._started.append(starter(self.context))
        self._thread = threading.Thread(target=self._loop, name="cluster-placement", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for part in reversed(self._started):
            part.stop(timeout)
        if self.bridge.running:
            self.election.resign()
        self.link.close()
        self.bridge.stop()

    # -- the control loop ---------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.config.renew_interval_s
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                leading = self.election.tick()
                kv = self.link.buckets.workers
                listed = self.link.call(lambda: list_workers(kv))
                # a listing can miss a key whose heartbeat is being replaced at that moment (the
                # bucket keeps one value a key): a worker the listing misses is read directly, and
                # is gone only if its key is (its cameras are placed elsewhere in this tick)
                seen = {w.worker for w in listed}
                missed = [w.worker for w in self._last_listed if w.worker not in seen]
                if missed:
                    listed = [*listed, *self.link.call(lambda: read_workers(kv, missed))]
                self._last_listed = listed
                workers = sorted(listed, key=lambda w: w.worker)
                self._note_owners(workers)
                if leading and self.service.started:
                    self._lead(workers)
            except BridgeTimeout as exc:
                # NATS slow or away for a moment: the next tick retries; no traceback for it
                log.warning("cluster placement tick: NATS did not answer (%s); retrying", exc)
            except Exception:
                log.exception("cluster placement tick failed")
            self._stop.wait(max(0.05, interval - (time.monotonic() - began)))

    def _note_owners(self, workers: list[WorkerInfo]) -> None:
        owners = {cam: CameraOwner(w.worker, len(w.cameras), w.live.get(cam)) for w in workers for cam in w.cameras}
        with self._owners_lock:
            self._owners = owners

    def owners(self) -> dict[str, CameraOwner]:
        """camera id -> (the worker running it, per its last heartbeat; that worker's load): /cameras, the console."""
        with self._owners_lock:
            return dict(self._owners)

    def _lead(self, workers: list[WorkerInfo]) -> None:
        self._publish_catalogue()
        drained = set(self._drain.snapshot())
        eligible = [w.worker for w in workers if not w.draining and w.worker not in drained]
        continuous = [v.config.id for v in self.service.cameras() if v.config.watch == "continuous"]
        current = {c: w.decode(errors="replace") for c, w in self._assign.snapshot().items()}
        placement = place(continuous, eligible, self.config.max_cameras_per_worker, current)
        puts = {cam: worker.encode() for cam, worker in placement.assignment.items() if current.get(cam) != worker}
        self._write(self.link.buckets.assign, puts, set(current) - set(placement.assignment))
        if placement.moved or set(current) != set(placement.assignment):
            log.info(
                "placement: %d camera(s) on %d worker(s), %d moved, %d waiting for room",
                len(placement.assignment), len(eligible), len(placement.moved), len(placement.unplaced),
            )
        self.last_placement = placement

    def _publish_catalogue(self) -> None:
        """Every camera of the service (config file + API) into the catalogue; removed ones out."""
        published = self._catalogue.snapshot()
        wanted = {v.config.id: v.config.model_dump_json().encode() for v in self.service.cameras()}
        puts = {cam: value for cam, value in wanted.items() if published.get(cam) != value}
        self._write(self.link.buckets.cameras, puts, set(published) - set(wanted))

    def _write(self, kv: KeyValue, puts: dict[str, bytes], deletes: set[str]) -> None:
        """Put and delete these keys, all at once (one round trip's time however many)."""
        if not puts and not deletes:
            return

        async def write_all() -> None:
            await asyncio.gather(*(kv.put(k, v) for k, v in puts.items()), *(kv.delete(k) for k in deletes))

        self.link.call(write_all, timeout=2 * self.config.op_timeout_s)

    # -- the API's operations -------------------------------------------------------------
    def view(self) -> ClusterView:
        workers = self.link.call(lambda: list_workers(self.link.buckets.workers))
        assignment = {c: w.decode(errors="replace") for c, w in self._assign.snapshot().items()}
        kv = self.link.buckets.leases
        records = self.link.call(lambda: read_leases(kv, list(assignment)), timeout=self.config.op_timeout_s * 3)
        return ClusterView(
            leader=self.election.leading, workers=workers, drained=sorted(self._drain.snapshot()),
            assignment=assignment, owners={cam: record for cam, record in records.items() if record is not None},
        )

    def drain(self, worker_id: str, on: bool = True) -> None:
        """Move a worker's cameras away (``on``) or let it take cameras again."""
        kv = self.link.buckets.drain
        if on:
            self.link.call(lambda: kv.put(worker_id, b"1"))
            return
        try:
            self.link.call(lambda: kv.delete(worker_id))
        except KeyNotFoundError:
            pass

    def camera_owner(self) -> dict[str, Any]:
        """camera id -> {worker, token} of the current lease holder (for /cameras and the console)."""
        view = self.view()
        return {c: {"worker": r.worker, "token": r.token} for c, r in view.owners.items()}
