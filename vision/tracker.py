"""Per-camera multi-object tracking (ByteTrack from Roboflow's ``trackers`` package).

Why a library: ``trackers`` is a maintained, Apache-2.0 clean-room ByteTrack that takes and
returns ``supervision.Detections`` and accepts real timestamps, so a camera sampled at an
uneven rate (latest-frame semantics drop frames under load) still predicts motion right.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field
from trackers import ByteTrackTracker

from gridworker.models.base import subset
from gridworker.models.config import DEFAULT_DETECTOR
from gridworker.models.multi import DETECTOR_KEY
from gridworker.streams.redact import get_logger

from .coasting import current

log = get_logger(__name__)


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
        self._id_base = 0  # added to the library's ids: after a restart they go on from here
        self._issued = 0  # the library's ids given since the last (re)start: 0 .. _issued - 1
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start over from 0."""
        self._id_base = self._issued = 0
        self._tracker = self._new()

    def restart(self) -> None:
        """Forget every track; new ids go on after the ones given so far (never one of them again)."""
        self._id_base += self._issued
        self._issued = 0
        self._tracker = self._new()

    def _new(self) -> ByteTrackTracker:
        cfg = self._config
        return ByteTrackTracker(
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
        """Associate ``detections`` (not modified) with tracks; unconfirmed boxes get id -1.

        A box that starts a track gets its id on the track's next sighting (id -1 until then)."""
        if len(detections) == 0:
            self._tracker.update(detections, timestamp=ts)
            out = sv.Detections.empty()
            out.tracker_id = np.zeros(0, dtype=np.int64)
            out.data["class_name"] = np.zeros(0, dtype=str)
            return out
        tracked = self._tracker.update(replace(detections, data=dict(detections.data)), timestamp=ts)
        ids = np.asarray(tracked.tracker_id, dtype=np.int64)
        if len(ids) and ids.max() >= 0:
            self._issued = max(self._issued, int(ids.max()) + 1)
            tracked.tracker_id = np.where(ids >= 0, ids + self._id_base, ids)
        return tracked


#: Track ids of a camera's models lie in bands of this width: the default model's from 0, the
#: next model's from ``MODEL_ID_STRIDE``, and so on (an id past its band wraps round in it).
MODEL_ID_STRIDE = 1_000_000
#: A frame time this much before the camera's last one is a step of the host clock (NTP, a VM
#: resumed): the camera's trackers start afresh. A smaller step back is taken as no time passing.
CLOCK_STEP_S = 1.0
#: Tracks remembered as seen by the model (``ModelTrackers``), most recently seen kept.
MAX_SURE_TRACKS = 4096
#: The log says a clock step at most once in this long (a host clock step hits every camera).
_CLOCK_LOG_INTERVAL_S = 600.0
_clock_log_lock = threading.Lock()
_clock_logged_at: float | None = None


def _log_clock_step(back_s: float) -> None:
    global _clock_logged_at
    with _clock_log_lock:
        now = time.monotonic()
        if _clock_logged_at is not None and now - _clock_logged_at < _CLOCK_LOG_INTERVAL_S:
            return
        _clock_logged_at = now
    log.warning(
        "frame clock went back %.1f s (the host clock was set back?): the cameras' trackers start afresh,"
        " new track ids go on after the old ones (said at most once in %.0f min)", back_s, _CLOCK_LOG_INTERVAL_S / 60,
    )


class ModelTrackers:
    """A camera's trackers: one :class:`ByteTracker` per model its frames go through.

    Boxes of different models (a COCO "person" and a fall model's "Normal" on the same body)
    must not compete for one track, so each model's detections (``data["detector"]``, set by
    ``models.multi.detect_models``) are tracked on their own and their ids kept apart: the
    default model's ids start at 0, every other model's at a multiple of ``MODEL_ID_STRIDE``
    it keeps for good (``models``: the camera's models, in its configured order; a model not
    named there takes the next band when its first box comes). Boxes without that column are
    the default model's: a camera's objects keep their tracks whichever way a frame came.

    The frame time must go forward: a step back of more than ``CLOCK_STEP_S`` (the host clock
    set back) restarts every tracker, new ids going on after the old ones; a smaller one is
    taken as no time passing (ByteTrack skips a frame older than its last).

    Inside ``coasting.analysing`` (the live pipeline) it tells which objects the model has not
    seen often enough yet (``Sighting.unsure``): a box that starts a track, or a track not yet
    seen on a frame the model ran on.

    Example:
        >>> trackers = ModelTrackers(fps=5)
        >>> len(trackers.update(sv.Detections.empty(), ts=0.0))
        0
    """

    def __init__(self, fps: float, config: TrackerConfig | None = None, models: Sequence[str] = ()) -> None:
        self._fps, self._config = fps, config
        self._activation = (config or TrackerConfig()).activation_threshold
        self._trackers: dict[str, ByteTracker] = {}
        self._bands: dict[str, int] = {DEFAULT_DETECTOR: 0}
        for model_id in models:
            self._band(model_id)
        self._last_ts: float | None = None
        self._sure: OrderedDict[int, None] = OrderedDict()  # ids seen on an inferred frame, latest last

    def _band(self, model_id: str) -> int:
        band = self._bands.get(model_id)
        if band is None:
            band = self._bands[model_id] = len(self._bands)
        return band

    def _tracker(self, model_id: str) -> ByteTracker:
        tracker = self._trackers.get(model_id)
        if tracker is None:
            self._band(model_id)
            tracker = self._trackers[model_id] = ByteTracker(self._fps, self._config)
        return tracker

    def _clock(self, ts: float) -> float:
        last = self._last_ts
        if last is not None and ts <= last:
            if last - ts > CLOCK_STEP_S:
                for tracker in self._trackers.values():
                    tracker.restart()
                _log_clock_step(last - ts)
            else:  # jitter or a small step: a moment later than the last frame
                ts = last + 1e-3
        self._last_ts = ts
        return ts

    def update(self, detections: sv.Detections, ts: float) -> sv.Detections:
        ts = self._clock(ts)
        tags = detections.data.get(DETECTOR_KEY)
        names = np.full(len(detections), DEFAULT_DETECTOR, dtype=object) if tags is None else np.asarray(tags, dtype=object)
        for model_id in dict.fromkeys(str(m) for m in names):
            self._tracker(model_id)
        if not self._trackers:
            self._tracker(DEFAULT_DETECTOR)
        parts = []
        for model_id, tracker in self._trackers.items():  # every model's tracker ages, with boxes or without
            mine = names == model_id
            tracked = tracker.update(detections if mine.all() else subset(detections, mine), ts)
            if len(tracked):
                ids = np.asarray(tracked.tracker_id, dtype=np.int64)
                tracked.tracker_id = np.where(ids >= 0, ids % MODEL_ID_STRIDE + self._bands[model_id] * MODEL_ID_STRIDE, ids)
                parts.append(tracked)
        if parts:
            out = parts[0] if len(parts) == 1 else sv.Detections.merge(parts)
            self._note(out)
            return out
        out = sv.Detections.empty()
        out.tracker_id = np.zeros(0, dtype=np.int64)
        out.data["class_name"] = np.zeros(0, dtype=str)
        if tags is not None:
            out.data[DETECTOR_KEY] = np.zeros(0, dtype=object)
        return out

    def _note(self, tracked: sv.Detections) -> None:
        """Remember the tracks the model saw; tell the pipeline of objects it has not seen enough."""
        sighting = current()
        ids = np.asarray(tracked.tracker_id, dtype=np.int64)
        if sighting is None or not sighting.coasted:
            for t in ids[ids >= 0].tolist():
                self._sure[t] = None
                self._sure.move_to_end(t)
            while len(self._sure) > MAX_SURE_TRACKS:
                self._sure.popitem(last=False)
        if sighting is None or sighting.unsure:
            return
        scores = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked), dtype=np.float32)
        starting = (ids < 0) & (np.asarray(scores) >= self._activation)  # a new track: its id comes on its next sighting
        if starting.any() or any(t not in self._sure for t in ids[ids >= 0].tolist()):
            sighting.unsure = True
