"""The tracker starts tracks at the configured activation threshold, low scores included."""

from gridworker.vision.tracker import ByteTracker, TrackerConfig
from tests.factories import make_detections


def _ids(threshold: float, score: float) -> list[int]:
    tracker = ByteTracker(fps=5, config=TrackerConfig(activation_threshold=threshold))
    out = []
    for i in range(4):
        dets = make_detections([[100 + i, 100, 160 + i, 200]], class_name=["car"], confidence=[score])
        ids = tracker.update(dets, ts=i * 0.2).tracker_id
        assert ids is not None
        out.append(ids.tolist())
    return out[-1]


def test_low_scored_object_is_tracked_when_threshold_allows():
    # a far car the SSD model scores 0.3: with activation 0.25 it must get an id
    assert _ids(0.25, 0.3) and _ids(0.25, 0.3)[0] >= 0


def test_object_below_threshold_never_starts_a_track():
    ids = _ids(0.5, 0.3)
    assert ids == [] or ids[0] == -1
