"""The crowd rule counts only time it saw: a stalled stream, a reconnect or a forward jump of
the frame clock does not make a crowd "held" (vision/rules/crowd.py). Before: five people for
one second, then five minutes without frames, and the first frame after it fired "5 objects in
the zone for 301 s" at once. A slow camera (frames further apart than ``grace_s``) still fires.
Real analyser, scripted detections."""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import ZoneConfig
from tests.factories import make_detections

IMAGE = np.zeros((360, 640, 3), np.uint8)
FIVE = make_detections([[50 + 100 * i, 100, 90 + 100 * i, 200] for i in range(5)], tracker_id=list(range(5)))
PLAZA = [(0, 0), (1, 0), (1, 1), (0, 1)]


def _crowd(fps: float, **rule: object) -> CameraAnalyzer:
    zone = ZoneConfig(id="plaza", polygon=PLAZA, rules=[{"type": "crowd", "min_count": 5, "min_duration_s": 60, **rule}])
    return CameraAnalyzer("cam", fps=fps, scene=[zone], track=False)


def _first_active(analyzer: CameraAnalyzer, times) -> float | None:
    for seq, t in enumerate(times, start=1):
        (verdict,) = analyzer.analyze(Frame("cam", seq, 1000.0 + float(t), IMAGE), FIVE).verdicts
        if verdict.result.active:
            return float(t)
    return None


def test_a_stall_does_not_count_as_the_crowd_holding():
    times = [*np.arange(0.0, 1.01, 0.2), *np.arange(301.0, 400.0, 0.2)]  # no frames from 1 s to 301 s
    fired = _first_active(_crowd(5), times)
    assert fired == pytest.approx(361.0, abs=0.25)  # 60 s after frames came back; before: at 301 s


def test_a_forward_clock_jump_restarts_the_hold():
    times = [*np.arange(0.0, 50.0, 0.2), *np.arange(3650.0, 3750.0, 0.2)]  # 50 s held, then the clock jumps an hour
    fired = _first_active(_crowd(5), times)
    assert fired == pytest.approx(3710.0, abs=0.25)


@pytest.mark.parametrize("fps", [0.25, 0.4, 1.0])
def test_a_slow_camera_still_fires(fps):
    """Frames 2.5 to 4 s apart (longer than grace_s, 2 s) are the camera's usual pace, not a stall."""
    step = 1.0 / fps
    times = np.arange(0.0, 200.0, step)
    fired = _first_active(_crowd(fps), times)
    assert fired is not None and 60.0 <= fired <= 60.0 + step, fired


def test_a_dip_shorter_than_grace_keeps_the_clock():
    times = [t for t in np.arange(0.0, 100.0, 0.2) if not 30.0 <= t < 31.0]  # a 1 s hole (< grace_s 2 s)
    fired = _first_active(_crowd(5), times)
    assert fired == pytest.approx(60.0, abs=0.25)
