"""Patrol visits as messages on a JetStream work queue: published per cycle, pulled by workers.

The case service's plan cycle publishes one :class:`VisitTask` per camera visit on the stream
``<prefix>_visits`` (subject ``<prefix>.visits``, work-queue retention: a message leaves once a
worker acks it), ``Nats-Msg-Id = plan:cycle:camera``: publishing a cycle twice (a leader that
restarted) queues each visit once.

Each worker pulls with the one durable consumer ``visitors`` in batches and runs the visits it
took on a bounded pool (``concurrency``). ``AckWait`` (:data:`ACK_WAIT_S`, 9 s) is longer than
the gap between a running visit's progress signals (``in_progress`` every third of it), so a visit
still running, however long its open and keyframe timeouts and its wait for the detector, is
never handed to a second worker; a worker that dies mid-visit (``kill -9``) stops signalling and
never acks, and the visit is redelivered to another worker within ``AckWait``. Outcomes:

* good visit: its observations were stored by JetStream (``ObservationPublisher.visit_scope``
  publishes them synchronously), then ``ack``;
* the camera is offline (``open_failed``, ``open_timeout``): ``term`` (AckTerm: not retried)
  and reported to the case service as a visit outcome;
* anything else (no keyframe in time, inference timed out, the worker stopping, the visit
  raised): ``nak`` with a growing delay, redelivered up to ``max_deliver`` times, then reported
  and terminated.

The case service sends no visit for a continuously watched camera (its worker already runs all
its rules on its stream): :class:`QueueFeed` answers such a visit itself.

Hostile task messages (oversized, malformed) are terminated and counted; a task for a camera the
worker does not know (yet) is retried with backoff like a failed visit, then reported.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.patrol.engine import CameraOutcome, PatrolRun
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult, glance
from gridworker.streams.redact import redact_url

from .link import NatsLink
from .observations import ObservationPublisher, ensure_stream, settle
from .revisit_store import RevisitStore

if TYPE_CHECKING:  # pragma: no cover
    from nats.aio.msg import Msg

    from gridworker.service import Service

    from .serve import ServeContext
    from .worker import VisitRuntime, WorkerContext

__all__ = [
    "OFFLINE_KINDS",
    "QueueFeed",
    "VisitDone",
    "VisitConsumer",
    "VisitLedger",
    "VisitStats",
    "VisitTask",
    "ensure_visit_stream",
    "publish_cycle",
    "start_visit_consumer",
    "start_visit_publisher",
]

log = logging.getLogger(__name__)

DURABLE = "visitors"
#: The visits consumer's AckWait: a running visit signals progress every third of it, so a
#: dead worker's visit is redelivered within this long of its death (the failover time of a visit).
ACK_WAIT_S = 9.0
MAX_TASK_BYTES = 4096
#: Glance failures that mean the camera is not there: AckTerm, reported, not retried.
OFFLINE_KINDS = frozenset({"open_failed", "open_timeout"})
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class VisitTask(BaseModel):
    """One camera visit of one plan cycle (the message body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    plan_id: Annotated[str, Field(pattern=_ID)]
    cycle: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,40}$")]
    camera_id: Annotated[str, Field(pattern=_ID)]
    keyframes: int = Field(1, ge=1, le=10)
    open_timeout_s: float = Field(5.0, gt=0, le=120)
    keyframe_timeout_s: float = Field(8.0, gt=0, le=300)

    @property
    def visit_id(self) -> str:
        """``plan:cycle:camera``: the message's Nats-Msg-Id and the visit's observations' id stem."""
        return f"{self.plan_id}:{self.cycle}:{self.camera_id}"

    def worst_case_s(self, inference_grace_s: float = 30.0) -> float:
        return self.open_timeout_s + self.keyframe_timeout_s + inference_grace_s


