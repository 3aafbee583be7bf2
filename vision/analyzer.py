"""One camera's analysis step: detections → masks → tracker → zones → rule verdicts.

The analyzer owns everything per camera that keeps state between frames (the tracker,
the rules' clocks, the line counters) and turns one frame's raw detections into a
:class:`FrameAnalysis`. It does no I/O.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from gridworker.models.base import subset
from gridworker.models.config import DEFAULT_DETECTOR
from gridworker.models.multi import DETECTOR_KEY
from gridworker.streams.frame import Frame

from .calibration import GroundPlane
from .config import RuleConfigBase, SceneConfig, ZoneConfig
from .filters import TrackConfirmer, prefilter
from .lines import Crossing, LineCounter
from .pace import Pace, PaceWatch
from .riders import RiderLinker
from .rules import INACTIVE, IncidentKind, Rule, RuleResult, Scene, build_rule
from .rules.base import SignalState
from .signals import SignalBoard, SignalReader
from .tracker import ModelTrackers, TrackerConfig
from .zones import Zone, ground_points


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule's judgement of one frame.

    ``per_object``: the rule reports individual objects (``result.hits``), each its own
    incident; otherwise the verdict is zone-level (one incident per camera + zone + rule).
    ``cooldown_s``: after an incident of this rule closes, the same object (the zone, for a
    zone-level rule) opens no new one for this long.
    """

    zone_id: str
    rule_id: str
    rule_type: str
    clear_after_s: float
    result: RuleResult
    kind: IncidentKind
    per_object: bool = False
    cooldown_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """Everything known about one analysed frame: the frame, its tracked detections and verdicts."""

    frame: Frame
    detections: sv.Detections
    verdicts: tuple[RuleVerdict, ...]
    zones: tuple[Zone, ...]
    crossings: tuple[Crossing, ...] = ()
    signals: dict[str, SignalState] = field(default_factory=dict)

    @property
    def active(self) -> tuple[RuleVerdict, ...]:
        return tuple(v for v in self.verdicts if v.result.active)


class _ZoneRules:
    def __init__(self, config: ZoneConfig) -> None:
        self.zone = Zone(config)
        self.rules: list[Rule[RuleConfigBase]] = [build_rule(r) for r in config.rules]
        self.armed: dict[str, bool] = {r.id: True for r in self.rules}


class _SceneState:
    """The built, per-camera form of a SceneConfig (swapped whole when the config changes;
    the track confirmation and rider pairing carry over when their settings did not change)."""

    def __init__(self, camera_id: str, config: SceneConfig, board: SignalBoard | None, before: _SceneState | None = None) -> None:
        self.config = config
        self.zones = [_ZoneRules(z) for z in config.zones]
        self.masks = [Zone(m) for m in config.masks]
        confirm, riders = config.filters.confirm, config.riders
        self.confirmer: TrackConfirmer | None = TrackConfirmer(confirm) if confirm is not None else None
        self.riders: RiderLinker | None = RiderLinker(riders) if riders.enabled else None
        if before is not None and before.config.filters.confirm == confirm:
            self.confirmer = before.confirmer
        if before is not None and before.config.riders == riders:
            self.riders = before.riders
        self.lines = LineCounter(config.lines) if config.lines else None
        self.signals = SignalReader(camera_id, config.signals, board) if config.signals else None
        self.plane = GroundPlane(config.calibration) if config.calibration else None
        self.zone_area = {z.id: self.plane.area_m2(z.polygon) for z in config.zones} if self.plane else {}


def _empty_tracked() -> sv.Detections:
    out = sv.Detections.empty()
    out.tracker_id = np.zeros(0, dtype=np.int64)
    out.data["class_name"] = np.zeros(0, dtype=str)
    return out


