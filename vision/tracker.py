"""Per-camera multi-object tracking (ByteTrack from Roboflow's ``trackers`` package).

Why a library: ``trackers`` is a maintained, Apache-2.0 clean-room ByteTrack that takes and
returns ``supervision.Detections`` and accepts real timestamps, so a camera sampled at an
uneven rate (latest-frame semantics drop frames under load) still predicts motion right.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field
from trackers import ByteTrackTracker

from gridworker.models.base import subset


class TrackerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lost_track_s: float = Field(3.0, gt=0.0, le=120.0, description="Keep a lost track this long for re-association.")
    activation_threshold: float = Field(0.45, ge=0.0, le=1.0, description="Score needed to start a new track.")
    min_iou: float = Field(0.1, ge=0.0, le=1.0, description="IoU needed to associate a box with a track.")


class ByteTracker:
    """One camera's tracker: ``update(dets, ts) -> dets`` with ``tracker_id`` filled in.

    Example:
        >>> tracker = ByteTracker(fps=5)
        >>> tracked = tracker.update(sv.Detections.empty(), ts=0.0)
    """

    def __init__(self, fps: float, config: TrackerConfig | None = None) -> None:
        self._fps = fps
        self._config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        cfg = self._config
        self._tracker = ByteTrackTracker(
            # the library counts the buffer in 30 fps frames
            lost_track_buffer=max(1, round(cfg.lost_track_s * 30)),
            frame_rate=self._fps,
            track_activation_threshold=cfg.activation_threshold,
            # ByteTrack's first-stage ("high") threshold is also what may start a track:
            # left at the library default (0.6), boxes scored below it would never get an
            # id whatever activation_threshold says, so both follow the one setting
            high_conf_det_threshold=cfg.activation_threshold,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=cfg.min_iou,
        )

    def update(self, detections: sv.Detections, ts: float) -> sv.Detections:
        """Associate ``detections`` (not modified) with tracks; unconfirmed boxes get id -1."""
        if len(detections) == 0:
            self._tracker.update(detections, timestamp=ts)
            out = sv.Detections.empty()
            out.tracker_id = np.zeros(0, dtype=np.int64)
            out.data["class_name"] = np.zeros(0, dtype=str)
            return out
        tracked = self._tracker.update(replace(detections, data=dict(detections.data)), timestamp=ts)
        return tracked


#: Track ids of a camera's second, third, ... model start at this multiple (no clash with the first's).
MODEL_ID_STRIDE = 1_000_000


class ModelTrackers:
    """A camera's trackers: one :class:`ByteTracker` per model its frames go through.

    Boxes of different models (a COCO "person" and a fall model's "Normal" on the same body)
    must not compete for one track, so each model's detections (``data["detector"]``, set by
    ``models.multi.detect_models``) are tracked on their own and their ids kept apart: the
    n-th model seen gets ids from ``n * MODEL_ID_STRIDE``. Frames without that column (one
    model) go through one tracker exactly as before.

    Example:
        >>> trackers = ModelTrackers(fps=5)
        >>> len(trackers.update(sv.Detections.empty(), ts=0.0))
        0
    """

    def __init__(self, fps: float, config: TrackerConfig | None = None) -> None:
        self._fps, self._config = fps, config
        self._trackers: dict[str, ByteTracker] = {}

    def _tracker(self, model_id: str) -> ByteTracker:
        tracker = self._trackers.get(model_id)
        if tracker is None:
            tracker = self._trackers[model_id] = ByteTracker(self._fps, self._config)
        return tracker

    def update(self, detections: sv.Detections, ts: float) -> sv.Detections:
        models = detections.data.get("detector")
        if models is None:
            return self._tracker("").update(detections, ts)
        names = np.asarray(models)
        for model_id in dict.fromkeys(str(m) for m in names):
            self._tracker(model_id)
        parts = []
        for index, (model_id, tracker) in enumerate(self._trackers.items()):  # every model's tracker ages, with boxes or without
            tracked = tracker.update(subset(detections, names == model_id), ts)
            if len(tracked):
                ids = np.asarray(tracked.tracker_id, dtype=np.int64)
                tracked.tracker_id = np.where(ids >= 0, ids + index * MODEL_ID_STRIDE, ids)
                parts.append(tracked)
        if parts:
            return sv.Detections.merge(parts)
        out = sv.Detections.empty()
        out.tracker_id = np.zeros(0, dtype=np.int64)
        out.data["class_name"] = np.zeros(0, dtype=str)
        out.data["detector"] = np.zeros(0, dtype=object)
        return out
