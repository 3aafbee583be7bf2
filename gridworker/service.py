"""The composition root of a running gridworker: readers → batcher → detector → tracker →
rules → incidents, each stage in its own thread joined by bounded queues (Frigate's
per-stage loops around one stop event).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import supervision as sv

from gridworker.incidents import CameraInfo, Incident, IncidentManager, IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.flows import FlowRecorder, FlowStore
from gridworker.incidents.forwarding import attach_forwarding
from gridworker.incidents.outbox import reconcile_workorders
from gridworker.incidents.retention import RetentionWorker
from gridworker.incidents.workflow import Workflow, WorkflowClock
from gridworker.models.tiling import TileConfig, detect_tiled
from gridworker.incidents.workorders import attach_workorders
from gridworker.models.base import Detector
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.patrol.engine import PatrolRun, default_visitor
from gridworker.patrol.glance_rules import VisitAnalyzer
from gridworker.patrol.manager import PatrolLimitReached, PatrolManager
from gridworker.streams.glance import GlanceResult
from gridworker.streams.config import StreamConfig
from gridworker.streams.evidence import PacketRing, RingBudget
from gridworker.streams.frame import Frame
from gridworker.streams.health import StreamHealth
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger
from gridworker.streams.sources import require_network
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.vision.signals import SignalBoard
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.batcher import Batcher
from gridworker.vision.config import SceneConfig

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


@dataclass
class _Camera:
    config: CameraConfig
    stream: CameraStream
    analyzer: CameraAnalyzer
    persisted: bool = False
    visits: VisitAnalyzer | None = None  # patrol-only cameras: analyses their patrol visits
    last: FrameAnalysis | None = None
    frames_analysed: int = 0
    analysed_ts: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    # the annotated JPEG of ``last``, rendered once however many consoles poll it
    jpeg: tuple[FrameAnalysis, bytes] | None = None


@dataclass(frozen=True, slots=True)
class CameraView:
    """A read-only picture of one camera for the API."""

    config: CameraConfig
    health: StreamHealth
    analysed_fps: float
    frames_analysed: int
    open_incident_types: list[str]
    last_analysed_at: float | None


FrameObserver = Callable[[FrameAnalysis, float], None]


class Service:
    """Owns the cameras, the pipeline threads, the incident store and the metrics.

    Example:
        >>> service = Service(settings, detector=load_detector(settings.detector))  # doctest: +SKIP
        >>> service.start(); ...; service.stop()  # doctest: +SKIP
    """

    def __init__(self, settings: Settings, detector: Detector, store: IncidentStore | None = None) -> None:
        self.settings = settings
        self.detector = detector
        self.store = store or IncidentStore(settings.database.url)
        self.annotator = FrameAnnotator(jpeg_quality=settings.pipeline.snapshot_quality)
        self.metrics = Metrics(self._camera_metrics)
        self.incidents = IncidentManager(
            store=self.store,
            camera_info=self._camera_info,
            annotator=self.annotator,
            write_interval_s=settings.pipeline.incident_write_interval_s,
        )
        self.incidents.on_open.append(self._count_incident)
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
            self.incidents.on_open.append(self.clips)
        self.signals = SignalBoard()
        self._cameras: dict[str, _Camera] = {}
        self._cameras_lock = threading.RLock()
        # every camera's clip ring draws on one total (limits.clip_buffers_total_mb)
        self.ring_budget = RingBudget(int(settings.limits.clip_buffers_total_mb * 1_000_000))
        # serialises camera saves, deletes and stream starts (never taken by the pipeline): a save
        # checks, under it, that its camera is still the one listed, so a DELETE cannot be undone
        # by a save that was still in flight (it would bring the camera back after a restart)
        self._persist_lock = threading.Lock()
        self.batcher = Batcher(
            self._live_sources,
            max_batch=detector.max_batch,
            deadline_s=settings.pipeline.batch_deadline_ms / 1000.0,
            submit_max_per_batch=settings.pipeline.patrol_batch_slots,
        )
        self.patrol_max_pending = settings.pipeline.patrol_max_pending or 2 * detector.max_batch
        self.patrol = PatrolManager(
            self._make_patrol_run,
            settings.patrol_plans,
            validate=self._validate_plan,
            save=lambda plan: self.store.save_patrol_plan(plan.id, plan.model_dump_json()),  # PUT plans survive a restart
            forget=self.store.delete_patrol_plan,
            max_plans=settings.limits.max_patrol_plans,
        )
        self._results: queue.Queue[tuple[list[Frame], list[sv.Detections]]] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.observers: list[FrameObserver] = []
        # counting-line crossings → gridworker_line_crossings_total + per-minute rows beside the incidents
        self.flows = FlowStore(self.store.engine)  # the incident store's connection pool
        self.flow_recorder = FlowRecorder(self.flows, counter=self.metrics.line_crossings)
        self.observers.append(self.flow_recorder.observe)
        self.workorders = attach_workorders(self)  # a graded work order per incident (docs/workorders.md)
        self.workflow = Workflow(self.workorders)
        # every work-order change leaves through the outbox, committed with it (docs/forwarding.md)
        self.forwarding = attach_forwarding(self)
        self.workflow_clock = WorkflowClock(self.workflow, interval_s=settings.workorders.tick_interval_s)
        # clips, settled outbox messages and old audit rows are deleted as configured (retention:)
        self.retention = RetentionWorker(
            self.store, settings.retention, clips_dir=evidence.resolve_clips_dir(settings.database.url).resolve()
        )
        # the camera shows the condition cleared: a handled case closes, verified on camera
        self.incidents.on_close.append(self._verify_cleared)
        self.started = False

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
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
        for plan_id, raw in self.store.saved_patrol_plans():  # plans created through the API
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
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._inference_loop, name=f"gw-inference-{i}", daemon=True)
            for i in range(self.settings.pipeline.inference_workers)
        ]
        self._threads.append(threading.Thread(target=self._post_loop, name="gw-post", daemon=True))
        if self.clips is not None:
            self.clips.start()
        self.workflow_clock.start()
        repaired = reconcile_workorders(self.workorders)  # incidents stored just before a crash
        if repaired:
            log.warning("%d incident(s) stored before a crash had no work order; created now", repaired)
        self.forwarding.start()
        self.retention.start()
        for t in self._threads:
            t.start()
        self.started = True
        log.info("service started with %d camera(s)", len(self._cameras))

    def stop(self, timeout: float = 10.0) -> None:
        # patrols first, while inference still runs to answer the frames their visits wait for
        self.patrol.stop_all(timeout)
        self._stop.set()
        with self._cameras_lock:
            cams = list(self._cameras.values())
        for cam in cams:
            cam.stream.stop(timeout=timeout)
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                log.error("thread %s did not stop within %.0f s", t.name, timeout)
        self._threads = []
        self.batcher.cancel_pending(RuntimeError("service stopped"))
        if self.clips is not None:
            self.clips.stop()  # pending clips are cut now with what the rings hold
        self.flow_recorder.flush()
        self.workflow_clock.stop()
        self.forwarding.stop()
        self.retention.stop()
        self.started = False

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
        return cam.analyzer if cam is not None and cam.visits is None else None

    def _verify_cleared(self, incident_id: int, at: float) -> None:
        self.workflow.verify_cleared(incident_id, at)

    # -- cameras --------------------------------------------------------------------
    def _visit_analyzer(self, config: CameraConfig) -> VisitAnalyzer:
        """The analyser of a patrol-only camera's visits (glance rules, revisit, watch stops)."""
        return VisitAnalyzer(
            config.id,
            config.scene(),
            incidents=self.incidents,
            store=self.store,
            annotator=self.annotator,
            camera_info=self._camera_info,
            on_open=[self._patrol_incident_opened],
            tracker=self.settings.tracker,
        )

    def _patrol_incident_opened(self, incident: Incident) -> None:
        """A revisit incident (stored by the visit analyser, not the incident manager) gets what
        every opened incident gets: counted, its work order (so it is queued and forwarded)."""
        for callback in list(self.incidents.on_open):
            try:
                callback(incident)
            except Exception:  # one listener must not cost the others
                log.exception("incident %s: open callback failed", incident.id)

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
            cam = _Camera(config, stream, analyzer, persisted=persist or persisted, visits=visits)
            self._cameras[config.id] = cam
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
        # outside the cameras lock: the batcher holds its own lock while it asks for sources
        self.batcher.forget(camera_id)
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
            cam.analyzer.set_scene(config.scene())
            if cam.visits is not None:  # patrol-only: a new visit analyser (revisit sightings restart)
                cam.visits = self._visit_analyzer(config)
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
        ts = list(cam.analysed_ts)
        fps = (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) >= 2 and ts[-1] > ts[0] else 0.0
        if ts and time.time() - ts[-1] > 5.0:
            fps = 0.0
        return CameraView(
            config=cam.config,
            health=cam.stream.health(),
            analysed_fps=round(fps, 2),
            frames_analysed=cam.frames_analysed,
            open_incident_types=self.incidents.open_types(cam.config.id),
            last_analysed_at=ts[-1] if ts else None,
        )

    def camera(self, camera_id: str) -> CameraView:
        return self._view(self._get(camera_id))

    def cameras(self) -> list[CameraView]:
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [self._view(c) for c in cams]

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The latest analysed frame with boxes and zones drawn, or None before the first."""
        cam = self._get(camera_id)
        last = cam.last
        if last is None:
            return None
        cached = cam.jpeg
        if cached is not None and cached[0] is last:
            return cached[1]
        active = [v.zone_id for v in last.active]
        jpeg = self.annotator.render_jpeg(last.frame.image, last.detections, last.zones, active_zone_ids=active)
        cam.jpeg = (last, jpeg)
        return jpeg

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

    def _live_sources(self) -> Sequence[CameraStream]:
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [c.stream for c in cams if c.stream.is_live]

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
        self.metrics.incidents_opened.labels(type=incident.type).inc()

    def _tiles(self, camera_id: str) -> TileConfig | None:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return cam.config.detect_tiles if cam is not None else None

    # -- pipeline threads -------------------------------------------------------------
    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            work = self.batcher.next_work(self._stop)
            if not len(work):
                continue
            t0 = time.perf_counter()
            try:
                detections = detect_tiled(self.detector, [f.image for f in work.frames], [self._tiles(f.camera_id) for f in work.frames])
                live = work.resolve(detections)  # patrol frames: their visits get the detections
            except Exception as exc:  # a bad frame must not kill the pipeline
                work.fail(exc)
                log.exception("detector failed on a batch of %d; batch skipped", len(work))
                continue
            self.metrics.inference_seconds.observe(time.perf_counter() - t0)
            self.metrics.batch_size.observe(len(work))
            if not live:
                continue
            batch = [f for f, _ in live]
            detections = [d for _, d in live]
            while not self._stop.is_set():
                try:
                    self._results.put((batch, detections), timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _post_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch, detections = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            for frame, dets in zip(batch, detections):
                try:
                    self._post_one(frame, dets)
                except Exception:
                    log.exception("post-processing failed for camera %s", frame.camera_id)

    def _post_one(self, frame: Frame, dets: sv.Detections) -> None:
        with self._cameras_lock:
            cam = self._cameras.get(frame.camera_id)
        if cam is None:  # removed meanwhile
            return
        if cam.last is not None and frame.seq <= cam.last.frame.seq:
            # with several inference workers a later batch can finish first: the tracker
            # only moves forward in time, so a frame older than the last analysed is dropped
            return
        analysis = cam.analyzer.analyze(frame, dets)
        self.incidents.observe(analysis)
        done = time.time()
        cam.last = analysis
        cam.analysed_ts.append(done)
        cam.frames_analysed += 1
        self.metrics.frames_analysed.inc()
        latency = done - frame.ts
        self.metrics.frame_latency_seconds.observe(latency)
        for observer in self.observers:
            observer(analysis, latency)

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

    def _patrol_admit(self) -> bool:
        """Back-pressure: a new visit starts only while few patrol frames wait for inference."""
        return self.batcher.pending() < self.patrol_max_pending

    def _make_patrol_run(self, plan: PatrolPlan) -> PatrolRun:
        def sink(target: PatrolTarget, frames: Sequence[Frame]) -> None:
            self._patrol_sink(plan, target, frames)

        return PatrolRun(plan, self.patrol_targets, sink, visitor=self._patrol_visitor, admit=self._patrol_admit)

    def _patrol_sink(self, plan: PatrolPlan, target: PatrolTarget, frames: Sequence[Frame]) -> None:
        """A patrol-only camera's visit frames → the shared batched inference → glance rules / revisit."""
        with self._cameras_lock:
            cam = self._cameras.get(target.camera_id)
        if cam is None or cam.visits is None or not frames:
            return
        futures = [self.batcher.submit(f) for f in frames]
        limit = 30.0 + plan.visit_budget_s()
        try:
            detections = [fut.result(timeout=limit) for fut in futures]
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        if plan.mode == "watch":
            for frame, dets in zip(frames, detections, strict=True):
                cam.last = cam.visits.analyse_watch(frame, dets)
        else:
            cam.visits.analyse_glance(frames, detections)
            cam.last = cam.visits.last
        done = time.time()
        cam.analysed_ts.append(done)
        cam.frames_analysed += len(frames)
        self.metrics.frames_analysed.inc(len(frames))

    def _patrol_visitor(self, target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]) -> GlanceResult:
        """Patrol-only cameras get a real glance/watch; a continuously watched camera is not
        opened again: its visit is its next analysed frame (all its rules already run on it)."""
        with self._cameras_lock:
            cam = self._cameras.get(target.camera_id)
        if cam is None or cam.visits is not None:
            if cam is not None and cam.visits is not None and plan.mode == "watch":
                cam.visits.begin_watch(plan.watch_fps)  # a fresh tracker and rule clocks for this stop
            return default_visitor(target, plan, stop, first_seq, deliver)
        started_at, t0 = time.time(), time.monotonic()
        wait_s = plan.open_timeout_s + plan.keyframe_timeout_s
        before = cam.frames_analysed
        while not stop.is_set() and cam.frames_analysed == before and time.monotonic() - t0 < wait_s:
            stop.wait(0.02)
        url = cam.config.public_url()
        took = time.monotonic() - t0
        if stop.is_set() and cam.frames_analysed == before:
            return GlanceResult(target.camera_id, url, started_at, total_s=took, error_kind="stopped", error="stopped")
        if cam.frames_analysed == before:
            health = cam.stream.health()
            why = f"continuous stream is {health.state.value}" + (f": {health.last_error}" if health.last_error else "")
            return GlanceResult(target.camera_id, url, started_at, total_s=took, error_kind="keyframe_timeout", error=why)
        return GlanceResult(target.camera_id, url, started_at, first_keyframe_s=took, total_s=took)
