"""Motion gating through the real Pipeline threads: a coasted frame replays what the model saw,
never more.

* With two inference workers, a camera's coasted frame could be handed out while its inferred
  frame was still in the detector: it was analysed first with the detections from before, the
  inferred frame was then dropped as older, and a car that stopped was never seen.
* A box the model reported on one inferred frame was replayed on every coasted frame up to the
  next refresh: it counted as new sightings for the track confirmation and ran the rules' clocks,
  so one false detection became an intrusion and a fall.
"""

from __future__ import annotations

import threading
import time

import av
import cv2
import numpy as np
import supervision as sv

from gridworker.streams.frame import DecodedFrame
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.batcher import Batcher
from gridworker.vision.config import SceneConfig, ZoneConfig
from gridworker.vision.motion import MotionConfig, MotionGate
from gridworker.vision.pipeline import CameraSlot, Pipeline

W, H = 640, 360


def _empty() -> sv.Detections:
    e = sv.Detections.empty()
    e.data["class_name"] = np.zeros(0, dtype=str)
    return e


def _boxes(boxes: list[tuple[list[float], str, int]]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([b for b, _, _ in boxes], np.float32), confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.array([c for _, _, c in boxes]), data={"class_name": np.array([n for _, n, _ in boxes])},
    )


class _Sink:
    def __init__(self) -> None:
        self.seen: list[FrameAnalysis] = []

    def observe(self, analysis: FrameAnalysis, partial: bool = False) -> None:
        self.seen.append(analysis)

    def report(self, report: object) -> None:
        pass


class _Meter:
    def batch_done(self, *a: object) -> None: ...

    def frames_done(self, *a: object) -> None: ...

    def listener_failed(self, *a: object) -> None: ...


class _Reader:
    camera_id = "cam"

    def on_frame(self, listener: object) -> None: ...

    def health(self) -> object:
        raise AssertionError("not asked")


def _pipeline(detector: object, scene: SceneConfig, *, gated: bool, workers: int = 1) -> tuple[Pipeline, CameraSlot, _Sink]:
    sink = _Sink()
    pipeline = Pipeline(detector, sink, annotator=FrameAnnotator(), meter=_Meter(), inference_workers=workers)  # type: ignore[arg-type]
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=2.0), [z.polygon for z in scene.zones]) if gated else None
    slot = CameraSlot("cam", _Reader(), CameraAnalyzer("cam", 5, scene), motion=gate)  # type: ignore[arg-type]
    pipeline.add(slot)
    return pipeline, slot, sink


def _offer(pipeline: Pipeline, seq: int, image: np.ndarray, ts: float) -> None:
    pipeline.batcher.offer(DecodedFrame("cam", seq, ts, av.VideoFrame.from_ndarray(image, format="rgb24")))


# --------------------------------------------------------------------------- two workers


class _SlowCarDetector:
    """Finds the bright car when it is in the picture; takes 0.3 s a frame."""

    class_names = ["car"]
    max_batch = 1

    def detect(self, images: list[np.ndarray]) -> list[sv.Detections]:
        time.sleep(0.3)
        return [_boxes([([200, 200, 320, 300], "car", 2)]) if img.mean() > 91 else _empty() for img in images]


