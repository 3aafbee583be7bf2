"""Observations from workers to the case service, through a JetStream stream.

Worker side, :class:`ObservationPublisher` is the worker pipeline's
:class:`~gridworker.vision.observations.IncidentSink`: every analysed frame and every check's
report becomes one message (``cluster/wire.py``: what crosses the wire and why) on the stream
``<prefix>_obs`` (subject ``<prefix>.obs``), each with a unique ``Nats-Msg-Id``:

* a continuously watched camera's observation carries the camera lease's fencing token
  (``LeaseTable.token``); without a live lease it is dropped and counted (the camera is not
  this worker's any more). Its id is ``<worker>.<instance>.<n>``; a publish that failed (NATS
  restarting) is retried with the same id, so the broker keeps it once. They leave through a
  bounded queue and one publisher thread: the pipeline never waits on NATS, and a NATS restart
  loses nothing as long as the queue (``max_pending``) holds what piles up meanwhile.
* inside a patrol visit (:meth:`ObservationPublisher.visit_scope`, set by the visit consumer on
  the visit's thread) an observation carries the visit id ``plan:cycle:camera`` and its id is
  ``<visit>.<k>``: the same whichever worker does the visit, so a visit redone after its
  worker died is applied once. These are published synchronously; the visit is acked only
  after its observations are stored by JetStream.
* a continuous camera's frame that may open an incident also gets its evidence clip
  (:class:`~gridworker.cluster.clips.ClipCutter`, when ``evidence.clips_dir`` is set: the
  shared folder): cut from the camera's ring once ``clip_post_s`` has passed, then a clip
  reference (id ``<observation id>.clip``) follows through the same queue.

Case side, :class:`ObservationConsumer` is the one durable pull consumer ``cases`` of that
stream, feeding the service's one :class:`~gridworker.incidents.IncidentManager`. Per message:
parse and validate (hostile: refused with ``term``, counted by reason, the consumer carries
on), skip an id already applied (:class:`~gridworker.cluster.applied.AppliedLog`), check it
against what the server issued: a continuous camera's message (frame, report, clip reference)
against the camera's lease record, read from the leases bucket once per batch (a token above
the lease's is redelivered later, ``nak`` with a delay, then refused; the lease's own token only
from the lease's worker), a patrol visit's message against the visits this service queued
(:class:`~gridworker.cluster.visits.VisitLedger`; the visit id names its camera); refuse a
lease token below the camera's fence (the highest token accepted, or the current lease's), skip
a frame older than the camera's last applied one, apply it, record the id and the fence in the
database, and only then ``ack``. A fetched batch (up to 64) is checked against the applied ids
in one query and recorded in one transaction, then acked: per message that was two database
transactions, a quarter of the case service's CPU in the cluster bench. A case service that dies anywhere in that loses nothing: the
message is redelivered; applied again, its incidents are found open under their keys. A clip
reference is checked against the lease like a frame; below the fence it passes only when its
frame was applied (a clip cut before a handover), never raises the fence, and goes to ``on_clip``
(:class:`~gridworker.cluster.clips.ClipAttacher`: the clip recorded for the incidents its frame opened).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from gridworker.vision.analyzer import FrameAnalysis
from gridworker.vision.observations import IncidentSink, ObjectReport

from .applied import AppliedLog
from .clips import ClipAttacher, ClipCutter
from .leases import LeaseRecord, read_lease
from .link import NatsLink
from .wire import MAX_IMAGE_BYTES, MAX_MESSAGE_BYTES, Observation, WireError, encode_frame, encode_outcome, encode_report, frame_keys, parse_observation, to_analysis, to_report, wire_keys

if TYPE_CHECKING:  # pragma: no cover
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

    from gridworker.incidents.db import Database

    from .serve import ServeContext
    from .worker import WorkerContext

__all__ = [
    "ConsumerStats",
    "ObservationConsumer",
    "ObservationPublisher",
    "PublisherStats",
    "StreamRefused",
    "build_worker_sink",
    "ensure_obs_stream",
    "ensure_stream",
    "read_leases",
    "settle",
    "start_observation_consumer",
]

log = logging.getLogger(__name__)

#: JetStream's error code for a stream whose storage the server cannot reserve.
INSUFFICIENT_STORAGE = 10047


class StreamRefused(RuntimeError):
    """The NATS server would not make a stream this cluster needs (its message says why and what to change)."""


#: The broker drops a message whose Nats-Msg-Id it saw this recently (seconds).
DUPLICATE_WINDOW_S = 600.0
DURABLE = "cases"


def obs_subject(link: NatsLink) -> str:
    return f"{link.config.prefix}.obs"


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, size_setting: str | None = None) -> None:
    """Create the stream ``config.name`` unless it exists. An existing one is left as it is; a
    different size than ``config`` asks for is logged (JetStream keeps the size it was made with).
    ``size_setting``: the setting that sizes the stream, named when the server has no room.

    Raises:
        StreamRefused: the server has no room for the stream on its store.
    """
    try:
        info = await js.stream_info(str(config.name))
    except NotFoundError:
        pass
    else:
        if config.max_bytes and info.config.max_bytes != config.max_bytes:
            log.warning(
                "stream %s exists with max_bytes %s; %s asks for %s: left as it is (delete or edit the stream to change it)",
                config.name, info.config.max_bytes, size_setting or "the configuration", config.max_bytes,
            )
        return
    try:
        await js.add_stream(config)
    except APIError as exc:
        if exc.err_code != INSUFFICIENT_STORAGE:
            raise
        size = f"{config.max_bytes / 1e6:.0f} MB" if config.max_bytes and config.max_bytes > 0 else "unbounded"
        lower = f", or lower {size_setting}" if size_setting else ""
        raise StreamRefused(
            f"the NATS server has no room for stream {config.name} ({size}): its JetStream store (max_file_store) is "
            f"taken by other streams or its disk is small; give it room{lower}"
        ) from exc


def settle(link: NatsLink, action: Callable[[], Awaitable[None]], what: str) -> None:
    """Ack, nak, term or signal progress on a JetStream message; a lost one is logged, not raised
    (the message is redelivered, and its redelivery skipped or redone idempotently)."""
    try:
        link.call(action)
    except Exception as exc:
        log.debug("%s failed: %s", what, type(exc).__name__)


async def read_leases(kv: KeyValue, camera_ids: Sequence[str]) -> dict[str, LeaseRecord | None]:
    """Each camera's lease now (None: never claimed, released or lapsed), read at once."""
    records = await asyncio.gather(*(read_lease(kv, cam) for cam in camera_ids))
    return dict(zip(camera_ids, records, strict=True))


