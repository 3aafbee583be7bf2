"""Tiny run of ``gridworker bench patrol``: 6 real RTSP cameras, generated clips, the real model.

Checks that the benchmark runs end to end and that its JSON carries the documented keys
with sane values. No timing assertion: a few seconds on a shared machine say nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gridworker.bench.cli import register

REQUIRED_KEYS = {
    "cameras", "visits_per_min", "cycle_s", "p95_visit_s", "failed", "naive_visits_per_min", "over_naive",
    "p50_visit_s", "cpu_cores", "cpu_servers_cores", "packets_decoded", "packets_skipped", "servers", "concurrency",
}


@pytest.mark.model
def test_bench_patrol_json(gst_rtsp: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "patrol.json"
    args = parser.parse_args(
        ["bench", "patrol", "--cameras", "6", "--concurrency", "3", "--synthetic", "--servers", "2",
         "--phases", "3", "--naive-cameras", "2", "--json", "--out", str(out)]
    )
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert REQUIRED_KEYS <= printed.keys()
    assert printed["cameras"] == 6 and printed["servers"] == 2 and printed["concurrency"] == 3
    assert printed["ok"] == 6 and printed["failed"] == 0, printed["failed_examples"]
    # one keyframe decoded per visit, the rest of each GOP read and dropped
    assert printed["packets_decoded"] == 6 and printed["packets_skipped"] > 0
    assert printed["visits_per_min"] > 0 and printed["cycle_s"] > 0
    assert 0 < printed["p50_visit_s"] <= printed["p95_visit_s"] <= printed["cycle_s"]
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
