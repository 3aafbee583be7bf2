"""The data path of a running gridworker: readers → batcher → detector → per-camera analyzer →
one incident sink.

:class:`Pipeline` owns the inference and post-processing threads and every camera's runtime
state (:class:`CameraSlot`: its reader, analyser, patrol judge, tiling, latest analysed frame
and rate). Readers push each published frame to the batcher (nothing polls on a timer);
patrol visits enter the same batcher through one typed entry point, :meth:`Pipeline.judge_visit`,
after :meth:`Pipeline.admit` let them start (back-pressure on a condition, no busy-wait).
Every observation (an analysed frame, a revisit report) goes to one
:class:`~gridworker.vision.observations.IncidentSink`, the incident manager; everything
downstream of an incident hangs off that sink (see docs/architecture.md).

Threads: ``inference_workers`` inference threads (gather a batch, run the detector, hand the
live frames on through a bounded queue of 2) and one post-processing thread (analyse each
live frame in order, submit it, record it). Patrol visits run on the patrol's own threads
and block on their frames' futures.

A live camera has one frame in the pipeline at a time: the batcher gives none of its frames
(inferred or coasted) while an earlier one is still inferred or waits to be analysed, so with
several inference workers a coasted frame never overtakes the inferred frame it should coast
on. Under motion gating, a frame holding an object the model has seen only once (or a track
the confirmation has not confirmed: ``vision/coasting.py``) has the camera's frames inferred
whatever their motion for ``UNSURE_INFER_S``, so one detection is never replayed until the
next refresh.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import supervision as sv

from gridworker.models.base import Detector
from gridworker.models.config import DEFAULT_DETECTOR
from gridworker.models.multi import detect_models, resized
from gridworker.models.tiling import Region, TileConfig
from gridworker.streams.frame import Frame, FrameListener
from gridworker.streams.glance import GlanceResult
from gridworker.streams.health import StreamHealth
from gridworker.locked import LockedMap
from gridworker.streams.redact import get_logger

from .analyzer import CameraAnalyzer, FrameAnalysis
from .annotate import FrameAnnotator
from .batcher import Batcher, Coasted
from .coasting import UNSURE_INFER_S, analysing
from .config import SceneConfig
from .lowlight import LowLightConfig, correct
from .motion import MotionGate
from .motioncrop import CropModels, CropPlan, SeenBoxes, merge_outside
from .observations import IncidentSink, VisitJudgement

__all__ = [
    "CameraSlot",
    "DetectorFailures",
    "DetectorHealth",
    "FrameObserver",
    "LiveReader",
    "PatrolVisit",
    "Pipeline",
    "PipelineMeter",
    "PipelineState",
    "SlotStats",
    "VisitJudge",
]

log = get_logger(__name__)

#: Called with each analysed live frame and its latency (capture → incidents written), seconds.
FrameObserver = Callable[[FrameAnalysis, float], None]

#: What the inference threads hand the post thread: a live frame with its detections, or a
#: coasted frame (no detections: it is analysed with its camera's last ones).
_PostItem = tuple[Frame, sv.Detections] | tuple[Coasted, None]


class PipelineState(str, enum.Enum):
    """IDLE (built) → RUNNING → STOPPED → RUNNING again after another ``start``."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"


class LiveReader(Protocol):
    """What the pipeline needs of a camera's reader (``streams.CameraStream``)."""

    @property
    def camera_id(self) -> str: ...

    def on_frame(self, listener: FrameListener | None) -> None: ...

    def health(self) -> StreamHealth: ...


class VisitJudge(Protocol):
    """Judges a patrol-only camera's visits (``vision.visits.VisitAnalyzer``)."""

    def begin_watch(self, fps: float) -> None: ...

    def set_scene(self, scene: SceneConfig) -> None: ...

    def judge_glance(
        self, frames: Sequence[Frame], detections: Sequence[sv.Detections], submit: Callable[[VisitJudgement], None]
    ) -> VisitJudgement | None:
        """Judge a glance and ``submit`` the judgement; when ``submit`` raises, forget the visit
        (a vehicle it reported is reported again by the visit done again) and let it raise."""

    def analyse_watch(self, frame: Frame, dets: sv.Detections) -> VisitJudgement: ...


