"""A stream whose picture size keeps changing must not keep one full-frame mask per size."""

import numpy as np

from gridworker.vision.config import ZoneConfig
from gridworker.vision.zones import MASK_CACHE_SIZES, Zone, polygon_mask

SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]


def test_many_sizes_keep_a_bounded_cache_and_right_answers():
    zone = Zone(ZoneConfig(id="z", polygon=SQUARE))
    for i in range(50):
        size = (200 + 2 * i, 100 + i)
        w, h = size
        inside = zone.contains_points(np.array([[w / 2, h / 2], [1.0, 1.0]]), size)
        assert inside.tolist() == [True, False]
        assert np.array_equal(zone.mask(size), polygon_mask(SQUARE, size))
        assert len(zone._masks) <= MASK_CACHE_SIZES


def test_the_sizes_in_use_stay_cached():
    zone = Zone(ZoneConfig(id="z", polygon=SQUARE))
    a, b = (320, 240), (640, 480)
    first_a = zone.mask(a)
    zone.mask(b)
    assert zone.mask(a) is first_a  # both live sizes are kept: no re-rasterising when a stream alternates
    zone.mask((100, 100))  # a third size drops the least recently used one (b), not a
    assert zone.mask(a) is first_a
    assert b not in zone._masks


def test_signals_lines_and_annotators_keep_a_few_sizes_too():
    """The other per-size caches of a camera's scene (a signal's crop, a counting line's end
    points, the annotators) were plain dicts: a camera changing its picture size at every
    keyframe held one entry per size for good (a 30 % signal region: ~100 MiB after 300 sizes)."""
    import supervision as sv

    from gridworker.vision.annotate import FrameAnnotator
    from gridworker.vision.config import LineConfig, SignalConfig
    from gridworker.vision.lines import LineCounter
    from gridworker.vision.signals import SignalReader

    reader = SignalReader("cam", [SignalConfig(id="lamp", region=SQUARE)], None)
    counter = LineCounter([LineConfig(id="l", points=[(0.0, 0.5), (1.0, 0.5)])])
    annotator = FrameAnnotator()
    for i in range(70):
        size = (160 + 2 * i, 120 + i)
        image = np.zeros((size[1], size[0], 3), np.uint8)
        reader.read(image, size, float(i))
        car = sv.Detections(xyxy=np.array([[10.0, 10.0 + i, 40.0, 40.0 + i]]), confidence=np.array([0.9]), class_id=np.array([2]), tracker_id=np.array([1]),
                            data={"class_name": np.array(["car"])})
        counter.update(car, size, float(i))
        annotator.draw(image, car, [])
    assert 1 <= len(reader._crops["lamp"]) <= 2
    assert all(1 <= len(line._px) <= 2 for line in counter._lines)
    assert 1 <= len(annotator._by_size) <= 64  # one annotator for the service: room for every camera's size
