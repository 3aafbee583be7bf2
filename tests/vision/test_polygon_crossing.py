"""A zone, mask or signal region whose outline crosses itself is refused, naming the crossing
edges (review: a bow-tie zone's shoelace area was 20 m² where its drawn area was 191 m², so a
density rule fired at 10 persons instead of 96)."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from gridworker.settings import CameraConfig
from gridworker.vision.config import MaskConfig, ZoneConfig, first_crossing

BOWTIE = [(0, 0), (1, 1), (1, 0), (0, 0.9)]


def test_a_bowtie_zone_is_refused_naming_the_edges():
    with pytest.raises(ValidationError, match=r"polygon crosses itself: edge 0-1 \(point 0 to point 1\) crosses edge 2-3"):
        CameraConfig(
            id="sq",
            url="rtsp://10.0.0.1/s",
            calibration={"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground": [[0, 0], [20, 0], [20, 20], [0, 20]]},
            zones=[{"id": "plaza", "polygon": BOWTIE, "rules": [{"type": "crowd", "min_density": 0.5}]}],
        )
    with pytest.raises(ValidationError, match="crosses itself"):
        MaskConfig(id="m", polygon=BOWTIE)


def test_simple_outlines_still_load():
    concave = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.3), (0.1, 0.9)]  # an arrow head
    touching = [(0, 0), (1, 0), (1, 1), (0.5, 0), (0, 1)]  # a vertex on another edge: weakly simple
    closed = [(0, 0), (1, 0), (1, 1), (0, 0)]  # the first point repeated at the end
    for polygon in (concave, touching, closed, [(0, 0), (1, 0), (0.5, 1)]):
        assert ZoneConfig(id="z", polygon=polygon).polygon == polygon


def test_a_star_is_a_crossing_even_though_it_turns_one_way():
    star = [(0.5 + 0.4 * math.cos(4 * math.pi * i / 5), 0.5 + 0.4 * math.sin(4 * math.pi * i / 5)) for i in range(5)]
    assert first_crossing(star) == (0, 2)


def _brute(points: list[tuple[float, float]]) -> tuple[int, int] | None:
    def side(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return 0 if abs(v) <= 1e-12 else (1 if v > 0 else -1)

    n = len(points)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            a, b, c, d = points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]
            if side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
                return i, j
    return None


def test_first_crossing_agrees_with_the_pairwise_test():
    rng = random.Random(7)
    for _ in range(2000):
        points = [(rng.random(), rng.random()) for _ in range(rng.randint(3, 10))]
        if rng.random() < 0.3:  # on a grid: collinear points, shared vertices
            points = [(round(x, 1), round(y, 1)) for x, y in points]
        assert first_crossing(points) == _brute(points), points
