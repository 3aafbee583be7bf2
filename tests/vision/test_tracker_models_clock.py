"""A camera's tracks do not depend on which cameras share its batches, nor on the host clock
going back; the track confirmation counts only frames the model ran on."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import supervision as sv

from gridworker.models.multi import DETECTOR_KEY, detect_models
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.coasting import analysing
from gridworker.vision.config import ConfirmConfig, LineConfig, SceneConfig, SignalConfig, ZoneConfig
from gridworker.vision.filters import TrackConfirmer
from gridworker.vision.signals import SignalBoard
from gridworker.vision.tracker import MODEL_ID_STRIDE, ModelTrackers

W, H = 640, 360
IMG = np.zeros((H, W, 3), np.uint8)


def _ids(detections: sv.Detections) -> list[int]:
    assert detections.tracker_id is not None
    return [int(i) for i in detections.tracker_id]


def _cars(boxes: list[list[float]], name: str = "car") -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.full(len(boxes), 2), data={"class_name": np.array([name] * len(boxes))},
    )


class _Model:
    class_names = ["car"]
    max_batch = 8

    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = boxes

    def detect(self, images: list[np.ndarray]) -> list[sv.Detections]:
        return [_cars(self.boxes) for _ in images]


def test_a_one_model_cameras_cars_are_counted_once_whichever_cameras_share_its_batches() -> None:
    """Camera A runs the default model only; some of its batches also carry camera B's frame,
    which runs a second model. Before: A's boxes were tagged with their model only in the
    batches shared with B, tagged and untagged boxes went to two trackers, and 6 cars gave 12
    track ids, 12 line crossings and 12 red-light hits."""
    board = SignalBoard()
    scene = SceneConfig(
        zones=[ZoneConfig(id="app", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
                          rules=[{"type": "red_light", "stop_line": [(0.1, 0.5), (0.9, 0.5)], "signal": "s1"}])],
        lines=[LineConfig(id="L", points=[(0.1, 0.5), (0.9, 0.5)], classes=["car"])],
        signals=[SignalConfig(id="s1", source="api", stale_after_s=3600)],
    )
    analyzer = CameraAnalyzer("A", fps=5, scene=scene, signals=board)
    default, fall = _Model([]), _Model([])
    ids: set[int] = set()
    hits = 0
    for k in range(130):
        t = k * 0.2
        default.boxes = []
        for j in range(6):  # a car every 4 s, driving down through the stop line at 90 px/s
            if j * 4.0 <= t <= j * 4.0 + 4.0:
                y, x = -40 + (t - j * 4.0) * 90, 200 + 60 * (j % 3)
                default.boxes.append([x, y, x + 60, y + 40])
        board.push("A", "s1", "red", 1000.0 + t)
        with_b = k >= 5 and (k // 2) % 2 == 0
        chosen = [("default",), ("default", "fall")] if with_b else [("default",)]
        models: dict[str, Any] = {"default": default, "fall": fall}
        dets = detect_models(models, "default", [IMG] * len(chosen), [None] * 2, [None] * 2, chosen)[0]
        analysis = analyzer.analyze(Frame("A", k, 1000.0 + t, IMG), dets)
        ids |= {i for i in _ids(analysis.detections) if i >= 0}
        hits += sum(len(v.result.hits) for v in analysis.verdicts)
    assert len(ids) == 6, sorted(ids)
    assert dict(analyzer._state.lines.counts["L"]) == {("car", "in"): 6}  # type: ignore[union-attr]
    assert hits == 6


def test_the_default_models_ids_start_at_zero_whatever_model_comes_first() -> None:
    trackers = ModelTrackers(fps=5)
    fall_first = _cars([[10, 10, 50, 90]], "Fall")
    fall_first.data[DETECTOR_KEY] = np.array(["fall"], dtype=object)
    for k in range(3):
        trackers.update(fall_first, ts=k * 0.2)
    untagged = _cars([[300, 10, 340, 90]])  # no column: the default model's
    for k in range(3, 6):
        out = trackers.update(untagged, ts=k * 0.2)
    assert _ids(out) == [0]
    tagged = _cars([[300, 10, 340, 90]])
    tagged.data[DETECTOR_KEY] = np.array(["default"], dtype=object)
    assert _ids(trackers.update(tagged, ts=1.2)) == [0], "tagged or not: the same track"
    for k in range(7, 9):
        out = trackers.update(fall_first, ts=k * 0.2)
    assert _ids(out) == [MODEL_ID_STRIDE]
    named = ModelTrackers(fps=5, models=["default", "garbage", "fall"])
    for k in range(3):
        out = named.update(fall_first, ts=k * 0.2)
    assert _ids(out) == [2 * MODEL_ID_STRIDE], "the band of its place in the camera's models"


def _lane() -> CameraAnalyzer:
    zone = ZoneConfig(id="lane", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], rules=[
        {"type": "lane_intrusion", "classes": ["person"]}, {"type": "wrong_way", "direction": (0, 1)}])
    return CameraAnalyzer("cam", fps=5, scene=SceneConfig(zones=[zone]))


def _person_and_car(k: int) -> sv.Detections:
    y = 300 - (k % 50) * 5.0  # a car driving up the lane (against its direction) every 10 s
    return sv.Detections(
        xyxy=np.array([[100, 100, 130, 180], [400, y - 40, 460, y]], np.float32), confidence=np.array([0.9, 0.9], np.float32),
        class_id=np.array([0, 2]), data={"class_name": np.array(["person", "car"])},
    )


def test_a_clock_set_back_restarts_the_trackers_with_new_ids(caplog) -> None:
    """The host clock is set back 30 s at frame 100. Before: ByteTrack skipped every frame older
    than its last, so 149 of the next 200 frames had no box tracked (30 s blind). Now the trackers
    start afresh at once (one frame to start the tracks), with ids none of the old tracks had,
    and the log says it."""
    analyzer = _lane()
    caplog.set_level(logging.WARNING, logger="gridworker.vision.tracker")
    before: set[int] = set()
    after: set[int] = set()
    untracked = 0
    active = 0
    for k in range(300):
        ts = 1000.0 + k * 0.2 - (30.0 if k >= 100 else 0.0)
        analysis = analyzer.analyze(Frame("cam", k, ts, IMG), _person_and_car(k))
        ids = {i for i in _ids(analysis.detections) if i >= 0}
        if k < 100:
            before |= ids
        else:
            after |= ids
            untracked += int(not ids)
            active += int(any(v.rule_id == "lane_intrusion" and v.result.active for v in analysis.verdicts))
    assert untracked <= 1, untracked
    assert after and not after & before, (before, after)
    assert active >= 180, active
    assert len([r for r in caplog.records if "clock went back" in r.getMessage()]) <= 1


def test_a_small_step_back_keeps_the_tracks() -> None:
    """A frame 0.5 s older than the last (a small clock step): taken as no time passing, the
    tracks and their ids go on; before, the frames until the clock caught up were untracked."""
    analyzer = _lane()
    seen = []
    for k in range(40):
        ts = 1000.0 + k * 0.2 - (0.5 if k >= 20 else 0.0)
        analysis = analyzer.analyze(Frame("cam", k, ts, IMG), _person_and_car(k))
        seen.append(sorted(_ids(analysis.detections)))
    assert all(ids == seen[1] and -1 not in ids for ids in seen[1:]), seen


def test_coasted_frames_neither_confirm_a_track_nor_count_as_misses() -> None:
    confirmer = TrackConfirmer(ConfirmConfig(hits=2, frames=3))
    seven = np.array([7])
    with analysing(coasted=False) as sighting:
        assert confirmer.update(seven).tolist() == [False]
    assert sighting.unsure, "a track not confirmed: the model must look again"
    for _ in range(10):  # its box replayed: no new sighting
        with analysing(coasted=True) as sighting:
            assert confirmer.update(seven).tolist() == [False]
        assert sighting.unsure
    with analysing(coasted=False) as sighting:  # the model sees it again: confirmed
        assert confirmer.update(seven).tolist() == [True]
    assert not sighting.unsure
    for _ in range(10):  # coasted frames do not age it out either
        with analysing(coasted=True):
            assert confirmer.update(seven).tolist() == [True]
    with analysing(coasted=False):
        assert confirmer.update(seven).tolist() == [True]
    # outside the pipeline every frame counts, as before
    plain = TrackConfirmer(ConfirmConfig(hits=2, frames=3))
    assert plain.update(seven).tolist() == [False] and plain.update(seven).tolist() == [True]


def test_the_tracker_says_which_objects_the_model_has_seen_only_once() -> None:
    trackers = ModelTrackers(fps=5)
    car = _cars([[10, 10, 50, 90]])
    with analysing(coasted=False) as first:
        assert _ids(trackers.update(car, ts=0.0)) == [-1]  # starts a track
    assert first.unsure
    with analysing(coasted=False) as second:
        assert _ids(trackers.update(car, ts=0.2)) == [0]
    assert not second.unsure, "seen twice by the model"
    with analysing(coasted=True) as replayed:
        assert _ids(trackers.update(car, ts=0.4)) == [0]
    assert not replayed.unsure
    other = ModelTrackers(fps=5)
    with analysing(coasted=False):
        other.update(car, ts=0.0)
    with analysing(coasted=True) as replayed:  # its id came on a replay, not from the model
        assert _ids(other.update(car, ts=0.2)) == [0]
    assert replayed.unsure
