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
again) and hands typed handles to the API (``api/deps.py``); the cameras' config, persistence
and limits are the :class:`~gridworker.cameras.CameraRegistry`'s. docs/architecture.md follows one frame and one patrol visit through it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping
from typing import Any

from gridworker.incidents import CameraInfo, Incident, IncidentManager, IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.db import Database
from gridworker.incidents.flows import FlowRecorder, FlowStore
from gridworker.incidents.snapshots import EvidenceRenderer
from gridworker.incidents.trail import TrackTrail
from gridworker.delivery import Dispatcher, build_dispatcher, build_outbox
from gridworker.delivery.outbox import WorkOrderRepair, reconcile_workorders
from gridworker.incidents.retention import RetentionWorker
from gridworker.incidents.reports import ReportBook, ReportIntake  # reports from people (issue 15)
from gridworker.cases.photos import PhotoGate, PhotoLimits, PhotoRetention, PhotoStore  # photos of cases (issue 15)
from gridworker.cases.workflow import Workflow, WorkflowClock
from gridworker.cases.workorders import build_workorders
from gridworker.cases.people import People  # people and places (issue 15)
from gridworker.cases.places import AreaMap, Position, reported_position
from gridworker.keystore import build_keystore
from gridworker.iot import IotService  # IoT alarms (issue 14)
from gridworker.iot.metrics import IotCollector
from gridworker.models.base import Detector
from gridworker.models.loader import load_detector
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.patrol.engine import CameraOutcome
from gridworker.patrol.feed import PipelineFeed
from gridworker.patrol.manager import PatrolLimitReached, PatrolManager
from gridworker.streams.evidence import PacketRing, RingBudget
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.batcher import Batcher
from gridworker.vision.config import SceneConfig
from gridworker.vision.pipeline import DetectorHealth, FrameObserver, Pipeline
from gridworker.vision.signals import SignalBoard

from .cameras import (
    CameraExists,
    CameraLimitReached,
    CameraNotFound,
    CameraRegistry,
    CameraView,
    ReaderFactory,
    SceneTooLarge,
)
from .metrics import Metrics
from .settings import CameraConfig, Settings

__all__ = [  # the camera errors and views are the registry's, listed here for the API's imports
    "CameraExists",
    "CameraLimitReached",
    "CameraNotFound",
    "CameraView",
    "SceneTooLarge",
    "Service",
    "ServiceState",
]

log = get_logger(__name__)  # scrubs URL credentials from every line (streams/redact.py)


