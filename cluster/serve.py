"""``gridworker serve``: the case service of a cluster (API, console, incidents, cases, delivery)
and, when elected, the placement leader.

:class:`ClusterService` sits beside the usual :class:`~gridworker.service.Service` (whose
cameras are listed and edited as always but read by no local reader: :class:`RemoteStream`).
Its control thread, every ``renew_interval_s``: renews or contends for leadership; the leader
publishes the camera catalogue (config file + cameras added through the API, so a new camera is
placed without a restart), lists live workers, places the continuous cameras on the eligible
ones (:func:`~gridworker.cluster.placement.place`) and writes what changed.

One serve process writes incidents: it holds the case-writer lease (:class:`CaseWriterLease`, the
key ``case-writer`` of the leader bucket, renewed by the control thread) before it starts the
observation consumer and the visit publisher. A second serve waits one lease TTL for a lapsed
holder (a crashed predecessor), then refuses to start (:class:`CaseWriterTaken`, naming the holder).
Patrol plans run as glance visits on the workers; a ``mode: watch`` plan is refused (config,
API, start) until watch visits cross the wire (:func:`watch_plan_refusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
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

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import PatrolRun
from gridworker.patrol.manager import PatrolConflict

from .bridge import AsyncBridge, BridgeTimeout
from .config import default_worker_id
from .leases import LeaseLost, LeaseRecord, LeaseTable, claim, read_lease, release, renew
from .link import NatsLink
from .membership import KvMirror, LeaderElection, WorkerInfo, list_workers, read_workers
from .observations import read_leases
from .placement import Placement, place
from .visits import VisitLedger
from .worker import ClusterContext, Stoppable

__all__ = [
    "CASE_WRITER_KEY", "CaseWriterLease", "CaseWriterTaken", "ClusterService", "ClusterView", "RemoteStream", "ServeContext",
    "require_postgres", "watch_plan_refusal",
]

log = get_logger(__name__)


class RemoteStream(CameraStream):
    """A camera of the case service: listed, edited, never read here (a worker reads it)."""

    def start(self) -> None:
        return


def require_postgres(settings: Settings) -> str | None:
    """Why ``serve`` cannot run on these settings, or None (no cluster section, not PostgreSQL,
    a ``mode: watch`` patrol plan)."""
    if settings.cluster is None:
        return "gridworker serve needs a cluster: section (cluster: {nats_url: nats://host:4222}); use gridworker run for one process"
    if not settings.database.url.startswith("postgresql"):
        return "cluster mode needs PostgreSQL (database.url: postgresql+psycopg://user@host/db); SQLite serves one process only (gridworker run)"
    for plan in settings.patrol_plans:
        refusal = watch_plan_refusal(plan)
        if refusal is not None:
            return refusal
    return None


def watch_plan_refusal(plan: PatrolPlan) -> str | None:
    """Why cluster mode cannot run this plan, or None: a visit message carries no mode and a
    worker always glances, so a watch plan's rules (wrong way, speeding, red light, line counts)
    would never run while its visits report ok."""
    if plan.mode == "watch":
        return (
            f"patrol plan {plan.id!r} has mode: watch, which cluster mode does not run yet (workers make glance visits only); "
            "use mode: glance, or gridworker run"
        )
    return None


#: the key of the case-writer lease in the leader bucket (TTL ``leader_ttl_s``)
CASE_WRITER_KEY = "case-writer"


class CaseWriterTaken(RuntimeError):
    """Another serve process holds the case-writer lease (it writes the incidents)."""


class CaseWriterLease:
    """The one incident writer among serve processes: a lease (``leases.claim``/``renew``) on
    :data:`CASE_WRITER_KEY` in the leader bucket, held while renewed every tick.

    :meth:`holding` is False as soon as the lease may have lapsed on the server (last renewal
    sent + TTL - margin), so the observation consumer fetches nothing it may no longer write.

    Example::

        writer = CaseWriterLease(link, "host-123", instance, ttl_s=6.0)
        writer.acquire(wait_s=8.0); writer.keep(); writer.holding(); writer.release()
    """

    def __init__(self, link: NatsLink, holder: str, instance: str, ttl_s: float) -> None:
        self._link = link
        self.holder = holder
        self._instance = instance
        self._table = LeaseTable(ttl_s)

    def holding(self) -> bool:
        """Whether the lease is surely this serve's now."""
        return self._table.token(CASE_WRITER_KEY) is not None

    def _claim(self) -> bool:
        kv = self._link.buckets.leader
        sent = time.monotonic()
        got = self._link.call(lambda: claim(kv, CASE_WRITER_KEY, self.holder, self._instance))
        if got is not None:
            self._table.hold(CASE_WRITER_KEY, token=got[0], revision=got[1], sent_at=sent)
        return got is not None

    def current(self) -> LeaseRecord | None:
        """The lease as stored now (None: nobody holds it)."""
        kv = self._link.buckets.leader
        return self._link.call(lambda: read_lease(kv, CASE_WRITER_KEY))

    def acquire(self, wait_s: float) -> None:
        """Take the lease, waiting up to ``wait_s`` for a holder's lease to lapse.

        Raises:
            CaseWriterTaken: another serve still holds it (named in the message).
        """
        deadline = time.monotonic() + wait_s
        while not self._claim():
            if time.monotonic() >= deadline:
                other = self.current()
                who = f"serve {other.worker} (instance {other.instance})" if other is not None else "another serve"
                raise CaseWriterTaken(
                    f"{who} holds the case-writer lease and writes the incidents; one serve per cluster writes them: "
                    "stop that one first (or wait for its lease to lapse)"
                )
            time.sleep(0.2)

    def keep(self) -> bool:
        """Renew the lease (or take it again when it aged out and nobody else took it: a NATS
        restart); whether it is held now. NATS not answering: held while it surely stands."""
        try:
            self._renew_or_claim()
        except Exception as exc:
            log.warning("case-writer lease renewal: %s", type(exc).__name__)
        return self.holding()

    def _renew_or_claim(self) -> None:
        held = self._table.get(CASE_WRITER_KEY)
        if held is not None:
            kv = self._link.buckets.leader
            sent = time.monotonic()
            try:
                revision = self._link.call(lambda: renew(kv, held, self.holder, self._instance))
            except LeaseLost:
                self._table.drop(CASE_WRITER_KEY)
            else:
                self._table.hold(CASE_WRITER_KEY, token=held.token, revision=revision, sent_at=sent)
                return
        if not self._claim() and held is not None:
            other = self.current()
            log.error("case-writer lease lost to %s: this serve writes no incidents now", other.worker if other is not None else "another serve")

    def release(self) -> None:
        """Give the lease up now, so another serve can take it without waiting for the TTL."""
        held = self._table.drop(CASE_WRITER_KEY)
        with contextlib.suppress(Exception):  # not released: it lapses on its own within the TTL
            if held is not None:
                kv = self._link.buckets.leader
                self._link.call(lambda: release(kv, held))


