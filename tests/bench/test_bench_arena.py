"""``python -m gridworker.bench.arena``: one process's measurement with and without ONNX
Runtime's arena, on the embedded model (a short run)."""

from __future__ import annotations

import pytest

from gridworker.bench.arena import measure


@pytest.mark.parametrize("arena", [True, False])
def test_arena_measurement_reports_rss_and_speed(arena):
    r = measure(arena, seconds=1.5)
    assert r["arena"] is arena and r["runs"] >= 3 and len(r["rss_mb"]) >= 1
    assert r["ms_per_image"] > 0
    assert all(mb > 50 for _, mb in r["rss_mb"])  # a loaded model and interpreter
