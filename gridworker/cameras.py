"""The service's cameras: their config, persistence and limits; each one a reader plus a slot
in the pipeline.

:class:`CameraRegistry` adds, edits and removes cameras while the pipeline runs, saves the
ones added through the API (they come back after a restart), enforces ``limits:`` and gives
the API read-only :class:`CameraView` pictures. The runtime state of a camera (analyser,
patrol judge, latest frame, rate) lives in its :class:`~gridworker.vision.pipeline.CameraSlot`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
from pydantic import ValidationError

from gridworker.models.config import DEFAULT_DETECTOR
from gridworker.models.errors import ModelError
from gridworker.models.tiling import Region
from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.streams.config import StreamConfig
from gridworker.streams.evidence import PacketRing, RingBudget
from gridworker.streams.health import StreamHealth, StreamState
from gridworker.streams.reader import CameraStream
from gridworker.streams.redact import get_logger, redact_text
from gridworker.streams.sources import require_network
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.config import SceneConfig
from gridworker.vision.motion import MotionGate
from gridworker.vision.pipeline import CameraSlot, Pipeline
from gridworker.vision.signals import SignalBoard
from gridworker.vision.visits import VisitAnalyzer

from .settings import CameraConfig, ConfigError, Settings, plan_camera_problems

__all__ = [
    "CameraExists",
    "CameraLimitReached",
    "CameraModelMismatch",
    "CameraNotFound",
    "CameraRegistry",
    "CameraView",
    "MainStreamBusy",
    "MainStreamStill",
    "ReaderFactory",
    "SceneTooLarge",
    "problem_text",
]

log = get_logger(__name__)  # scrubs URL credentials from every line (streams/redact.py)

#: Builds a camera's reader (``CameraStream``; the throughput bench passes one that also notes send times).
ReaderFactory = Callable[[str, StreamConfig], CameraStream]


class CameraExists(ValueError):
    """The id is taken: by a running camera, or by a saved one that is not running
    (``not_started`` says why; it must be deleted first)."""

    def __init__(self, camera_id: str, not_started: str | None = None) -> None:
        super().__init__(camera_id)
        self.camera_id = camera_id
        self.not_started = not_started


class CameraNotFound(KeyError):
    """No such camera running. ``not_started``: why a camera saved through the API is not
    running (it could not be added at start; it stays saved), else None."""

    def __init__(self, camera_id: str, not_started: str | None = None) -> None:
        super().__init__(camera_id)
        self.camera_id = camera_id
        self.not_started = not_started


class CameraLimitReached(ValueError):
    """``limits.max_cameras`` cameras exist already (the API answers 409)."""


class SceneTooLarge(ValueError):
    """A scene over ``limits.scene`` (the API answers 422)."""


class CameraModelMismatch(ValueError):
    """The camera names a model the service does not run (``detectors``), or asks a model for
    an input size it cannot take (``imgsz``); ``field`` is which (the message starts with it).
    The API answers 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class MainStreamBusy(RuntimeError):
    """No main-stream picture could be decoded in time: every decode slot stayed busy (the API
    answers 503 with ``Retry-After``)."""


#: Main-stream pictures decoded at once, all cameras together: each is a full-resolution decode
#: and JPEG encode on the CPUs inference uses. A request waits at most MAIN_STREAM_WAIT_S for a
#: slot (and for a decode of the same camera in flight), then MainStreamBusy.
MAIN_STREAM_DECODES = 2
MAIN_STREAM_WAIT_S = 2.0


