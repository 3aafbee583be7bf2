"""Tiny run of ``gridworker bench cluster``: 2 real worker processes, 8 real RTSP cameras
(generated clips), a nats-server of its own, the case service on PostgreSQL, one worker
killed mid-run. Checks the keys, the fault figures and that the continuous camera's handover
was timed step by step; no timing assertion."""

from __future__ import annotations

import pytest

from tests.factories import pg_database
from gridworker.cluster.bench import ClusterBenchConfig, run_cluster_bench

KEYS = {
    "workers", "cameras", "visits_per_min", "single_process_visits_per_min", "over_single", "share_min", "share_max",
    "failover_s", "lost_visits", "duplicate_incidents", "continuous_reassigned_s",
}


@pytest.mark.model
def test_bench_cluster_small_run(gst_rtsp: None) -> None:
    db = pg_database("gw_test_bench_cluster")
    result = run_cluster_bench(
        ClusterBenchConfig(
            workers=2, cameras=8, continuous=1, cycles=2, slots=4, single=False, synthetic=True, phases=2, clip_seconds=12, database=db,
            open_timeout_s=3, keyframe_timeout_s=4,
        )
    )
    assert KEYS <= result.keys()
    assert result["workers"] == 2 and result["cameras"] == 8
    assert result["clean_run"]["ok"] == 16 and result["kill_run"]["ok"] == 16  # every visit done, the kill included
    assert result["lost_visits"] == 0 and result["duplicate_incidents"] == 0
    assert result["visits_per_min"] > 0 and 0 < result["share_min"] <= 0.5 <= result["share_max"] <= 1
    assert result["observations_applied"] > 0 and result["observations_rejected"].keys() <= {"stale lease"}
    # the killed worker is the one that held the continuous camera (whichever placement chose, once
    # the camera had an owner): its handover was timed step by step while the run went on, and
    # "reassigned" is its new owner analysing it
    handover = result["continuous_handover_s"]
    steps = handover["cameras"]["live0"]
    assert None not in (handover["heartbeat_gone"], steps.get("lease_gone"), steps.get("placed"), steps.get("analysing"))
    assert steps["lease_gone"] <= steps["leased"] <= steps["live"] <= steps["analysing"]
    assert result["continuous_reassigned_s"] == handover["analysing"] == steps["analysing"]
