"""``gridworker worker``: the streams, detection, rules and patrol visits of the cameras this
worker owns, and nothing of the case side (no database of its own, no API beyond health and metrics).

A control thread, every ``renew_interval_s``:

1. stops at once every camera whose lease may have lapsed (the worker was frozen, or NATS
   did not answer its renewals for a whole TTL): the fence;
2. puts its heartbeat (:class:`~gridworker.cluster.membership.WorkerInfo`);
3. renews each lease (``update(last=revision)``); a refused renewal stops that camera at once;
4. releases the cameras the placement took away (pipeline stopped first, then the lease
   deleted so the new owner claims it without waiting for the TTL);
5. claims the cameras the placement gives it (``create``; waits while the old owner still
   holds the lease) and starts them, and keeps a pipeline slot for every patrol-only camera of
   the catalogue (any worker can visit any of them).

Between ticks, steps 4 and 5 also run as soon as the placement changes, and every
``CLAIM_RETRY_S`` while a camera placed here is still leased elsewhere: a dead owner's lease
ages out at a moment nobody is told of (nats-server 2.9 writes no marker), so the claim is
retried until it succeeds instead of waiting a whole renewal period.

Observations leave through the sink built by ``sink_factory`` (cluster/observations.py), which
asks :meth:`~gridworker.cluster.leases.LeaseTable.token` for each one's fencing token.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nats.js.errors import KeyDeletedError, KeyNotFoundError
from pydantic import ValidationError

from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.incidents.db import Database
from gridworker.metrics import Metrics
from gridworker.models.base import Detector
from gridworker.models.loader import load_detector
from gridworker.patrol.config import PatrolTarget
from gridworker.settings import CameraConfig, Settings
from gridworker.streams.evidence import PacketRing, RingBudget
from gridworker.streams.health import StreamState
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger
from gridworker.streams.sources import require_network
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.observations import IncidentSink
from gridworker.vision.pipeline import Pipeline
from gridworker.vision.signals import SignalBoard
from gridworker.cameras import CameraNotFound, CameraRegistry, ReaderFactory, problem_text

from .bridge import AsyncBridge
from .config import ClusterConfig, default_worker_id
from .health_http import HealthHttp
from .leases import LeaseLost, LeaseTable, claim, release, renew
from .link import NatsLink
from .membership import KvMirror, WorkerInfo

__all__ = ["ClusterContext", "Stoppable", "VisitRuntime", "WorkerContext", "WorkerProcess", "WorkerSink"]

log = get_logger(__name__)

#: how often a camera placed here but still leased elsewhere is claimed again, between ticks
CLAIM_RETRY_S = 0.25


class Stoppable(Protocol):
    def stop(self, timeout: float) -> None: ...


class WorkerSink(IncidentSink, Protocol):
    """The worker's incident sink (observations to the case service) and its shutdown."""

    def close(self, timeout: float) -> None: ...

    def forget(self, camera_id: str) -> None:
        """The camera left this worker: what the sink remembers of it goes."""


@dataclass(frozen=True, slots=True)
class ClusterContext:
    """What a cluster process (a worker, the case service) hands the parts that plug into it."""

    settings: Settings
    config: ClusterConfig
    bridge: AsyncBridge
    link: NatsLink


@dataclass(frozen=True, slots=True)
class WorkerContext(ClusterContext):
    """What a worker hands the parts that plug into it (the observation sink, the visit consumer)."""

    worker_id: str
    instance: str
    leases: LeaseTable
    metrics: Metrics
    #: count one patrol visit done (shown in the heartbeat's ``visits``)
    visit_done: Callable[[], None]
    #: camera id -> the packet ring of a camera running here, or None (evidence clips, cluster/clips.py)
    packet_ring: Callable[[str], PacketRing | None] = lambda _camera_id: None


@dataclass(frozen=True, slots=True)
class VisitRuntime:
    """Where a worker's patrol visits run: its pipeline, its observation sink, and every camera of the catalogue as a patrol target."""

    pipeline: Pipeline
    targets: Callable[[], list[PatrolTarget]]
    sink: WorkerSink


SinkFactory = Callable[[WorkerContext], WorkerSink]
VisitsFactory = Callable[[WorkerContext, VisitRuntime], Stoppable]