class MainStreamStill:
    """One camera's main-stream picture (``frame.jpg?stream=main``): its newest keyframe, decoded
    and JPEG-encoded once per keyframe however many ask. Requests for the same camera wait for a
    decode in flight and take its picture; decodes of all cameras share ``slots``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one decode of this camera at a time
        self._key: tuple[object, ...] | None = None  # the keyframe (and quality) of _jpeg
        self._jpeg = b""

    def jpeg(self, ring: PacketRing, quality: int, slots: threading.Semaphore, wait_s: float) -> bytes | None:
        """The ring's newest keyframe as a JPEG; None when it holds none or it does not decode.

        Raises:
            MainStreamBusy: no slot (or this camera's decode in flight) came free within ``wait_s``.
        """
        deadline = time.monotonic() + wait_s
        if not self._lock.acquire(timeout=wait_s):
            raise MainStreamBusy("a picture of this camera's main stream is being decoded; try again in a moment")
        try:
            # the newest keyframe once the lock is held: a request that waited for a decode takes
            # that decode's picture rather than decoding (and caching) the older keyframe it saw first
            newest = ring.newest_keyframe()
            if newest is None:
                return None
            params, packet = newest
            key: tuple[object, ...] = (params, packet.ts, packet.t, packet.pts, quality)  # CodecParams compare by identity
            if self._key == key:
                return self._jpeg
            if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise MainStreamBusy("every main-stream decode slot is busy; try again in a moment")
            try:
                picture = ring.latest_keyframe(newest)  # the keyframe the key names, whatever arrived since
                if picture is None:
                    return None
                ok, buf = cv2.imencode(".jpg", picture.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            finally:
                slots.release()
            if not ok:
                return None
            self._key, self._jpeg = key, buf.tobytes()
            return self._jpeg
        finally:
            self._lock.release()


def problem_text(exc: Exception) -> str:
    """Why a camera was refused, as text: where and why, never the input (pydantic's
    ``input_value`` would echo the camera, URL and credentials included), credentials redacted."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'camera'}: {e['msg']}" for e in exc.errors())
    else:
        text = str(exc)
    return redact_text(text)


@dataclass
class _Camera:
    """A camera as the service keeps it: its config, its reader and its slot in the pipeline
    (the slot holds the runtime state: analyser, patrol judge, latest frame, rate)."""

    config: CameraConfig
    stream: CameraStream
    slot: CameraSlot
    persisted: bool = False
    #: the record-only reader of the camera's main stream (``record_url``), if it has one
    record: CameraStream | None = None
    #: ``frame.jpg?stream=main``: the newest keyframe's picture, decoded once per keyframe
    still: MainStreamStill = field(default_factory=MainStreamStill)

    @property
    def patrol_only(self) -> bool:
        return self.slot.patrol_only

    @property
    def readers(self) -> list[CameraStream]:
        return [self.stream] if self.record is None else [self.stream, self.record]

    @property
    def ring(self) -> PacketRing | None:
        """Where evidence clips come from: the main stream's ring when there is one."""
        return (self.record or self.stream).packet_ring


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
    frames_inferred: int = 0  # live frames the model ran on
    frames_coasted: int = 0  # live frames the motion gate kept from the model
    frames_cropped: int = 0  # inferred live frames the model saw only the moved part of (motion.crop)
    inferred_fraction: float | None = None  # inferred / analysed live frames (None before the first)
    analysis_behind: bool = False  # analysed below half the configured fps for a whole window (vision/pace.py)


def detect_region(config: CameraConfig) -> Region | None:
    """The part of the frame the camera's model sees (its rule zones and lines, grown), or None: all of it."""
    points = [p for z in config.zones if z.rules for p in z.polygon] + [p for line in config.lines for p in line.points]
    return config.detect_region.region(points)


#: How far (normalised frame units) on each side of a counting line, and past its ends, the
#: motion gate watches: a car must be tracked before and after the line for a crossing to count.
LINE_BAND = 0.1


def line_band(start: tuple[float, float], end: tuple[float, float], margin: float = LINE_BAND) -> list[tuple[float, float]]:
    """The rectangle around a line segment, ``margin`` to each side and past each end, clipped to the frame.

    Example:
        >>> line_band((0.2, 0.5), (0.8, 0.5))
        [(0.1, 0.6), (0.9, 0.6), (0.9, 0.4), (0.1, 0.4)]
    """
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    dx, dy = (x1 - x0) / length * margin, (y1 - y0) / length * margin  # along the line
    nx, ny = -dy, dx  # across it
    corners = [(x0 - dx + nx, y0 - dy + ny), (x1 + dx + nx, y1 + dy + ny), (x1 + dx - nx, y1 + dy - ny), (x0 - dx - nx, y0 - dy - ny)]
    return [(round(min(1.0, max(0.0, x)), 6), round(min(1.0, max(0.0, y)), 6)) for x, y in corners]