async def ensure_obs_stream(link: NatsLink) -> None:
    """Create (or leave as is) the observations stream ``<prefix>_obs``: file storage of at most
    ``cluster.obs_stream_mb``, work-queue retention (a message goes once acked by the case
    service), refused publishes when full (a worker retries, nothing is dropped silently),
    messages capped at :data:`MAX_MESSAGE_BYTES`."""
    await ensure_stream(
        link.js,
        StreamConfig(
            name=link.name("obs"),
            subjects=[obs_subject(link)],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_bytes=link.config.obs_stream_mb * 1_000_000,
            max_msg_size=MAX_MESSAGE_BYTES,
            duplicate_window=DUPLICATE_WINDOW_S,
        ),
        size_setting="cluster.obs_stream_mb",
    )


# -- worker side --------------------------------------------------------------------------


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    retries: int = 0
    dropped_unleased: int = 0
    dropped_full: int = 0
    images: int = 0


@dataclass(slots=True)
class _VisitScope:
    visit_id: str
    counter: itertools.count[int] = field(default_factory=itertools.count)


@dataclass(frozen=True, slots=True)
class _Pending:
    msg_id: str
    data: bytes


class ObservationPublisher:
    """The worker's incident sink: observations out to the case service (see the module docstring).

    Args:
        link: the worker's NATS link.
        worker_id: this worker.
        token_of: the camera's lease token while this worker holds it, else None (``LeaseTable.token``).
        max_pending: continuous observations queued while NATS does not answer; more are dropped and counted.
        publish_timeout_s: a visit's observations are retried this long before the visit fails.

    Example::

        sink = ObservationPublisher(link, "w1", leases.token)
        pipeline = Pipeline(detector, sink); ...; sink.close(5.0)
    """

    def __init__(
        self,
        link: NatsLink,
        worker_id: str,
        token_of: Callable[[str], int | None],
        *,
        max_pending: int = 10_000,
        publish_timeout_s: float = 30.0,
        jpeg_quality: int = 80,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._worker = worker_id
        self._instance = secrets.token_hex(4)
        self._token_of = token_of
        self._max_pending = max_pending
        self._publish_timeout_s = publish_timeout_s
        self._quality = jpeg_quality
        self._clock = clock
        self._counter = itertools.count(1)
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._local = threading.local()
        self._last_keys: dict[str, frozenset[tuple[str, str, str]]] = {}
        self.stats = PublisherStats()
        self._subject = obs_subject(link)
        #: cuts the evidence clip of each frame that may open an incident (``cluster/clips.py``); None: no clips
        self.clips: ClipCutter | None = None
        self._thread = threading.Thread(target=self._drain, name="obs-publisher", daemon=True)
        self._thread.start()

    # -- the sink ----------------------------------------------------------------------
    def observe(self, analysis: FrameAnalysis, *, partial: bool = False) -> None:
        cam = analysis.frame.camera_id
        scope: _VisitScope | None = getattr(self._local, "scope", None)
        keys = frame_keys(analysis)
        if scope is not None:
            jpeg = self._jpeg(analysis) if keys else None
            obs_id = f"{scope.visit_id}.{next(scope.counter)}"
            data = encode_frame(
                analysis, obs_id=obs_id, worker=self._worker, token=0, visit=scope.visit_id, sent_at=self._clock(), partial=partial, jpeg=jpeg
            )
            self._publish_now(obs_id, data)
            return
        token = self._token_of(cam)
        if token is None:
            self.stats.dropped_unleased += 1
            self._last_keys.pop(cam, None)  # back on this worker later: its first active frame carries the picture
            return
        new_keys = keys - self._last_keys.get(cam, frozenset())
        self._last_keys[cam] = keys
        jpeg = self._jpeg(analysis) if new_keys else None
        obs_id = self._next_id()
        data = encode_frame(analysis, obs_id=obs_id, worker=self._worker, token=token, visit=None, sent_at=self._clock(), partial=partial, jpeg=jpeg)
        self._enqueue(_Pending(obs_id, data))
        if new_keys and self.clips is not None:  # it may open an incident: its clip follows once cut
            self.clips.request(cam, obs_id, token, float(analysis.frame.ts), int(analysis.frame.seq))

    def forget(self, camera_id: str) -> None:
        """The camera left this worker (moved, removed): should it come back, its first
        active frame carries the picture again (the case side opens a new incident then)."""
        self._last_keys.pop(camera_id, None)

    def report(self, report: ObjectReport) -> None:
        scope: _VisitScope | None = getattr(self._local, "scope", None)
        if scope is not None:
            obs_id = f"{scope.visit_id}.{next(scope.counter)}"
            data = encode_report(report, obs_id=obs_id, worker=self._worker, token=0, visit=scope.visit_id, sent_at=self._clock())
            self._publish_now(obs_id, data)
            return
        token = self._token_of(report.camera_id)
        if token is None:
            self.stats.dropped_unleased += 1
            return
        obs_id = self._next_id()
        self._enqueue(_Pending(obs_id, encode_report(report, obs_id=obs_id, worker=self._worker, token=token, visit=None, sent_at=self._clock())))

    @contextlib.contextmanager
    def visit_scope(self, visit_id: str) -> Iterator[None]:
        """Observations made on this thread inside the block belong to patrol visit ``visit_id``."""
        self._local.scope = _VisitScope(visit_id)
        try:
            yield
        finally:
            self._local.scope = None

    def visit_outcome(self, camera_id: str, visit_id: str, *, ok: bool, error_kind: str | None, reason: str | None, deliveries: int) -> None:
        """Report a visit given up (an offline camera) to the case service (synchronous)."""
        data = encode_outcome(
            camera_id, obs_id=f"{visit_id}.outcome", worker=self._worker, visit=visit_id, sent_at=self._clock(), ok=ok,
            error_kind=error_kind, reason=reason, deliveries=deliveries,
        )
        self._publish_now(f"{visit_id}.outcome", data)

    def send_later(self, msg_id: str, data: bytes) -> None:
        """Queue one ready message (a clip reference) behind the continuous observations."""
        self._enqueue(_Pending(msg_id, data))

    def close(self, timeout: float = 5.0) -> None:
        """Cut the pending clips, publish what is queued (up to ``timeout``), then stop the publisher thread."""
        deadline = time.monotonic() + timeout
        if self.clips is not None:
            self.clips.stop(timeout / 2)
        with self._cond:
            while self._queue and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._closed = True
            self._cond.notify_all()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        if self._queue:
            log.warning("%d observation(s) not published at close", len(self._queue))

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- internals ---------------------------------------------------------------------
    def _next_id(self) -> str:
        return f"{self._worker}.{self._instance}.{next(self._counter)}"

    def _jpeg(self, analysis: FrameAnalysis) -> bytes | None:
        image = analysis.frame.image
        for quality in (self._quality, 50):
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(buf) <= MAX_IMAGE_BYTES * 3 // 4:
                self.stats.images += 1
                return bytes(buf)
        return None  # the incident's snapshot is drawn on a grey stand-in then

    def _enqueue(self, item: _Pending) -> None:
        with self._cond:
            if len(self._queue) >= self._max_pending or self._closed:
                self.stats.dropped_full += 1
                if self.stats.dropped_full in (1, 10, 100) or self.stats.dropped_full % 1000 == 0:
                    log.warning("observation queue full: %d observation(s) dropped so far", self.stats.dropped_full)
                return
            self._queue.append(item)
            self._cond.notify_all()

    async def _publish(self, msg_id: str, data: bytes) -> None:
        await self._link.js.publish(self._subject, data, headers={"Nats-Msg-Id": msg_id})

    def _publish_now(self, msg_id: str, data: bytes) -> None:
        """Publish one message, retrying with the same id until stored or ``publish_timeout_s`` passed.

        Raises:
            TimeoutError: JetStream did not store it in time.
        """
        deadline = time.monotonic() + self._publish_timeout_s
        delay = 0.1
        while True:
            try:
                self._link.call(lambda: self._publish(msg_id, data))
                self.stats.published += 1
                return
            except Exception as exc:  # NATS restarting, the stream full: the same id again
                if time.monotonic() + delay > deadline:
                    raise TimeoutError(f"observation {msg_id} not stored: {type(exc).__name__}") from None
                self.stats.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _drain(self) -> None:
        delay = 0.1
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait(1.0)
                if not self._queue:
                    return
                item = self._queue[0]
            try:
                self._link.call(lambda: self._publish(item.msg_id, item.data))
            except Exception as exc:  # kept at the head of the queue and sent again, same id
                with self._cond:
                    if self._closed:
                        return
                self.stats.retries += 1
                log.debug("observation publish failed (%s); retrying", type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()
            self.stats.published += 1


def build_worker_sink(ctx: WorkerContext) -> ObservationPublisher:
    """The worker's incident sink (``gridworker worker``): the observations stream exists first."""
    ctx.link.call(lambda: ensure_obs_stream(ctx.link))
    sink = ObservationPublisher(ctx.link, ctx.worker_id, ctx.leases.token)
    evidence = ctx.settings.evidence
    if evidence.clips and evidence.clips_dir is not None:  # clips only into a folder set explicitly (the shared mount)
        sink.clips = ClipCutter(
            evidence.clips_dir, ctx.worker_id, ctx.packet_ring, sink.send_later, pre_s=evidence.clip_pre_s, post_s=evidence.clip_post_s,
            min_free_bytes=int(evidence.min_free_mb * 1e6),
        )
        sink.clips.start()
    return sink


# -- case side --------------------------------------------------------------------------


class ObservationTarget(Protocol):
    """What applies observations: the service's ``IncidentManager``."""

    def observe(self, analysis: FrameAnalysis, *, partial: bool = False) -> object: ...

    def report(self, report: ObjectReport) -> object: ...


@dataclass(slots=True)
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    outcomes: int = 0
    clips: int = 0
    #: redelivered later (nak): a lease token ahead of the camera's lease as read, a visit not queued here
    deferred: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class Decision:
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    OUTCOME = "outcome"
    REJECTED = "rejected"  # malformed, oversized, wrong version, unknown camera, stale lease, not the lease holder, unknown visit
    DEFERRED = "deferred"  # a lease token ahead of the lease as read, a visit not queued here: redelivered later (nak with a delay)


LeaseLookup = Callable[[Sequence[str]], Mapping[str, LeaseRecord | None]]
"""camera ids -> each one's lease now (None: none), read from the leases bucket; raises when it cannot be read."""


class ObservationConsumer:
    """The case service's consumer of the observations stream (see the module docstring).

    Args:
        link: the case service's NATS link.
        target: the one incident writer.
        db: where applied ids and fences are kept (the service's database).
        lease_token: the camera's current lease token (0 or None: no lease), read from the
            leases bucket; an observation below it is stale.
        leases: reads the cameras' lease records (:func:`read_leases`), once per fetched batch: a
            continuous camera's message (frame, report, clip reference) whose token is above the
            lease's is deferred (redelivered after ``defer_s``; refused once deferred for
            ``defer_for_s``), one with the lease's token must come from the lease's worker. The
            last record read stands in for a camera whose lease is gone (a lapsed or released one).
            None: not checked (tests without a leases bucket).
        visit_issued: ``(visit id, camera id)`` -> whether this case service queued that patrol
            visit lately (:meth:`~gridworker.cluster.visits.VisitLedger.issued`); a visit's
            message for any other is deferred like a token ahead of its lease (another case
            service may have queued it), then refused. None: only the visit id's camera is checked.
        known_camera: whether the camera exists (an unknown one is refused).
        on_outcome: told each patrol visit outcome a worker reported (an offline camera).
        on_clip: told each clip reference (``ClipAttacher.attach``); a :class:`WireError` it raises refuses it.
        batch: messages fetched at once.
        keep_s: applied ids are remembered this long; older ones are pruned every ``prune_every_s``
            (checked after every batch, so a busy stream prunes too).
        may_write: whether this case service may write incidents now (it holds the case-writer
            lease, ``cluster/serve.py``); while it answers False nothing is fetched. None: always.

    Example::

        consumer = ObservationConsumer(link, service.incidents, service.db)
        consumer.start(); ...; consumer.stop(5.0)
    """

    def __init__(
        self,
        link: NatsLink,
        target: ObservationTarget,
        db: Database,
        *,
        lease_token: Callable[[str], int | None] | None = None,
        known_camera: Callable[[str], bool] | None = None,
        on_outcome: Callable[[Observation], None] | None = None,
        on_clip: Callable[[Observation], object] | None = None,
        leases: LeaseLookup | None = None,
        visit_issued: Callable[[str, str], bool] | None = None,
        batch: int = 64,
        keep_s: float = 7 * 86_400.0,
        prune_every_s: float = 60.0,
        may_write: Callable[[], bool] | None = None,
        defer_s: float = 2.0,
        defer_for_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._target = target
        self._applied = AppliedLog(db)
        self._lease_token = lease_token
        self._known = known_camera
        self._on_outcome = on_outcome
        self._on_clip = on_clip
        self._leases = leases
        self._visit_issued = visit_issued
        self._lease_seen: dict[str, LeaseRecord] = {}
        self._deferred: OrderedDict[str, float] = OrderedDict()
        self._defer_s = defer_s
        self._defer_for_s = defer_for_s
        self._batch = batch
        self._keep_s = keep_s
        self._prune_every_s = prune_every_s
        self._may_write = may_write
        self._clock = clock
        self._fences: dict[str, int] = {}
        self._last_ts: dict[str, float] = {}
        self._last_keys: dict[str, frozenset[tuple[str, str, str]]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.stats = ConsumerStats()

    # -- messages ------------------------------------------------------------------------
    def handle(self, raw: bytes) -> str:
        """Apply one message if it should be; returns the :class:`Decision`. Never raises for
        a bad message (a failing incident write does raise: the message is then redelivered)."""
        outcome = self.handle_all([raw])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def handle_all(self, raws: Sequence[bytes]) -> list[str | Exception]:
        """:meth:`handle` for a fetched batch, in order: one query for the ids already applied and
        one transaction recording those applied now (ids and fences) instead of two per message.

        Returns, per message, its :class:`Decision` or the exception that failed it (an incident
        write, or recording the batch): such a message must be redelivered, not acked. Nothing of
        the batch counts as applied (ids, fences) before its record is committed.
        """
        out: list[str | Exception] = [Decision.REJECTED] * len(raws)
        parsed: list[tuple[int, Observation]] = []
        for i, raw in enumerate(raws):
            try:
                parsed.append((i, parse_observation(raw)))
            except WireError as exc:
                self.stats.reject(exc.reason)
                log.warning("observation refused: %s", exc)
        try:
            seen = self._applied.seen_among([obs.id for _, obs in parsed if obs.id not in self._recent])
        except Exception as exc:  # the database is away: the whole batch is redelivered
            for i, _ in parsed:
                out[i] = exc
            return out
        try:
            self._read_leases({obs.camera_id for _, obs in parsed if obs.visit is None})
        except Exception as exc:  # NATS away: nothing is checked against a lease unread; redelivered
            for i, _ in parsed:
                out[i] = exc
            return out
        fences: dict[str, int] = {}  # fences raised by this batch, not yet recorded
        applied: list[tuple[int, Observation, int]] = []
        batch_ids: set[str] = set()
        for i, obs in parsed:
            if obs.id in self._recent or obs.id in seen or obs.id in batch_ids:
                self.stats.duplicates += 1
                out[i] = Decision.DUPLICATE
                continue
            if self._known is not None and not self._known(obs.camera_id):
                self.stats.reject("unknown camera")
                log.warning("observation %s refused: unknown camera", obs.id)
                continue
            if obs.visit is not None:
                unknown = self._visit_refusal(obs)
                if unknown is not None:
                    out[i] = unknown
                    continue
            fenced = obs.visit is None and obs.clip is None
            if obs.visit is None:
                held = self._lease_refusal(obs)
                if held is not None:
                    out[i] = held
                    continue
                fence = max(self._fence(obs.camera_id), fences.get(obs.camera_id, 0))
                # a clip reference below the fence passes only as the evidence of a frame applied before the handover
                if obs.token < fence and not (obs.clip is not None and self._was_applied(obs.clip.of, batch_ids)):
                    self.stats.reject("stale lease")
                    log.warning("observation %s from %s refused: lease token %d is stale for %s", obs.id, obs.worker, obs.token, obs.camera_id)
                    continue
            try:
                out[i] = self._apply(obs)
            except WireError as exc:
                self.stats.reject(exc.reason)
                log.warning("observation %s refused: %s", obs.id, exc)
                continue
            except Exception as exc:  # the incident write failed: this one is redelivered
                out[i] = exc
                continue
            raise_fence = fenced and obs.token > max(self._fences.get(obs.camera_id, 0), fences.get(obs.camera_id, 0))
            if raise_fence:
                fences[obs.camera_id] = obs.token
            applied.append((i, obs, obs.token if raise_fence else 0))
            batch_ids.add(obs.id)
        try:
            self._applied.record_all([(obs.id, obs.camera_id, token) for _, obs, token in applied], at=self._clock())
        except Exception as exc:  # applied but not recorded: redelivered, applied again (idempotent)
            for i, _, _ in applied:
                out[i] = exc
            return out
        for _, obs, _ in applied:
            self._remember(obs)
        return out

    def _read_leases(self, camera_ids: set[str]) -> None:
        """Read the cameras' leases now (one trip); the last record read is kept per camera."""
        if self._leases is None or not camera_ids:
            return
        for camera_id, record in self._leases(sorted(camera_ids)).items():
            if record is not None and camera_id in camera_ids:
                self._lease_seen[camera_id] = record

    def _lease_refusal(self, obs: Observation) -> str | None:
        """Why a continuous camera's message does not fit the camera's lease (its Decision), or None.

        A token above the lease's (or, with no lease ever read, above the fence) is no token the
        server issued yet: deferred, in case the record read lags, and refused once deferred for
        ``defer_for_s``. The lease's own token must come from the lease's worker. An older token
        passes on to the fence (the old owner's messages sent before a handover).
        """
        if self._leases is None:
            return None
        lease = self._lease_seen.get(obs.camera_id)
        if lease is not None and obs.token == lease.token and obs.worker != lease.worker:
            self.stats.reject("not the lease holder")
            log.warning("observation %s refused: %s does not hold %s's lease %d", obs.id, obs.worker, obs.camera_id, obs.token)
            return Decision.REJECTED
        bound = lease.token if lease is not None else self._fence(obs.camera_id)
        if obs.token <= bound:
            self._deferred.pop(obs.id, None)
            return None
        return self._defer(obs, "lease token ahead of the lease", f"token {obs.token} is above {obs.camera_id}'s lease {bound}")

    def _visit_refusal(self, obs: Observation) -> str | None:
        """Why a visit's message is not accepted (its Decision), or None: its visit id
        (``plan:cycle:camera``) must name its camera (else refused) and be a visit queued here
        (else deferred: another case service may have queued it and takes it on a redelivery;
        refused once deferred for ``defer_for_s``)."""
        visit = obs.visit or ""
        if visit.rsplit(":", 1)[-1] != obs.camera_id:
            self.stats.reject("unknown visit")
            log.warning("observation %s from %s refused: visit %s is not one of %s", obs.id, obs.worker, visit, obs.camera_id)
            return Decision.REJECTED
        if self._visit_issued is None or self._visit_issued(visit, obs.camera_id):
            self._deferred.pop(obs.id, None)
            return None
        return self._defer(obs, "unknown visit", f"visit {visit} was not queued here")

    def _defer(self, obs: Observation, reason: str, detail: str) -> str:
        """Redeliver a message later (``DEFERRED``), or refuse it (``REJECTED``, counted by
        ``reason``) once it has been deferred for ``defer_for_s``."""
        now = self._clock()
        first = self._deferred.setdefault(obs.id, now)
        while len(self._deferred) > 10_000:
            self._deferred.popitem(last=False)
        if now - first >= self._defer_for_s:
            self._deferred.pop(obs.id, None)
            self.stats.reject(reason)
            log.warning("observation %s from %s refused: %s", obs.id, obs.worker, detail)
            return Decision.REJECTED
        self.stats.deferred += 1
        return Decision.DEFERRED

    def _was_applied(self, obs_id: str, batch_ids: set[str]) -> bool:
        return obs_id in self._recent or obs_id in batch_ids or bool(self._applied.seen_among([obs_id]))

    def _fence(self, camera_id: str) -> int:
        fence = self._fences.get(camera_id)
        if fence is None:
            fence = self._fences[camera_id] = self._applied.fence(camera_id)
        current = self._lease_token(camera_id) if self._lease_token is not None else None
        return max(fence, current or 0)

    def _apply(self, obs: Observation) -> str:
        if obs.outcome is not None:
            self.stats.outcomes += 1
            log.info(
                "patrol visit %s given up by %s after %d delivery(ies): %s", obs.visit, obs.worker, obs.outcome.deliveries,
                obs.outcome.error_kind or "failed",
            )
            if self._on_outcome is not None:
                self._on_outcome(obs)
            return Decision.OUTCOME
        if obs.clip is not None:
            self.stats.clips += 1
            if self._on_clip is not None:
                self._on_clip(obs)
            else:
                log.info("clip reference %s ignored: clips are off here", obs.id)
            self.stats.applied += 1
            return Decision.APPLIED
        if obs.frame is not None:
            last = self._last_ts.get(obs.camera_id)
            if obs.visit is None and last is not None and obs.frame.ts < last:
                self.stats.late += 1
                return Decision.LATE
            # the picture is decoded only when a key became active since the camera's last frame
            # here (only then may the incident writer open an incident and draw its snapshot)
            keys = wire_keys(obs.frame)
            fresh = bool(keys - self._last_keys.get(obs.camera_id, frozenset()))
            self._target.observe(to_analysis(obs, picture=fresh), partial=obs.frame.partial)
            self._last_keys[obs.camera_id] = keys
            self._last_ts[obs.camera_id] = max(obs.frame.ts, last or 0.0)
        else:
            self._target.report(to_report(obs))
        self.stats.applied += 1
        return Decision.APPLIED

    def _remember(self, obs: Observation) -> None:
        if obs.visit is None and obs.clip is None and obs.token > self._fences.get(obs.camera_id, 0):
            self._fences[obs.camera_id] = obs.token
        self._recent[obs.id] = None
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)

    # -- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        link = self._link
        name, subject = link.name("obs"), obs_subject(link)
        link.call(lambda: ensure_obs_stream(link))

        async def subscribe() -> object:
            config = ConsumerConfig(
                durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=60.0, max_ack_pending=1000
            )
            return await link.js.pull_subscribe(subject, durable=DURABLE, stream=name, config=config)

        sub = link.call(subscribe)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sub,), name="obs-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("observation consumer did not stop within %.1f s", timeout)
            self._thread = None

    def _run(self, sub: object) -> None:
        fetch = getattr(sub, "fetch")
        while not self._stop.is_set():
            if self._may_write is not None and not self._may_write():  # not (or no longer surely) the case writer
                self._stop.wait(0.5)
                continue
            try:
                msgs: list[Msg] = self._link.call(lambda: fetch(self._batch, timeout=1.0), timeout=self._link.config.op_timeout_s + 2.0)
            except (nats.errors.TimeoutError, TimeoutError):
                self._maybe_prune()
                continue
            except Exception as exc:  # NATS restarting: the durable consumer is still there when it is back
                log.debug("observation fetch failed: %s", type(exc).__name__)
                self._stop.wait(0.5)
                continue
            if not msgs:
                continue
            if self._may_write is not None and not self._may_write():  # the lease lapsed during the fetch: redelivered
                self._settle_all(msgs, [Decision.DEFERRED] * len(msgs))
                continue
            try:
                outcomes = self.handle_all([msg.data for msg in msgs])
            except Exception as exc:  # a fence read failed (database down): the batch is redelivered
                outcomes = [exc] * len(msgs)
            self._settle_all(msgs, outcomes)
            self._maybe_prune()  # time-gated: a stream that never goes quiet is pruned too

    def _settle_all(self, msgs: Sequence[Msg], outcomes: Sequence[str | Exception]) -> None:
        """Ack (term a refused one, nak a failed one) a batch in one trip to the event loop; a
        lost ack is logged, not raised (redelivered, then skipped as a duplicate)."""
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:  # the incident write or the record failed (database down): redelivered later
            log.error("applying %d observation(s) failed; they will be redelivered", len(failed), exc_info=failed[0])

        async def send() -> None:
            for msg, outcome in zip(msgs, outcomes, strict=True):
                try:
                    if isinstance(outcome, Exception):
                        await msg.nak()
                    elif outcome == Decision.DEFERRED:
                        await msg.nak(delay=self._defer_s)
                    elif outcome == Decision.REJECTED:
                        await msg.term()
                    else:
                        await msg.ack()
                except Exception as exc:
                    log.debug("observation ack failed: %s", type(exc).__name__)

        settle(self._link, send, "observation acks")

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < self._prune_every_s:
            return
        self._last_prune = now
        try:
            self._applied.prune(now - self._keep_s)
        except Exception:
            log.exception("pruning applied observation ids failed")


def start_observation_consumer(ctx: ServeContext) -> ObservationConsumer:
    """The case service's consumer (``gridworker serve``).

    Fenced by the highest token accepted per camera (stored), not by the lease current when a
    message is consumed: the stream keeps publish order, so the old owner's observations sent
    before the new owner's first one are applied, and any it sends after are refused. Comparing
    with the current lease instead would refuse legitimate observations whenever the consumer
    lags behind a handover (70-94 observations refused per cluster bench run when it did).
    The current lease is read all the same, to refuse what no lease issued: a token above it
    (deferred, then refused) and its own token from another worker; a patrol visit's message
    needs a visit this service queued (``ctx.visits``).
    """
    from gridworker.cameras import CameraNotFound

    service = ctx.service

    def known(camera_id: str) -> bool:
        try:
            service.camera(camera_id)
        except CameraNotFound:
            return False
        return True

    evidence = ctx.settings.evidence
    attacher = ClipAttacher(service.store, evidence.resolve_clips_dir(ctx.settings.database.url)) if evidence.clips else None
    link = ctx.link

    def leases(camera_ids: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return link.call(lambda: read_leases(link.buckets.leases, camera_ids), timeout=link.config.op_timeout_s * 3)

    consumer = ObservationConsumer(
        link, service.incidents, service.db, known_camera=known, on_clip=attacher.attach if attacher is not None else None,
        leases=leases, visit_issued=ctx.visits.issued, may_write=ctx.writing,
    )
    consumer.start()
    return consumer
