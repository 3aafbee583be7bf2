"""Revisit check: "two captures N minutes apart" illegal parking, for cameras seen by glances.

City enforcement proves illegal parking with two photos of the same vehicle at the same
spot at least N minutes apart. A patrol sees a camera once per cycle, so it cannot track
a vehicle; it can compare visits. :class:`RevisitChecker` keeps, per camera, the vehicles
seen standing in a no-parking zone at earlier visits. At each new visit a vehicle whose box
overlaps a remembered one (IoU >= ``iou_threshold``, same zone) is the same parked vehicle;
once the two sightings are at least ``min_gap_s`` apart it fires a
:class:`RevisitViolation` carrying both sightings (time, box, frame reference) as evidence.
A vehicle that moved (low IoU) starts over, and a remembered vehicle not seen again for
more than ``max_misses`` visits is forgotten.

Pure logic: the caller passes detections, zones, the frame size, the time and an opaque
frame reference (a snapshot id) for each visit; nothing here reads a clock or stores images.

Example:
    >>> from gridworker.vision.config import ZoneConfig
    >>> zones = [Zone(ZoneConfig(id="no-parking", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)]))]
    >>> dets = sv.Detections(xyxy=np.array([[100.0, 200.0, 220.0, 300.0]]), class_id=np.array([2]),
    ...                      data={"class_name": np.array(["car"])})    # one car, standing still
    >>> checker = RevisitChecker(RevisitConfig(min_gap_s=300))
    >>> checker.observe("cam1", "snap-1", 0.0, dets, (640, 360), zones)     # first capture
    []
    >>> [violation] = checker.observe("cam1", "snap-2", 310.0, dets, (640, 360), zones)
    >>> violation
    RevisitViolation(camera_id='cam1', zone_id='no-parking', class_name='car', ...)
    >>> violation.gap_s, violation.evidence
    (310.0, ('snap-1', 'snap-2'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import VEHICLE_CLASSES
from .zones import Zone

__all__ = [
    "ParkedState",
    "ParkedVehicle",
    "RevisitChecker",
    "RevisitConfig",
    "RevisitMemory",
    "RevisitViolation",
    "Sighting",
    "merge_memories",
]


class RevisitConfig(BaseModel):
    """Settings of the two-captures check.

    Example:
        >>> RevisitConfig(min_gap_s=180).iou_threshold
        0.6
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_gap_s: float = Field(300.0, gt=0, le=86_400, description="Least time between the two captures (T).")
    max_gap_s: float | None = Field(
        None, gt=0, description="A first capture older than this no longer counts (default: no limit)."
    )
    iou_threshold: float = Field(0.6, gt=0, le=1, description="Boxes overlapping at least this much are the same spot.")
    classes: list[str] = Field(default_factory=lambda: list(VEHICLE_CLASSES), min_length=1)
    min_confidence: float = Field(0.3, ge=0, le=1)
    max_misses: int = Field(
        1, ge=0, le=100, description="Visits a remembered vehicle may go unseen (a missed detection) before it is forgotten."
    )

    @model_validator(mode="after")
    def _gaps(self) -> RevisitConfig:
        if self.max_gap_s is not None and self.max_gap_s < self.min_gap_s:
            raise ValueError("max_gap_s must be >= min_gap_s")
        return self


@dataclass(frozen=True, slots=True)
class Sighting:
    """One capture of a vehicle: when, where (xyxy pixels), in which frame."""

    ts: float
    frame_ref: str
    xyxy: tuple[float, float, float, float]
    class_name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class RevisitViolation:
    """A vehicle standing at the same spot of a no-parking zone on two captures ``gap_s`` apart."""

    camera_id: str
    zone_id: str
    class_name: str
    first: Sighting
    second: Sighting
    iou: float

    @property
    def gap_s(self) -> float:
        return self.second.ts - self.first.ts

    @property
    def evidence(self) -> tuple[str, str]:
        """The two frame references (snapshots) that prove it."""
        return (self.first.frame_ref, self.second.frame_ref)


@dataclass(frozen=True, slots=True)
class ParkedVehicle:
    """A vehicle the checker remembers: its stable ``key``, zone, first and latest sighting,
    and whether it was reported (its two captures are ``min_gap_s`` apart)."""

    key: str
    zone_id: str
    first: Sighting
    latest: Sighting
    reported: bool


@dataclass(frozen=True, slots=True)
class ParkedState:
    """A remembered vehicle as exported (everything :meth:`RevisitChecker.restore` needs)."""

    zone_id: str
    first: Sighting
    latest: Sighting
    misses: int = 0
    reported: bool = False