def test_with_two_workers_a_car_that_stops_is_seen_on_the_coasted_frames() -> None:
    """Frame 2 brings the car (inferred, 0.3 s in the detector); the same picture follows every
    0.1 s. Before: the second worker coasted frame 3 on frame 1's empty detections at once, frame
    2 was dropped as older, and every still frame after coasted on nothing (0 of 40 frames had
    the car; 38 of 40 with one worker). Now a camera gives its next frame only once the last one
    is analysed."""
    zone = ZoneConfig(id="kerb", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], rules=[{"type": "illegal_parking"}])
    pipeline, slot, sink = _pipeline(_SlowCarDetector(), SceneConfig(zones=[zone]), gated=True, workers=2)
    empty = np.full((H, W, 3), 90, np.uint8)
    car = empty.copy()
    cv2.rectangle(car, (200, 200), (320, 300), (230, 230, 230), -1)
    pipeline.start()
    try:
        t0 = time.time()
        _offer(pipeline, 1, empty, t0)
        assert slot.wait_analysed(0, threading.Event(), timeout=5)
        for seq in range(2, 42):
            _offer(pipeline, seq, car, t0 + 0.1 * seq)
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        pipeline.stop()
    after = [(a.frame.seq, len(a.detections)) for a in sink.seen if a.frame.seq >= 2]
    seqs = [s for s, _ in after]
    assert seqs == sorted(seqs) and seqs[0] == 2, seqs  # the inferred frame with the car is analysed, in order
    with_car = [s for s, n in after if n]
    assert len(with_car) >= 0.9 * len(after) and len(after) >= 15, after


class _Coast:
    """A motion gate that always says: no motion."""

    def should_infer(self, picture: av.VideoFrame, ts: float) -> bool:
        return False

    def crop_region(self) -> tuple[float, float, float, float] | None:
        return None

    def saw_whole(self, ts: float) -> None:
        return None


def _coasting_batcher() -> tuple[Batcher, threading.Event, av.VideoFrame]:
    batcher = Batcher(max_batch=4)
    batcher.attach("cam", _Coast())
    return batcher, threading.Event(), av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")


def test_a_held_camera_gives_no_frame_until_done_and_its_forced_frames_are_inferred() -> None:
    batcher, stop, picture = _coasting_batcher()
    batcher.offer(DecodedFrame("cam", 1, 0.0, picture))
    assert [c.seq for c in batcher.next_work(stop, 0.05, hold=True).coasted] == [1]
    batcher.offer(DecodedFrame("cam", 2, 0.2, picture))
    assert len(batcher.next_work(stop, 0.05, hold=True).coasted) == 0, "frame 1 is not done: frame 2 waits"
    batcher.done("cam", infer_until=0.3)
    work = batcher.next_work(stop, 0.05, hold=True)
    assert [f.seq for f in work.live] == [2] and not work.coasted, "forced: inferred though the gate says coast"
    batcher.done("cam")
    batcher.offer(DecodedFrame("cam", 3, 0.4, picture))
    assert [c.seq for c in batcher.next_work(stop, 0.05, hold=True).coasted] == [3], "past the forced time: the gate decides"


def test_a_host_clock_set_back_voids_the_forced_inference() -> None:
    """Found by review: a force set just before the host clock stepped back an hour would have
    kept the camera ungated for that hour."""
    batcher, stop, picture = _coasting_batcher()
    batcher.offer(DecodedFrame("cam", 1, 10_000.0, picture))
    batcher.next_work(stop, 0.05, hold=True)
    batcher.done("cam", infer_until=10_001.0)
    batcher.offer(DecodedFrame("cam", 2, 6_400.0, picture))  # the clock went back an hour
    assert [c.seq for c in batcher.next_work(stop, 0.05, hold=True).coasted] == [2], "the gate decides again"


# --------------------------------------------------------------------------- one false detection

YARD = ZoneConfig(
    id="yard",
    polygon=[(0.25, 0.2), (1, 0.2), (1, 1), (0.25, 1)],  # the top-left corner (the frame number) is outside
    rules=[
        {"type": "intrusion", "classes": ["person"]},
        {
            "id": "fallen", "type": "class_event", "classes": ["Fall"],
            "incident": {"code": "person_fallen", "name_zh": "人员倒地", "name_en": "person fallen"},
        },
    ],
)
PERSON_AND_FALL: list[tuple[list[float], str, int]] = [([400, 150, 440, 250], "person", 0), ([400, 150, 480, 200], "Fall", 1)]


