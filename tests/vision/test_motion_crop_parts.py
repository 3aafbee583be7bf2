"""Motion crops, part by part: the gate's changed part, the window planned from it, the
detections put back together (vision/motion.py, vision/motioncrop.py)."""

from __future__ import annotations

import threading

import av
import numpy as np
import supervision as sv

from gridworker.streams.frame import DecodedFrame
from gridworker.vision.batcher import Batcher
from gridworker.vision.motion import MotionConfig, MotionGate
from gridworker.vision.motioncrop import CropModels, merge_outside, plan_crop

W, H = 640, 360


def _picture(*squares: tuple[int, int], side: int = 40) -> av.VideoFrame:
    """A grey street with dark ``side``-pixel squares at each (x, y)."""
    image = np.full((H, W, 3), 120, np.uint8)
    for x, y in squares:
        image[y : y + side, x : x + side] = 20
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def _crop_gate(refresh_s: float = 30.0, crop_max_area: float = 0.5) -> MotionGate:
    config = MotionConfig(enabled=True, crop=True, refresh_s=refresh_s, crop_margin=0.0, crop_max_area=crop_max_area)
    return MotionGate(config)


def test_the_gate_hands_out_the_moved_part_and_the_whole_frame_at_first_and_at_refresh() -> None:
    gate = _crop_gate()
    assert gate.should_infer(_picture((100, 100)), 0.0) and gate.crop_region() is None, "the first frame is seen whole"
    assert gate.should_infer(_picture((140, 100)), 0.2)
    x0, y0, x1, y1 = gate.crop_region() or (0.0, 0.0, 1.0, 1.0)
    # where the square was and where it is now: x 100..180, y 100..140 of 640x360 (blur and the small image's pixels aside)
    assert 0.12 <= x0 <= 0.16 and 0.25 <= y0 <= 0.28 and 0.27 <= x1 <= 0.31 and 0.38 <= y1 <= 0.42, (x0, y0, x1, y1)
    assert not gate.should_infer(_picture((140, 100)), 0.4) and gate.crop_region() is None, "nothing moved: coasted"
    assert gate.should_infer(_picture((140, 100)), 30.5) and gate.crop_region() is None, "the refresh sees the whole frame"


def test_the_window_renews_only_its_part_of_the_reference_and_keeps_the_refresh_clock() -> None:
    """A change outside the window the model saw stays a change until the model looks there."""
    gate = _crop_gate(refresh_s=2.0)
    assert gate.should_infer(_picture((100, 100), (500, 250)), 0.0)
    # both squares move; a crop over both is too big, so move them one at a time
    assert gate.should_infer(_picture((120, 100), (500, 250)), 0.5)
    first = gate.crop_region()
    assert first is not None and first[2] < 0.5, first
    assert gate.should_infer(_picture((120, 100), (520, 250)), 1.0)
    second = gate.crop_region()
    assert second is not None and second[0] > 0.7, "the right square's move is its own window"
    assert gate.should_infer(_picture((120, 100), (520, 250)), 2.1) and gate.crop_region() is None, (
        "windows do not reset the refresh: 2 s after the whole frame was seen, it is seen whole again"
    )


def test_motion_over_much_of_the_frame_is_inferred_whole() -> None:
    gate = _crop_gate(crop_max_area=0.2)
    assert gate.should_infer(_picture((20, 20)), 0.0)
    assert gate.should_infer(_picture((560, 300)), 0.2)
    assert gate.crop_region() is None, "the change spans the frame corner to corner"


def test_without_crop_the_gate_never_hands_out_a_part() -> None:
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=30.0))
    assert gate.should_infer(_picture((100, 100)), 0.0)
    assert gate.should_infer(_picture((140, 100)), 0.2) and gate.crop_region() is None


def test_the_batcher_gives_the_frame_its_moved_part() -> None:
    batcher = Batcher(max_batch=2)
    batcher.attach("kerb", _crop_gate())
    stop = threading.Event()
    regions = []
    for seq, x in [(1, 100), (2, 140)]:
        batcher.offer(DecodedFrame("kerb", seq, seq * 0.2, _picture((x, 100))))
        regions.append([f.region for f in batcher.next_work(stop, idle_timeout_s=0.05).live])
    assert regions[0] == [None]
    assert len(regions[1]) == 1 and regions[1][0] is not None and regions[1][0][2] < 0.4