class VisitDone(BaseModel):
    """A worker's word that a visit is over (acked, or given up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visit_id: Annotated[str, Field(max_length=200)]
    worker: Annotated[str, Field(max_length=64)] = ""
    ok: bool
    error_kind: Annotated[str, Field(max_length=40)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None
    total_s: float = Field(0.0, ge=0, le=86_400)
    first_keyframe_s: float | None = Field(None, ge=0, le=86_400)
    deliveries: int = Field(1, ge=1, le=1000)


def visit_subject(link: NatsLink) -> str:
    return f"{link.config.prefix}.visits"


def done_subject(link: NatsLink) -> str:
    return f"{link.config.prefix}.visitdone"


async def ensure_visit_stream(link: NatsLink) -> None:
    """The visits work queue: file storage, one message per visit, duplicates dropped for a day."""
    await ensure_stream(
        link.js,
        StreamConfig(
            name=link.name("visits"),
            subjects=[visit_subject(link)],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_msgs=1_000_000,
            max_msg_size=MAX_TASK_BYTES,
            duplicate_window=86_400.0,
        ),
    )


def publish_cycle(link: NatsLink, tasks: Sequence[VisitTask], *, ensure: bool = True) -> int:
    """Queue one cycle's visits; returns how many were new (a re-published visit is dropped by the
    broker). ``ensure``: create the stream first if missing (a caller that did already skips it)."""
    if ensure:
        link.call(lambda: ensure_visit_stream(link))
    subject = visit_subject(link)

    async def publish_all() -> int:
        fresh = 0
        for task in tasks:
            ack = await link.js.publish(subject, task.model_dump_json().encode(), headers={"Nats-Msg-Id": task.visit_id})
            fresh += not ack.duplicate
        return fresh

    return link.call(publish_all, timeout=link.config.op_timeout_s + 0.01 * len(tasks) + 5.0)


@dataclass(slots=True)
class VisitStats:
    done: int = 0
    offline: int = 0
    retried: int = 0
    given_up: int = 0
    rejected: int = 0
    redelivered: int = 0
    in_flight: int = 0
    done_ids: list[str] = field(default_factory=list)


VisitRunner = Callable[[VisitTask, threading.Event], GlanceResult]
"""Runs one visit (open, keyframes, detection, judgement) on the calling thread."""


class VisitConsumer:
    """A worker's puller of patrol visits (see the module docstring).

    Args:
        link: the worker's NATS link.
        run_visit: does one visit (:func:`pipeline_runner` in a worker).
        sink: the worker's observation publisher (visit scope, outcomes); None in a bench without one.
        concurrency: visits at once on this worker.
        ack_wait_s: longer than a visit's worst case.
        max_deliver: tries of one visit before it is given up (reported).
        backoff_s: delays of the retries after a failed visit (the last one repeats).

    Example::

        consumer = VisitConsumer(link, runner, sink, concurrency=8); consumer.start()
    """

    def __init__(
        self,
        link: NatsLink,
        run_visit: VisitRunner,
        sink: ObservationPublisher | None = None,
        *,
        concurrency: int = 8,
        ack_wait_s: float = 60.0,
        max_deliver: int = 4,
        backoff_s: Sequence[float] = (2.0, 10.0, 30.0),
        known_camera: Callable[[str], bool] | None = None,
        on_done: Callable[[VisitTask, GlanceResult], None] | None = None,
        worker_id: str = "",
        progress_s: float | None = None,
    ) -> None:
        self._link = link
        self._worker = worker_id
        self._progress_s = progress_s if progress_s is not None else max(0.5, ack_wait_s / 3)
        self._running: dict[int, tuple[Msg, threading.Event]] = {}
        self._run = run_visit
        self._sink = sink
        self._concurrency = max(1, concurrency)
        self._ack_wait_s = ack_wait_s
        self._max_deliver = max_deliver
        self._backoff = tuple(backoff_s) or (2.0,)
        self._known = known_camera
        self._on_done = on_done
        self._stop = threading.Event()
        self._slots = threading.Semaphore(self._concurrency)
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="visit")
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = VisitStats()

    def start(self) -> None:
        link = self._link
        link.call(lambda: ensure_visit_stream(link))

        async def subscribe() -> object:
            config = ConsumerConfig(
                durable_name=DURABLE,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait_s,
                max_deliver=self._max_deliver,
                max_ack_pending=10_000,
            )
            return await link.js.pull_subscribe(visit_subject(link), durable=DURABLE, stream=link.name("visits"), config=config)

        sub = link.call(subscribe)
        self._thread = threading.Thread(target=self._loop, args=(sub,), name="visit-puller", daemon=True)
        self._thread.start()
        self._keeper = threading.Thread(target=self._keep_alive, name="visit-progress", daemon=True)
        self._keeper.start()

    def _keep_alive(self) -> None:
        """While a visit runs, tell JetStream every ``progress_s`` that it is in progress (resets
        its AckWait): a live worker's slow visit is never handed out twice, a dead worker's is
        redelivered one AckWait after its last signal."""
        while not self._stop.wait(self._progress_s):
            with self._lock:
                running = [msg for msg, _ in self._running.values()]
            for msg in running:
                self._settle(msg.in_progress)

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more visits and stop those running (at their next packet): each is nak'ed and
        redelivered to another worker."""
        self._stop.set()
        with self._lock:
            for _, visit_stop in self._running.values():
                visit_stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        keeper = getattr(self, "_keeper", None)
        if keeper is not None:
            keeper.join(timeout)

    def _loop(self, sub: object) -> None:
        fetch = getattr(sub, "fetch")
        while not self._stop.is_set():
            free = 0
            while free < self._concurrency and self._slots.acquire(timeout=0.2 if free == 0 else 0):
                free += 1
            if free == 0:
                continue
            try:
                msgs: list[Msg] = self._link.call(lambda: fetch(free, timeout=1.0), timeout=self._link.config.op_timeout_s + 2.0)
            except Exception as exc:  # nothing queued, or NATS restarting
                if not isinstance(exc, (nats.errors.TimeoutError, TimeoutError)):
                    log.debug("visit fetch failed: %s", type(exc).__name__)
                    self._stop.wait(0.5)
                msgs = []
            for _ in range(free - len(msgs)):
                self._slots.release()
            for msg in msgs:
                self._pool.submit(self._one, msg)

    def _settle(self, action: Callable[[], Awaitable[None]]) -> None:
        """A lost ack: the visit is redelivered and redone (its observations de-duplicated)."""
        settle(self._link, action, "visit ack")

    def _signal_done(self, task: VisitTask, result: GlanceResult, deliveries: int) -> None:
        """Tell the case service's patrol run this visit is over (core NATS, best effort: the
        run times the visit out when the signal is lost; an offline camera's report is durable)."""
        done = VisitDone(
            visit_id=task.visit_id, worker=self._worker, ok=result.ok, error_kind=result.error_kind, reason=(result.reason or "")[:500] or None,
            total_s=max(0.0, min(result.total_s, 86_400.0)), first_keyframe_s=result.first_keyframe_s, deliveries=min(deliveries, 1000),
        )
        data = done.model_dump_json().encode()
        subject = done_subject(self._link)
        try:
            self._link.call(lambda: self._link.nc.publish(subject, data))
        except Exception as exc:
            log.debug("visit done signal lost: %s", type(exc).__name__)

    def _one(self, msg: Msg) -> None:
        try:
            self._visit(msg)
        except Exception:
            log.exception("a patrol visit failed unexpectedly; it will be redelivered")
            self._settle(functools.partial(msg.nak, delay=self._backoff[0]))
        finally:
            self._slots.release()

    def _attempt(self, task: VisitTask, stop: threading.Event) -> GlanceResult:
        """Run the visit (in the sink's visit scope); one that raises is a failed visit like any
        other ("error"): retried with backoff, and on its last delivery reported and terminated."""
        started = time.time()
        try:
            if self._sink is None:
                return self._run(task, stop)
            with self._sink.visit_scope(task.visit_id):
                return self._run(task, stop)
        except Exception as exc:
            log.exception("patrol visit %s failed unexpectedly", task.visit_id)
            return GlanceResult(
                task.camera_id, "", started, total_s=time.time() - started, error_kind="error", error=f"visit failed: {type(exc).__name__}"
            )

    def _visit(self, msg: Msg) -> None:
        try:
            if len(msg.data) > MAX_TASK_BYTES:
                raise ValueError("oversized")
            task = VisitTask.model_validate_json(msg.data)
        except (ValueError, ValidationError) as exc:
            with self._lock:
                self.stats.rejected += 1
            log.warning("visit task refused: %s", str(exc).splitlines()[0][:120])
            self._settle(msg.term)
            return
        deliveries = int(msg.metadata.num_delivered) if msg.metadata is not None else 1
        if deliveries > 1:
            with self._lock:
                self.stats.redelivered += 1
        stop = threading.Event()
        with self._lock:
            self.stats.in_flight += 1
            self._running[id(msg)] = (msg, stop)
        try:
            if self._known is not None and not self._known(task.camera_id):
                # a camera this worker does not know (yet: added a moment ago, or its settings
                # not loaded here): retried with backoff, maybe by another worker, then reported
                result = GlanceResult(task.camera_id, "", time.time(), error_kind="error", error="unknown camera: this worker does not know it (yet)")
            else:
                result = self._attempt(task, stop)
        finally:
            with self._lock:
                self.stats.in_flight -= 1
                self._running.pop(id(msg), None)
        if self._on_done is not None:
            self._on_done(task, result)
        if result.ok:
            self._settle(msg.ack)
            self._signal_done(task, result, deliveries)
            with self._lock:
                self.stats.done += 1
                self.stats.done_ids.append(task.visit_id)
                del self.stats.done_ids[:-10_000]
            return
        offline = result.error_kind in OFFLINE_KINDS
        last_try = deliveries >= self._max_deliver
        if offline or last_try:
            if self._sink is not None:
                self._sink.visit_outcome(
                    task.camera_id, task.visit_id, ok=False, error_kind=result.error_kind, reason=result.reason, deliveries=deliveries
                )
            self._settle(msg.term)
            self._signal_done(task, result, deliveries)
            with self._lock:
                self.stats.offline += offline
                self.stats.given_up += not offline
            log.info("visit %s given up (%s) after %d delivery(ies)", task.visit_id, result.error_kind, deliveries)
            return
        delay = 0.0 if result.error_kind == "stopped" else self._backoff[min(deliveries - 1, len(self._backoff) - 1)]
        self._settle(functools.partial(msg.nak, delay=delay))
        with self._lock:
            self.stats.retried += 1


