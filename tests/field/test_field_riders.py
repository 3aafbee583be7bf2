"""Riders on real footage: the motorway cyclist clip (``../shared/media``), replayed with rider
pairing on (the default) and off. Skipped when the clips are absent.

What the embedded SSD sees there (measured, also at score 0.05 and on 2x2 tiles): the
cyclist as a "person" box only, never a bicycle box, so there is no pair to make. The clip
proves the pairing's safety on real traffic: a person with no vehicle box under it stays a
person (the shoulder rule still fires on the cyclist), and nothing in the motorway traffic
(cars, lorries, a car now and then scored "motorcycle") turns a box into a rider. The
pairing itself (a person on a bicycle/motorcycle box, moving with it) is proven on scripted
tracks in tests/vision/test_riders.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gridworker.models.base import Detector
from gridworker.models.config import DetectorConfig
from gridworker.replay import load_replay_setup, replay_clip
from gridworker.vision.analyzer import FrameAnalysis
from gridworker.vision.config import RiderConfig
from tests.field.helpers import SCENES

pytestmark = [pytest.mark.media, pytest.mark.model]


def _incidents(result):
    return [(i.type, i.zone_id, i.opened_s, i.closed_s, tuple(s.track_id for s in i.subjects)) for i in result.incidents]


def test_motorway_cyclist_with_and_without_rider_pairing(shared_media: Path, detectors: Callable[[DetectorConfig], Detector]) -> None:
    clip = shared_media / "motorway_shoulder_cyclist.mp4"
    setup = load_replay_setup(SCENES / "motorway_shoulder_cyclist.yaml", clip)
    assert setup.camera.riders.enabled  # the default
    persons = 0

    def look(analysis: FrameAnalysis) -> None:
        nonlocal persons
        persons += [str(n) for n in analysis.detections.data.get("class_name", [])].count("person")

    on = replay_clip(clip, setup.camera, detectors(setup.detector), tracker=setup.tracker, on_analysis=look)
    lane = on.of("lane_intrusion", "hard_shoulder")
    assert 1 <= len(lane) <= 2 and 2.5 <= lane[0].opened_s <= 6.0, lane
    assert all(s.class_name == "person" for i in lane for s in i.subjects)  # the cyclist, as the SSD names it
    assert persons > 0
    off_camera = setup.camera.model_copy(update={"riders": RiderConfig(enabled=False)})
    off = replay_clip(clip, off_camera, detectors(setup.detector), tracker=setup.tracker)
    # no vehicle box under the cyclist, none paired in the traffic: the same incidents either way
    assert _incidents(on) == _incidents(off)