class _ScriptedDetector:
    """Reads the frame number from the picture's top-left pixel: from frame ``start`` on (and up
    to ``stop``, excluded) it finds a person and a fall model's 'Fall' in the yard, else nothing."""

    class_names = ["person", "Fall"]
    max_batch = 1

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.calls = 0

    def detect(self, images: list[np.ndarray]) -> list[sv.Detections]:
        self.calls += len(images)
        return [_boxes(PERSON_AND_FALL) if self.start <= int(img[0, 0, 0]) < self.stop else _empty() for img in images]


def _run_still_scene(detector: _ScriptedDetector, scene: SceneConfig, *, gated: bool, frames: int = 50) -> list[tuple[int, str]]:
    """A still picture at 5 fps, one frame at a time (each analysed before the next is offered);
    the (frame, rule) of every active verdict."""
    pipeline, slot, sink = _pipeline(detector, scene, gated=gated)
    pipeline.start()
    try:
        for seq in range(1, frames + 1):
            image = np.full((H, W, 3), 90, np.uint8)
            image[0, 0] = seq  # the frame number, outside every zone: no motion
            _offer(pipeline, seq, image, 1000.0 + (seq - 1) * 0.2)
            assert slot.wait_analysed(seq - 1, threading.Event(), timeout=5), seq
    finally:
        pipeline.stop()
    assert [a.frame.seq for a in sink.seen] == list(range(1, frames + 1))
    return [(a.frame.seq, v.rule_id) for a in sink.seen for v in a.active]


def test_one_false_detection_on_a_refresh_frame_is_not_replayed_into_incidents() -> None:
    """Frame 21 (t = 4 s, a refresh: the gate infers it whatever the motion) has one false
    person and fall; no other frame has anything. Before: gated, the boxes were replayed on the
    coasted frames 22-30 and intrusion and fall were active on 15 frames (ungated: intrusion on
    frame 21 only). Now the frames of the second after a box the model has seen once are
    inferred: gated is ungated."""
    scene = SceneConfig(zones=[YARD])
    ungated = _run_still_scene(_ScriptedDetector(21, 22), scene, gated=False)
    detector = _ScriptedDetector(21, 22)
    gated = _run_still_scene(detector, scene, gated=True)
    assert gated == ungated, (gated, ungated)
    assert {rule for _, rule in gated} <= {"intrusion"} and len(gated) <= 1, gated
    # frames 1, 11, 21, 31, 41 (the first and the refreshes) and the second after frame 21
    assert detector.calls <= 10, f"{detector.calls} of 50 frames inferred: the gate still works"


def test_with_confirmation_one_false_detection_is_never_confirmed_by_coasted_frames() -> None:
    """Track confirmation {hits: 2, frames: 3}: before, the coasted frames replaying frame 21's
    box confirmed it, and intrusion and fall fired; ungated nothing does."""
    scene = SceneConfig(zones=[YARD], filters={"confirm": {"hits": 2, "frames": 3}})
    assert _run_still_scene(_ScriptedDetector(21, 22), scene, gated=False) == []
    assert _run_still_scene(_ScriptedDetector(21, 22), scene, gated=True) == []


def test_an_object_the_model_starts_to_see_without_motion_is_confirmed_as_fast_as_ungated() -> None:
    """From frame 21 on the model sees a person that does not move (it was hidden in shadow):
    the frames after 21 are inferred until the track is confirmed (and a second more), so the
    rules start on the same frame as without gating, and the gate then coasts again."""
    scene = SceneConfig(zones=[YARD], filters={"confirm": {"hits": 2, "frames": 3}})
    ungated = _run_still_scene(_ScriptedDetector(21, 10_000), scene, gated=False)
    detector = _ScriptedDetector(21, 10_000)
    gated = _run_still_scene(detector, scene, gated=True)
    first = lambda found, rule: min(s for s, r in found if r == rule)  # noqa: E731
    assert first(gated, "intrusion") == first(ungated, "intrusion") <= 25, (gated, ungated)
    assert {s for s, r in gated if r == "intrusion"} == {s for s, r in ungated if r == "intrusion"}
    assert detector.calls <= 12, f"{detector.calls} of 50 frames inferred"
