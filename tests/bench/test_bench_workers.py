"""``gridworker bench workers``: the layouts it compares and a short real run (real RTSP server,
the embedded model, the real Service once per layout) that reports each layout's figures."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridworker.bench.cli import register
from gridworker.bench.workers import Layout, default_layouts, parse_layouts


def test_default_layouts_compare_the_old_defaults_with_the_product_default() -> None:
    assert default_layouts(1) == [Layout(1, 1)]  # one core: nothing to compare, one layout
    assert default_layouts(2) == [Layout(1, 2), Layout(2, 1)]
    assert default_layouts(16) == [Layout(1, 2), Layout(2, 8)]
    assert default_layouts(256) == [Layout(1, 2), Layout(2, 64)]  # detector.threads' bound


@pytest.mark.parametrize("text", ["", "2", "2x", "x1", "0x1", "9x1", "1x65", "1x2,1x2", "ax1", "2*1"])
def test_bad_layouts_are_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="layout"):
        parse_layouts(text)


def test_the_cli_refuses_bad_layouts_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", "workers", "--layouts", "1x2,3"])
    assert args.func(args) == 2
    assert "layout '3': expected WORKERSxTHREADS" in capsys.readouterr().err


@pytest.mark.rtsp
@pytest.mark.model
def test_a_short_run_reports_every_layout(gst_rtsp: None, bench_json: Callable[..., Any], tmp_path: Path) -> None:
    from gridworker.streams.clips import synthetic_clip

    media = tmp_path / "media"
    media.mkdir()
    synthetic_clip(media / "street.mp4", seconds=6, size=(640, 360), fps=10)
    result, summary = bench_json(
        "workers", "--media", str(media), "--streams", "2", "--seconds", "2", "--rounds", "1", "--layouts", "1x2,2x1",
    )
    rows = result["layouts"]
    assert [(r["workers"], r["threads"]) for r in rows] == [(1, 2), (2, 1)]
    for row in rows:
        assert len(row["live_fps"]) == 1 and row["mean_live_fps"] > 0, row
        assert row["min_camera_fps"] > 0 and row["p95_age_ms"] > 0, row
    assert rows[0]["over_first"] == 1.0
    assert rows[1]["over_first"] == pytest.approx(rows[1]["mean_live_fps"] / rows[0]["mean_live_fps"], abs=0.01)
    assert "x first" in summary