def glance_runner(url_of: Callable[[str], str | None]) -> VisitRunner:
    """A runner that only glances (no analysis): for benches and for cameras without a pipeline slot."""

    def run(task: VisitTask, stop: threading.Event) -> GlanceResult:
        url = url_of(task.camera_id)
        if url is None:
            return GlanceResult(task.camera_id, "", time.time(), error_kind="open_failed", error="camera not in the catalogue")
        return glance(
            task.camera_id, url, keyframes=task.keyframes, open_timeout_s=task.open_timeout_s, keyframe_timeout_s=task.keyframe_timeout_s, stop=stop
        )

    return run


def start_visit_consumer(ctx: WorkerContext, runtime: VisitRuntime) -> VisitConsumer:
    """The worker's visit consumer (``gridworker worker``): visits of patrol-only cameras through
    the worker's pipeline (``Pipeline.glance_visit``: the shared batcher, the camera's visit judge,
    the observation sink), judged with the worker's observation publisher in visit scope."""
    pipeline = runtime.pipeline

    def url_of(camera_id: str) -> str | None:
        """The camera's URL in the worker's registry now (an edited URL, a removed camera: at once)."""
        return next((t.url for t in runtime.targets() if t.camera_id == camera_id), None)

    glance_only = glance_runner(url_of)
    revisit = RevisitStore(ctx.link)  # the revisit check's memory, shared by the workers (cluster/revisit_store.py)

    def run(task: VisitTask, stop: threading.Event) -> GlanceResult:
        slot = pipeline.slot(task.camera_id)
        if slot is None or not slot.patrol_only:
            return glance_only(task, stop)
        revisit.share(slot)
        take = functools.partial(glance_only, task, stop)
        return pipeline.glance_visit(task.camera_id, take, stop, task.worst_case_s())

    def done(task: VisitTask, result: GlanceResult) -> None:
        if result.ok:
            ctx.visit_done()

    sink = runtime.sink if isinstance(runtime.sink, ObservationPublisher) else None
    consumer = VisitConsumer(
        ctx.link, run, sink, concurrency=ctx.config.visit_slots, ack_wait_s=ACK_WAIT_S, known_camera=lambda c: url_of(c) is not None, on_done=done,
        worker_id=ctx.worker_id,
    )
    consumer.start()
    return consumer


