"""Judging patrol visits: what a glance can judge, the revisit parking check, watch stops.

A glance is one or a few keyframes of a camera, minutes apart from the next one; nothing
can be tracked across it. :class:`VisitAnalyzer` (one per patrol camera) therefore judges a
visit in two ways:

* **Glance rules** (:data:`GLANCE_RULE_TYPES`): the rules that need no track: ``crowd``
  (the count on the frame), ``intrusion`` and ``lane_intrusion`` (presence of the listed
  classes in the zone) and ``class_event`` (a model class in the zone). A glance is one
  moment, so their ``min_duration_s`` is not applied, and an incident they opened closes on
  the next visit that shows the condition cleared (``clear_after_s`` counts in visits, not
  seconds). Rules that need tracks or time on a track (parking, dwell, loitering, street
  vending, wrong way, speeding, red light) and counting lines are not run on glances; use
  ``mode: watch`` plans (tracked video) or continuous watching for them.
* **Revisit check** for every zone with an ``illegal_parking`` rule: a vehicle at the same
  spot on two visits at least the rule's ``min_duration_s`` apart (the "two captures N
  minutes apart" method, :class:`~gridworker.vision.revisit.RevisitChecker`) opens an
  ``illegal_parking`` incident whose snapshot shows both captures side by side, with both
  times and boxes in its details (``method: "revisit"``). It closes on the first visit
  after the vehicle is gone (the revisit check's word: a watch stop's tracked rule, which
  cannot call a car parked before it has watched it ``min_duration_s``, keeps such an
  incident open while it sees the car there, and never closes it).

The analyser writes nothing: each visit gives a :class:`~gridworker.vision.observations.VisitJudgement`
(the visit's analysed frame and the revisit check's
:class:`~gridworker.vision.observations.ObjectReport` per zone), which the pipeline hands to the
one incident sink, the :class:`~gridworker.incidents.IncidentManager`, like every other
observation. Glance-rule incidents show the visit's annotated keyframe; a revisit incident
(one per vehicle, ``details["object"]`` its key) shows both captures, and after a restart a
vehicle still standing where an open revisit incident's vehicle stood continues it.

In ``watch`` mode the visit's frames are tracked and every rule of the camera runs, as on a
continuous camera, with a tracker (and rule clocks) that start afresh at each visit
(:meth:`VisitAnalyzer.begin_watch`). The time between two stops (or since the last glance) is not watched, so it does
not count towards ``clear_after_s``: an incident open from an earlier stop is kept through
the new stop's warm-up (the longest ``min_duration_s`` of the camera's rules, during which
a tracked rule cannot fire yet) and closes only if the stop shows the condition clear
past its warm-up. A car still parked at the next stop keeps its incident:
an object that a per-object rule reports in the new stop where an object of the previous
stop stood, or a vehicle of an open revisit incident (box IoU >= 0.5, same zone and rule),
continues that object's incident. The other way round, a glance's revisit check keeps a
watch stop's parking incident open while it sees a vehicle where the stop's car stood, and
clears it once the check has lost that vehicle (as its own).

A glance with several keyframes judges each of them: a rule fires if it fires on any
keyframe. The visit's analysis shows the keyframe that is the worst for the most rules; a rule
that fires only on another keyframe keeps that keyframe's summary and details (its boxes,
``keyframe_seq`` and ``keyframe_at`` name it), drawn without boxes on the shown one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import supervision as sv

from gridworker.streams.frame import Frame

from .analyzer import CameraAnalyzer, FrameAnalysis, RuleVerdict
from .annotate import FrameAnnotator
from .config import DwellRuleConfig, SceneConfig
from .observations import ObjectReport, ObjectSighting, VisitJudgement
from .rules import IllegalParkingRule
from .rules.base import Hit
from .tracker import TrackerConfig
from .zones import Zone

from .revisit import ParkedVehicle, RevisitChecker, RevisitConfig, RevisitMemory, RevisitViolation, Sighting, merge_memories

__all__ = ["GLANCE_RULE_TYPES", "REVISIT_RULE_TYPES", "VisitAnalyzer", "VisitMemory", "glance_scene", "merge_keyframes", "merge_visit_memories"]

#: Rules judged on a single glance (no tracking needed).
GLANCE_RULE_TYPES = frozenset({"crowd", "intrusion", "lane_intrusion", "class_event"})
#: Rules replaced on glances by the two-captures revisit check.
REVISIT_RULE_TYPES = frozenset({"illegal_parking"})
#: A watch-mode frame this long after the previous one starts a new visit (fresh tracker).
_NEW_VISIT_GAP_S = 5.0
#: Box overlap at which an object of a watch stop continues an object of the previous stop.
_CONTINUE_IOU = 0.5
#: The most ``clear_after_s`` a verdict may carry (what the cluster's wire accepts: a day).
MAX_CLEAR_AFTER_S = 86_400.0


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_keyframes(analyses: Sequence[FrameAnalysis]) -> FrameAnalysis:
    """One glance's keyframes judged as one visit: a rule fires if it fires on any of them.

    Each firing rule takes its worst keyframe's verdict (the highest severity, else count; the
    latest on a tie). The analysis is the keyframe that is the worst for the most rules (then:
    with the most rules firing, the latest); a rule firing on it keeps its verdict there (its
    boxes are on that picture), a rule firing only on another keyframe keeps that keyframe's
    summary and details, with ``keyframe_seq``/``keyframe_at`` and no boxes (they are not on the
    picture shown).
    """
    if len(analyses) == 1:
        return analyses[0]
    worst: dict[tuple[str, str], tuple[float, int, RuleVerdict]] = {}
    for k, analysis in enumerate(analyses):
        for v in analysis.verdicts:
            if not v.result.active:
                continue
            measure = float(v.result.count if v.result.severity is None else v.result.severity)
            best = worst.get((v.zone_id, v.rule_id))
            if best is None or measure >= best[0]:
                worst[(v.zone_id, v.rule_id)] = (measure, k, v)
    shown = max(
        range(len(analyses)),
        key=lambda k: (sum(1 for _, kk, _ in worst.values() if kk == k), len(analyses[k].active), k),
    )
    rep = analyses[shown]
    verdicts: list[RuleVerdict] = []
    done: set[tuple[str, str]] = set()
    for v, on_shown in (*((v, True) for v in rep.verdicts), *((w, False) for _, _, w in worst.values())):
        rule = (v.zone_id, v.rule_id)
        if rule in done:
            continue
        done.add(rule)
        best = worst.get(rule)
        if best is None or (on_shown and v.result.active):  # fires on the shown keyframe (or nowhere): its own verdict
            verdicts.append(v)
            continue
        _, k, w = best
        frame = analyses[k].frame
        details = {**w.result.details, "keyframe_seq": frame.seq, "keyframe_at": round(frame.ts, 3)}
        empty = np.zeros(0, dtype=np.int64)
        hits = tuple(dataclasses.replace(hit, subjects=empty) for hit in w.result.hits)
        verdicts.append(dataclasses.replace(w, result=dataclasses.replace(w.result, subjects=empty, details=details, hits=hits)))
    return dataclasses.replace(rep, verdicts=tuple(verdicts))


def glance_scene(scene: SceneConfig) -> SceneConfig:
    """The camera's scene as a glance sees it: only :data:`GLANCE_RULE_TYPES`, no durations,
    incidents clear on the next clear visit; no counting lines or signals."""
    zones = []
    for zone in scene.zones:
        rules = []
        for rule in zone.rules:
            if rule.type not in GLANCE_RULE_TYPES:
                continue
            update: dict[str, object] = {"clear_after_s": 0.0}
            if "min_duration_s" in type(rule).model_fields:
                update["min_duration_s"] = 0.0
            rules.append(rule.model_copy(update=update))
        zones.append(zone.model_copy(update={"rules": rules}))
    return scene.model_copy(update={"zones": zones, "lines": [], "signals": []})


@dataclass
class _RevisitZone:
    zone: Zone
    rule_id: str
    key: str  # the checker's camera key: one memory per zone + rule
    checker: RevisitChecker
    cooldown_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What a reported vehicle's incident opens with (kept while the vehicle stays)."""

    summary: str
    details: dict[str, object]
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class VisitMemory:
    """What a camera's revisit check remembers between visits, as plain values.

    ``zones``: per revisit zone + rule (the checker key ``camera/zone/rule``) its memory;
    ``evidence``: frame reference -> annotated JPEG of a first sighting still remembered (the
    left half of the side-by-side pair snapshot). The pair pictures of vehicles already reported
    are not part of it: they stay with the judge that made them (see :meth:`VisitAnalyzer.restore_revisit`).
    """

    zones: dict[str, RevisitMemory] = dataclasses.field(default_factory=dict)
    evidence: dict[str, bytes] = dataclasses.field(default_factory=dict)