def parse_catalogue(raw: dict[str, bytes]) -> dict[str, CameraConfig]:
    """The catalogue's cameras that validate as network cameras (others are logged and skipped)."""
    out: dict[str, CameraConfig] = {}
    for cam_id, value in raw.items():
        try:
            config = CameraConfig.model_validate_json(value)
            require_network(config.url)
            if config.record_url is not None:
                require_network(config.record_url)
        except ValueError as exc:
            log.error("catalogue camera %r skipped: %s", cam_id, problem_text(exc)[:300])
            continue
        if config.id == cam_id:
            out[cam_id] = config
    return out


class WorkerProcess:
    """One worker: its pipeline, the cameras it owns, its leases and heartbeat.

    Example::

        worker = WorkerProcess(settings, detector, sink_factory=build_worker_sink)
        worker.start(); ...; worker.stop()
    """

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        *,
        sink_factory: SinkFactory,
        visits_factory: VisitsFactory | None = None,
        reader: ReaderFactory = CameraStream,
        models: Mapping[str, Detector] | None = None,
    ) -> None:
        if settings.cluster is None:
            raise ValueError("gridworker worker needs a cluster: section (cluster: {nats_url: ...})")
        self.settings = settings
        self.config = cfg = settings.cluster
        self.worker_id = cfg.worker_id or default_worker_id()
        self.instance = uuid.uuid4().hex[:16]
        self.bridge = AsyncBridge()
        self.link = NatsLink(cfg, self.bridge, name=f"gridworker-worker-{self.worker_id}")
        self.leases = LeaseTable(cfg.lease_ttl_s)
        self.metrics = Metrics(self._camera_metrics)
        self._visits_done = 0
        self._visits_lock = threading.Lock()
        self.context = WorkerContext(
            settings=settings, config=cfg, bridge=self.bridge, link=self.link, worker_id=self.worker_id, instance=self.instance,
            leases=self.leases, metrics=self.metrics, visit_done=self._visit_done, packet_ring=self._packet_ring,
        )
        self._sink_factory = sink_factory
        self._visits_factory = visits_factory
        self._detector = detector
        # the site's other models (``detectors:``) by id; loaded here when not given, as Service does
        self._inference_workers = settings.pipeline.inference_worker_count()  # reads the usable cores: once
        self._models = dict(models) if models is not None else {d.id: load_detector(d, workers=self._inference_workers) for d in settings.detectors}
        self._reader = reader
        self._catalogue = KvMirror(self.link, lambda b: b.cameras)
        self._assign = KvMirror(self.link, lambda b: b.assign, on_change=self._wake_soon)
        self.link.on_reconnect.extend([self._catalogue.resync_soon, self._assign.resync_soon])
        # the registry keeps its bookkeeping (cameras it was given) in a private throw-away
        # database; incidents are the case service's: observations leave through the sink
        self._scratch = tempfile.TemporaryDirectory(prefix="gridworker-worker-")
        self._local_store = IncidentStore(Database.open(f"sqlite:///{Path(self._scratch.name) / 'worker.db'}"))
        self._parsed: dict[str, tuple[bytes, CameraConfig | None]] = {}  # catalogue JSON -> its config (None: invalid)
        self._running: dict[str, CameraConfig] = {}  # cameras with a slot here (continuous + patrol-only)
        self._stop = threading.Event()
        self._wake = threading.Event()  # the placement changed: follow it now, not at the next tick
        self._claims_waiting = False  # a camera placed here is still leased to another worker
        self._thread: threading.Thread | None = None
        self._visits: Stoppable | None = None
        self._sink: WorkerSink | None = None
        self._pipeline: Pipeline | None = None
        self._registry: CameraRegistry | None = None
        self._http: HealthHttp | None = None
        self._started_at = time.time()
        self._draining = False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect to NATS, build the sink and the pipeline, start the control loop and health HTTP."""
        self.bridge.start()
        self.link.connect()
        self.bridge.spawn(self._catalogue.run)
        self.bridge.spawn(self._assign.run)
        sink = self._sink = self._sink_factory(self.context)
        settings = self.settings
        annotator = FrameAnnotator(jpeg_quality=settings.pipeline.snapshot_quality)
        local_manager = IncidentManager(store=self._local_store, camera_info=lambda _c: CameraInfo())
        self._pipeline = pipeline = Pipeline(
            self._detector, sink, annotator=annotator, meter=self.metrics, models=self._models,
            deadline_s=settings.pipeline.batch_deadline_ms / 1000.0, patrol_batch_slots=settings.pipeline.patrol_batch_slots,
            patrol_max_pending=settings.pipeline.patrol_max_pending, inference_workers=self._inference_workers,
        )
        self._registry = CameraRegistry(
            settings, self._local_store, pipeline, local_manager, SignalBoard(), annotator,
            RingBudget(int(settings.limits.clip_buffers_total_mb * 1_000_000)), reader=self._reader,
        )
        pipeline.start()
        self._catalogue.wait_ready(self.config.op_timeout_s)
        self._assign.wait_ready(self.config.op_timeout_s)
        if self._visits_factory is not None:
            self._visits = self._visits_factory(self.context, VisitRuntime(pipeline, self._targets, sink))
        self._start_http()
        self._thread = threading.Thread(target=self._control_loop, name=f"cluster-control-{self.worker_id}", daemon=True)
        self._thread.start()
        log.info("worker %s started (instance %s)", self.worker_id, self.instance)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop visits, the control loop, every camera (leases released: others take over at once), then NATS."""
        self._stop.set()
        self._wake.set()
        if self._visits is not None:
            self._visits.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        for cam_id in list(self._running):
            self._stop_camera(cam_id, "worker stopping", release=True)
        if self._pipeline is not None:
            self._pipeline.stop(timeout)
        if self._sink is not None:
            self._sink.close(timeout)
        if self._http is not None:
            self._http.stop(timeout)
        self._leave()
        self.link.close()
        self.bridge.stop()
        self._local_store.db.close()
        self._scratch.cleanup()
        log.info("worker %s stopped", self.worker_id)

    def _leave(self) -> None:
        """Take the heartbeat out: the leader places this worker's cameras elsewhere at its next tick."""
        if not self.link.connected:
            return
        kv = self.link.buckets.workers
        try:
            self.link.call(lambda: kv.delete(self.worker_id))
        except Exception as exc:  # it ages out within heartbeat_ttl_s
            log.debug("heartbeat not withdrawn: %s", type(exc).__name__)

    def _packet_ring(self, camera_id: str) -> PacketRing | None:
        registry = self._registry
        return registry.packet_ring(camera_id) if registry is not None else None

    def _visit_done(self) -> None:
        with self._visits_lock:
            self._visits_done += 1

    # -- the control loop ---------------------------------------------------------------
    def _wake_soon(self) -> None:
        self._wake.set()

    def _control_loop(self) -> None:
        """A full tick every ``renew_interval_s``; between ticks, the placement is followed as
        soon as it changes, and a camera placed here but still leased elsewhere (its old owner
        died: its lease ages out at a time nobody is told of) is claimed again every
        ``CLAIM_RETRY_S``, so it is taken within that much of its lease lapsing."""
        interval = self.config.renew_interval_s
        next_tick = time.monotonic()
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if began >= next_tick - 0.05:
                    next_tick = began + interval
                    self._tick()
                else:
                    self._between_ticks()
            except Exception:  # a tick that failed is retried next period; the fence still holds
                log.exception("cluster control tick failed")
            wait = next_tick - time.monotonic()
            if self._claims_waiting:
                wait = min(wait, CLAIM_RETRY_S)
            self._wake.wait(max(0.05, wait))
            self._wake.clear()

    def _parsed_catalogue(self) -> dict[str, CameraConfig]:
        """The catalogue's cameras, validated once per change of their JSON."""
        raw = self._catalogue.snapshot()
        changed = {c: v for c, v in raw.items() if (known := self._parsed.get(c)) is None or known[0] != v}
        parsed = parse_catalogue(changed)
        self._parsed = {c: (v, parsed.get(c)) if c in changed else self._parsed[c] for c, v in raw.items()}
        return {c: config for c, (_v, config) in self._parsed.items() if config is not None}

    def _fence(self) -> None:
        for cam_id in self.leases.lapsed():
            self._stop_camera(cam_id, "lease lapsed (no renewal within its TTL)", release=False)

    def _tick(self) -> None:
        self._fence()  # 1. before anything else
        if not self.link.connected:  # nothing can be renewed: the fence stops each camera at its deadline
            return
        catalogue = self._parsed_catalogue()
        self._sync_patrol_only(catalogue)
        self._heartbeat()
        self._renew()
        self._follow_placement(catalogue)
        self._fence()  # a slow tick must not carry a camera past its deadline

    def _between_ticks(self) -> None:
        """Steps 4-5 alone (no heartbeat, no renewal): the placement changed, or a claim waits."""
        self._fence()
        if self.link.connected:
            self._follow_placement(self._parsed_catalogue())
            self._fence()

    def _follow_placement(self, catalogue: dict[str, CameraConfig]) -> None:
        """Release the cameras placed elsewhere, claim those placed here (steps 4 and 5)."""
        mine = {c for c, w in self._assign.snapshot().items() if w.decode(errors="replace") == self.worker_id}
        wanted = {c for c in mine if c in catalogue and catalogue[c].watch == "continuous"}
        for lease in self.leases.held():
            if lease.camera_id not in wanted:
                self._stop_camera(lease.camera_id, "placed on another worker", release=True)
            elif (running := self._running.get(lease.camera_id)) is not None and running != catalogue[lease.camera_id]:
                self._restart_camera(catalogue[lease.camera_id])
        room = self.config.max_cameras_per_worker - len(self.leases.held())
        unheld = [c for c in sorted(wanted) if self.leases.get(c) is None][: max(0, room)]
        if unheld:
            self._claim([catalogue[c] for c in unheld])
        self._claims_waiting = bool(unheld) and any(self.leases.get(c) is None for c in unheld)

    def _owned_count(self) -> int:
        return len(self.leases.held())

    def _heartbeat(self) -> None:
        try:
            draining = self.link.call(lambda: self._read_drain())
        except Exception:
            draining = self._draining
        self._draining = draining
        info = self.info()
        kv = self.link.buckets.workers
        payload = info.model_dump_json().encode()
        try:
            self.link.call(lambda: kv.put(self.worker_id, payload))
        except Exception as exc:
            log.warning("heartbeat not sent: %s", type(exc).__name__)

    async def _read_drain(self) -> bool:
        try:
            entry = await self.link.buckets.drain.get(self.worker_id)
        except (KeyNotFoundError, KeyDeletedError):
            return False
        return bool(entry.value)

    def info(self) -> WorkerInfo:
        owned = sorted(lease.camera_id for lease in self.leases.held())
        views = [v for v in self._registry.views() if not v.patrol_only] if self._registry is not None else []
        live = {v.config.id: round(v.analysed_fps, 2) for v in views if v.health.state is StreamState.LIVE}
        fps = sum(v.analysed_fps for v in views)
        host = self.settings.server.host
        port = self._http.port if self._http is not None else self.settings.server.port
        with self._visits_lock:
            visits = self._visits_done
        return WorkerInfo(
            worker=self.worker_id, instance=self.instance, started_at=self._started_at, at=time.time(), draining=self._draining,
            capacity=self.config.max_cameras_per_worker, cameras=owned, fps=round(fps, 2), visits=visits, live=live,
            health_url=f"http://{host}:{port}/health",
        )

    def _renew(self) -> None:
        """Renew every held lease at once (one round trip's time, however many cameras)."""
        held = self.leases.held()
        if not held:
            return
        kv = self.link.buckets.leases

        async def renew_all() -> list[int | BaseException]:
            return await asyncio.gather(*(renew(kv, lease, self.worker_id, self.instance) for lease in held), return_exceptions=True)

        sent = time.monotonic()
        try:
            results = self.link.call(renew_all, timeout=self.config.op_timeout_s + 1.0)
        except Exception as exc:  # no answer: keep running until the leases may have lapsed (the fence)
            log.warning("%d lease(s) not renewed (%s); fenced off at their deadline", len(held), type(exc).__name__)
            return
        for lease, result in zip(held, results):
            if isinstance(result, LeaseLost):
                self._stop_camera(lease.camera_id, "lease renewal refused (another worker owns it now)", release=False)
            elif isinstance(result, BaseException):
                log.warning("lease of %s not renewed (%s); fenced off at its deadline", lease.camera_id, type(result).__name__)
            elif self.leases.get(lease.camera_id) is not None:
                self.leases.hold(lease.camera_id, token=lease.token, revision=result, sent_at=sent)

    def _claim(self, configs: list[CameraConfig]) -> None:
        """Claim these cameras at once; start each one whose claim succeeded (others are held elsewhere still)."""
        kv = self.link.buckets.leases

        async def claim_all() -> list[tuple[int, int] | None | BaseException]:
            return await asyncio.gather(*(claim(kv, c.id, self.worker_id, self.instance) for c in configs), return_exceptions=True)

        sent = time.monotonic()
        try:
            results = self.link.call(claim_all, timeout=2 * self.config.op_timeout_s + 1.0)
        except Exception as exc:
            log.warning("claims of %d camera(s) failed: %s", len(configs), type(exc).__name__)
            return
        for config, got in zip(configs, results):
            if isinstance(got, BaseException):
                log.warning("claim of %s failed: %s", config.id, type(got).__name__)
                continue
            if got is None:  # held by another worker until it releases it or its lease lapses
                continue
            token, revision = got
            self.leases.hold(config.id, token=token, revision=revision, sent_at=sent)
            try:
                self._start_camera(config)
            except Exception:
                log.exception("camera %s could not start; lease released", config.id)
                self._release(config.id)
                continue
            log.info("camera %s claimed (fencing token %d)", config.id, token)

    def _release(self, cam_id: str) -> None:
        lease = self.leases.drop(cam_id)
        if lease is None:
            return
        kv = self.link.buckets.leases
        try:
            self.link.call(lambda: release(kv, lease))
        except Exception as exc:  # it lapses on its own within the TTL
            log.debug("release of %s: %s", cam_id, type(exc).__name__)

    # -- cameras ------------------------------------------------------------------------
    def _start_camera(self, config: CameraConfig) -> None:
        assert self._registry is not None
        self._registry.add(config)
        self._running[config.id] = config

    def _stop_camera(self, cam_id: str, reason: str, *, release: bool) -> None:
        """Take the camera out of the pipeline now (its slot first: nothing more is analysed), then its readers."""
        if release:
            self._release(cam_id)
        else:
            self.leases.drop(cam_id)
        if self._running.pop(cam_id, None) is None or self._registry is None:
            return
        log.warning("camera %s stopped: %s", cam_id, reason)
        try:
            self._registry.remove(cam_id)  # its slot leaves the pipeline first, then its readers stop
        except CameraNotFound:
            pass
        finally:
            if self._sink is not None:  # after the slot left: no frame of it is observed any more
                self._sink.forget(cam_id)

    def _restart_camera(self, config: CameraConfig) -> None:
        assert self._registry is not None
        try:
            self._registry.remove(config.id)
        except CameraNotFound:
            pass
        self._running.pop(config.id, None)
        self._start_camera(config)
        log.info("camera %s restarted with its new config", config.id)

    def _sync_patrol_only(self, catalogue: dict[str, CameraConfig]) -> None:
        """A slot for every patrol-only camera of the catalogue (no reader runs: visits open them)."""
        patrol = {c: cfg for c, cfg in catalogue.items() if cfg.watch == "patrol"}
        for cam_id, config in self._running.copy().items():
            if config.watch == "patrol" and patrol.get(cam_id) != config:
                self._stop_camera(cam_id, "patrol-only camera changed or gone", release=False)
        for cam_id, config in patrol.items():
            if cam_id not in self._running:
                try:
                    self._start_camera(config)
                except Exception as exc:
                    log.error("patrol-only camera %s not added: %s", cam_id, problem_text(exc)[:300])

    def _targets(self) -> list[PatrolTarget]:
        return self._registry.targets() if self._registry is not None else []

    def _camera_metrics(self) -> list[dict[str, Any]]:
        views = self._registry.views() if self._registry is not None else []
        return [
            {
                "id": v.config.id, "analysed_fps": v.analysed_fps, "stream_fps": v.health.fps, "state": v.health.state.value,
                "reconnects": v.health.reconnects, "frames_dropped": v.health.frames_dropped, "open_incidents": 0,
            }
            for v in views
        ]

    def health(self) -> dict[str, Any]:
        """The worker's health document (``GET /health``)."""
        views = self._registry.views() if self._registry is not None else []
        cameras = {
            v.config.id: {
                "state": v.health.state.value, "analysed_fps": round(v.analysed_fps, 2), "frames_analysed": v.frames_analysed,
                "patrol_only": v.patrol_only, "token": self.leases.token(v.config.id),
            }
            for v in views
        }
        detector = self._pipeline.detector_failures.status() if self._pipeline is not None else None
        return {
            "worker": self.worker_id, "instance": self.instance, "nats_connected": self.link.connected,
            "draining": self._draining, "cameras": cameras,
            # batches the model failed (their frames skipped): degraded for a minute after one
            "status": "degraded" if detector is not None and detector.failing else "ok",
            "detector": None if detector is None else {
                "failing": detector.failing, "batches_failed": detector.batches_failed, "frames_failed": detector.frames_failed,
                "last_error": detector.last_error, "reason": detector.reason,
            },
        }

    # -- health / metrics HTTP ------------------------------------------------------------
    def _start_http(self) -> None:
        server = self.settings.server
        self._http = HealthHttp(server.host, server.port, health=self.health, metrics=self.metrics.render)
        self._http.start()
