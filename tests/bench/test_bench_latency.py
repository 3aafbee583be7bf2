"""``gridworker bench latency`` on a real RTSP stream and a real webhook receiver (a short run)."""

from __future__ import annotations

import dataclasses

import pytest

from gridworker.bench.latency import format_latency, run_latency

pytestmark = [pytest.mark.rtsp, pytest.mark.model]


def test_latency_bench_measures_every_case(gst_rtsp):
    result = run_latency(seconds=9.0)
    assert result.incidents >= 2, result  # people appear every 4 s
    assert result.webhooks == result.incidents, "every case's first message arrived, signed"
    assert result.frame_to_incident_p95_ms is not None and 0 < result.frame_to_incident_p95_ms < 5000
    assert result.incident_to_webhook_p95_ms is not None and 0 <= result.incident_to_webhook_p95_ms < 5000
    assert set(dataclasses.asdict(result)) >= {"frame_to_incident_p95_ms", "incident_to_webhook_p95_ms", "cpu_cores"}
    assert "frame -> incident" in format_latency(result)
