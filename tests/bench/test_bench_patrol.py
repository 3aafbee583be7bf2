"""Tiny run of ``gridworker bench patrol``: 6 real RTSP cameras, generated clips, the real model,
a real Service with one continuous camera beside the patrol, fixed and adaptive plans side by
side, and a faults run with a dead and a hung camera.

Checks that the benchmark runs end to end and that its JSON carries the documented keys
with sane values. No timing assertion: a few seconds on a shared machine say nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest

from gridworker.bench.cli import register

REQUIRED_KEYS = {
    "cameras", "visits_per_min", "cycle_s", "p95_visit_s", "failed", "naive_visits_per_min", "over_naive",
    "p50_visit_s", "cpu_cores", "cpu_servers_cores", "packets_decoded", "packets_skipped", "servers", "concurrency",
    "continuous_fps_before", "continuous_fps_during", "concurrency_final", "modes", "faults",
}


@pytest.mark.model
def test_bench_patrol_json(gst_rtsp: None, bench_json: Callable[..., Any]) -> None:
    printed, _ = bench_json(
        "patrol", "--cameras", "6", "--concurrency", "3", "--synthetic", "--servers", "2", "--phases", "3", "--naive-cameras", "2",
        "--cycles", "1", "--continuous", "1", "--measure-s", "2", "--dead", "0.17", "--hung", "0.17", "--open-timeout", "2",
    )
    assert REQUIRED_KEYS <= printed.keys()
    assert printed["cameras"] == 6 and printed["servers"] == 2 and printed["concurrency"] == 3
    assert printed["ok"] == 6 and printed["failed"] == 0, printed["failed_examples"]
    # one keyframe decoded per visit, the rest of each GOP read and dropped
    assert printed["packets_decoded"] == 6 and printed["packets_skipped"] > 0
    assert printed["visits_per_min"] > 0 and printed["cycle_s"] > 0
    assert 0 < printed["p50_visit_s"] <= printed["p95_visit_s"] <= printed["wall_s"]
    # fixed and adaptive ran side by side in the one service; the last is the top level
    assert list(printed["modes"]) == ["fixed", "adaptive"] and printed["concurrency_mode"] == "adaptive"
    assert printed["modes"]["fixed"]["ok"] == 6 and printed["modes"]["fixed"]["concurrency_final"] == 3
    assert 1 <= printed["concurrency_final"] <= 3
    # the visits went through the service's own batcher, beside the continuous camera
    assert printed["patrol_frames"] == 6
    assert printed["continuous_fps_before"] > 0 and printed["continuous_fps_during"] > 0
    # faults: 1 dead (refused) and 1 hung (accepts, never answers) among the 6
    faults = printed["faults"]
    assert (faults["dead"], faults["hung"], faults["live_cameras"]) == (1, 1, 4)
    assert faults["run"]["ok"] == 4 and faults["run"]["failed_by_kind"] == {"open_failed": 1, "open_timeout": 1}
    assert printed["naive_cameras"] == 2 and printed["naive_failed"] == 0 and printed["naive_visits_per_min"] > 0
    assert printed["over_naive"] == pytest.approx(printed["visits_per_min"] / printed["naive_visits_per_min"], rel=0.02)
    assert printed["batches"] >= 1 and printed["cpu_cores"] > 0


def test_bench_patrol_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", "patrol", "--cameras", "0"])
    assert args.func(args) == 2
    args = parser.parse_args(["bench", "patrol", "--media", "/no/such/dir"])
    assert args.func(args) == 2
    for bad in (["--dead", "0.6", "--hung", "0.5"], ["--cycles", "0"], ["--min-concurrency", "0"], ["--concurrency", "600"]):
        args = parser.parse_args(["bench", "patrol", *bad])
        assert args.func(args) == 2, bad
