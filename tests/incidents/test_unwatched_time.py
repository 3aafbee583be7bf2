"""Only watched time counts as "clear" (incidents/manager.py, ``_FrameClock``).

A parked car's incident is open when the camera's stream drops for a minute (a reconnect):
no frame means nobody saw the kerb clear, so the incident must not close as cleared (its
case would be closed "verified on camera"), then reopen as rework when frames come back.
Real analyser and ByteTrack tracker, real incident manager and store.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig, ZoneConfig
from tests.factories import make_detections

T0 = 1000.0
KERB = ZoneConfig(id="kerb", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)], rules=[{"type": "illegal_parking"}])  # min 180 s, clear 10 s
IMAGE = np.zeros((360, 640, 3), np.uint8)
CAR = make_detections([[200, 220, 320, 300]], class_name=["car"])
NOBODY = make_detections([])
CAR_7 = make_detections([[200, 220, 320, 300]], class_name=["car"], tracker_id=[7])  # (scripted track ids, no tracker)
NOBODY_7 = make_detections([], tracker_id=[])


class _Told:
    def __init__(self, manager: IncidentManager) -> None:
        self.closed: list[tuple[int, float]] = []
        self.reopened: list[tuple[int, float]] = []
        manager.on_close.append(lambda i, at: self.closed.append((i, round(at - T0, 1))))
        manager.on_reopen.append(lambda i, at: self.reopened.append((i, round(at - T0, 1))))


def _play(tmp_path, frames, *, fps: float, track: bool = True):
    store = IncidentStore(f"sqlite:///{tmp_path / 'unwatched.db'}")
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=5.0)
    told = _Told(manager)
    analyzer = CameraAnalyzer("cam", fps=fps, scene=SceneConfig(zones=[KERB]), track=track, pace=False)
    for seq, (t, dets) in enumerate(frames, start=1):
        manager.observe(analyzer.analyze(Frame("cam", seq, T0 + float(t), IMAGE), dets))
    items, _ = store.list(IncidentQuery())
    store.close()
    return sorted(items, key=lambda i: i.id), told


def test_a_stream_outage_does_not_close_the_parked_cars_incident_as_cleared(tmp_path, caplog):
    """Before: at the first frame after the 60 s outage the incident closed (on_close: the case
    closed as verified), and half a second later it reopened (on_reopen: the case back as rework)."""
    caplog.set_level(logging.INFO, logger="gridworker.incidents.manager")
    times = [*np.arange(0, 300, 0.5), *np.arange(360, 400, 0.5)]  # no frames from 300 to 360
    items, told = _play(tmp_path, [(t, CAR) for t in times], fps=2)
    assert [(i.status, i.opened_at - T0) for i in items] == [("open", pytest.approx(180.0, abs=1.0))]
    assert told.closed == [] and told.reopened == []
    assert any("without frames" in r.getMessage() for r in caplog.records)


def test_a_car_gone_after_the_outage_closes_clear_after_s_of_watched_frames_later(tmp_path):
    times = [*np.arange(0, 300, 0.5), *np.arange(360, 400, 0.5)]
    frames = [(t, CAR if t < 300 else NOBODY) for t in times]  # the car left during the outage
    items, told = _play(tmp_path, frames, fps=2)
    (inc,) = items
    assert inc.status == "closed"
    # seen clear from 360 on, for clear_after_s (10 s) of frames; before: at 360, the outage counted as clear
    assert 369.5 <= inc.closed_at - T0 <= 372.0, inc.closed_at - T0
    assert told.closed == [(inc.id, pytest.approx(inc.closed_at - T0, abs=0.1))]  # cleared on camera: verified


@pytest.mark.parametrize("fps", [0.2, 1.0])
def test_a_slow_cameras_usual_interval_is_watched_time(tmp_path, fps):
    """A camera analysed once every 5 s: its usual gaps are watched time, not outages (the
    incident still closes clear_after_s after the car is gone, not never)."""
    step = 1.0 / fps
    times = np.arange(0, 500, step)
    frames = [(t, CAR_7 if t < 300 else NOBODY_7) for t in times]
    items, told = _play(tmp_path, frames, fps=fps, track=False)
    (inc,) = items
    assert inc.status == "closed" and len(told.closed) == 1
    # last seen < 300, then lost_grace_s + clear_after_s (and one interval of rounding)
    assert 300.0 <= inc.closed_at - T0 <= 320.0 + 2 * step, inc.closed_at - T0


def test_after_the_host_clock_is_set_back_an_outage_is_still_seen():
    """Found by review: with the clock set back an hour, every gap read as negative and an
    outage went unseen (counted as clear) until the clock caught up."""
    from gridworker.incidents.manager import _FrameClock

    clock = _FrameClock(1000.0)
    for t in np.arange(1000.5, 1010.0, 0.5):
        assert clock.unwatched(float(t)) == 0.0
    assert clock.unwatched(-2600.0) == 0.0  # the step back itself is not an outage
    for t in np.arange(-2599.5, -2590.0, 0.5):
        assert clock.unwatched(float(t)) == 0.0
    assert clock.unwatched(-2530.0) == pytest.approx(60.5)  # a minute without frames, on the new clock