class VisitLedger:
    """The patrol visits this case service queued, waiting for a worker or finished lately: the
    observation consumer accepts a visit's messages only for one of these (a visit id is no
    secret, but one the server never queued, or for another camera, is a forgery).

    Args:
        keep_s: a visit is still known this long after it finished (its observations may be
            consumed well after the worker's done signal, or redone after a redelivery).
        max_visits: the most remembered (the oldest forgotten first).

    Example:
        >>> ledger = VisitLedger()
        >>> ledger.issue(VisitTask(plan_id="p", cycle="r-1", camera_id="cam1"))
        >>> ledger.issued("p:r-1:cam1", "cam1"), ledger.issued("p:r-1:cam1", "cam2"), ledger.issued("p:r-2:cam1", "cam1")
        (True, False, False)
    """

    def __init__(self, *, keep_s: float = 86_400.0, max_visits: int = 200_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._keep_s = keep_s
        self._max = max_visits
        self._clock = clock
        self._lock = threading.Lock()
        self._visits: OrderedDict[str, tuple[str, float | None]] = OrderedDict()  # visit id -> (camera, finished at)

    def issue(self, task: VisitTask) -> None:
        """The visit is being queued (call before publishing it)."""
        with self._lock:
            self._visits[task.visit_id] = (task.camera_id, None)
            self._visits.move_to_end(task.visit_id)
            while len(self._visits) > self._max:
                self._visits.popitem(last=False)

    def finish(self, visit_id: str) -> None:
        """The visit is over here (done, given up or timed out): known ``keep_s`` longer."""
        with self._lock:
            entry = self._visits.get(visit_id)
            if entry is not None:
                self._visits[visit_id] = (entry[0], self._clock())

    def issued(self, visit_id: str, camera_id: str) -> bool:
        """Whether ``visit_id`` is a visit of ``camera_id`` queued here, waiting or finished within ``keep_s``."""
        with self._lock:
            entry = self._visits.get(visit_id)
            if entry is None or entry[0] != camera_id:
                return False
            finished = entry[1]
            if finished is not None and self._clock() - finished > self._keep_s:
                del self._visits[visit_id]
                return False
            return True


class QueueFeed:
    """The case service's patrol runs in cluster mode: each visit of a plan's cycle is a message
    on the visits queue, done by whichever worker pulls it.

    A :class:`~gridworker.patrol.engine.PatrolRun` still walks the plan (cycles, order, time
    windows, offline cameras sidelined, status for the console); its visitor publishes the
    visit (``Nats-Msg-Id = plan:cycle:camera``, the cycle being ``<run>-<n>``: the run's start
    and the camera's n-th visit in it) and waits for the worker's done signal. The plan's
    ``concurrency`` is the number of visits in flight over all workers (workers × their slots).
    A continuously watched camera (``continuous_fps`` gives its analysis fps) is not sent to the
    workers: a second RTSP session would add nothing to the rules its worker already runs on
    its stream, so its visit is answered here (as the embedded service answers it).

    Example::

        feed = QueueFeed(link, service.patrol_targets); feed.start()
        service.patrol.make_run = feed.make_run
    """

    def __init__(
        self,
        link: NatsLink,
        targets: Callable[[], Sequence[PatrolTarget]],
        *,
        on_outcome: Callable[[PatrolPlan, CameraOutcome], None] | None = None,
        wait_s: float | None = None,
        ledger: VisitLedger | None = None,
        continuous_fps: Callable[[str], float | None] | None = None,
    ) -> None:
        self._link = link
        #: a continuously watched camera's analysis fps (None: a patrol camera, visited by a worker)
        self._continuous_fps = continuous_fps
        #: the visits queued here (what the observation consumer checks a visit's messages against)
        self.ledger = ledger if ledger is not None else VisitLedger()
        self._targets = targets
        self._on_outcome = on_outcome
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[VisitDone]]] = {}
        self._sub: object | None = None
        #: (time, signal) of every visit of this feed's runs that finished, newest last (benches)
        self.finished: deque[tuple[float, VisitDone]] = deque(maxlen=100_000)

    def start(self) -> None:
        link = self._link
        link.call(lambda: ensure_visit_stream(link))

        async def on_done(msg: Msg) -> None:
            self._done(msg.data)

        async def subscribe() -> object:
            return await link.nc.subscribe(done_subject(link), cb=on_done)

        self._sub = link.call(subscribe)

    def stop(self, timeout: float = 5.0) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                self._link.call(getattr(sub, "unsubscribe"), timeout)
            except Exception as exc:
                log.debug("visit done unsubscribe: %s", type(exc).__name__)
        with self._lock:
            for event, _ in self._waiting.values():
                event.set()

    def _done(self, raw: bytes) -> None:
        try:
            done = VisitDone.model_validate_json(raw[:4096])
        except ValidationError:
            return
        with self._lock:
            waiter = self._waiting.get(done.visit_id)
        if waiter is not None:
            self.finished.append((time.time(), done))
            waiter[1].append(done)
            waiter[0].set()

    def make_run(self, plan: PatrolPlan) -> PatrolRun:
        run_id = f"{int(time.time() * 1000):x}"
        counts: dict[str, int] = {}
        count_lock = threading.Lock()
        wait_s = self._wait_s if self._wait_s is not None else 4 * (plan.visit_budget_s() + 30.0 + 15.0) + 60.0

        def visit(
            target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]
        ) -> GlanceResult:
            fps = self._continuous_fps(target.camera_id) if self._continuous_fps is not None else None
            if fps is not None:
                return _watched_visit(target, stop, fps)
            with count_lock:
                n = counts[target.camera_id] = counts.get(target.camera_id, 0) + 1
            task = VisitTask(
                plan_id=plan.id, cycle=f"{run_id}-{n}", camera_id=target.camera_id, keyframes=plan.keyframes,
                open_timeout_s=plan.open_timeout_s, keyframe_timeout_s=plan.keyframe_timeout_s,
            )
            return self.visit(task, stop, wait_s)

        def outcome(result: CameraOutcome) -> None:
            if self._on_outcome is not None:
                self._on_outcome(plan, result)

        return PatrolRun(plan, self._targets, lambda target, frames: None, visitor=visit, on_outcome=outcome)

    def visit(self, task: VisitTask, stop: threading.Event, wait_s: float) -> GlanceResult:
        """Queue one visit and wait for a worker to finish it (or give it up)."""
        started = time.time()
        event, box = threading.Event(), []  # type: tuple[threading.Event, list[VisitDone]]
        with self._lock:
            self._waiting[task.visit_id] = (event, box)
        self.ledger.issue(task)
        try:
            publish_cycle(self._link, [task], ensure=False)
            deadline = time.monotonic() + wait_s
            while not event.wait(0.5):
                if stop.is_set():
                    return GlanceResult(task.camera_id, "", started, error_kind="stopped", error="stopped")
                if time.monotonic() > deadline:
                    return GlanceResult(task.camera_id, "", started, total_s=time.time() - started, error_kind="error", error="no worker finished the visit in time")
        except Exception as exc:  # NATS away: this visit fails, the run carries on
            return GlanceResult(task.camera_id, "", started, total_s=time.time() - started, error_kind="error", error=f"visit not queued: {type(exc).__name__}")
        finally:
            with self._lock:
                self._waiting.pop(task.visit_id, None)
            self.ledger.finish(task.visit_id)
        if not box:
            return GlanceResult(task.camera_id, "", started, error_kind="stopped", error="stopped")
        done = box[0]
        kind = done.error_kind if done.error_kind in _GLANCE_KINDS else ("error" if not done.ok else None)
        # the worker's reason is "<kind>: <detail>" already; the result names the kind itself
        detail = (done.reason or "").removeprefix(f"{done.error_kind}: ") if done.error_kind else done.reason
        return GlanceResult(
            task.camera_id, "", started, total_s=done.total_s, first_keyframe_s=done.first_keyframe_s,
            error_kind=kind, error=detail if not done.ok else None,  # type: ignore[arg-type]
        )