def test_the_window_holds_every_object_seen_lately_at_the_frames_scale() -> None:
    boxes = np.array([[300.0, 100.0, 420.0, 200.0], [410.0, 150.0, 470.0, 260.0]])
    plan = plan_crop((0.25, 0.15, 0.3, 0.2), boxes, (1280, 720), 640, max_area=0.5)
    assert plan is not None
    x0, y0, x1, y1 = (plan.region[0] * 1280, plan.region[1] * 720, plan.region[2] * 1280, plan.region[3] * 720)
    # the changed part and both objects (300..470 x 100..260); each side then grows about its
    # middle to whole strides at the frame's scale (32 / 0.5 = 64 px), the long one to the
    # smallest input (128 / 0.5 = 256 px)
    assert (x0, y0, x1, y1) == (257.0, 84.0, 513.0, 276.0)
    assert plan.imgsz == 128
    far = plan_crop((0.25, 0.15, 0.3, 0.2), np.vstack([boxes, [[700.0, 300.0, 760.0, 400.0]]]), (1280, 720), 640, max_area=0.5)
    assert far is not None and far.region[2] * 1280 >= 760, "an object away from the motion is looked at again too"
    wide = plan_crop((0.0, 0.0, 0.45, 0.3), np.zeros((0, 4)), (1280, 720), 640, max_area=0.5)
    assert wide is not None and wide.imgsz == 288, "576 px at half scale: 288, a multiple of the stride"
    assert [round(v * s) for v, s in zip(wide.region, (1280, 720, 1280, 720))] == [0, 0, 576, 256]


def test_seen_boxes_hold_what_the_model_missed_on_one_frame() -> None:
    from gridworker.vision.motioncrop import SeenBoxes

    seen = SeenBoxes(hold_s=2.0, max_frames=3)
    seen.add(0.0, np.array([[1.0, 1.0, 5.0, 5.0]]))
    seen.add(0.5, np.zeros((0, 4)))  # missed on this frame
    assert seen.boxes(1.0).tolist() == [[1.0, 1.0, 5.0, 5.0]]
    assert len(seen.boxes(2.1)) == 0, "let go after hold_s"
    for t in range(5):
        seen.add(3.0 + t * 0.1, np.array([[t, 0.0, t + 1.0, 1.0]]))
    assert [b[0] for b in seen.boxes(3.5)] == [2.0, 3.0, 4.0], "at most max_frames frames are kept"


def test_a_window_that_grows_too_big_is_the_whole_frame_and_a_strip_keeps_the_input_size() -> None:
    big_car = np.array([[0.0, 0.0, 1000.0, 600.0]])
    assert plan_crop((0.1, 0.1, 0.2, 0.2), big_car, (1280, 720), 640, max_area=0.5) is None
    assert plan_crop((0.0, 0.0, 0.75, 0.75), np.zeros((0, 4)), (1280, 720), 640, max_area=0.5) is None
    strip = plan_crop((0.0, 0.0, 1.0, 0.3), np.zeros((0, 4)), (1280, 720), 640, max_area=0.5)
    assert strip is not None and strip.imgsz == 640, "as wide as the frame: its long side at the frame's scale (the height is what is saved)"


def _dets(boxes: list[list[float]], names: list[str]) -> sv.Detections:
    d = sv.Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.zeros(len(boxes), int),
    )
    d.data["class_name"] = np.array(names, dtype=str)
    return d


def test_objects_outside_the_window_keep_their_last_detections() -> None:
    last = _dets([[10, 10, 50, 50], [300, 100, 340, 150], [600, 300, 640, 360]], ["car", "person", "car"])
    fresh = _dets([[310, 100, 350, 150]], ["person"])
    merged = merge_outside(last, fresh, (0.4, 0.2, 0.6, 0.5), (640, 360))
    assert sorted(map(tuple, merged.xyxy.tolist())) == [(10, 10, 50, 50), (310, 100, 350, 150), (600, 300, 640, 360)]
    assert list(merge_outside(last, _dets([], []), (0.0, 0.0, 1.0, 1.0), (640, 360)).xyxy) == [], "all inside: only the fresh"


def test_a_fixed_size_model_is_never_cropped() -> None:
    class Fixed:
        max_batch = 1

    crops = CropModels()
    assert crops.plan("ssd", Fixed(), None, (0.1, 0.1, 0.2, 0.2), np.zeros((0, 4)), (640, 360), max_area=0.5) is None