class ServiceState(str, enum.Enum):
    """CREATED → STARTING → RUNNING → STOPPING → STOPPED; ``start`` again leads back to RUNNING."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Service:
    """Builds the parts from the settings, wires them, starts and stops them in order.

    Example::

        service = Service(settings, detector=load_detector(settings.detector, workers=settings.pipeline.inference_worker_count()))
        service.start(); ...; service.stop()
    """

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        store: IncidentStore | None = None,
        *,
        reader: ReaderFactory = CameraStream,
        models: Mapping[str, Detector] | None = None,
    ) -> None:
        """``detector``: the default model; ``models``: the others by id (``settings.detectors``),
        loaded from the settings when not given."""
        self.settings = settings
        self.detector = detector
        # the one Database of every store; its schema is upgraded to the newest migration here,
        # before anything reads it (a store handed in was opened, and so upgraded, from its URL)
        self.store = store or IncidentStore(Database.open(settings.database.url))
        self.db = self.store.db
        self.annotator = FrameAnnotator(jpeg_quality=settings.pipeline.snapshot_quality)
        self.metrics = Metrics(self._camera_metrics)
        # the one writer of incidents: every observation (frames, patrol visits, revisit reports) goes here
        evidence = settings.evidence
        # the triggering objects' boxes over each clip come from the frames the manager sees
        trail = TrackTrail(keep_s=evidence.clip_pre_s + evidence.clip_post_s + 30.0) if evidence.clips else None
        self.incidents = IncidentManager(
            store=self.store,
            camera_info=self._camera_info,
            snapshots=EvidenceRenderer(jpeg_quality=settings.pipeline.snapshot_quality),
            write_interval_s=settings.pipeline.incident_write_interval_s,
            on_listener_error=self.metrics.listener_failed,
            trail=trail,
        )
        pipeline = settings.pipeline
        workers = pipeline.inference_worker_count()  # reads the usable cores: once
        self.pipeline = Pipeline(
            detector,
            self.incidents,
            annotator=self.annotator,
            meter=self.metrics,
            deadline_s=pipeline.batch_deadline_ms / 1000.0,
            patrol_batch_slots=pipeline.patrol_batch_slots,
            patrol_max_pending=pipeline.patrol_max_pending,
            inference_workers=workers,
            models=models if models is not None else {d.id: load_detector(d, workers=workers) for d in settings.detectors},
        )
        self.signals = SignalBoard()
        # every camera's clip ring draws on one total (limits.clip_buffers_total_mb)
        self.ring_budget = RingBudget(int(settings.limits.clip_buffers_total_mb * 1_000_000))
        self.registry = CameraRegistry(
            settings, self.store, self.pipeline, self.incidents, self.signals, self.annotator, self.ring_budget, reader=reader
        )
        self.clips: ClipRecorder | None = None
        if evidence.clips:  # evidence clips cut from each camera's packet ring (docs/evidence.md)
            self.clips = ClipRecorder(
                self.store,
                self.registry.packet_ring,
                evidence.resolve_clips_dir(settings.database.url),
                pre_s=evidence.clip_pre_s,
                post_s=evidence.clip_post_s,
                min_free_bytes=int(evidence.min_free_mb * 1e6),
                trail=trail,
                highlighted=self.incidents.highlighted,  # the ids the objects had while the incident was open
            )
        self.patrol = PatrolManager(
            PipelineFeed(self.pipeline, self.registry.targets, on_outcome=self._patrol_outcome).make_run,
            settings.patrol_plans,
            validate=self._validate_plan,
            save=lambda plan: self.store.patrol_plans.put(plan.id, plan.model_dump_json()),  # PUT plans survive a restart
            forget=self.store.patrol_plans.forget,
            max_plans=settings.limits.max_patrol_plans,
        )
        # counting-line crossings → gridworker_line_crossings_total + per-minute rows beside the incidents
        self.flows = FlowStore(self.db)
        self.flow_recorder = FlowRecorder(self.flows, counter=self.metrics.line_crossings)
        self.pipeline.observers.append(self.flow_recorder.observe)
        self.workorders = build_workorders(self.db, settings.workorders, AreaMap(settings.areas))
        self.keys = build_keystore(self.db, self.workorders.catalogue, settings.auth)
        # --- people and places (issue 15, docs/people.md): a case's position and area; dispatch to a person ---
        self.workorders.locate = self._case_position
        self.people = People(self.db, self.workorders.catalogue, self.workorders.areas, settings.people)
        # one gate for every photo decoded (reports, the phone page, a handler's photo): their memory together is bounded
        photo_cfg = settings.reports.photos
        decoding = photo_cfg.decoding
        photo_gate = PhotoGate(decoding.slots, decoding.wait_s, max_decoded_pixels=int(decoding.max_megapixels * 1e6))
        # a handler's photo is stored as large as a report's (reports.photos.max_side, max_input_megapixels)
        photo_limits = PhotoLimits(max_side=photo_cfg.max_side, max_input_pixels=int(photo_cfg.max_input_megapixels * 1e6))
        self.workflow = Workflow(self.workorders, assigner=self.people, photo_gate=photo_gate, photo_limits=photo_limits)
        # --- reports from people, photos of cases (issue 15, docs/people.md): reports open cases through the one incident writer ---
        self.photos = PhotoStore(
            self.db, photo_cfg.resolve_dir(evidence.resolve_clips_dir(settings.database.url)), max_total_bytes=int(photo_cfg.max_total_mb * 1e6),
            max_per_case=photo_cfg.max_per_case, min_free_bytes=int(photo_cfg.min_free_mb * 1e6), gate=photo_gate,
            public_max_total_bytes=int(photo_cfg.public_max_total_mb * 1e6),  # residents' public photos: their own budget
        )
        self.reports = ReportIntake(ReportBook(self.db), self.photos, self.incidents, self.workorders.catalogue, settings.reports)
        # --- end reports ---
        # every work-order change leaves through the outbox, committed with it (docs/forwarding.md);
        # the dispatcher drains it (a new one at each start: a stopped one has closed its senders)
        self.outbox = build_outbox(settings.forwarding, self.db, orders=self.workorders)
        self.forwarding: Dispatcher = build_dispatcher(settings.forwarding, self.outbox)
        # late cases escalate on its ticks, and work orders incidents missed (a failed listener) are made then
        self.workflow_clock = WorkflowClock(
            self.workflow, interval_s=settings.workorders.tick_interval_s, repair=WorkOrderRepair(self.workorders).run
        )
        # clips, settled outbox messages and old audit rows are deleted as configured (retention:)
        self.retention = RetentionWorker(
            self.store, settings.retention, clips_dir=evidence.resolve_clips_dir(settings.database.url).resolve(),
            photos=PhotoRetention(  # photos of cases (issue 15)
                self.photos, None if photo_cfg.max_age_days is None else photo_cfg.max_age_days * 86_400.0, int(photo_cfg.max_total_mb * 0.9e6),
                int(photo_cfg.public_max_total_mb * 0.9e6),  # each budget pruned on its own: never a handler's photo for a resident's
            ),
        )
        # downstream of the one incident sink, in the order each opened incident meets them
        self.incidents.on_open.append(self._count_incident)
        if self.clips is not None:
            self.incidents.on_open.append(self.clips)
        self.incidents.on_open.append(self.workorders.on_incident_opened)  # a graded work order (docs/workorders.md)
        # the camera shows the condition cleared: a handled case closes, verified on camera
        self.incidents.on_close.append(self.workflow.verify_cleared)
        # the same object back within its rule's cooldown: the incident and its case continue
        self.incidents.on_reopen.append(self.workflow.condition_back)
        self.metrics.watch_delivery(self.outbox)
        self.metrics.watch_cases(self.workorders)
        self.metrics.watch_patrol(self.patrol.last_cycles)
        self.metrics.watch_lines(self.registry.line_keys)
        self.metrics.watch_detector(self.pipeline.detector_failures.status)  # failed batches (/health: degraded)
        # --- IoT alarms (issue 14, docs/iot.md): devices' alarms into the same incident writer ---
        self.iot = IotService(
            settings.iot, self.store, self.incidents, self.workorders.catalogue, snapshot=self.registry.latest_jpeg,
            watch_of=lambda camera_id: self.registry.view(camera_id).config.watch, patrols=self.patrol,  # video linkage
        )
        self.metrics.registry.register(IotCollector(self.iot))
        # --- end IoT ---
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

    def detector_health(self) -> DetectorHealth:
        """The detector's failed batches: ``failing`` for a minute after one (``/health`` says degraded)."""
        return self.pipeline.detector_failures.status()

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
                log.exception("service start failed; stopping what had started")
                try:
                    self._stop_parts(10.0)
                finally:
                    self._state = ServiceState.STOPPED
                raise
            self._state = ServiceState.RUNNING
        log.info("service started with %d camera(s)", len(self.registry))

    def _start(self, again: bool) -> None:
        if again:  # a stopped reader does not start again: the cameras are built afresh
            self.registry.clear()
            self.forwarding = build_dispatcher(self.settings.forwarding, self.outbox)
            self.patrol.reopen()
        self.registry.load()
        for plan_id, raw in [] if again else self.store.patrol_plans.all():  # plans created through the API
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
            problems = self.registry.plan_problems(plan)
            if problems:
                log.warning("saved patrol plan %r: %s", plan_id, problems)
        if self.clips is not None:  # clips an earlier run queued but never cut (a crash): say why there are none
            missed = self.clips.left_behind(self.store.open_without_clip(opened_before=time.time()))
            if missed:
                log.warning("%d incident(s) open before a crash lost their pending clip", missed)
        self.incidents.adopt_open([*self.registry.rule_keys(), *self.iot.rule_keys()], time.time())  # (+ IoT devices' alarms)
        self._restore_rule_clocks()
        if self.clips is not None:
            self.clips.start()
        self.workflow_clock.start()
        repaired = reconcile_workorders(self.workorders)  # incidents stored just before a crash
        if repaired:
            log.warning("%d incident(s) stored before a crash had no work order; created now", repaired)
        self.forwarding.start()
        self.retention.start()
        self.iot.start()  # IoT ingest (issue 14): after forwarding, so its first alarms flow out at once
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
        self.iot.stop(timeout)  # IoT ingest first (issue 14): the broker keeps what arrives meanwhile
        self.patrol.stop_all(timeout)
        self.registry.stop_readers(timeout)  # the cameras stay listed (their last frame, "stopped") until a start
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
        restored = self.incidents.restore_rule_clocks(self.registry.continuous_analyzer)
        if restored:
            log.info("rule clocks of %d object(s) restored from their open incidents", restored)

    # -- the API's camera operations (the registry's) ----------------------------------
    def add_camera(self, config: CameraConfig) -> CameraView:
        """Start analysing a new network camera now; it is saved and comes back after a restart.
        A patrol waiting with nothing to visit looks again at once."""
        view = self.registry.add(config)
        self.patrol.cameras_changed()
        return view

    def remove_camera(self, camera_id: str) -> None:
        try:
            self.registry.remove(camera_id)
        finally:  # a removal that failed half-way (the database) has still taken the camera out of the list
            self.patrol.cameras_changed()

    def update_scene(self, camera_id: str, scene: SceneConfig) -> tuple[CameraView, bool]:
        return self.registry.update_scene(camera_id, scene)

    def camera(self, camera_id: str) -> CameraView:
        return self.registry.view(camera_id)

    def cameras(self) -> list[CameraView]:
        return self.registry.views()

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return self.registry.latest_jpeg(camera_id)

    def main_stream_jpeg(self, camera_id: str) -> bytes | None:
        return self.registry.main_stream_jpeg(camera_id)

    def patrol_targets(self) -> list[PatrolTarget]:
        return self.registry.targets()

    def _packet_ring(self, camera_id: str) -> PacketRing | None:
        return self.registry.packet_ring(camera_id)

    def _camera_info(self, camera_id: str) -> CameraInfo:
        return self.registry.info(camera_id)

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
                    "frames_inferred": view.frames_inferred,
                    "frames_coasted": view.frames_coasted,
                    "frames_cropped": view.frames_cropped,
                    "open_incidents": len(view.open_incident_types),
                    "behind": view.analysis_behind,  # issue 16: vision/pace.py
                }
            )
        return out

    def _count_incident(self, incident: Incident) -> None:
        self.metrics.incident_opened(incident.type)

    def _case_position(self, incident: Incident) -> Position | None:
        """Where a new case is (issue 15, docs/people.md): the position its report brought,
        else its camera's ``position``, else its IoT device's longitude/latitude."""
        found = reported_position(incident)
        if found is not None:
            return found
        source = incident.camera_id
        if source.startswith("iot:"):
            device = self.iot.registry.get(source[4:])
            if device is None or device.longitude is None or device.latitude is None:
                return None
            return Position(lon=device.longitude, lat=device.latitude)
        try:
            return self.registry.view(source).config.position
        except CameraNotFound:
            return None

    # -- patrol -----------------------------------------------------------------------
    def _validate_plan(self, plan: PatrolPlan) -> None:
        problems = self.registry.plan_problems(plan)
        if problems:
            raise ValueError(f"patrol plan {plan.id!r}: {problems}")
        cap = self.settings.limits.max_patrol_concurrency
        if plan.concurrency > cap:
            raise ValueError(f"patrol plan {plan.id!r}: concurrency {plan.concurrency} is more than limits.max_patrol_concurrency ({cap})")

    def _patrol_outcome(self, plan: PatrolPlan, outcome: CameraOutcome) -> None:
        self.metrics.patrol_visit(plan.id, outcome.ok, outcome.error_kind)