class CameraAnalyzer:
    """Masks, tracker, zones, rules, lines and signals of one camera.

    ``analyze`` is called from the pipeline's post-processing thread only; ``set_scene``
    may come from the API thread, so the built scene is swapped under a lock.

    Args:
        camera_id: the camera.
        fps: the analysis rate, for the tracker's motion model.
        scene: zones and the rest; a plain list of zones is accepted too.
        tracker: tracker tuning; ``track=False`` keeps the detections' own ``tracker_id``
            (scripted scenarios, or a detector that tracks).
        signals: where API-pushed signal states are read from.
        pace: watch whether analysis keeps up with ``fps`` and log when it falls behind
            (``vision/pace.py``); default: when tracking (not for a patrol's glance analyser,
            whose keyframes come minutes apart, nor for scripted scenarios).

    Example:
        >>> analyzer = CameraAnalyzer("cam1", fps=5, scene=SceneConfig())
    """

    def __init__(
        self,
        camera_id: str,
        fps: float,
        scene: SceneConfig | list[ZoneConfig],
        tracker: TrackerConfig | None = None,
        *,
        track: bool = True,
        signals: SignalBoard | None = None,
        pace: bool | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._tracker = ModelTrackers(fps=fps, config=tracker) if track else None
        self._board = signals
        self._lock = threading.Lock()
        self._state = _SceneState(camera_id, self._as_scene(scene), signals)
        self._fps = fps
        self._pace = PaceWatch(camera_id, fps) if (track if pace is None else pace) else None

    @staticmethod
    def _as_scene(scene: SceneConfig | list[ZoneConfig]) -> SceneConfig:
        return scene if isinstance(scene, SceneConfig) else SceneConfig(zones=list(scene))

    def set_scene(self, scene: SceneConfig | list[ZoneConfig]) -> None:
        with self._lock:
            before = self._state
        built = _SceneState(self.camera_id, self._as_scene(scene), self._board, before)
        with self._lock:
            self._state = built

    def pace(self, now: float) -> Pace:
        """Whether analysis keeps up with the configured fps (``vision/pace.py``); ``now`` on the
        frame clock. An analyser built without the watch (``pace=False``) is never behind."""
        if self._pace is None:
            return Pace(self._fps, 0.0, False, None)
        return self._pace.pace(now)

    def set_zones(self, zones: list[ZoneConfig]) -> None:
        """Replace only the zones, keeping masks, lines, signals and calibration."""
        with self._lock:
            current = self._state.config
        self.set_scene(current.model_copy(update={"zones": list(zones)}))

    def restore(self, zone_id: str, rule_id: str, key: str, box: tuple[float, float, float, float], class_name: str) -> bool:
        """After a restart: give the rule ``zone_id``/``rule_id`` back the clock of object ``key``
        (an open incident's object, last seen at the normalised ``box``). False when there is no
        such rule or it keeps no clocks per object (see ``Rule.restore``)."""
        with self._lock:
            state = self._state
        for zr in state.zones:
            if zr.zone.id != zone_id:
                continue
            for rule in zr.rules:
                if rule.id == rule_id:
                    return rule.restore(key, box, class_name)
        return False

    @property
    def zones(self) -> tuple[Zone, ...]:
        with self._lock:
            return tuple(z.zone for z in self._state.zones)

    def analyze(self, frame: Frame, detections: sv.Detections) -> FrameAnalysis:
        size = (frame.width, frame.height)
        now = frame.ts
        with self._lock:
            state = self._state
        if self._pace is not None:
            self._pace.tick(now)
        detections = prefilter(detections, state.masks, state.config.filters, size)
        if self._tracker is not None:
            tracked = self._tracker.update(detections, ts=now)
        else:
            tracked = detections if len(detections) else _empty_tracked()
        if state.confirmer is not None:  # every frame, empty ones too: they count as misses
            ids = tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1, dtype=np.int64)
            confirmed = state.confirmer.update(ids)
            tracked = subset(tracked, confirmed) if not confirmed.all() else tracked
            tracked = tracked if len(tracked) else _empty_tracked()
        roles = state.riders.update(tracked, now) if state.riders is not None else None
        n = len(tracked)
        points = ground_points(tracked.xyxy) if n else np.zeros((0, 2), dtype=np.float32)
        membership = {zr.zone.id: (zr.zone.contains_points(points, size) if n else np.zeros(0, dtype=bool)) for zr in state.zones}
        ground = state.plane.to_ground(points, size) if state.plane is not None else None
        image = frame.image if (state.signals is not None or _wants_image(state)) else None
        signals = state.signals.read(image, size, now) if state.signals is not None else {}
        crossings = tuple(state.lines.update(tracked, size, now)) if state.lines is not None else ()
        verdicts: list[RuleVerdict] = []
        for zr in state.zones:
            scene = Scene(
                detections=tracked,
                now=now,
                size=size,
                in_zone=membership[zr.zone.id],
                zones=membership,
                ground=ground,
                signals=signals,
                image=image,
                zone_area_m2=state.zone_area.get(zr.zone.id),
                roles=roles.classes if roles is not None else None,
                identities=roles.ids if roles is not None else None,
            )
            for rule in zr.rules:
                schedule = rule.config.schedule
                armed = schedule is None or schedule.active(now)
                if not armed:
                    if zr.armed[rule.id]:
                        rule.reset()
                        zr.armed[rule.id] = False
                    result = INACTIVE
                else:
                    zr.armed[rule.id] = True
                    model = rule.config.detector
                    result = rule.evaluate(scene if model is None else dataclasses.replace(scene, in_zone=scene.in_zone & _from_model(tracked, model)))
                verdicts.append(
                    RuleVerdict(
                        zr.zone.id, rule.id, rule.type, rule.config.clear_after_s, result, rule.incident_kind, rule.per_object,
                        rule.config.cooldown_s,
                    )
                )
        return FrameAnalysis(frame, tracked, tuple(verdicts), tuple(zr.zone for zr in state.zones), crossings, signals)


def _from_model(detections: sv.Detections, model: str) -> np.ndarray:
    """(n,) bool: which boxes came from ``model`` (frames of a one-model camera carry no tag: all are the default's)."""
    tags = detections.data.get(DETECTOR_KEY)
    if tags is None:
        return np.full(len(detections), model == DEFAULT_DETECTOR, dtype=bool)
    matches: np.ndarray = np.asarray(tags) == model
    return matches


def _wants_image(state: _SceneState) -> bool:
    return any(getattr(r, "needs_image", False) for zr in state.zones for r in zr.rules)