def test_a_part_inferred_whole_after_all_renews_the_whole_reference() -> None:
    """The pipeline infers the frame whole (its window grew too big): the gate then judges the
    next frames against all of that frame, and its refresh clock starts from it."""
    gate = _crop_gate(refresh_s=2.0)
    assert gate.should_infer(_picture((100, 100)), 0.0)
    assert gate.should_infer(_picture((140, 100)), 1.5) and gate.crop_region() is not None
    gate.saw_whole(1.5)
    assert not gate.should_infer(_picture((140, 100)), 3.0), "the refresh clock started again at 1.5 s"
    assert gate.should_infer(_picture((140, 100)), 3.6) and gate.crop_region() is None, "the refresh, 2 s after 1.5 s"


def test_a_small_change_is_inferred_at_the_smallest_input_whichever_side_is_longer() -> None:
    tall = plan_crop((0.4, 0.4, 0.41, 0.41), np.array([[500.0, 300.0, 540.0, 345.0]]), (1280, 720), 640, max_area=0.5)
    assert tall is not None and tall.imgsz == 128, tall
    assert plan_crop((0.0, 0.0, 1.0, 1.0), np.zeros((0, 4)), (1280, 720), 640, max_area=1.0) is None, "all of it is no crop"


def test_a_box_across_the_windows_edge_is_not_kept_beside_the_windows_own_sighting() -> None:
    last = _dets([[100, 100, 300, 200]], ["car"])  # across the window's left edge at x 256
    fresh = _dets([[256, 100, 300, 200]], ["car"])
    merged = merge_outside(last, fresh, (0.4, 0.2, 0.6, 0.7), (640, 360))
    assert merged.xyxy.tolist() == [[256, 100, 300, 200]]


def test_a_new_picture_size_is_seen_whole_even_with_the_same_aspect() -> None:
    gate = _crop_gate()
    assert gate.should_infer(_picture((100, 100)), 0.0)
    small = av.VideoFrame.from_ndarray(np.full((180, 320, 3), 120, np.uint8), format="rgb24")
    small_moved = np.full((180, 320, 3), 120, np.uint8)
    small_moved[50:70, 70:90] = 20
    assert gate.should_infer(small, 0.2) and gate.crop_region() is None, "640x360 -> 320x180: whole"
    assert gate.should_infer(av.VideoFrame.from_ndarray(small_moved, format="rgb24"), 0.4) and gate.crop_region() is not None


def test_seen_boxes_of_another_picture_size_are_let_go() -> None:
    from gridworker.vision.motioncrop import SeenBoxes

    seen = SeenBoxes(hold_s=5.0)
    seen.add(0.0, np.array([[1.0, 1.0, 5.0, 5.0]]), (1920, 1080))
    assert len(seen.boxes(0.5, (1920, 1080))) == 1 and len(seen.boxes(0.5, (1280, 720))) == 0
    seen.add(0.6, np.zeros((0, 4)), (1280, 720))
    assert len(seen.boxes(0.7, (1920, 1080))) == 0 and len(seen.boxes(0.7, (1280, 720))) == 0


def test_saw_whole_for_another_frame_changes_nothing() -> None:
    gate = _crop_gate(refresh_s=2.0)
    assert gate.should_infer(_picture((100, 100)), 0.0)
    assert gate.should_infer(_picture((140, 100)), 1.5) and gate.crop_region() is not None
    gate.saw_whole(1.4)  # not the frame the gate handed a part of (a replaced camera's)
    assert gate.should_infer(_picture((140, 100)), 2.1) and gate.crop_region() is None, "the refresh is still due from 0.0"


def test_seen_boxes_always_hold_the_newest_frame_however_old() -> None:
    """The last inferred frame's boxes are what a cropped frame keeps outside its window, so the
    window must hold them even when they are older than hold_s (a long refresh, a short hold)."""
    from gridworker.vision.motioncrop import SeenBoxes

    seen = SeenBoxes(hold_s=0.0)
    seen.add(0.0, np.array([[1.0, 1.0, 5.0, 5.0]]), (640, 360))
    seen.add(1.0, np.array([[7.0, 7.0, 9.0, 9.0]]), (640, 360))
    assert seen.boxes(30.0, (640, 360)).tolist() == [[7.0, 7.0, 9.0, 9.0]]