def motion_gate(config: CameraConfig) -> MotionGate | None:
    """The camera's motion gate, watching its rule zones and a band around each counting line
    (:data:`LINE_BAND`); None when gating is off."""
    if not config.motion.enabled or config.watch == "patrol":
        return None
    bands = [line_band((line.points[0][0], line.points[0][1]), (line.points[1][0], line.points[1][1])) for line in config.lines]
    return MotionGate(config.motion, [z.polygon for z in config.zones if z.rules] + bands)


class CameraRegistry:
    """The cameras of one service.

    Args:
        settings: limits, evidence (clip rings), tracker tuning.
        store: where cameras added through the API are saved.
        pipeline: gets a slot per camera.
        incidents: a removed camera's incidents close; views list open incident types.
        signals: API-pushed signal states (a removed camera's, or a signal its scene dropped, are forgotten).
        annotator: renders patrol evidence (the visit judges).
        rings: the total every camera's clip ring draws on.
        reader: builds a camera's reader.

    Example::

        registry = CameraRegistry(settings, store, pipeline, manager, SignalBoard(), FrameAnnotator(), RingBudget(10**8))
        registry.load(settings.cameras); registry.add(CameraConfig(id="gate", url="rtsp://10.0.0.7/s1"))
    """

    def __init__(
        self,
        settings: Settings,
        store: IncidentStore,
        pipeline: Pipeline,
        incidents: IncidentManager,
        signals: SignalBoard,
        annotator: FrameAnnotator,
        rings: RingBudget,
        *,
        reader: ReaderFactory = CameraStream,
    ) -> None:
        self._settings = settings
        self._store = store
        self._pipeline = pipeline
        self._incidents = incidents
        self._signals = signals
        self._annotator = annotator
        self._rings = rings
        self._reader = reader
        self._cameras: dict[str, _Camera] = {}
        # saved cameras that could not be added at start, with why: they stay saved (nothing
        # accepted is lost), hold their id, and can be deleted (guarded by the cameras lock)
        self._not_started: dict[str, str] = {}
        self._cameras_lock = threading.RLock()
        # serialises camera saves, deletes and stream starts (never taken by the pipeline): a save
        # checks, under it, that its camera is still the one listed, so a DELETE cannot be undone
        # by a save that was still in flight (it would bring the camera back after a restart)
        self._persist_lock = threading.Lock()
        # main-stream pictures decoded at once, all cameras together (MainStreamStill)
        self._main_decodes = threading.BoundedSemaphore(MAIN_STREAM_DECODES)

    # -- start and stop -----------------------------------------------------------------
    def load(self) -> None:
        """Add the config file's cameras, then those saved through the API (the file wins).

        A saved camera that cannot be added (it no longer validates, or names a model or an
        input size the models loaded now cannot run) is not started: one error line names it
        and why, it stays saved, :meth:`not_started` lists it and :meth:`remove` deletes it;
        the other cameras start.

        Raises:
            ConfigError: a config-file camera names a model or input size the models cannot run.
        """
        with self._cameras_lock:
            self._not_started.clear()
        for cam in self._settings.cameras:
            try:
                self._add(cam, persist=False)
            except CameraModelMismatch as exc:
                raise ConfigError(f"camera {cam.id!r}: {exc}") from None
        for cam_id, raw in self._store.cameras.all():
            if cam_id in self._cameras:
                log.warning("camera %r saved through the API is also in the config file; the config file wins", cam_id)
                continue
            try:
                saved = CameraConfig.model_validate_json(raw)
                require_network(saved.url)  # saved cameras came through the API: never a file
                if saved.record_url is not None:
                    require_network(saved.record_url)
                self._add(saved, persist=False, persisted=True)
            except (ValueError, ModelError) as exc:
                reason = problem_text(exc)
                with self._cameras_lock:
                    self._not_started[cam_id] = reason
                log.error("saved camera %r not started: %s (it stays saved; DELETE /cameras/%s removes it)", cam_id, reason, cam_id)

    def not_started(self) -> dict[str, str]:
        """Saved cameras that could not be added at start, and why (see :meth:`load`)."""
        with self._cameras_lock:
            return dict(self._not_started)

    def stop_readers(self, timeout: float) -> None:
        """Stop every reader; the cameras stay listed (their last frame, "stopped")."""
        with self._cameras_lock:
            cams = list(self._cameras.values())
        for cam in cams:
            for reader in cam.readers:
                reader.stop(timeout=timeout)

    def clear(self) -> None:
        """Forget every camera (a stopped reader does not start again: a start loads them afresh)."""
        with self._cameras_lock:
            cams = list(self._cameras.values())
            self._cameras.clear()
            self._not_started.clear()
            for cam in cams:
                self._pipeline.remove(cam.config.id)
        for cam in cams:
            if cam.ring is not None:
                self._rings.detach(cam.ring)

    # -- lookups for the other parts ----------------------------------------------------
    def __len__(self) -> int:
        with self._cameras_lock:
            return len(self._cameras)

    def ids(self) -> set[str]:
        with self._cameras_lock:
            return set(self._cameras)

    def line_keys(self) -> set[tuple[str, str]]:
        """(camera, line) of every counting line configured now."""
        with self._cameras_lock:
            return {(cam_id, line.id) for cam_id, cam in self._cameras.items() for line in cam.config.lines}

    def rule_keys(self) -> list[tuple[str, str, str]]:
        """(camera, zone, rule) of every rule configured now (open incidents of others close at start)."""
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [(c.config.id, z.id, r.rule_id) for c in cams for z in c.config.zones for r in z.rules]

    def continuous_analyzer(self, camera_id: str) -> CameraAnalyzer | None:
        """The camera's analyser, for a continuously watched camera (a patrol-only camera's
        visits start afresh)."""
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return cam.slot.analyzer if cam is not None and not cam.patrol_only else None

    def targets(self) -> list[PatrolTarget]:
        """Every camera as the patrol sees it (plans select among them)."""
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [PatrolTarget(c.config.id, c.config.url, c.config.patrol) for c in cams]

    def plan_problems(self, plan: PatrolPlan) -> str | None:
        """What is wrong with the plan's camera choice (unknown cameras), or None."""
        return plan_camera_problems(plan, self.ids())

    # -- the API's operations -----------------------------------------------------------
    def _visit_analyzer(self, config: CameraConfig) -> VisitAnalyzer:
        """The analyser of a patrol-only camera's visits (glance rules, revisit, watch stops)."""
        return VisitAnalyzer(config.id, config.scene(), annotator=self._annotator, tracker=self._settings.tracker)

    def model_ids(self) -> set[str]:
        """The models a camera's ``detectors`` may name: the pipeline's and those the settings
        define (a cluster worker's pipeline runs the default model alone; the case service that
        accepted the camera runs them all)."""
        return {DEFAULT_DETECTOR, *self._pipeline.models, *(d.id for d in self._settings.detectors)}

    def _add(self, config: CameraConfig, *, persist: bool, persisted: bool = False) -> _Camera:
        if config.imgsz is not None:  # the model's warm-up at that size: before the cameras lock, which the post thread needs
            try:
                self._pipeline.prepare_sizes(tuple(config.detectors), config.imgsz)
            except ModelError as exc:
                raise CameraModelMismatch("imgsz", f"imgsz {config.imgsz}: {exc}") from None
        with self._cameras_lock:
            if config.id in self._cameras or config.id in self._not_started:
                raise CameraExists(config.id, self._not_started.get(config.id))
            self._check_limits(config)
            known = self.model_ids()
            if unknown := [d for d in config.detectors if d not in known]:
                raise CameraModelMismatch("detectors", f"detectors {unknown}: not models of this service (it has {sorted(known)})")
            patrol_only = config.watch == "patrol"
            detect_config, record_config = (config.stream_config(), None) if patrol_only else self._stream_configs(config)
            stream = self._reader(config.id, detect_config)
            record = self._reader(config.id, record_config) if record_config is not None else None
            analyzer = CameraAnalyzer(
                config.id, config.fps, config.scene(), self._settings.tracker, signals=self._signals,
                pace_window_s=self._settings.pipeline.behind_window_s,
            )
            visits = self._visit_analyzer(config) if patrol_only else None
            slot = CameraSlot(
                config.id, stream, analyzer, visits=visits, tiles=config.detect_tiles, region=detect_region(config),
                motion=motion_gate(config), detectors=tuple(config.detectors), low_light=config.low_light, imgsz=config.imgsz,
            )
            # in the same critical section as the listing (the pipeline never takes this lock); first,
            # so a camera the pipeline refuses (an imgsz its model cannot take) is not listed either
            try:
                self._pipeline.add(slot)
            except ModelError as exc:  # only a camera with an imgsz makes the pipeline resize a model
                raise CameraModelMismatch("imgsz", f"imgsz {config.imgsz}: {exc}") from None
            cam = _Camera(config, stream, slot, persisted=persist or persisted, record=record)
            if cam.ring is not None:
                self._rings.attach(cam.ring)
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
                for reader in cam.readers:
                    reader.stop()
                return cam
            if persist:
                try:
                    self._store.cameras.put(config.id, latest.model_dump_json())
                except Exception:
                    with self._cameras_lock:
                        if self._cameras.get(config.id) is cam:
                            del self._cameras[config.id]
                            self._pipeline.remove(config.id)
                    if cam.ring is not None:
                        self._rings.detach(cam.ring)
                    raise
            if patrol_only:
                stream.stop()  # never streamed: only patrol visits open a session (its state reads "stopped")
                log.info("camera %s (%s) added, patrol only", config.id, config.public_url())
                return cam
            for reader in cam.readers:
                reader.start()
        log.info(
            "camera %s (%s) added%s", config.id, config.public_url(), f", evidence from {config.public_record_url()}" if record is not None else ""
        )
        return cam

    def _check_limits(self, config: CameraConfig) -> None:
        """Raises CameraLimitReached at ``limits.max_cameras``, SceneTooLarge over ``limits.scene``
        (call under the cameras lock)."""
        limits = self._settings.limits
        if len(self._cameras) >= limits.max_cameras:
            raise CameraLimitReached(
                f"{len(self._cameras)} cameras exist, the limit (limits.max_cameras) is {limits.max_cameras}; remove one first"
            )
        over = limits.scene.problems(config)
        if over:
            raise SceneTooLarge("; ".join(over))

    def add(self, config: CameraConfig) -> CameraView:
        """Start analysing a new network camera now; it is saved and comes back after a restart.

        Raises:
            SourceError: a video file (files are sources only in the config file, under media_dir).
            CameraExists: the id is taken (by a saved camera that is not running, too).
            CameraModelMismatch: ``detectors`` names a model the service does not have, or a model
                cannot take the camera's ``imgsz``.
        """
        require_network(config.url)
        if config.record_url is not None:
            require_network(config.record_url)
        return self._view(self._add(config, persist=True))

    def remove(self, camera_id: str) -> None:
        """Stop the camera and forget it (its saved row too); a saved camera that is not running
        (see :meth:`load`) has its row deleted."""
        with self._cameras_lock:
            cam = self._cameras.pop(camera_id, None)
            if cam is None:
                if camera_id not in self._not_started:
                    raise CameraNotFound(camera_id)
                slot = None
            else:
                # with the listing: a camera added again under this id meanwhile keeps its slot (the
                # pipeline's remove never waits: it only takes its own small lock)
                slot = self._pipeline.remove(camera_id)
        if cam is None:
            self._remove_not_started(camera_id)
            return
        if slot is not None:  # outside the lock: a frame or visit being judged looks cameras up
            slot.retire()
        # at once, before the reader stops (seconds): the id is free again, and a camera added
        # under it meanwhile (a URL changed by DELETE then POST) must keep its incidents and signals
        try:
            self._incidents.close_camera(camera_id, time.time())
        except Exception as exc:  # the database away: the camera still goes; what stays open closes at the next start
            log.warning("camera %s: its open incidents could not be closed now (%s); they close at the next start", camera_id, type(exc).__name__)
        self._signals.forget(camera_id)
        if cam.ring is not None:
            self._rings.detach(cam.ring)
        try:
            with self._persist_lock:  # after any save of this camera still in flight
                with self._cameras_lock:
                    readded = camera_id in self._cameras  # added again meanwhile: its row is the new camera's
                if not readded:
                    try:
                        self._store.cameras.delete(camera_id)
                    except Exception:  # the row stays: listed as saved, not running, so a DELETE again removes it
                        with self._cameras_lock:
                            if camera_id not in self._cameras:
                                self._not_started.setdefault(camera_id, "removed while the database failed: DELETE it again")
                        raise
        finally:
            for reader in cam.readers:  # after the persist lock: an _add in flight has started them by now, or never will
                reader.stop(timeout=5.0)
        log.info("camera %s removed", camera_id)

    def _remove_not_started(self, camera_id: str) -> None:
        """Delete the saved row of a camera that is not running (it never started: no reader,
        slot or ring to let go of; its incidents closed at start with its rules)."""
        with self._persist_lock:  # a camera added under this id meanwhile saves its row after this delete
            with self._cameras_lock:
                reason = self._not_started.pop(camera_id, None)
            if reason is None:
                return  # another DELETE took it meanwhile (and deletes the row)
            try:
                self._store.cameras.delete(camera_id)
            except Exception:
                with self._cameras_lock:
                    if camera_id not in self._cameras:
                        self._not_started[camera_id] = reason
                raise
        log.info("saved camera %s (not running) removed", camera_id)

    def update_scene(self, camera_id: str, scene: SceneConfig) -> tuple[CameraView, bool]:
        """Replace parts of a camera's scene while it runs: each part ``scene`` sets (zones,
        masks, lines, signals, calibration, filters, riders) replaces the camera's whole part;
        a part it leaves unset (``model_fields_set``) keeps the camera's current one, so a client
        that sends only what it edits resets nothing else. ``calibration: null`` removes it.

        The next analysed frame uses the new scene (unchanged rules keep their clocks; changed
        rules start afresh and their incidents, like those of rules that are gone, close as not
        cleared). A camera added through the API is saved with it; a camera from
        the config file keeps the edit until the service restarts (the file stays the source
        of truth). Returns the camera's view and whether the edit was saved.

        Raises:
            CameraNotFound: no such camera.
            ValueError: the camera with this scene does not validate.
        """
        with self._cameras_lock:
            cam = self._get(camera_id)
            merged = {**cam.config.model_dump(), **scene.model_dump(include=set(scene.model_fields_set))}
            # the references (exempt zones, signals, calibration) are checked here, on the whole scene
            config = CameraConfig.model_validate(merged)  # pydantic.ValidationError is a ValueError
            over = self._settings.limits.scene.problems(config)
            if over:
                raise SceneTooLarge("; ".join(over))
            cam.slot.analyzer.set_scene(config.scene())
            if cam.slot.visits is not None:  # a patrol-only camera: its revisit memory stays
                cam.slot.visits.set_scene(config.scene())
            cam.slot.tiles = config.detect_tiles
            cam.slot.region = detect_region(config)
            cam.slot.low_light = config.low_light
            if not cam.patrol_only:
                self._pipeline.set_motion(camera_id, motion_gate(config))
            cam.config = config
            self._signals.keep(camera_id, {signal.id for signal in config.signals})  # a dropped signal's state goes
        if cam.persisted:  # outside the cameras lock, as in _add
            with self._persist_lock:
                # a camera removed meanwhile stays removed; of two edits racing, the config saved
                # is the one in force (read here, not the one this call made)
                with self._cameras_lock:
                    listed = self._cameras.get(camera_id) is cam
                    latest = cam.config
                if listed:
                    self._store.cameras.put(camera_id, latest.model_dump_json())
        log.info("camera %s: scene updated (%d zone(s), %d line(s)%s)", camera_id, len(config.zones), len(config.lines), "" if cam.persisted else ", until restart")
        return self._view(cam), cam.persisted

    def _get(self, camera_id: str) -> _Camera:
        with self._cameras_lock:
            if (cam := self._cameras.get(camera_id)) is not None:
                return cam
            raise CameraNotFound(camera_id, self._not_started.get(camera_id))

    def _view(self, cam: _Camera) -> CameraView:
        now = time.time()
        stats = cam.slot.stats(now)
        health = cam.stream.health()
        # a live, continuously analysed camera below half its fps for pipeline.behind_window_s (CameraAnalyzer.pace)
        behind = not cam.patrol_only and health.state is StreamState.LIVE and cam.slot.analyzer.pace(now).behind
        return CameraView(
            config=cam.config,
            health=health,
            analysed_fps=stats.analysed_fps,
            frames_analysed=stats.frames_analysed,
            open_incident_types=self._incidents.open_types(cam.config.id),
            last_analysed_at=stats.last_analysed_at,
            patrol_only=cam.patrol_only,
            frames_inferred=stats.frames_inferred,
            frames_coasted=stats.frames_coasted,
            frames_cropped=stats.frames_cropped,
            inferred_fraction=stats.inferred_fraction,
            analysis_behind=behind,
        )

    def view(self, camera_id: str) -> CameraView:
        return self._view(self._get(camera_id))

    def views(self) -> list[CameraView]:
        with self._cameras_lock:
            cams = list(self._cameras.values())
        return [self._view(c) for c in cams]

    def main_stream_jpeg(self, camera_id: str, quality: int = 90) -> bytes | None:
        """The newest keyframe of the camera's evidence stream (its main stream, with stream
        roles) at full resolution, without drawings: decoded once per keyframe (later requests
        get the same JPEG), at most :data:`MAIN_STREAM_DECODES` decodes at once; None before one
        arrived or when the camera keeps no evidence ring.

        Raises:
            CameraNotFound: no such camera.
            MainStreamBusy: no decode slot came free within :data:`MAIN_STREAM_WAIT_S`.
        """
        cam = self._get(camera_id)
        ring = cam.ring
        if ring is None:
            return None
        return cam.still.jpeg(ring, quality, self._main_decodes, MAIN_STREAM_WAIT_S)

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The latest analysed frame with boxes and zones drawn, or None before the first."""
        self._get(camera_id)  # CameraNotFound
        return self._pipeline.latest_jpeg(camera_id)

    def _stream_configs(self, config: CameraConfig) -> tuple[StreamConfig, StreamConfig | None]:
        """The camera's reader configs: the detect reader's and, with ``record_url``, the
        record-only reader's. With clips on, the evidence stream (the main stream when there is
        one) gets a packet ring unless the camera sets its own; the detect substream then keeps none."""
        detect, record = config.stream_config(), config.record_stream_config()
        evidence = self._settings.evidence
        if evidence.clips and "clip_buffer_s" not in config.stream.model_fields_set:
            update = {"clip_buffer_s": evidence.ring_seconds}
            if "clip_buffer_mb" not in config.stream.model_fields_set:
                update["clip_buffer_mb"] = evidence.buffer_mb
            if record is None:
                detect = detect.model_copy(update=update)
            else:
                record = record.model_copy(update=update)
        if record is not None:
            detect = detect.model_copy(update={"clip_buffer_s": 0.0})
        return detect, record

    def packet_ring(self, camera_id: str) -> PacketRing | None:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return None if cam is None else cam.ring

    def info(self, camera_id: str) -> CameraInfo:
        with self._cameras_lock:
            cam = self._cameras.get(camera_id)
        return CameraInfo() if cam is None else CameraInfo(name=cam.config.name, site=cam.config.site)