@dataclass(frozen=True, slots=True)
class ServeContext(ClusterContext):
    """What the case service hands the parts that plug into it (the observation consumer, the visit
    publisher). ``visits``: the patrol visits queued here, shared by the two. ``writing``: whether
    this serve holds the case-writer lease now (None: not checked, the service writes alone)."""

    service: Service
    visits: VisitLedger = field(default_factory=VisitLedger)
    writing: Callable[[], bool] | None = None


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
        #: the case-writer lease, taken before the plug-ins (the incident writers) start; None without plug-ins
        # the holder names this process (host-pid) and this instance: never the same for two serves, so
        # claim's take-over of a lease left by an earlier instance of the same holder cannot apply
        holder = f"{default_worker_id()}.{self.instance}"
        self.writer = CaseWriterLease(self.link, holder, self.instance, self.config.leader_ttl_s) if plugins else None

    @property
    def context(self) -> ServeContext:
        writing = self.writer.holding if self.writer is not None else None
        return ServeContext(self.service.settings, self.config, self.bridge, self.link, self.service, self.visits, writing)

    def start(self) -> None:
        """Connect, take the case-writer lease (with plug-ins), start the plug-ins and the control thread.

        Raises:
            ValueError: a ``mode: watch`` patrol plan (cluster mode runs glance visits only).
            CaseWriterTaken: another serve writes the incidents.
        """
        for plan in self.service.settings.patrol_plans:
            refusal = watch_plan_refusal(plan)
            if refusal is not None:
                raise ValueError(refusal)
        self.bridge.start()
        try:
            self._start_parts()
        except BaseException:  # nothing it started outlives it: the lease, the plug-ins' threads, the bridge
            self.stop()
            raise

    def _start_parts(self) -> None:
        self.link.connect()
        if self.writer is not None:
            self.writer.acquire(wait_s=self.config.leader_ttl_s + self.config.renew_interval_s)
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
        self._refuse_watch_plans()
        self._thread = threading.Thread(target=self._loop, name="cluster-placement", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the control thread (it renews the case-writer lease) and the plug-ins, give the lease
        up, close the link and the bridge. Each wait is bounded by ``timeout``; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the cluster control thread did not exit within %.1f s", timeout)
        for part in reversed(self._started):
            try:  # one part failing to stop must not keep the lease held or the bridge running
                part.stop(timeout)
            except Exception:
                log.exception("a cluster part failed to stop")
        if self.bridge.running:
            self.election.resign()
            if self.writer is not None:
                self.writer.release()
        self.link.close()
        self.bridge.stop()

    # -- the control loop ---------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.config.renew_interval_s
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if self.writer is not None:
                    self.writer.keep()
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

    def _refuse_watch_plans(self) -> None:
        """Plans accepted at run time (the API, plans saved by an earlier run) are checked too:
        a watch plan is refused when stored (422) and when started (409)."""
        patrol = self.service.patrol
        validate, make_run = patrol.validate, patrol.make_run

        def validate_glance(plan: PatrolPlan) -> None:
            refusal = watch_plan_refusal(plan)
            if refusal is not None:
                raise ValueError(refusal)
            if validate is not None:
                validate(plan)

        def run_glance(plan: PatrolPlan) -> PatrolRun:
            refusal = watch_plan_refusal(plan)
            if refusal is not None:
                raise PatrolConflict(refusal)
            return make_run(plan)

        patrol.validate, patrol.make_run = validate_glance, run_glance
        for plan in patrol.plans():
            refusal = watch_plan_refusal(plan)
            if refusal is not None:
                log.error("%s; it will not start", refusal)

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
