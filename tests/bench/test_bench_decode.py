"""``gridworker bench decode`` on a generated clip: keyframe-only decoding is measured cheaper."""

from __future__ import annotations

from gridworker.bench.decode import decode_bench, format_decode
from gridworker.streams.clips import synthetic_clip


def test_decode_bench_rows(tmp_path):
    clip = synthetic_clip(tmp_path / "c.mp4", seconds=6, size=(640, 360), fps=25, gop=50)
    (row,) = decode_bench([clip], None, repeats=1)
    assert row["full_frames"] == 150 and row["keyframes_frames"] == 3  # a keyframe every 2 s
    assert 0 < row["keyframes_over_full"] < 0.6, row
    assert row["skip_loop_filter_frames"] == 150 and row["skip_loop_filter_over_full"] > 0
    assert "c.mp4" in format_decode([row])
