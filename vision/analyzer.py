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
from .pace import WINDOW_S as PACE_WINDOW_S
from .pace import Pace, PaceWatch
from .riders import RiderLinker
from .rules import IncidentKind, Rule, RuleResult, Scene, build_rule
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
    """Everything known about one analysed frame: the frame, its tracked detections and verdicts.

    ``verdicts`` holds one verdict per rule *in force* on the frame. A rule outside its
    schedule's windows gives none (it is not judging: its open incidents close without their
    condition having cleared, and their cases are not verified), nor does a rule that a scene
    edit changed, on the first ``CHANGED_RULE_SILENT_FRAMES`` frames after the edit (its
    incidents, judged by the old settings, close the same way; the new rule judges afresh).
    """

    frame: Frame
    detections: sv.Detections
    verdicts: tuple[RuleVerdict, ...]
    zones: tuple[Zone, ...]
    crossings: tuple[Crossing, ...] = ()
    signals: dict[str, SignalState] = field(default_factory=dict)

    @property
    def active(self) -> tuple[RuleVerdict, ...]:
        return tuple(v for v in self.verdicts if v.result.active)


#: After a scene edit, a rule whose settings changed gives no verdict on this many frames: the
#: incident writer closes its open incidents as "not cleared" (like a rule taken out of the scene).
CHANGED_RULE_SILENT_FRAMES = 3
#: Rules that measure on the ground plane: a new calibration changes them.
_GROUND_RULES = frozenset({"speeding", "crowd"})


class _ZoneRules:
    """One zone's rules. ``before``: the zone of the same id before a scene edit: each of its
    rules that the edit left as it was (same id and settings, the zone's polygon unchanged, and
    for :data:`_GROUND_RULES` the same calibration) carries on with its state (clocks, tracks,
    whether it was armed); one whose settings changed is rebuilt and stays silent for
    :data:`CHANGED_RULE_SILENT_FRAMES` frames."""

    def __init__(self, config: ZoneConfig, before: _ZoneRules | None = None, *, same_ground: bool = True) -> None:
        self.zone = Zone(config)
        self.config = config
        self.rules: list[Rule[RuleConfigBase]] = []
        self.armed: dict[str, bool] = {}
        self.silent: dict[str, int] = {}  # rule id → frames it gives no verdict on
        kept = {r.id: r for r in before.rules} if before is not None else {}
        same_place = before is not None and list(before.config.polygon) == list(config.polygon)
        for rc in config.rules:
            old = kept.get(rc.rule_id)
            if old is not None and same_place and old.config == rc and (same_ground or rc.type not in _GROUND_RULES):
                assert before is not None
                self.rules.append(old)
                self.armed[old.id] = before.armed.get(old.id, True)
                if old.id in before.silent:
                    self.silent[old.id] = before.silent[old.id]
                continue
            rule = build_rule(rc)
            self.rules.append(rule)
            self.armed[rule.id] = True
            if old is not None:  # changed: its incidents were judged by other settings
                self.silent[rule.id] = CHANGED_RULE_SILENT_FRAMES


class _SceneState:
    """The built, per-camera form of a SceneConfig (swapped whole when the config changes;
    the rules the edit left unchanged, the track confirmation and rider pairing carry over)."""

    def __init__(self, camera_id: str, config: SceneConfig, board: SignalBoard | None, before: _SceneState | None = None) -> None:
        self.config = config
        previous: dict[str, _ZoneRules] = {zr.zone.id: zr for zr in before.zones} if before is not None else {}
        same_ground = before is None or before.config.calibration == config.calibration
        self.zones: list[_ZoneRules] = [_ZoneRules(z, previous.get(z.id), same_ground=same_ground) for z in config.zones]
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
        pace_window_s: how long the analysed rate must stay below half ``fps`` before the
            camera is behind (``pipeline.behind_window_s``; the rate is judged over it too).

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
        pace_window_s: float = PACE_WINDOW_S,
    ) -> None:
        self.camera_id = camera_id
        self._tracker = ModelTrackers(fps=fps, config=tracker) if track else None
        self._board = signals
        self._lock = threading.Lock()
        self._state = _SceneState(camera_id, self._as_scene(scene), signals)
        self._fps = fps
        self._pace = PaceWatch(camera_id, fps, window_s=pace_window_s) if (track if pace is None else pace) else None

    @staticmethod
    def _as_scene(scene: SceneConfig | list[ZoneConfig]) -> SceneConfig:
        return scene if isinstance(scene, SceneConfig) else SceneConfig(zones=list(scene))

    def set_scene(self, scene: SceneConfig | list[ZoneConfig]) -> None:
        """Judge later frames by ``scene`` (a console or API edit). A rule the edit did not
        change carries on (a car parked before the edit is still parked since then, on the same
        incident); a changed rule starts afresh and closes its incidents as not cleared (see
        :class:`FrameAnalysis`); a removed rule's incidents close the same way."""
        with self._lock:
            before = self._state
            built = _SceneState(self.camera_id, self._as_scene(scene), self._board, before)
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
        crossings = tuple(state.lines.update(tracked, size, now, roles=roles)) if state.lines is not None else ()
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
                if not armed:  # idle: no verdict (its open incidents close, not as cleared)
                    if zr.armed[rule.id]:
                        rule.reset()
                        zr.armed[rule.id] = False
                    continue
                zr.armed[rule.id] = True
                model = rule.config.detector
                result = rule.evaluate(scene if model is None else dataclasses.replace(scene, in_zone=scene.in_zone & _from_model(tracked, model)))
                silent = zr.silent.get(rule.id)
                if silent is not None:  # changed by a scene edit: its old incidents close first
                    if silent <= 1:
                        del zr.silent[rule.id]
                    else:
                        zr.silent[rule.id] = silent - 1
                    continue
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
