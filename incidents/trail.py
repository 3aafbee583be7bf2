"""Where each tracked object was, per camera, for the last seconds: what an evidence clip's
overlay draws.

A clip is the camera's own video, remuxed, never re-encoded (docs/evidence.md), so nothing is
burnt into it. Instead, when the clip is cut, the boxes of the incident's triggering objects
(its ``details["track_ids"]`` as they are when the clip is cut: every id the objects had while
the incident was open) over the clip's time span are stored with it, and the console
draws them over the playing video in the trigger colour, as Frigate overlays an event's
object path on its recording.

The incident manager, which sees every analysed frame, records each frame's tracked boxes
here (:meth:`TrackTrail.record`); the clip recorder reads a span back when it cuts a clip
(:meth:`TrackTrail.path`). Memory is bounded: per camera, ``keep_s`` seconds and at most
``max_frames`` frames, each with at most ``max_boxes`` boxes, kept as small arrays (about
0.5 kB for a frame of 20 objects: 100 cameras at 5 fps keep about 10 MB for 45 s).

Example:
    >>> trail = TrackTrail(keep_s=30.0)
    >>> trail.add("cam1", 100.0, np.array([7, 9]), np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.7]]))
    >>> trail.path("cam1", 99.0, 101.0, [7], start_ts=99.5)
    [TrailPoint(t=0.5, boxes=((7, 0.1, 0.2, 0.3, 0.4),))]
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gridworker.vision.analyzer import FrameAnalysis

__all__ = ["TrackTrail", "TrailPoint"]

def _r(v: np.floating) -> float:
    return round(float(v), 4)


_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_BOXES = np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class TrailPoint:
    """The triggering objects' boxes in one analysed frame: ``t`` seconds into the clip,
    ``boxes`` as ``(track_id, x1, y1, x2, y2)`` in 0-1 of the frame."""

    t: float
    boxes: tuple[tuple[int, float, float, float, float], ...]

    def as_json(self) -> dict[str, object]:
        return {"t": self.t, "boxes": [list(b) for b in self.boxes]}


class TrackTrail:
    """The recent tracked boxes of every camera (thread-safe, bounded)."""

    def __init__(self, keep_s: float, max_frames: int = 1500, max_boxes: int = 200) -> None:
        if keep_s <= 0:
            raise ValueError("keep_s must be positive")
        self.keep_s, self.max_frames, self.max_boxes = keep_s, max_frames, max_boxes
        self._frames: dict[str, deque[tuple[float, np.ndarray, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self._swept = 0.0

    def record(self, analysis: FrameAnalysis) -> None:
        """Keep the tracked boxes of one analysed frame (untracked detections are not kept)."""
        det, frame = analysis.detections, analysis.frame
        if det.tracker_id is None or len(det) == 0:
            self.add(frame.camera_id, frame.ts, _NO_IDS, _NO_BOXES)
            return
        w, h = float(frame.width), float(frame.height)
        scale = np.array([w, h, w, h], dtype=np.float64)
        self.add(frame.camera_id, frame.ts, np.asarray(det.tracker_id), np.asarray(det.xyxy, dtype=np.float64) / scale)

    def add(self, camera_id: str, ts: float, track_ids: np.ndarray, boxes: np.ndarray) -> None:
        """Keep one frame's boxes: ``track_ids`` (N,) and ``boxes`` (N, 4) xyxy in 0-1."""
        ids = np.asarray(track_ids, dtype=np.int64)[: self.max_boxes].copy()
        xyxy = np.clip(np.asarray(boxes, dtype=np.float32)[: self.max_boxes], 0.0, 1.0)
        with self._lock:
            frames = self._frames.get(camera_id)
            if frames is None:
                frames = self._frames[camera_id] = deque(maxlen=self.max_frames)
            frames.append((ts, ids, xyxy))
            while frames and frames[0][0] < ts - self.keep_s:
                frames.popleft()
            if ts - self._swept > self.keep_s:  # cameras gone quiet (removed) are dropped whole
                self._swept = ts
                for cid in [c for c, f in self._frames.items() if f[-1][0] < ts - self.keep_s]:
                    del self._frames[cid]

    def path(self, camera_id: str, start: float, end: float, track_ids: Iterable[int], *, start_ts: float) -> list[TrailPoint]:
        """The boxes of ``track_ids`` in frames from ``start`` to ``end`` (wall clock), each
        ``t`` seconds after ``start_ts`` (the clip's first frame). Frames where none of the
        objects was seen are left out."""
        wanted = np.array(sorted({int(i) for i in track_ids}), dtype=np.int64)
        if wanted.size == 0:
            return []
        with self._lock:
            frames = list(self._frames.get(camera_id, ()))
        points: list[TrailPoint] = []
        for ts, ids, xyxy in frames:
            if not start <= ts <= end:
                continue
            hit = np.isin(ids, wanted)
            if hit.any():
                order = np.argsort(ids[hit], kind="stable")
                found = tuple(
                    (int(i), _r(b[0]), _r(b[1]), _r(b[2]), _r(b[3])) for i, b in zip(ids[hit][order], xyxy[hit][order])
                )
                points.append(TrailPoint(round(ts - start_ts, 3), found))
        return points