@dataclass(frozen=True, slots=True)
class RevisitMemory:
    """One camera key's memory, as plain values (no numpy, no references into the checker).

    ``last_ts``: the latest visit's time (epoch s; None before the first); ``parked``: the
    remembered vehicles, oldest first. Exported after a visit and restored before the next
    one on another process (cluster mode keeps it in a KV bucket, ``cluster/revisit_store.py``).
    """

    last_ts: float | None = None
    parked: tuple[ParkedState, ...] = ()


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_memories(ours: RevisitMemory, theirs: RevisitMemory, iou_threshold: float = 0.6) -> RevisitMemory:
    """Both memories in one, for two visits of a camera judged at the same time from the same
    starting memory (two plans on two workers): no sighting of either is lost.

    A vehicle in both (same zone, latest boxes overlapping >= ``iou_threshold``) is kept once,
    with the older first sighting (the longer stand), the newer latest one, reported if either
    reported it and the fewer misses. ``last_ts`` is the later of the two.
    """
    merged: list[ParkedState] = []
    for p in sorted((*theirs.parked, *ours.parked), key=lambda p: (p.first.ts, p.latest.ts)):
        same = next(
            (i for i, q in enumerate(merged) if q.zone_id == p.zone_id and _box_iou(q.latest.xyxy, p.latest.xyxy) >= iou_threshold),
            None,
        )
        if same is None:
            merged.append(p)
            continue
        q = merged[same]  # q.first is the older one (sorted)
        latest = p.latest if p.latest.ts > q.latest.ts else q.latest
        merged[same] = ParkedState(q.zone_id, q.first, latest, min(p.misses, q.misses), p.reported or q.reported)
    stamps = [t for t in (ours.last_ts, theirs.last_ts) if t is not None]
    return RevisitMemory(max(stamps) if stamps else None, tuple(merged))


@dataclass
class _Parked:
    zone_id: str
    first: Sighting
    latest: Sighting
    misses: int = 0
    reported: bool = False


@dataclass
class _CameraMemory:
    parked: list[_Parked] = field(default_factory=list)
    last_ts: float | None = None


def _parked_key(zone_id: str, first: Sighting) -> str:
    x0, y0, x1, y1 = first.xyxy
    return f"{zone_id}:{first.ts:.3f}:{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}"