class PipelineMeter(Protocol):
    """Where the pipeline's figures go (``gridworker.metrics.Metrics``)."""

    def batch_done(self, size: int, seconds: float) -> None: ...

    def frames_done(self, n: int, latency_s: float | None) -> None: ...

    def listener_failed(self, event: str, listener: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SlotStats:
    """A camera's analysis figures at one moment."""

    frames_analysed: int
    analysed_fps: float
    last_analysed_at: float | None
    frames_inferred: int = 0  # live frames the model ran on
    frames_coasted: int = 0  # live frames the motion gate kept from the model
    frames_cropped: int = 0  # inferred live frames the model saw only the moved part of (motion.crop)

    @property
    def inferred_fraction(self) -> float | None:
        """Inferred / analysed live frames (1.0 without motion gating); None before the first."""
        live = self.frames_inferred + self.frames_coasted
        return round(self.frames_inferred / live, 3) if live else None


@dataclass(eq=False)
class CameraSlot:
    """One camera's runtime state in the pipeline.

    ``visits`` set: a patrol-only camera (its frames come from patrol visits, its reader
    never streams); otherwise the reader streams and ``analyzer`` analyses every frame.
    """

    camera_id: str
    reader: LiveReader
    analyzer: CameraAnalyzer
    visits: VisitJudge | None = None
    tiles: TileConfig | None = None
    #: detect only inside this part of the frame (normalised x0, y0, x1, y1: the rules' region)
    region: Region | None = None
    #: the models this camera's frames go through (ids of the pipeline's models)
    detectors: tuple[str, ...] = (DEFAULT_DETECTOR,)
    #: the models' input size for this camera (``imgsz``; None: each model's own)
    imgsz: int | None = None
    #: brighten dark frames before the detector (the analysis and evidence keep the camera's picture)
    low_light: LowLightConfig = field(default_factory=LowLightConfig)
    #: motion gating (``vision/motion.py``): frames without motion in a rule zone skip the model
    motion: MotionGate | None = None
    # guarded by _cond; notified on every recorded analysis
    _last: FrameAnalysis | None = field(default=None, init=False)
    _last_raw: sv.Detections | None = field(default=None, init=False)  # the last inferred frame's detections
    _frames: int = field(default=0, init=False)
    _inferred: int = field(default=0, init=False)  # live frames that went through the model
    _coasted: int = field(default=0, init=False)  # live frames analysed with the last detections
    _cropped: int = field(default=0, init=False)  # inferred live frames the model saw only a window of
    _seen: SeenBoxes | None = field(default=None, init=False)  # what a motion crop's window must hold
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=50), init=False)
    _jpeg: tuple[FrameAnalysis, bytes] | None = field(default=None, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    # one visit of this camera judged and submitted at a time (two plans may visit it)
    #: held while a frame or a visit's judgements go to the sink, and by :meth:`retire`: once
    #: that returns, nothing more of this camera reaches the sink (its incidents can be closed)
    _visit_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    removed: bool = field(default=False, init=False)

    def retire(self) -> None:
        """After :meth:`Pipeline.remove`: wait for a frame or a visit of this camera being
        judged, and let none through after it, so the camera's incidents can be closed for
        good. Not under a lock the sink's listeners take (they look cameras up)."""
        with self._visit_lock:
            self.removed = True

    @property
    def patrol_only(self) -> bool:
        return self.visits is not None

    @property
    def last(self) -> FrameAnalysis | None:
        with self._cond:
            return self._last

    def record(
        self, analysis: FrameAnalysis, frames: int, at: float, raw: sv.Detections | None = None, coasted: bool = False, cropped: bool = False
    ) -> None:
        """An analysed frame: ``raw`` its detections from the model (a live inferred frame;
        ``cropped`` when the model saw only a window of it), ``coasted`` when it was analysed
        with the last ones instead."""
        with self._cond:
            self._last = analysis
            self._frames += frames
            self._times.append(at)
            if raw is not None:
                self._last_raw = raw
                self._inferred += frames
                self._cropped += frames if cropped else 0
            elif coasted:
                self._coasted += frames
            self._cond.notify_all()

    def seen_boxes(self) -> SeenBoxes | None:
        """The boxes the model found lately on this camera, when its motion gate crops (None otherwise)."""
        cfg = self.motion.config if self.motion is not None else None
        if cfg is None or not cfg.crop:
            return None
        with self._cond:
            if self._seen is None:
                self._seen = SeenBoxes(cfg.crop_hold_s)
            self._seen.hold_s = cfg.crop_hold_s  # a scene edit may change it; the boxes seen stay
            return self._seen

    def coast_input(self) -> tuple[np.ndarray, sv.Detections] | None:
        """The last inferred live frame's picture and detections, for a coasted frame (None before one)."""
        with self._cond:
            if self._last is None or self._last_raw is None:
                return None
            return self._last.frame.image, self._last_raw

    def stats(self, now: float) -> SlotStats:
        with self._cond:
            ts, frames, inferred, coasted, cropped = list(self._times), self._frames, self._inferred, self._coasted, self._cropped
        fps = (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) >= 2 and ts[-1] > ts[0] else 0.0
        if ts and now - ts[-1] > 5.0:
            fps = 0.0
        return SlotStats(frames, round(fps, 2), ts[-1] if ts else None, inferred, coasted, cropped)

    def wait_analysed(self, after: int, stop: threading.Event, timeout: float) -> bool:
        """Block until more than ``after`` frames were analysed (True), ``timeout`` passes or
        ``stop`` is set (False). Woken by :meth:`record`; checks ``stop`` at least every 0.5 s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frames <= after:
                left = deadline - time.monotonic()
                if left <= 0 or stop.is_set():
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    @property
    def frames_analysed(self) -> int:
        with self._cond:
            return self._frames


@dataclass(frozen=True, slots=True)
class DetectorHealth:
    """The detector's batches at one moment (``/health``, ``/metrics``).

    Attributes:
        failing: a batch failed within the last ``window_s`` (its frames were skipped).
        batches_failed: batches failed since the pipeline was built.
        frames_failed: their frames (live and patrol).
        last_failed_ago_s: seconds since the last failure; None before one.
        last_error: the last failure's exception type (its message is in the log, not here:
            ``/health`` answers without a key).
        window_s: how long after a failure ``failing`` stays true.
    """

    failing: bool
    batches_failed: int
    frames_failed: int
    last_failed_ago_s: float | None
    last_error: str | None
    window_s: float

    @property
    def reason(self) -> str | None:
        """Why the detector is degraded, in one line; None while it is not failing."""
        if not self.failing:
            return None
        return (
            f"detector: {self.batches_failed} batch(es) failed since start ({self.frames_failed} frame(s) skipped),"
            f" the last {self.last_failed_ago_s or 0.0:.0f} s ago ({self.last_error}); see the log"
        )


class DetectorFailures:
    """Batches the detector failed on: counted, logged without flooding, told to ``/health``.

    The first failure is logged with its traceback; while failures go on, one ERROR line every
    ``log_interval_s`` sums them up (how many batches and frames since the last line, and the
    last error). A failure after a quiet ``log_interval_s`` starts over with a traceback. When
    the batches run again, failures not yet summed up are said in one line. ``status`` is
    ``failing`` for ``window_s`` after each failure. Thread-safe; bounded (counters only).

    Example:
        >>> failures = DetectorFailures()
        >>> failures.status().failing
        False
    """

    def __init__(self, *, log_interval_s: float = 60.0, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = float(log_interval_s)
        self._window = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._batches = 0
        self._frames = 0
        self._pending_batches = 0  # failures since the last log line
        self._pending_frames = 0
        self._last_log: float | None = None
        self._last_failed: float | None = None
        self._last_error: str | None = None

    def failed(self, frames: int, exc: BaseException) -> None:
        """A batch of ``frames`` failed with ``exc`` (called in its ``except`` block)."""
        with self._lock:
            now = self._clock()
            self._batches += 1
            self._frames += frames
            self._pending_batches += 1
            self._pending_frames += frames
            self._last_failed = now
            self._last_error = type(exc).__name__
            if self._last_log is not None and now - self._last_log < self._interval:
                return
            batches, frames_sum, total = self._pending_batches, self._pending_frames, self._batches
            since = None if self._last_log is None else now - self._last_log
            self._pending_batches = self._pending_frames = 0
            self._last_log = now
        if batches == 1:  # a new run of failures: its traceback, once
            log.error(
                "detector failed on a batch of %d frame(s); batch skipped (%d failed batch(es) since start; while failures go on,"
                " one line every %.0f s sums them up)", frames, total, self._interval, exc_info=exc,
            )
        else:
            log.error(
                "detector failed on %d batch(es) (%d frame(s) skipped) in the last %.0f s, %d since start; last error: %s",
                batches, frames_sum, since or 0.0, total, _one_line(exc),
            )

    def succeeded(self) -> None:
        """A batch ran: failures not yet summed up are, once ``log_interval_s`` has passed."""
        with self._lock:
            if not self._pending_batches or self._last_log is None:
                return
            now = self._clock()
            if now - self._last_log < self._interval:
                return
            batches, frames, since = self._pending_batches, self._pending_frames, now - self._last_log
            self._pending_batches = self._pending_frames = 0
            self._last_log = now
            error = self._last_error
        log.warning(
            "detector failed on %d more batch(es) (%d frame(s) skipped) in the last %.0f s (last error %s); it runs again",
            batches, frames, since, error,
        )

    def status(self) -> DetectorHealth:
        with self._lock:
            now = self._clock()
            ago = None if self._last_failed is None else max(0.0, now - self._last_failed)
            return DetectorHealth(
                failing=ago is not None and ago < self._window,
                batches_failed=self._batches,
                frames_failed=self._frames,
                last_failed_ago_s=ago,
                last_error=self._last_error,
                window_s=self._window,
            )


def _windowed(frame: Frame, crop: tuple[CropPlan, Detector] | None) -> Frame:
    """``frame`` carrying the window the model ran on (None: the whole frame)."""
    region = crop[0].region if crop is not None else None
    return frame if frame.region == region else replace(frame, region=region)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters of the message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class _Held:
    """A live frame's hold on its camera in the batcher (``next_work(hold=True)``): released
    once, by the post thread, when the frame is analysed or given up."""

    __slots__ = ("_batcher", "_camera_id", "_released")

    def __init__(self, batcher: Batcher, camera_id: str) -> None:
        self._batcher, self._camera_id, self._released = batcher, camera_id, False

    def release(self, infer_until: float | None = None) -> None:
        if not self._released:
            self._released = True
            self._batcher.done(self._camera_id, infer_until)


@dataclass(frozen=True, slots=True)
class PatrolVisit:
    """One patrol visit's frames for the shared detector: the patrol's one way in.

    Attributes:
        camera_id: the visited (patrol-only) camera.
        frames: the visit's keyframes (glance) or sampled frames (watch).
        mode: ``glance`` (one judgement of the visit) or ``watch`` (every frame tracked).
        timeout_s: longest wait for the frames' detections.
    """

    camera_id: str
    frames: tuple[Frame, ...]
    mode: Literal["glance", "watch"] = "glance"
    timeout_s: float = 60.0


class Pipeline:
    """Readers → batcher → detector → per-camera analyser → one incident sink.

    Args:
        detector: runs whole batches (its ``max_batch`` sizes them).
        sink: the one writer of incidents.
        annotator: renders the latest analysed frame of a camera as a JPEG.
        meter: batch, frame and listener-failure figures.
        deadline_s: once a batch has a live frame, wait at most this long for more.
        patrol_batch_slots: most patrol frames per batch while a live camera is connected.
        patrol_max_pending: :meth:`admit` holds new visits while this many patrol frames wait.
        inference_workers: threads that gather and run batches.

    Example::

        pipeline = Pipeline(detector, manager, annotator=FrameAnnotator(), meter=metrics)
        pipeline.add(CameraSlot("gate", reader, analyzer)); pipeline.start()
        pipeline.stop()
    """

    def __init__(
        self,
        detector: Detector,
        sink: IncidentSink,
        *,
        annotator: FrameAnnotator,
        meter: PipelineMeter,
        deadline_s: float = 0.0,
        patrol_batch_slots: int | None = None,
        patrol_max_pending: int | None = None,
        inference_workers: int = 1,
        models: Mapping[str, Detector] | None = None,
    ) -> None:
        self.detector = detector
        # the default model and the site's others (``detectors:``); batches are formed per model
        self.models: dict[str, Detector] = {DEFAULT_DETECTOR: detector, **(models or {})}
        # the models at a camera's own input size (``imgsz``), sharing their sessions; made when
        # a camera that needs one is added, read by the inference threads (replaced whole)
        self._sized: dict[tuple[str, int], Detector] = {}
        self._crops = CropModels()  # the models at motion crops' sizes (``motion.crop``)
        self._sink = sink
        self._annotator = annotator
        self._meter = meter
        self._workers = inference_workers
        self.batcher = Batcher(max_batch=detector.max_batch, deadline_s=deadline_s, submit_max_per_batch=patrol_batch_slots)
        self.patrol_max_pending = patrol_max_pending or 2 * detector.max_batch
        self.observers: list[FrameObserver] = []
        # the cameras; its lock also guards _sized (never held while a slot or the sink works)
        self._slots: LockedMap[str, CameraSlot] = LockedMap()
        self._state = PipelineState.IDLE
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._results: queue.Queue[list[_PostItem]] = queue.Queue(maxsize=2)
        #: failed batches: counted, logged at most once a minute after the first, told to /health
        self.detector_failures = DetectorFailures()

    # -- cameras ----------------------------------------------------------------------
    def add(self, slot: CameraSlot) -> None:
        """Put a camera in the pipeline; a continuously watched one's reader pushes its frames to the batcher.

        A camera's ``imgsz`` makes its models at that size first (:meth:`prepare_sizes`; the
        camera registry calls that before taking its own lock, so here they are ready).

        Raises:
            KeyError: a camera with this id is in already.
            ModelFormatError: the camera's ``imgsz`` needs a model that cannot resize, or that
                fails at that size.
        """
        with self._slots.locked() as slots:
            if slot.camera_id in slots:
                raise KeyError(slot.camera_id)
        if slot.imgsz is not None:
            self.prepare_sizes(slot.detectors, slot.imgsz)
        with self._slots.locked() as slots:
            if slot.camera_id in slots:
                raise KeyError(slot.camera_id)
            slots[slot.camera_id] = slot
        if not slot.patrol_only:
            self.batcher.attach(slot.camera_id, slot.motion)
            slot.reader.on_frame(self.batcher.offer)

    def prepare_sizes(self, detectors: Sequence[str], imgsz: int) -> None:
        """Make the camera's models at ``imgsz`` (once per model and size), each run once on the
        frames it will get (``with_imgsz``'s warm-up). Runs the model, so callers keep it out of
        their locks (the camera registry calls it before taking its own).

        Raises:
            ModelFormatError: a model that cannot resize, or that fails at that size.
        """
        with self._slots.locked():
            need = [(m, imgsz) for m in detectors if m in self.models and (m, imgsz) not in self._sized]
        made = {key: resized(self.models[key[0]], key[1], key[0]) for key in need}  # runs the model: not under the lock
        if made:
            with self._slots.locked():
                self._sized = {**made, **self._sized}  # one made meanwhile by another call stays

    def remove(self, camera_id: str) -> CameraSlot | None:
        """Take a camera out (its reader is the caller's to stop, and so is :meth:`CameraSlot.retire`
        before its incidents are closed); None when it was not in. Never waits."""
        slot = self._slots.pop(camera_id)
        if slot is not None:
            slot.reader.on_frame(None)
            self.batcher.forget(camera_id)
        return slot

    def set_motion(self, camera_id: str, gate: MotionGate | None) -> None:
        """A continuously watched camera's motion gate changed (a scene or config edit)."""
        slot = self.slot(camera_id)
        if slot is None or slot.patrol_only:
            return
        slot.motion = gate
        self.batcher.attach(camera_id, gate)

    def slot(self, camera_id: str) -> CameraSlot | None:
        return self._slots.get(camera_id)

    def slots(self) -> list[CameraSlot]:
        return self._slots.values()

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The camera's latest analysed frame with boxes and zones drawn (rendered once however
        many consoles poll it); None before the first, or for an unknown camera."""
        slot = self.slot(camera_id)
        if slot is None:
            return None
        last = slot.last
        if last is None:
            return None
        cached = slot._jpeg
        if cached is not None and cached[0] is last:
            return cached[1]
        active = [v.zone_id for v in last.active]
        jpeg = self._annotator.render_jpeg(last.frame.image, last.detections, last.zones, active_zone_ids=active)
        slot._jpeg = (last, jpeg)
        return jpeg

    # -- lifecycle --------------------------------------------------------------------
    @property
    def state(self) -> PipelineState:
        return self._state

    def start(self) -> None:
        """Start the inference and post-processing threads (again after a ``stop``)."""
        if self._state is PipelineState.RUNNING:
            return
        self._stop = threading.Event()
        self._results = queue.Queue(maxsize=2)
        self.batcher.release_all()  # frames held by an earlier run were dropped with its queue
        stop = self._stop
        self._threads = [
            threading.Thread(target=self._inference_loop, args=(stop,), name=f"gw-inference-{i}", daemon=True)
            for i in range(self._workers)
        ]
        self._threads.append(threading.Thread(target=self._post_loop, args=(stop,), name="gw-post", daemon=True))
        for t in self._threads:
            t.start()
        self._state = PipelineState.RUNNING

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads (they finish the batch in hand) and fail waiting patrol frames."""
        self._stop.set()
        self.batcher.wake()
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                log.error("thread %s did not stop within %.0f s", t.name, timeout)
        self._threads = []
        self.batcher.cancel_pending(RuntimeError("pipeline stopped"))
        if self._state is PipelineState.RUNNING:
            self._state = PipelineState.STOPPED

    # -- the live path ----------------------------------------------------------------
    def _inference_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            # hold: each camera taken gives no other frame until the post thread is done with this one
            work = self.batcher.next_work(stop, hold=True)
            items: list[_PostItem] = [(c, None) for c in work.coasted]
            frames = work.frames
            if frames:
                t0 = time.perf_counter()
                try:  # all of it: a frame that fails anywhere here must not keep its camera held
                    with self._slots.locked() as by_id:  # one lookup per batch, not per frame
                        slots = [by_id.get(f.camera_id) for f in frames]
                    crops = [self._crop(f, s) for f, s in zip(frames, slots)]
                    for f, s, c in zip(frames, slots, crops):
                        if c is None and f.region is not None and s is not None and s.motion is not None:
                            s.motion.saw_whole(f.ts)  # its camera is held: the gate judges none of its frames meanwhile
                    tiles = [s.tiles if s is not None else None for s in slots]
                    regions = [c[0].region if c else s.region if s is not None else None for c, s in zip(crops, slots)]
                    chosen = [s.detectors if s is not None else (DEFAULT_DETECTOR,) for s in slots]
                    sizes = [c[0].imgsz if c else s.imgsz if s is not None else None for c, s in zip(crops, slots)]
                    sized = self._sized
                    if any(crops):
                        sized = {**sized, **{(ch[0], c[0].imgsz): c[1] for c, ch in zip(crops, chosen) if c}}
                    images = [f.image if s is None else correct(f.image, s.low_light) for f, s in zip(frames, slots)]
                    detections = detect_models(self.models, DEFAULT_DETECTOR, images, tiles, regions, chosen, sizes, sized)
                    # patrol frames: their visits get the detections; a live frame carries the window inferred (or None)
                    live = [(_windowed(f, c), d) for (f, d), c in zip(work.resolve(detections), crops)]
                except Exception as exc:  # a bad frame must not kill the pipeline
                    work.fail(exc)
                    self.detector_failures.failed(len(work), exc)  # logged once, then summed up once a minute
                    for f in work.live:  # not analysed: the cameras give their next frame
                        self.batcher.done(f.camera_id)
                    live = []
                else:
                    self.detector_failures.succeeded()
                    self._meter.batch_done(len(work), time.perf_counter() - t0)
                items = [*live, *items]
            if not items:
                continue
            while not stop.is_set():
                try:
                    self._results.put(items, timeout=0.5)
                    break
                except queue.Full:
                    continue
            else:  # stopping: these frames are not analysed
                for frame, _ in items:
                    self.batcher.done(frame.camera_id)

    def _post_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                items = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            for frame, dets in items:
                held = _Held(self.batcher, frame.camera_id)
                try:
                    if isinstance(frame, Coasted):
                        self._post_coasted(frame, held)
                    elif dets is not None:
                        self._post_one(frame, dets, held)
                except Exception:
                    log.exception("post-processing failed for camera %s", frame.camera_id)
                finally:  # not analysed: the camera gives its next frame all the same
                    held.release()

    def _post_coasted(self, coasted: Coasted, held: _Held) -> None:
        """A frame the motion gate kept from the model: analysed with the last inferred frame's
        picture and detections, at its own time (tracks coast, rule clocks count on)."""
        slot = self.slot(coasted.camera_id)
        if slot is None or slot.patrol_only:
            return
        source = slot.coast_input()
        if source is None:  # nothing inferred yet: nothing to coast on; the next frames are inferred
            held.release(infer_until=coasted.ts + UNSURE_INFER_S)
            return
        image, raw = source
        self._analyse(slot, Frame(coasted.camera_id, coasted.seq, coasted.ts, image), raw, held, coasted=True)

    def _crop(self, frame: Frame, slot: CameraSlot | None) -> tuple[CropPlan, Detector] | None:
        """The window of a live frame to infer, when its motion gate found the change in a
        small part and the camera's one model can run it at the frame's scale (no tiles, no
        ``detect_region``: their windows have their own scale)."""
        if frame.region is None or slot is None or slot.motion is None or slot.tiles is not None or slot.region is not None:
            return None
        if len(slot.detectors) != 1:
            return None
        seen = slot.seen_boxes()
        if seen is None:
            return None
        size = (frame.width, frame.height)
        boxes = seen.boxes(frame.ts, size)  # the last inferred frame's among them: the window holds every box the merge could keep
        model_id = slot.detectors[0]
        return self._crops.plan(model_id, self.models.get(model_id), slot.imgsz, frame.region, boxes, size, max_area=slot.motion.config.crop_max_area)

    def _post_one(self, frame: Frame, dets: sv.Detections, held: _Held) -> None:
        slot = self.slot(frame.camera_id)
        if slot is None or slot.patrol_only:  # removed meanwhile
            return
        if frame.region is not None:  # the model saw a window: the objects outside it stay where it last saw them
            source = slot.coast_input()
            if source is not None and source[0].shape == frame.image.shape:
                dets = merge_outside(source[1], dets, frame.region, (frame.width, frame.height))
        seen = slot.seen_boxes()
        if seen is not None:
            seen.add(frame.ts, dets.xyxy, (frame.width, frame.height))
        self._analyse(slot, frame, dets, held, coasted=False)

    def _analyse(self, slot: CameraSlot, frame: Frame, dets: sv.Detections, held: _Held, *, coasted: bool) -> None:
        """Analyse one live frame. Once analysed, the camera may give its next frame (``held``):
        when this one holds an object the model has not seen often enough
        (``coasting.Sighting.unsure``), its frames of the next ``UNSURE_INFER_S`` are inferred
        whatever their motion. The next frame's results queue behind this one's."""
        last = slot.last
        if last is not None and frame.seq <= last.frame.seq:
            # the tracker only moves forward in time: a frame older than the last analysed is
            # dropped (a camera has one frame in flight at a time, so this is a safeguard)
            return
        with slot._visit_lock:
            if slot.removed:  # retired while this frame was in flight: its incidents are being closed
                return
            with analysing(coasted=coasted) as sighting:
                analysis = slot.analyzer.analyze(frame, dets)
            held.release(infer_until=frame.ts + UNSURE_INFER_S if sighting.unsure else None)
            self._sink.observe(analysis)
        done = time.time()
        slot.record(analysis, 1, done, raw=None if coasted else dets, coasted=coasted, cropped=frame.region is not None)
        latency = done - frame.ts
        self._meter.frames_done(1, latency)
        for observer in self.observers:
            try:
                observer(analysis, latency)
            except Exception:  # one observer (flows, a benchmark) must not cost the others
                name = getattr(observer, "__qualname__", type(observer).__qualname__)
                log.exception("frame observer %s failed on camera %s", name, frame.camera_id)
                self._meter.listener_failed("frame", str(name))

    # -- the patrol's way in ----------------------------------------------------------
    def admit(self, stop: threading.Event) -> bool:
        """Block until few patrol frames wait for inference (fewer than ``patrol_max_pending``):
        a visit starts only then, so decoding keeps in step with the shared detector. False
        when ``stop`` was set first."""
        return self.batcher.wait_room(self.patrol_max_pending, stop)

    def glance_visit(
        self, camera_id: str, take: Callable[[], GlanceResult], stop: threading.Event, timeout_s: float = 60.0
    ) -> GlanceResult:
        """A patrol-only camera's glance visit, start to end, in the calling (visit) thread.

        Waits for room in the shared detector (:meth:`admit`), then ``take`` opens the camera
        and decodes its keyframe(s) (``streams.glance.glance``, bound to the camera), and the
        keyframes are judged as :meth:`judge_visit` does: they go through the batcher and the
        detector, the camera's visit judge, and the sink. The frames are taken before anything
        waits on the detector, so decoding keeps in step with it. Returns what ``take`` found
        (``error_kind`` "stopped" when ``stop`` was set while waiting for room).
        """
        if not self.admit(stop):
            return GlanceResult(camera_id, "", time.time(), error_kind="stopped", error="stopped")
        result = take()
        if result.ok and result.frames:
            self.judge_visit(PatrolVisit(camera_id, tuple(result.frames), "glance", timeout_s=timeout_s))
        return result

    def begin_watch(self, camera_id: str, fps: float) -> None:
        """A watch stop of a patrol-only camera starts: a fresh tracker and rule clocks."""
        slot = self.slot(camera_id)
        if slot is not None and slot.visits is not None:
            slot.visits.begin_watch(fps)

    def _submit(self, judgement: VisitJudgement) -> None:
        """One visit judgement to the sink: its analysed frame, then its reports."""
        self._sink.observe(judgement.analysis, partial=judgement.partial)
        for report in judgement.reports:
            self._sink.report(report)

    def judge_visit(self, visit: PatrolVisit) -> FrameAnalysis | None:
        """Run a patrol-only camera's visit frames through the shared detector, judge them
        and submit the judgements to the sink. Returns the visit's shown analysis (None for
        an unknown or continuously watched camera, or no frames).

        Raises:
            TimeoutError: the detections did not come within ``visit.timeout_s`` (the
                frames still waiting are cancelled).
            Exception: what the sink raised (a glance's judgement it did not take is forgotten
                by the camera's judge, so the visit done again judges it afresh).
        """
        slot = self.slot(visit.camera_id)
        if slot is None or slot.visits is None or not visit.frames:
            return None
        futures = [self.batcher.submit(f) for f in visit.frames]
        try:
            detections = [fut.result(timeout=visit.timeout_s) for fut in futures]
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        with slot._visit_lock:
            if slot.removed:  # the camera was retired while its frames were inferred
                return None
            if visit.mode == "watch":
                judgements = [slot.visits.analyse_watch(f, d) for f, d in zip(visit.frames, detections, strict=True)]
                for judgement in judgements:
                    self._submit(judgement)
            else:  # the judge keeps what it learnt only once the sink took the judgement
                judged = slot.visits.judge_glance(visit.frames, detections, self._submit)
                judgements = [judged] if judged is not None else []
            if not judgements:
                return None
            shown = judgements[-1].analysis
            slot.record(shown, len(visit.frames), time.time())
        self._meter.frames_done(len(visit.frames), None)
        return shown
