"""The composition root of a running gridworker.

:class:`Service` builds the parts from :class:`~gridworker.settings.Settings` and wires them,
in one place, with typed interfaces:

* the :class:`~gridworker.vision.pipeline.Pipeline` (readers → batcher → detector →
  per-camera analyser) and the patrol (:class:`~gridworker.patrol.feed.PipelineFeed`: visits
  enter the same batcher) submit every observation to one sink, the
  :class:`~gridworker.incidents.IncidentManager`, the only writer of incidents;
* downstream of that sink: the metrics, the evidence clip and the work order hang off its
  ``on_open``; verified closing (the workflow) off its ``on_close``; forwarding, the event
  streams and the console's queue off the work orders' outbox.

It starts and stops the parts in order (:class:`ServiceState`; a stopped service starts
again), keeps the cameras (config, persistence, limits) and hands typed handles to the API
(``api/deps.py``). docs/architecture.md follows one frame and one patrol visit through it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridworker.incidents import CameraInfo, Incident, IncidentManager, IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.db import Database
from gridworker.incidents.flows import FlowRecorder, FlowStore
from gridworker.incidents.forwarding import Dispatcher, build_dispatcher, build_outbox
from gridworker.incidents.outbox import reconcile_workorders
from gridworker.incidents.retention import RetentionWorker
from gridworker.incidents.workflow import Workflow, WorkflowClock
from gridworker.incidents.workorders import build_workorders
from gridworker.models.base import Detector
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.patrol.engine import CameraOutcome
from gridworker.patrol.feed import PipelineFeed
from gridworker.patrol.manager import PatrolLimitReached, PatrolManager
from gridworker.streams.config import StreamConfig
from gridworker.streams.evidence import PacketRing, RingBudget
from gridworker.streams.health import StreamHealth
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger
from gridworker.streams.sources import require_network
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.signals import SignalBoard
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.batcher import Batcher
from gridworker.vision.config import SceneConfig
from gridworker.vision.pipeline import CameraSlot, FrameObserver, Pipeline
from gridworker.vision.visits import VisitAnalyzer

from .metrics import Metrics
from .settings import CameraConfig, Settings, plan_camera_problems

log = get_logger(__name__)  # scrubs URL credentials from every line (streams/redact.py)


class CameraExists(ValueError):
    pass


class CameraNotFound(KeyError):
    pass


class CameraLimitReached(ValueError):
    """``limits.max_cameras`` cameras exist already (the API answers 409)."""


class SceneTooLarge(ValueError):
    """A scene over ``limits.scene`` (the API answers 422)."""


class ServiceState(str, enum.Enum):
    """CREATED → STARTING → RUNNING → STOPPING → STOPPED; ``start`` again leads back to RUNNING."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class _Camera:
    """A camera as the service keeps it: its config, its reader and its slot in the pipeline
    (the slot holds the runtime state: analyser, patrol judge, latest frame, rate)."""

    config: CameraConfig
    stream: CameraStream
    slot: CameraSlot
    persisted: bool = False

    @property
    def patrol_only(self) -> bool:
        return self.slot.patrol_only


@dataclass(frozen=True, slots=True)
class CameraView:
    """A read-only picture of one camera for the API."""

    config: CameraConfig
    health: StreamHealth
    analysed_fps: float
    frames_analysed: int
    open_incident_types: list[str]
    last_analysed_at: float | None
    #: only patrol visits open its stream (its reader's state reads "stopped" between them)
    patrol_only: bool = False