def _greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, col) pairs, best IoU first, each row and column used once, IoU >= threshold."""
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


class RevisitChecker:
    """Remembers parked vehicles per camera across patrol visits and reports two-capture violations.

    Not thread-safe: call :meth:`observe` for one camera from one thread at a time (the
    patrol's analysis step does).

    Example:
        >>> checker = RevisitChecker(RevisitConfig(min_gap_s=120))
        >>> checker.observe("cam", "f1", 1000.0, sv.Detections.empty(), (640, 360), [])
        []
    """

    def __init__(self, config: RevisitConfig | None = None) -> None:
        self.config = config or RevisitConfig()
        self._memory: dict[str, _CameraMemory] = {}

    def forget(self, camera_id: str) -> None:
        self._memory.pop(camera_id, None)

    def export(self, camera_id: str) -> RevisitMemory:
        """The camera's memory as plain values (an empty one for a camera never observed)."""
        mem = self._memory.get(camera_id)
        if mem is None:
            return RevisitMemory()
        return RevisitMemory(mem.last_ts, tuple(ParkedState(p.zone_id, p.first, p.latest, p.misses, p.reported) for p in mem.parked))

    def restore(self, camera_id: str, memory: RevisitMemory) -> None:
        """Make ``memory`` the camera's memory (what it remembered before is replaced)."""
        self._memory[camera_id] = _CameraMemory(
            [_Parked(p.zone_id, p.first, p.latest, p.misses, p.reported) for p in memory.parked], memory.last_ts
        )

    def remembered(self, camera_id: str) -> int:
        """How many parked vehicles are remembered for the camera."""
        mem = self._memory.get(camera_id)
        return len(mem.parked) if mem else 0

    def parked(self, camera_id: str) -> list[ParkedVehicle]:
        """Every vehicle remembered for the camera (reported or not yet), oldest first."""
        mem = self._memory.get(camera_id)
        if mem is None:
            return []
        return [ParkedVehicle(_parked_key(p.zone_id, p.first), p.zone_id, p.first, p.latest, p.reported) for p in mem.parked]

    def frame_refs(self, camera_id: str) -> set[str]:
        """Frame references still needed as evidence: the first sightings remembered for the camera."""
        mem = self._memory.get(camera_id)
        return set() if mem is None else {p.first.frame_ref for p in mem.parked}

    def _candidates(self, detections: sv.Detections, size: tuple[int, int], zones: Sequence[Zone]) -> list[tuple[str, np.ndarray]]:
        """Per zone: indices of the vehicles standing in it."""
        cfg = self.config
        if len(detections) == 0 or not zones:
            return [(z.id, np.zeros(0, dtype=np.int64)) for z in zones]
        names = detections.data.get("class_name")
        if names is None:
            raise ValueError("detections need data['class_name']")
        conf = detections.confidence if detections.confidence is not None else np.ones(len(detections), np.float32)
        keep = np.isin(np.asarray(names), cfg.classes) & (conf >= cfg.min_confidence)
        out = []
        for zone in zones:
            inside = zone.contains(detections, size) & keep
            out.append((zone.id, np.flatnonzero(inside)))
        return out

    def observe(
        self,
        camera_id: str,
        frame_ref: str,
        ts: float,
        detections: sv.Detections,
        size: tuple[int, int],
        zones: Sequence[Zone],
    ) -> list[RevisitViolation]:
        """Take one visit's detections; return the violations this visit completes.

        Args:
            camera_id: the camera.
            frame_ref: reference of this visit's frame (snapshot id), kept as evidence.
            ts: capture time (epoch seconds). Visits of a camera must come in time order.
            detections: the frame's detections with ``data["class_name"]``; xyxy in pixels.
            size: (width, height) of the frame.
            zones: the camera's no-parking zones.

        Returns:
            One violation per remembered vehicle that, at this visit, has stood at the same
            spot for at least ``min_gap_s`` (each vehicle is reported once while it stays).
        """
        cfg = self.config
        mem = self._memory.setdefault(camera_id, _CameraMemory())
        if mem.last_ts is not None and ts < mem.last_ts:
            raise ValueError(f"camera {camera_id}: visit at {ts} is older than the previous one ({mem.last_ts})")
        mem.last_ts = ts
        names = detections.data.get("class_name") if len(detections) else None
        conf = detections.confidence
        violations: list[RevisitViolation] = []
        kept: list[_Parked] = []
        for zone_id, idx in self._candidates(detections, size, zones):
            old = [p for p in mem.parked if p.zone_id == zone_id]
            if cfg.max_gap_s is not None:
                old = [p for p in old if ts - p.first.ts <= cfg.max_gap_s]
            now_boxes = detections.xyxy[idx] if len(idx) else np.zeros((0, 4), np.float32)
            old_boxes = np.array([p.latest.xyxy for p in old], dtype=np.float32).reshape(-1, 4)
            iou = sv.box_iou_batch(old_boxes, now_boxes) if len(old) and len(idx) else np.zeros((len(old), len(idx)))
            matched_old: set[int] = set()
            matched_now: set[int] = set()
            for r, c in _greedy_match(iou, cfg.iou_threshold):
                matched_old.add(r)
                matched_now.add(c)
                det = int(idx[c])
                sighting = self._sighting(ts, frame_ref, detections.xyxy[det], names, conf, det)
                parked = old[r]
                parked.latest, parked.misses = sighting, 0
                if not parked.reported and ts - parked.first.ts >= cfg.min_gap_s:
                    parked.reported = True
                    violations.append(
                        RevisitViolation(camera_id, zone_id, parked.first.class_name, parked.first, sighting, float(iou[r, c]))
                    )
                kept.append(parked)
            for r, parked in enumerate(old):
                if r not in matched_old:
                    parked.misses += 1
                    if parked.misses <= cfg.max_misses:
                        kept.append(parked)
            for c in range(len(idx)):
                if c not in matched_now:
                    det = int(idx[c])
                    s = self._sighting(ts, frame_ref, detections.xyxy[det], names, conf, det)
                    kept.append(_Parked(zone_id, s, s))
        mem.parked = kept
        return violations

    @staticmethod
    def _sighting(
        ts: float, frame_ref: str, box: np.ndarray, names: np.ndarray | Sequence[object] | None, conf: np.ndarray | None, i: int
    ) -> Sighting:
        x0, y0, x1, y1 = (float(v) for v in box)
        return Sighting(
            ts=ts,
            frame_ref=frame_ref,
            xyxy=(x0, y0, x1, y1),
            class_name=str(names[i]) if names is not None else "",
            confidence=float(conf[i]) if conf is not None else 1.0,
        )

