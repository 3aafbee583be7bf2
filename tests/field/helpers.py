"""Helpers of the field tests: the reversed clip, and whether the tracker can follow low-score objects."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from gridworker.streams.clips import encode_frames
from gridworker.vision.tracker import ByteTracker, TrackerConfig

SCENES = Path(__file__).resolve().parent / "scenes"


def reverse_clip(src: Path, out: Path) -> Path:
    """``src`` played backwards, as H.264 at the same frame rate (all frames held in memory)."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    frames.reverse()
    return encode_frames(frames, out, fps=fps, crf=23)


def tracker_starts_low_score_tracks(threshold: float = 0.2) -> bool:
    """Whether a track can start from a detection scoring ``threshold`` once the scene's
    ``tracker.activation_threshold`` is that low.

    The ``trackers`` ByteTrack only spawns tracks from detections at or above its
    ``high_conf_det_threshold`` (library default 0.6), whatever the activation threshold.
    """
    inner = ByteTracker(fps=5, config=TrackerConfig(activation_threshold=threshold))._tracker
    return float(getattr(inner, "high_conf_det_threshold", 0.0)) <= threshold


LOW_SCORE_TRACKS = pytest.mark.xfail(
    not tracker_starts_low_score_tracks(),
    reason=(
        "vision/tracker.py leaves the trackers ByteTrack's high_conf_det_threshold at 0.6, so detections "
        "below 0.6 never start a track whatever tracker.activation_threshold says; this clip's objects score 0.16-0.42"
    ),
    strict=False,
)