class Service:
    """Builds the parts from the settings, wires them, starts and stops them in order.

    Example:
        >>> service = Service(settings, detector=load_detector(settings.detector))  # doctest: +SKIP
        >>> service.start(); ...; service.stop()  # doctest: +SKIP
    """

    def __init__(self, settings: Settings, detector: Detector, store: IncidentStore | None = None) -> None:
        self.settings = settings
        self.detector = detector
        # the one Database of every store; its schema is upgraded to the newest migration here,
        # before anything reads it (a store handed in was opened, and so upgraded, from its URL)
        self.store = store or IncidentStore(Database.open(settings.database.url))
        self.db = self.store.db
        self.annotator = FrameAnnotator(jpeg_quality=settings.pipeline.snapshot_quality)
        self.metrics = Metrics(self._camera_metrics)
        # the one writer of incidents: every observation (frames, patrol visits, revisit reports) goes here
        self.incidents = IncidentManager(
            store=self.store,
            camera_info=self._camera_info,
            annotator=self.annotator,
            write_interval_s=settings.pipeline.incident_write_interval_s,
            on_listener_error=self.metrics.listener_failed,
        )
        pipeline = settings.pipeline
        self.pipeline = Pipeline(
            detector,
            self.incidents,
            annotator=self.annotator,
            meter=self.metrics,
            deadline_s=pipeline.batch_deadline_ms / 1000.0,
            patrol_batch_slots=pipeline.patrol_batch_slots,
            patrol_max_pending=pipeline.patrol_max_pending,
            inference_workers=pipeline.inference_workers,
        )
        evidence = settings.evidence
        self.clips: ClipRecorder | None = None
        if evidence.clips:  # evidence clips cut from each camera's packet ring (docs/evidence.md)
            self.clips = ClipRecorder(
                self.store,
                self._packet_ring,
                evidence.resolve_clips_dir(settings.database.url),
                pre_s=evidence.clip_pre_s,
                post_s=evidence.clip_post_s,
                min_free_bytes=int(evidence.min_free_mb * 1e6),
            )
        self.signals = SignalBoard()
        self._cameras: dict[str, _Camera] = {}
        self._cameras_lock = threading.RLock()
        # every camera's clip ring draws on one total (limits.clip_buffers_total_mb)
        self.ring_budget = RingBudget(int(settings.limits.clip_buffers_total_mb * 1_000_000))
        # serialises camera saves, deletes and stream starts (never taken by the pipeline): a save
        # checks, under it, that its camera is still the one listed, so a DELETE cannot be undone
        # by a save that was still in flight (it would bring the camera back after a restart)
        self._persist_lock = threading.Lock()
        self.patrol = PatrolManager(
            PipelineFeed(self.pipeline, self.patrol_targets, on_outcome=self._patrol_outcome).make_run,
            settings.patrol_plans,
            validate=self._validate_plan,
            save=lambda plan: self.store.save_patrol_plan(plan.id, plan.model_dump_json()),  # PUT plans survive a restart
            forget=self.store.delete_patrol_plan,
            max_plans=settings.limits.max_patrol_plans,
        )
        # counting-line crossings → gridworker_line_crossings_total + per-minute rows beside the incidents
        self.flows = FlowStore(self.db)
        self.flow_recorder = FlowRecorder(self.flows, counter=self.metrics.line_crossings)
        self.pipeline.observers.append(self.flow_recorder.observe)
        self.workorders = build_workorders(self.db, settings.workorders, settings.auth)
        self.workflow = Workflow(self.workorders)
        # every work-order change leaves through the outbox, committed with it (docs/forwarding.md);
        # the dispatcher drains it (a new one at each start: a stopped one has closed its senders)
        self.outbox = build_outbox(settings.forwarding, self.db, orders=self.workorders)
        self.forwarding: Dispatcher = build_dispatcher(settings.forwarding, self.outbox)
        self.workflow_clock = WorkflowClock(self.workflow, interval_s=settings.workorders.tick_interval_s)
        # clips, settled outbox messages and old audit rows are deleted as configured (retention:)
        self.retention = RetentionWorker(
            self.store, settings.retention, clips_dir=evidence.resolve_clips_dir(settings.database.url).resolve()
        )
        # downstream of the one incident sink, in the order each opened incident meets them
        self.incidents.on_open.append(self._count_incident)
        if self.clips is not None:
            self.incidents.on_open.append(self.clips)
        self.incidents.on_open.append(self.workorders.on_incident_opened)  # a graded work order (docs/workorders.md)
        # the camera shows the condition cleared: a handled case closes, verified on camera
        self.incidents.on_close.append(self.workflow.verify_cleared)
        self.metrics.watch_delivery(self.outbox)
        self.metrics.watch_cases(self.workorders)
        self.metrics.watch_patrol(self.patrol.last_cycles)
        self._state = ServiceState.CREATED
        self._lifecycle = threading.Lock()  # one start or stop at a time

    # -- handles ----------------------------------------------------------------------
    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def started(self) -> bool:
        """Running (started and not stopped)."""
        return self._state is ServiceState.RUNNING

    @property
    def batcher(self) -> Batcher:
        return self.pipeline.batcher

    @property
    def observers(self) -> list[FrameObserver]:
        """Called with each analysed live frame and its latency (flows, benchmarks)."""
        return self.pipeline.observers

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start in order: cameras, open incidents adopted, case and delivery workers, the
        pipeline. A stopped service starts again (cameras re-added, a new dispatcher)."""
        with self._lifecycle:
            if self._state in (ServiceState.RUNNING, ServiceState.STARTING):
                return
            again = self._state is ServiceState.STOPPED
            self._state = ServiceState.STARTING
            try:
                self._start(again)
            except BaseException:
                self._state = ServiceState.STOPPED
                raise
            self._state = ServiceState.RUNNING
        log.info("service started with %d camera(s)", len(self._cameras))

    def _start(self, again: bool) -> None:
        if again:  # a stopped reader does not start again: the cameras are built afresh
            with self._cameras_lock:
                cams = list(self._cameras.values())
                self._cameras.clear()
            for cam in cams:
                self.pipeline.remove(cam.config.id)
                if cam.stream.packet_ring is not None:
                    self.ring_budget.detach(cam.stream.packet_ring)
            self.forwarding = build_dispatcher(self.settings.forwarding, self.outbox)
            self.patrol.reopen()
        for cam in self.settings.cameras:
            self._add(cam, persist=False)
        for cam_id, raw in self.store.saved_cameras():
            if cam_id in self._cameras:
                log.warning("camera %r saved through the API is also in the config file; the config file wins", cam_id)
                continue
            try:
                saved = CameraConfig.model_validate_json(raw)
                require_network(saved.url)  # saved cameras came through the API: never a file
                self._add(saved, persist=False, persisted=True)
            except ValueError as exc:
                log.error("skipping saved camera %r: %s", cam_id, exc)
        for plan_id, raw in [] if again else self.store.saved_patrol_plans():  # plans created through the API
            try:
                plan = PatrolPlan.model_validate_json(raw)
            except ValueError as exc:
                log.error("skipping saved patrol plan %r: %s", plan_id, exc)
                continue
            cap = self.settings.limits.max_patrol_concurrency
            if plan.concurrency > cap:
                log.warning("saved patrol plan %r: concurrency %d lowered to limits.max_patrol_concurrency (%d)", plan_id, plan.concurrency, cap)
                plan = plan.model_copy(update={"concurrency": cap})
            try:
                adopted = self.patrol.adopt(plan)
            except PatrolLimitReached as exc:
                log.error("skipping saved patrol plan %r: %s", plan_id, exc)
                continue
            if not adopted:
                log.warning("patrol plan %r saved through the API is also in the config file; the config file wins", plan_id)
                continue
            problems = plan_camera_problems(plan, set(self._cameras))
            if problems:
                log.warning("saved patrol plan %r: %s", plan_id, problems)
        keys = [(c.config.id, z.id, r.rule_id) for c in self._cameras.values() for z in c.config.zones for r in z.rules]
        self.incidents.adopt_open(keys, time.time())
        self._restore_rule_clocks()
        if self.clips is not None:
            self.clips.start()
        self.workflow_clock.start()
        repaired = reconcile_workorders(self.workorders)  # incidents stored just before a crash
        if repaired:
            log.warning("%d incident(s) stored before a crash had no work order; created now", repaired)
        self.forwarding.start()
        self.retention.start()
        self.pipeline.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop in order: patrols (while inference still answers their frames), readers, the
        pipeline, then clips, flows, case and delivery workers. Idempotent."""
        with self._lifecycle:
            if self._state in (ServiceState.CREATED, ServiceState.STOPPED):
                self._state = ServiceState.STOPPED
                return
            self._state = ServiceState.STOPPING
            try:
                self._stop_parts(timeout)
            finally:
                self._state = ServiceState.STOPPED

    def _stop_parts(self, timeout: float) -> None:
        self.patrol.stop_all(timeout)
        with self._cameras_lock:
            cams = list(self._cameras.values())
        for cam in cams:  # the cameras stay listed (their last frame, "stopped") until a start
            cam.stream.stop(timeout=timeout)
        self.pipeline.stop(timeout)
        if self.clips is not None:
            self.clips.stop()  # pending clips are cut now with what the rings hold
        self.flow_recorder.flush()
        self.workflow_clock.stop()
        self.forwarding.stop()
        self.retention.stop()

    def _restore_rule_clocks(self) -> None:
        """Rule clocks survive a restart: each open per-object incident adopted at start gives
        its camera's rule back the object's clock (IncidentManager.restore_rule_clocks)."""
        restored = self.incidents.restore_rule_clocks(self._continuous_analyzer)
        if restored:
            log.info("rule clocks of %d object(s) restored from their open incidents", restored)

    def _continuous_analyzer(self, camera_id: str) -> CameraAnalyzer | None:
        """The camera's analyser, for a continuously watched camera (a patrol-only camera's
        visits start afresh)."""
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return cam.slot.analyzer if cam is not None and not cam.patrol_only else None

    # -- cameras --------------------------------------------------------------------
    def _visit_analyzer(self, config: CameraConfig) -> VisitAnalyzer:
        """The analyser of a patrol-only camera's visits (glance rules, revisit, watch stops)."""
        return VisitAnalyzer(config.id, config.scene(), annotator=self.annotator, tracker=self.settings.tracker)

    def _add(self, config: CameraConfig, *, persist: bool, persisted: bool = False) -> _Camera:
        with self._cameras_lock:
            if config.id in self._cameras:
                raise CameraExists(config.id)
            self._check_limits(config)
            patrol_only = config.watch == "patrol"
            stream = CameraStream(config.id, config.stream_config() if patrol_only else self._stream_config(config))
            analyzer = CameraAnalyzer(config.id, config.fps, config.scene(), self.settings.tracker, signals=self.signals)
            visits = self._visit_analyzer(config) if patrol_only else None
            if stream.packet_ring is not None:
                self.ring_budget.attach(stream.packet_ring)
            slot = CameraSlot(config.id, stream, analyzer, visits=visits, tiles=config.detect_tiles)
            cam = _Camera(config, stream, slot, persisted=persist or persisted)
            self._cameras[config.id] = cam
            # in the same critical section as the listing (the pipeline never takes this lock)
            self.pipeline.add(slot)
        # outside the cameras lock (a slow database must not stall the pipeline's camera lookups),
        # under the persist lock: a remove_camera that popped the camera meanwhile waits here, and
        # one that got here first leaves the camera unlisted, so it is neither saved nor started
        with self._persist_lock:
            with self._cameras_lock:
                listed = self._cameras.get(config.id) is cam
                latest = cam.config  # a scene edit may have landed since
            if not listed:
                log.info("camera %s was removed while it was being added; not saved", config.id)
                stream.stop()
                return cam
            if persist:
                try:
                    self.store.save_camera(config.id, latest.model_dump_json())
                except Exception:
                    with self._cameras_lock:
                        if self._cameras.get(config.id) is cam:
                            del self._cameras[config.id]
                            self.pipeline.remove(config.id)
                    if stream.packet_ring is not None:
                        self.ring_budget.detach(stream.packet_ring)
                    raise
            if patrol_only:
                stream.stop()  # never streamed: only patrol visits open a session (its state reads "stopped")
                log.info("camera %s (%s) added, patrol only", config.id, config.public_url())
                return cam
            stream.start()
        log.info("camera %s (%s) added", config.id, config.public_url())
        return cam

    def _check_limits(self, config: CameraConfig) -> None:
        """Raises CameraLimitReached at ``limits.max_cameras``, SceneTooLarge over ``limits.scene``
        (call under the cameras lock)."""
        limits = self.settings.limits
        if len(self._cameras) >= limits.max_cameras:
            raise CameraLimitReached(
                f"{len(self._cameras)} cameras exist, the limit (limits.max_cameras) is {limits.max_cameras}; remove one first"
            )
        over = limits.scene.problems(config)
        if over:
            raise SceneTooLarge("; ".join(over))

    def add_camera(self, config: CameraConfig) -> CameraView:
        """Start analysing a new network camera now; it is saved and comes back after a restart.

        Raises:
            SourceError: a video file (files are sources only in the config file, under media_dir).
        """
        require_network(config.url)
        return self._view(self._add(config, persist=True))

    def remove_camera(self, camera_id: str) -> None:
        with self._cameras_lock:
            cam = self._cameras.pop(camera_id, None)
            if cam is None:
                raise CameraNotFound(camera_id)
            # with the listing: a camera added again under this id meanwhile keeps its slot (the
            # pipeline's remove never waits: it only takes its own small lock)
            self.pipeline.remove(camera_id)
        if cam.stream.packet_ring is not None:
            self.ring_budget.detach(cam.stream.packet_ring)
        with self._persist_lock:  # after any save of this camera still in flight
            with self._cameras_lock:
                readded = camera_id in self._cameras  # added again meanwhile: its row is the new camera's
            if not readded:
                self.store.delete_camera(camera_id)
        cam.stream.stop(timeout=5.0)  # after the persist lock: an _add in flight has started it by now, or never will
        self.incidents.close_camera(camera_id, time.time())
        self.signals.forget(camera_id)
        log.info("camera %s removed", camera_id)

    def update_scene(self, camera_id: str, scene: SceneConfig) -> tuple[CameraView, bool]:
        """Replace a camera's zones, masks, lines, signals and calibration while it runs.

        The next analysed frame uses the new scene (rule clocks restart; incidents of rules
        that are gone close). A camera added through the API is saved with it; a camera from
        the config file keeps the edit until the service restarts (the file stays the source
        of truth). Returns the camera's view and whether the edit was saved.

        Raises:
            CameraNotFound: no such camera.
            ValueError: the camera with this scene does not validate.
        """
        with self._cameras_lock:
            cam = self._get(camera_id)
            merged = {**cam.config.model_dump(), **scene.model_dump()}
            config = CameraConfig.model_validate(merged)  # pydantic.ValidationError is a ValueError
            over = self.settings.limits.scene.problems(config)
            if over:
                raise SceneTooLarge("; ".join(over))
            cam.slot.analyzer.set_scene(config.scene())
            if cam.patrol_only:  # a new visit analyser (revisit sightings restart)
                cam.slot.visits = self._visit_analyzer(config)
            cam.slot.tiles = config.detect_tiles
            cam.config = config
        if cam.persisted:  # outside the cameras lock, as in _add
            with self._persist_lock:
                # a camera removed meanwhile stays removed; of two edits racing, the config saved
                # is the one in force (read here, not the one this call made)
                with self._cameras_lock:
                    listed = self._cameras.get(camera_id) is cam
                    latest = cam.config
                if listed:
                    self.store.save_camera(camera_id, latest.model_dump_json())
        log.info("camera %s: scene updated (%d zone(s), %d line(s)%s)", camera_id, len(config.zones), len(config.lines), "" if cam.persisted else ", until restart")
        return self._view(cam), cam.persisted

    def _get(self, camera_id: str) -> _Camera:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        if cam is None:
            raise CameraNotFound(camera_id)
        return cam

    def _view(self, cam: _Camera) -> CameraView:
        stats = cam.slot.stats(time.time())
        return CameraView(
            config=cam.config,
            health=cam.stream.health(),
            analysed_fps=stats.analysed_fps,
            frames_analysed=stats.frames_analysed,
            open_incident_types=self.incidents.open_types(cam.config.id),
            last_analysed_at=stats.last_analysed_at,
            patrol_only=cam.patrol_only,
        )

    def camera(self, camera_id: str) -> CameraView:
        return self._view(self._get(camera_id))

    def cameras(self) -> list[CameraView]:
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [self._view(c) for c in cams]

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The latest analysed frame with boxes and zones drawn, or None before the first."""
        self._get(camera_id)  # CameraNotFound
        return self.pipeline.latest_jpeg(camera_id)

    def _stream_config(self, config: CameraConfig) -> StreamConfig:
        """The camera's reader config; with clips on, a packet ring unless the camera sets its own."""
        stream_config = config.stream_config()
        evidence = self.settings.evidence
        if evidence.clips and "clip_buffer_s" not in config.stream.model_fields_set:
            update = {"clip_buffer_s": evidence.ring_seconds}
            if "clip_buffer_mb" not in config.stream.model_fields_set:
                update["clip_buffer_mb"] = evidence.buffer_mb
            stream_config = stream_config.model_copy(update=update)
        return stream_config

    def _packet_ring(self, camera_id: str) -> PacketRing | None:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return None if cam is None else cam.stream.packet_ring

    def _camera_info(self, camera_id: str) -> CameraInfo:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return CameraInfo() if cam is None else CameraInfo(name=cam.config.name, site=cam.config.site)

    def _camera_metrics(self) -> list[dict[str, Any]]:
        out = []
        for view in self.cameras():
            out.append(
                {
                    "id": view.config.id,
                    "analysed_fps": view.analysed_fps,
                    "stream_fps": view.health.fps,
                    "state": view.health.state.value,
                    "reconnects": view.health.reconnects,
                    "frames_dropped": view.health.frames_dropped,
                    "open_incidents": len(view.open_incident_types),
                }
            )
        return out

    def _count_incident(self, incident: Incident) -> None:
        self.metrics.incident_opened(incident.type)

    # -- patrol -----------------------------------------------------------------------
    def patrol_targets(self) -> list[PatrolTarget]:
        """Every camera as the patrol sees it (plans select among them)."""
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [PatrolTarget(c.config.id, c.config.url, c.config.patrol) for c in cams]

    def _validate_plan(self, plan: PatrolPlan) -> None:
        with self._cameras_lock:
            known = set(self._cameras)
        problems = plan_camera_problems(plan, known)
        if problems:
            raise ValueError(f"patrol plan {plan.id!r}: {problems}")
        cap = self.settings.limits.max_patrol_concurrency
        if plan.concurrency > cap:
            raise ValueError(f"patrol plan {plan.id!r}: concurrency {plan.concurrency} is more than limits.max_patrol_concurrency ({cap})")

    def _patrol_outcome(self, plan: PatrolPlan, outcome: CameraOutcome) -> None:
        self.metrics.patrol_visit(plan.id, outcome.ok, outcome.error_kind)