def _watched_visit(target: PatrolTarget, stop: threading.Event, fps: float) -> GlanceResult:
    """The visit of a continuously watched camera: not opened again, no message to the workers
    (all its rules already run on its stream, on the worker that holds it); like the embedded
    service's visit (its next analysed frame), it lasts one frame interval."""
    started, t0 = time.time(), time.monotonic()
    stopped = stop.wait(1.0 / fps)
    took = time.monotonic() - t0
    url = redact_url(target.url)
    if stopped:
        return GlanceResult(target.camera_id, url, started, total_s=took, error_kind="stopped", error="stopped")
    return GlanceResult(target.camera_id, url, started, first_keyframe_s=took, total_s=took)


def _continuous_fps(service: Service, camera_id: str) -> float | None:
    """The camera's analysis fps when it is watched continuously; None for a patrol camera (or an unknown one)."""
    try:
        config = service.camera(camera_id).config
    except KeyError:
        return None
    return float(config.fps) if config.watch == "continuous" else None


_GLANCE_KINDS = frozenset({"open_failed", "open_timeout", "keyframe_timeout", "ended", "stopped", "error"})


def start_visit_publisher(ctx: ServeContext) -> QueueFeed:
    """Serve side: plan cycles go out as visit messages (the service's patrol runs use a
    :class:`QueueFeed` instead of its own pipeline; the patrol API and console are unchanged)."""
    service = ctx.service
    feed = QueueFeed(
        ctx.link, service.patrol_targets, on_outcome=lambda plan, o: service.metrics.patrol_visit(plan.id, o.ok, o.error_kind), ledger=ctx.visits,
        continuous_fps=functools.partial(_continuous_fps, service),
    )
    feed.start()
    service.patrol.make_run = feed.make_run
    return feed
