"""A small builder for scripted detection tracks, to test rules deterministically.

A scenario is a set of tracks on a virtual camera. Each track is scripted in time:
where its box is, when it moves, when the detector misses it, when the tracker gives it
a new id. ``run`` plays the scenario through the real ``CameraAnalyzer`` (zones, masks,
schedules, exemptions, rules) with the scripted ids (no tracker), frame by frame.

Example::

    sc = Scenario(fps=5)
    car = sc.track("car", (400, 600, 600, 700))
    car.stay(0, 30).hide(30, 32).stay(32, 60).switch_id(40)
    sc.track("car", (0, 600, 200, 700)).move(0, 10, dx=800)      # a passing car
    run = sc.run(zones=[{"id": "kerb", "polygon": [...], "rules": [{"type": "illegal_parking", "min_duration_s": 20}]}], until=60)
    assert run.openings("kerb", "illegal_parking") == 1
    assert 20 <= run.first_active("kerb", "illegal_parking") <= 21
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from gridworker.incidents.manager import CameraInfo, IncidentManager
from gridworker.incidents.store import Incident, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.vision.config import SceneConfig

Box = tuple[float, float, float, float]


@dataclass
class _Segment:
    t0: float
    t1: float
    box0: np.ndarray
    box1: np.ndarray
    visible: bool


@dataclass
class Track:
    """One scripted object. Methods chain and are applied in time order."""

    class_name: str
    box: np.ndarray
    track_id: int
    confidence: float
    segments: list[_Segment] = field(default_factory=list)
    id_switches: list[tuple[float, int]] = field(default_factory=list)
    jitter_px: float = 0.0
    seed: int = 0

    def stay(self, t0: float, t1: float) -> Track:
        """Present and still from ``t0`` to ``t1`` (s)."""
        self.segments.append(_Segment(t0, t1, self.box.copy(), self.box.copy(), True))
        return self

    def move(self, t0: float, t1: float, *, dx: float = 0.0, dy: float = 0.0, to: Box | None = None) -> Track:
        """Move linearly from the current box by (dx, dy) pixels, or to the box ``to``."""
        end = np.asarray(to, dtype=np.float64) if to is not None else self.box + np.array([dx, dy, dx, dy])
        self.segments.append(_Segment(t0, t1, self.box.copy(), end.copy(), True))
        self.box = end
        return self

    def hide(self, t0: float, t1: float) -> Track:
        """Missed by the detector (occluded) from ``t0`` to ``t1``; the box stays where it was."""
        self.segments.append(_Segment(t0, t1, self.box.copy(), self.box.copy(), False))
        return self

    def switch_id(self, at: float, new_id: int | None = None) -> Track:
        """From ``at`` on, the tracker reports a different id for this object."""
        self.id_switches.append((at, new_id if new_id is not None else self.track_id + 1000 * (len(self.id_switches) + 1)))
        return self

    def jitter(self, px: float, seed: int = 0) -> Track:
        """Add uniform box noise of ±``px`` pixels to every frame (detector wobble)."""
        self.jitter_px, self.seed = px, seed
        return self

    def at(self, t: float, rng: np.random.Generator) -> tuple[np.ndarray, int] | None:
        for seg in self.segments:
            if seg.t0 <= t < seg.t1 or (t == seg.t1 and seg is self.segments[-1]):
                if not seg.visible:
                    return None
                a = 0.0 if seg.t1 == seg.t0 else (t - seg.t0) / (seg.t1 - seg.t0)
                box = seg.box0 + a * (seg.box1 - seg.box0)
                if self.jitter_px:
                    box = box + rng.uniform(-self.jitter_px, self.jitter_px, 4)
                tid = self.track_id
                for when, new in self.id_switches:
                    if t >= when:
                        tid = new
                return box, tid
        return None


@dataclass
class Run:
    """What a scenario produced: one FrameAnalysis per frame."""

    analyses: list[FrameAnalysis]

    def active(self, zone_id: str, rule_id: str) -> list[tuple[float, bool]]:
        out = []
        for a in self.analyses:
            for v in a.verdicts:
                if v.zone_id == zone_id and v.rule_id == rule_id:
                    out.append((a.frame.ts, v.result.active))
        return out

    def first_active(self, zone_id: str, rule_id: str) -> float | None:
        return next((t for t, on in self.active(zone_id, rule_id) if on), None)

    def openings(self, zone_id: str, rule_id: str) -> int:
        """Rising edges of the verdict: how many separate times the condition began to hold."""
        n, prev = 0, False
        for _, on in self.active(zone_id, rule_id):
            n += on and not prev
            prev = on
        return n

    def incidents(self, tmp_path: Any) -> list[Incident]:
        """Feed the run through the real ``IncidentManager`` into a SQLite store in
        ``tmp_path``; returns the stored incidents (open and closed), oldest first."""
        store = IncidentStore(f"sqlite:///{tmp_path}/scenario-{id(self)}.db")
        manager = IncidentManager(store=store, camera_info=lambda _cam: CameraInfo(name="scenario"), write_interval_s=0.0)
        for a in self.analyses:
            manager.observe(a)
        items, _total = store.list(IncidentQuery(limit=1000))
        store.close()
        return sorted(items, key=lambda i: i.opened_at)

    def results(self, zone_id: str, rule_id: str) -> list[tuple[float, Any]]:
        return [(a.frame.ts, v.result) for a in self.analyses for v in a.verdicts if v.zone_id == zone_id and v.rule_id == rule_id]


class Scenario:
    """Scripted tracks on a virtual camera of ``size`` = (width, height) at ``fps``.

    ``start`` is the epoch time of t = 0 (schedules are judged on it).
    """

    def __init__(self, size: tuple[int, int] = (1000, 1000), fps: float = 5.0, start: float = 0.0) -> None:
        self.size = size
        self.fps = fps
        self.start = start
        self.tracks: list[Track] = []
        self._image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        self._image.flags.writeable = False

    def track(self, class_name: str, box: Box, *, track_id: int | None = None, confidence: float = 0.9) -> Track:
        tid = track_id if track_id is not None else len(self.tracks) + 1
        t = Track(class_name, np.asarray(box, dtype=np.float64), tid, confidence)
        self.tracks.append(t)
        return t

    def frames(self, until: float, image: np.ndarray | None = None) -> Iterator[tuple[Frame, sv.Detections]]:
        rngs = {id(t): np.random.default_rng(t.seed) for t in self.tracks}
        n = int(round(until * self.fps))
        for i in range(n + 1):
            t = i / self.fps
            boxes, names, ids, confs = [], [], [], []
            for tr in self.tracks:
                got = tr.at(t, rngs[id(tr)])
                if got is not None:
                    boxes.append(got[0])
                    names.append(tr.class_name)
                    ids.append(got[1])
                    confs.append(tr.confidence)
            dets = _detections(boxes, names, ids, confs)
            yield Frame("scenario", i, self.start + t, self._image if image is None else image), dets

    def run(self, zones: Sequence[dict[str, Any]] = (), until: float = 60.0, *, image: np.ndarray | None = None, **scene: Any) -> Run:
        """Play the scenario through a ``CameraAnalyzer`` with these zones (and masks,
        lines, signals, calibration as keyword arguments). Times in the run are relative
        to ``start``."""
        config = SceneConfig.model_validate({"zones": list(zones), **scene})
        analyzer = CameraAnalyzer("scenario", self.fps, config, track=False)
        analyses = []
        for frame, dets in self.frames(until, image):
            a = analyzer.analyze(frame, dets)
            analyses.append(FrameAnalysis(Frame(frame.camera_id, frame.seq, frame.ts - self.start, frame.image), a.detections, a.verdicts, a.zones, a.crossings, a.signals))
        return Run(analyses)


def _detections(boxes: list[np.ndarray], names: list[str], ids: list[int], confs: list[float]) -> sv.Detections:
    if not boxes:
        dets = sv.Detections.empty()
        dets.tracker_id = np.zeros(0, dtype=np.int64)
        dets.data["class_name"] = np.zeros(0, dtype=str)
        return dets
    return sv.Detections(
        xyxy=np.asarray(boxes, dtype=np.float32),
        confidence=np.asarray(confs, dtype=np.float32),
        class_id=np.zeros(len(boxes), dtype=np.int64),
        tracker_id=np.asarray(ids, dtype=np.int64),
        data={"class_name": np.asarray(names)},
    )
