"""``gridworker bench soak``, briefly: it samples the running service and reports its keys."""

from __future__ import annotations

import pytest

from gridworker.bench.soak import Sample, format_soak, run_soak, slope_per_min

pytestmark = [pytest.mark.rtsp, pytest.mark.model]


def test_slope_is_least_squares_in_mb_per_minute():
    flat = [Sample(t, 100.0, 10, 10) for t in (0.0, 10.0, 20.0, 30.0)]
    growing = [Sample(t, 100.0 + t / 60.0 * 3.0, 10, 10) for t in (0.0, 10.0, 20.0, 30.0)]  # 3 MB/min
    assert slope_per_min(flat) == 0.0 and slope_per_min(growing) == pytest.approx(3.0)
    assert slope_per_min(flat[:2]) is None


def test_a_short_soak_reports_every_key(gst_rtsp, tmp_path):
    result = run_soak(minutes=0.3, streams=2, sample_s=2.0, warmup_s=5.0)
    assert result.streams == 2 and result.reconnects == 0
    assert result.rss_end_mb > 0 and result.rss_slope_mb_per_min is not None
    assert result.rss_slope_last_half_mb_per_min is not None  # 18 s at 2 s: 5 samples in the second half
    assert result.threads_end > 0 and result.fds_end > 0
    assert "slope" in format_soak(result)
