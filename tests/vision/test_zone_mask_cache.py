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