def merge_visit_memories(ours: VisitMemory, theirs: VisitMemory) -> VisitMemory:
    """Both memories in one (:func:`~gridworker.vision.revisit.merge_memories` per zone + rule;
    the evidence pictures of both)."""
    zones = dict(theirs.zones)
    for key, mem in ours.zones.items():
        zones[key] = merge_memories(mem, zones[key]) if key in zones else mem
    needed = {p.first.frame_ref for mem in zones.values() for p in mem.parked}
    evidence = {ref: jpeg for ref, jpeg in {**theirs.evidence, **ours.evidence}.items() if ref in needed}
    return VisitMemory(zones, evidence)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """What a glance may change of a judge's revisit state, as it was before the glance."""

    zones: dict[str, RevisitMemory]
    evidence: dict[str, bytes]
    reported: dict[tuple[str, str], _Evidence]
    as_watched: dict[tuple[str, str], str]
    carry: dict[tuple[str, str], dict[str, tuple[float, ...]]]
    boxes: dict[tuple[str, str], dict[str, tuple[float, ...]]]
    glance_size: tuple[int, int] | None


class VisitAnalyzer:
    """Judges the visits of one patrol camera; writes nothing (see the module docstring).

    Thread-safe: visits of the same camera (two plans) are judged one at a time.

    Args:
        camera_id: the camera.
        scene: the camera's full scene config (zones with all their rules).
        annotator: renders snapshots (the revisit check's side-by-side evidence).
        tracker: tracker tuning for watch visits.

    Example:
        >>> from gridworker.vision.config import ZoneConfig
        >>> kerb = ZoneConfig(id="kerb", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)], rules=[{"id": "park", "type": "illegal_parking"}])
        >>> judge = VisitAnalyzer("cam1", SceneConfig(zones=[kerb]), annotator=FrameAnnotator())
        >>> frame = Frame("cam1", 1, 1.7e9, np.zeros((360, 640, 3), np.uint8))
        >>> car = sv.Detections(xyxy=np.array([[200.0, 220.0, 320.0, 300.0]]), confidence=np.array([0.9]),
        ...                     class_id=np.array([2]), data={"class_name": np.array(["car"])})
        >>> judgement = judge.analyse_glance([frame], [car])
        >>> judgement.partial, [(r.zone_id, r.rule_id, [o.qualifies for o in r.objects]) for r in judgement.reports]
        (True, [('kerb', 'park', [False])])
        >>> # the writer takes it: manager.observe(judgement.analysis, partial=True); manager.report(r) for each report
    """

    def __init__(
        self,
        camera_id: str,
        scene: SceneConfig,
        *,
        annotator: FrameAnnotator,
        tracker: TrackerConfig | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._annotator = annotator
        self._tracker_config = tracker
        self._lock = threading.Lock()
        self._watch: CameraAnalyzer | None = None
        self._watch_fps = 5.0
        self._watch_last_ts: float | None = None  # last frame of the previous (or current) stop
        self._watch_start_ts: float | None = None  # first frame of the current stop
        self._watch_gap_s = 0.0  # unwatched time between the previous stop and this one
        self._judged_ts: float | None = None  # the last frame judged, glance or watch
        self._glance_size: tuple[int, int] | None = None  # the last glance's frame size
        self._new_stop = True
        # per-object incidents across stops: (zone, rule) → object key → its last box, for the
        # previous stop (``_carry``) and this one (``_boxes``); new key → carried key (``_alias``)
        self._carry: dict[tuple[str, str], dict[str, tuple[float, ...]]] = {}
        self._boxes: dict[tuple[str, str], dict[str, tuple[float, ...]]] = {}
        self._alias: dict[tuple[str, str, str], str] = {}
        self._revisit: list[_RevisitZone] = []
        self._evidence: dict[str, bytes] = {}  # frame_ref → annotated JPEG of a first sighting
        self._reported: dict[tuple[str, str], _Evidence] = {}  # (checker key, vehicle key) → its incident's evidence
        #: (checker key, vehicle key) → the key of a watch stop's object the vehicle stands on:
        #: the check reports it under that key (its incident, not a second one)
        self._as_watched: dict[tuple[str, str], str] = {}
        self._use(scene)

    def set_scene(self, scene: SceneConfig) -> None:
        """Judge later visits with ``scene`` (an edit in the console or the API).

        What the revisit check remembers survives the edit for every zone + rule that is
        still there: a vehicle seen before the edit is still reported once it has stood
        ``min_duration_s`` (the new value), and its open incident continues. A vehicle now
        outside its zone is forgotten like one that left. Watch stops start afresh.
        """
        with self._lock:
            self._use(scene)
            self._watch = None

    def _use(self, scene: SceneConfig) -> None:
        """Build the glance rules and the revisit zones of ``scene``, keeping the memory of the
        revisit zones that stay (same zone + rule)."""
        self._scene = scene
        self._glance = CameraAnalyzer(self.camera_id, 1.0, glance_scene(scene), track=False)
        # a tracked rule cannot fire before this much of a stop has been watched
        self._warmup_s = max(
            (float(getattr(r, "min_duration_s", 0.0) or 0.0) for z in scene.zones for r in z.rules), default=0.0
        )
        kept = {rz.key: rz.checker for rz in self._revisit}
        revisit: list[_RevisitZone] = []
        for zc in scene.zones:
            for rule in zc.rules:
                if rule.type in REVISIT_RULE_TYPES and isinstance(rule, DwellRuleConfig):
                    cfg = RevisitConfig(
                        min_gap_s=max(1.0, float(rule.min_duration_s)),
                        classes=list(rule.classes),
                        min_confidence=rule.min_confidence,
                    )
                    key = f"{self.camera_id}/{zc.id}/{rule.rule_id}"
                    checker = kept.get(key)
                    if checker is None:
                        checker = RevisitChecker(cfg)
                    else:
                        checker.config = cfg
                    revisit.append(_RevisitZone(Zone(zc), rule.rule_id, key, checker, rule.cooldown_s))
        self._revisit = revisit
        keys = {rz.key for rz in revisit}
        for gone in [k for k in self._reported if k[0] not in keys]:
            del self._reported[gone]
        for gone in [k for k in self._as_watched if k[0] not in keys]:
            del self._as_watched[gone]

    @property
    def revisit_zones(self) -> list[str]:
        return [rz.zone.id for rz in self._revisit]

    def export_revisit(self) -> VisitMemory:
        """The revisit check's memory after the last visit (every zone + rule, the first captures' pictures)."""
        with self._lock:
            zones = {rz.key: rz.checker.export(rz.key) for rz in self._revisit}
            return VisitMemory(zones, dict(self._evidence))

    def restore_revisit(self, memory: VisitMemory) -> None:
        """Judge the next visit with ``memory`` (another process made the previous visits).

        Replaces what each zone + rule remembers (a zone + rule that ``memory`` lacks starts
        empty; one only ``memory`` has is ignored: the scene here decides what is checked).
        A vehicle already reported elsewhere keeps its incident open from here (its sighting
        does not qualify again); the pair picture stays with the judge that reported it.
        """
        with self._lock:
            for rz in self._revisit:
                rz.checker.restore(rz.key, memory.zones.get(rz.key, RevisitMemory()))
            needed = set().union(*(rz.checker.frame_refs(rz.key) for rz in self._revisit))
            self._evidence = {ref: jpeg for ref, jpeg in {**memory.evidence, **self._evidence}.items() if ref in needed}
            remembered = {(rz.key, p.key) for rz in self._revisit for p in rz.checker.parked(rz.key)}
            for gone in [k for k in self._reported if k not in remembered]:
                del self._reported[gone]
            for gone in [k for k in self._as_watched if k not in remembered]:
                del self._as_watched[gone]

    # ------------------------------------------------------------------ glance
    def analyse_glance(self, frames: Sequence[Frame], detections: Sequence[sv.Detections]) -> VisitJudgement | None:
        """Judge one glance visit (its keyframes and their detections); None without frames.

        The judgement's analysis is the keyframe showing most (the latest on a tie), judged
        by the glance rules only (``partial``); its reports are the revisit check's, made on
        the last keyframe.
        """
        if not frames:
            return None
        with self._lock:
            analyses = [self._glance.analyze(f, d) for f, d in zip(frames, detections, strict=True)]
            rep = merge_keyframes(analyses)
            reports = self._revisit_step(frames[-1], detections[-1])
            self._judged_ts = max(f.ts for f in frames) if self._judged_ts is None else max(self._judged_ts, *(f.ts for f in frames))
        return VisitJudgement(rep, partial=True, reports=tuple(reports))

    def judge_glance(
        self, frames: Sequence[Frame], detections: Sequence[sv.Detections], submit: Callable[[VisitJudgement], None]
    ) -> VisitJudgement | None:
        """Judge one glance visit (:meth:`analyse_glance`) and hand its judgement to ``submit``
        (the sink). When ``submit`` raises (the judgement was not taken: a publish failed), the
        revisit check forgets the visit (what it remembered before is restored, a vehicle it
        reported is not marked reported) and the exception goes on: the visit done again reports
        the vehicle again."""
        before = self._checkpoint()
        judged = self.analyse_glance(frames, detections)
        if judged is not None:
            try:
                submit(judged)
            except BaseException:
                self._rollback(before)
                raise
        return judged

    def _checkpoint(self) -> _Checkpoint:
        with self._lock:
            return _Checkpoint(
                {rz.key: rz.checker.export(rz.key) for rz in self._revisit}, dict(self._evidence), dict(self._reported),
                dict(self._as_watched), {k: dict(v) for k, v in self._carry.items()}, {k: dict(v) for k, v in self._boxes.items()},
                self._glance_size,
            )

    def _rollback(self, before: _Checkpoint) -> None:
        with self._lock:
            for rz in self._revisit:
                rz.checker.restore(rz.key, before.zones.get(rz.key, RevisitMemory()))
            self._evidence, self._reported, self._as_watched = before.evidence, before.reported, before.as_watched
            self._carry, self._boxes, self._glance_size = before.carry, before.boxes, before.glance_size

    # ------------------------------------------------------------------ watch
    def begin_watch(self, fps: float) -> None:
        """A watch stop starts: the next frame gets a fresh tracker (at ``fps``) and fresh rule clocks."""
        with self._lock:
            self._watch_fps = float(fps)
            self._new_stop = True

    def analyse_watch(self, frame: Frame, dets: sv.Detections) -> VisitJudgement:
        """One frame of a watch visit: tracked, all of the camera's rules.

        A stop starts after :meth:`begin_watch` (or, for callers that do not call it, after a
        gap of more than ``_NEW_VISIT_GAP_S`` between frames).
        """
        with self._lock:
            last = self._watch_last_ts
            if self._watch is None or self._new_stop or last is None or frame.ts - last > _NEW_VISIT_GAP_S:
                self._watch = CameraAnalyzer(self.camera_id, self._watch_fps, self._scene, self._tracker_config, pace=False)
                judged = self._judged_ts  # (a glance since the last stop: the stop's unwatched time ends there)
                self._watch_gap_s = 0.0 if judged is None else max(0.0, frame.ts - judged)
                self._watch_start_ts = frame.ts
                self._new_stop = False
                self._carry = {k: dict(v) for k, v in self._boxes.items() if v} or self._carry
                self._carry_revisit()
                self._boxes, self._alias = {}, {}
            self._watch_last_ts = frame.ts
            self._judged_ts = frame.ts if self._judged_ts is None else max(self._judged_ts, frame.ts)
            analysis = self._watch.analyze(frame, dets)
            assert self._watch_start_ts is not None
            warmup = self._warmup_s + max(1.0, 3.0 / self._watch_fps)
            warm = self._watch_gap_s > 0 and frame.ts - self._watch_start_ts <= warmup
            verdicts = []
            for v in analysis.verdicts:
                if v.per_object and v.result.hits:
                    v = dataclasses.replace(v, result=dataclasses.replace(v.result, hits=self._continue_hits(v, analysis)))
                if warm:  # in the stop's warm-up neither the unwatched gap nor the warm-up itself counts as "clear"
                    # (the gap for a writer that counts it, the warm-up for one that already leaves the gap out)
                    v = dataclasses.replace(v, clear_after_s=min(MAX_CLEAR_AFTER_S, v.clear_after_s + self._watch_gap_s + warmup))
                verdicts.append(v)
            return VisitJudgement(dataclasses.replace(analysis, verdicts=tuple(verdicts)))

    def _carry_revisit(self) -> None:
        """At a new stop: the vehicles of the revisit incidents (reported, still remembered) are
        objects a car of this stop standing at their place continues (their incident's key)."""
        if self._glance_size is None:
            return
        w, h = self._glance_size
        for rz in self._revisit:
            for vehicle in rz.checker.parked(rz.key):
                if (rz.key, vehicle.key) in self._reported:
                    x0, y0, x1, y1 = vehicle.latest.xyxy
                    key = self._as_watched.get((rz.key, vehicle.key), vehicle.key)
                    self._carry.setdefault((rz.zone.id, rz.rule_id), {})[key] = (x0 / w, y0 / h, x1 / w, y1 / h)

    def _continue_hits(self, verdict: RuleVerdict, analysis: FrameAnalysis) -> tuple[Hit, ...]:
        """Give an object reported in this stop the key of the previous stop's object (or of a
        revisit incident's vehicle) that stood at the same place (so its incident continues),
        and remember every object's last box (normalised xyxy)."""
        rule = (verdict.zone_id, verdict.rule_id)
        carried = self._carry.get(rule, {})
        boxes = self._boxes.setdefault(rule, {})
        w, h = max(analysis.frame.width, 1), max(analysis.frame.height, 1)
        xyxy = analysis.detections.xyxy / np.array([w, h, w, h], dtype=np.float64) if len(analysis.detections) else analysis.detections.xyxy
        out = []
        for hit in verdict.result.hits:
            box = tuple(float(x) for x in xyxy[int(hit.subjects[0])]) if len(hit.subjects) else None
            alias = self._alias.get((*rule, hit.key))
            if alias is None and hit.key not in boxes and box is not None:
                taken = set(self._alias.values())
                best = max(
                    ((_iou(box, b), k) for k, b in carried.items() if k not in taken and k not in boxes),
                    default=(0.0, ""),
                )
                if best[0] >= _CONTINUE_IOU:
                    alias = self._alias[(*rule, hit.key)] = best[1]
            key = alias or hit.key
            if box is not None:
                boxes[key] = box
            elif key not in boxes and key in carried:
                boxes[key] = carried[key]
            out.append(dataclasses.replace(hit, key=key) if alias else hit)
        return tuple(out)

    # ------------------------------------------------------------------ revisit
    def _revisit_step(self, frame: Frame, dets: sv.Detections) -> list[ObjectReport]:
        """The revisit check on one visit's frame: one report per zone + rule, listing every
        remembered vehicle (reported ones qualify; the others only keep an incident open)."""
        size = (frame.width, frame.height)
        self._glance_size = (max(frame.width, 1), max(frame.height, 1))
        ref = f"{self.camera_id}#{frame.seq}@{frame.ts:.3f}"
        reports: list[ObjectReport] = []
        jpeg: bytes | None = None
        had_incident = set(self._reported)  # the vehicles reported before this visit
        for rz in self._revisit:
            try:
                violations = rz.checker.observe(rz.key, ref, frame.ts, dets, size, [rz.zone])
            except ValueError:  # a visit older than the last one (two plans raced): skip it
                continue
            needed = rz.checker.frame_refs(rz.key)
            if ref in needed and ref not in self._evidence:
                jpeg = jpeg or self._render(frame, dets, rz.zone.id)
                self._evidence[ref] = jpeg
            parked = rz.checker.parked(rz.key)
            for violation in violations:
                vehicle = next((p.key for p in parked if p.zone_id == violation.zone_id and p.first == violation.first), None)
                if vehicle is not None:
                    self._reported[(rz.key, vehicle)] = self._violation_evidence(violation, frame, dets, rz.zone)
            remembered = {(rz.key, p.key) for p in parked}
            for gone in [k for k in self._reported if k[0] == rz.key and k not in remembered]:
                del self._reported[gone]  # the vehicle left: its incident clears
            for gone in [k for k in self._as_watched if k[0] == rz.key and k not in remembered]:
                del self._as_watched[gone]
            objects = self._sightings(rz, parked, size, had_incident)
            reports.append(
                ObjectReport(
                    self.camera_id, rz.zone.id, rz.rule_id, IllegalParkingRule.kind, at=frame.ts, objects=objects,
                    clear_after_s=0.0, frame_seq=frame.seq, cooldown_s=rz.cooldown_s,
                )
            )
        keep = set().union(*(rz.checker.frame_refs(rz.key) for rz in self._revisit))
        for stale in [r for r in self._evidence if r not in keep]:
            del self._evidence[stale]
        return reports

    def _sightings(
        self, rz: _RevisitZone, parked: list[ParkedVehicle], size: tuple[int, int], had_incident: set[tuple[str, str]]
    ) -> tuple[ObjectSighting, ...]:
        """The check's sightings of this zone + rule. A vehicle without a revisit incident of its
        own (``had_incident``: reported before this visit) that stands where an object of the
        last watch stops stood (box IoU >= ``_CONTINUE_IOU``) is reported under that object's
        key, from then on: the stop's incident stays open while the check sees the vehicle, is
        the one the check reports (not a second incident for the car), and clears once the check
        has lost the vehicle. A watch object the check does not list clears (its incident
        closes), so it is no longer carried to the next stop."""
        rule = (rz.zone.id, rz.rule_id)
        keys = {p.key for p in parked}
        watched = {k: b for k, b in {**self._carry.get(rule, {}), **self._boxes.get(rule, {})}.items() if k not in keys}
        taken = {self._as_watched[(rz.key, p.key)] for p in parked if (rz.key, p.key) in self._as_watched}
        out = []
        for vehicle in parked:
            sighting = self._sighting(rz, vehicle, size)
            alias = self._as_watched.get((rz.key, vehicle.key))
            if alias is None and (rz.key, vehicle.key) not in had_incident:
                iou, key = max(((_iou(sighting.box, b), k) for k, b in watched.items() if k not in taken), default=(0.0, ""))
                if iou >= _CONTINUE_IOU:
                    alias = self._as_watched[(rz.key, vehicle.key)] = key
                    taken.add(key)
            out.append(dataclasses.replace(sighting, key=alias) if alias else sighting)
        listed = {o.key for o in out}
        for boxes in (self._carry.get(rule, {}), self._boxes.get(rule, {})):
            for gone in [k for k in boxes if k not in listed]:
                del boxes[gone]
        return tuple(out)

    def _sighting(self, rz: _RevisitZone, vehicle: ParkedVehicle, size: tuple[int, int]) -> ObjectSighting:
        w, h = max(size[0], 1), max(size[1], 1)
        x0, y0, x1, y1 = vehicle.latest.xyxy
        box = (x0 / w, y0 / h, x1 / w, y1 / h)
        evidence = self._reported.get((rz.key, vehicle.key)) if vehicle.reported else None
        if evidence is None:  # not (yet) two captures T apart: it only keeps an open incident on it
            return ObjectSighting(vehicle.key, box, qualifies=False)
        return ObjectSighting(vehicle.key, box, summary=evidence.summary, details=evidence.details, snapshot=evidence.snapshot)

    def _render(self, frame: Frame, dets: sv.Detections, zone_id: str) -> bytes:
        zones = [rz.zone for rz in self._revisit if rz.zone.id == zone_id]
        return self._annotator.render_jpeg(frame.image, dets, zones, active_zone_ids=[zone_id])

    def _evidence_pair(self, violation: RevisitViolation, frame: Frame, dets: sv.Detections, zone: Zone) -> bytes:
        """Both captures side by side, each with its time and the vehicle's box."""
        second = self._annotator.draw(frame.image, dets, [zone], active_zone_ids=[zone.id])
        first_jpeg = self._evidence.get(violation.first.frame_ref)
        first = cv2.imdecode(np.frombuffer(first_jpeg, np.uint8), cv2.IMREAD_COLOR) if first_jpeg else None
        if first is None or first.shape != second.shape:
            first = np.zeros_like(second)
            cv2.putText(first, "first capture not kept", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        panels = []
        for image, sighting, label in ((first, violation.first, "1st"), (second, violation.second, "2nd")):
            image = image.copy()
            x0, y0, x1, y1 = (int(v) for v in sighting.xyxy)
            cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 255), 4)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sighting.ts))
            cv2.putText(image, f"{label} {stamp}", (16, image.shape[0] - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 255, 255), 2, cv2.LINE_AA)
            panels.append(image)
        return self._annotator.encode(np.hstack(panels))

    def _violation_evidence(self, v: RevisitViolation, frame: Frame, dets: sv.Detections, zone: Zone) -> _Evidence:
        def capture(s: Sighting) -> dict[str, object]:
            return {"at": round(s.ts, 3), "frame_ref": s.frame_ref, "box": [round(x, 1) for x in s.xyxy], "confidence": round(s.confidence, 3)}

        gap_min = v.gap_s / 60.0
        return _Evidence(
            summary=f"{v.class_name} at the same spot on two patrol captures {gap_min:.1f} min apart (IoU {v.iou:.2f})",
            details={
                "method": "revisit",
                "class_name": v.class_name,
                "gap_s": round(v.gap_s, 1),
                "iou": round(v.iou, 3),
                "first_capture": capture(v.first),
                "second_capture": capture(v.second),
                "first_capture_at": round(v.first.ts, 3),
                "second_capture_at": round(v.second.ts, 3),
                "snapshot": "both captures side by side (first left, second right)",
            },
            snapshot=self._evidence_pair(v, frame, dets, zone),
        )
