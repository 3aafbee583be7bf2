"""Smoke run of ``gridworker bench throughput``: one real RTSP stream, a few seconds per pipeline.

It checks that the whole benchmark runs end to end (RTSP server, isolated part timings,
gridworker's Service, the naive baseline) and that its JSON carries the documented keys
with positive figures. It says nothing about speed: the numbers come from a few seconds on
a machine that may be busy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gridworker.bench.parts import Clip, DecodeCost, InferenceCost, ceiling
from gridworker.bench.throughput import format_table, target_verdict
from gridworker.bench.timing import AgeLog, SendClock

REQUIRED_KEYS = {
    "streams",
    "ceiling_fps",
    "ceiling_before_fps",
    "ceiling_after_fps",
    "e2e_fps",
    "naive_fps",
    "e2e_over_ceiling",
    "e2e_over_naive",
    "p95_latency_ms",
    "rss_mb_per_stream",
    "e2e_mean_age_ms",
    "naive_mean_age_ms",
    "naive_live_fraction",
}
# Always positive for one stream. The naive baseline's *live* rate can drop to 0 on a loaded
# machine (it falls behind a 25 fps stream when read + detect exceed 40 ms), so its live
# figures are only required to be numbers; that it ran at all is checked on its totals.
POSITIVE_KEYS = {
    "ceiling_fps",
    "ceiling_before_fps",
    "ceiling_after_fps",
    "e2e_fps",
    "e2e_over_ceiling",
    "p95_latency_ms",
    "e2e_mean_age_ms",
    "naive_all_fps",
    "naive_mean_age_ms",
}
NON_NEGATIVE_KEYS = {"naive_fps", "naive_live_fraction"}


@pytest.mark.rtsp
@pytest.mark.model
def test_throughput_smoke_json(gst_rtsp: None, bench_json: Callable[..., Any]) -> None:
    rows, summary = bench_json(
        "throughput", "--streams", "1", "--seconds", "3", "--synthetic",
        "--no-ultralytics", "--calibrate-seconds", "0.3", "--warmup-timeout", "20",
    )  # fmt: skip
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert row.keys() >= REQUIRED_KEYS, sorted(REQUIRED_KEYS - row.keys())
    assert row["streams"] == 1 and row["runtime"] == "onnxruntime"
    for key in POSITIVE_KEYS:
        value = row[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value, row.get("notes"))
    for key in NON_NEGATIVE_KEYS:
        value = row[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (key, value, row.get("notes"))
    if row["naive_fps"] > 0:
        assert row["e2e_over_naive"] > 0
    else:
        assert row["e2e_over_naive"] is None
    assert isinstance(row["rss_mb_per_stream"], (int, float))
    assert "ultralytics_fps" not in row
    assert "e2e" in summary  # the human table went to stderr


# -- the pure parts: no server, no model --------------------------------------------------


def _clip(name: str, fps: float) -> Clip:
    return Clip(Path(f"/clips/{name}.mp4"), fps, 640, 360)


@pytest.mark.parametrize(
    ("streams", "decode_ms", "infer_ms", "expected"),
    [
        # keeps up with the sampled rate: the offered rate caps the ceiling
        ([("a", 10.0)], 2.0, 10.0, 10.0),
        # overloaded: X = (1 - d*R) / (c + i) with R = 4*25, d = 2 ms, c = 0, i = 10 ms -> 80
        ([("b", 25.0)] * 4, 2.0, 10.0, 80.0),
        # decoding alone saturates the machine: nothing left for inference
        ([("c", 25.0)] * 4, 10.0, 10.0, 0.0),
    ],
)
def test_ceiling_formula(streams: list[tuple[str, float]], decode_ms: float, infer_ms: float, expected: float) -> None:
    clips = [_clip(name, fps) for name, fps in streams]
    decode = {c.path: DecodeCost(decode_ms / 1e3, 0.0, 100) for c in clips}
    inference = InferenceCost({1: infer_ms / 1e3, 4: infer_ms / 1e3}, threads=2)
    result = ceiling(clips, decode, inference)
    assert result.fps == pytest.approx(expected, abs=1e-6)
    assert result.analysed_only_fps >= result.fps


def test_ceiling_uses_best_batch_not_above_stream_count() -> None:
    clips = [_clip("a", 10.0)] * 2
    decode = {clips[0].path: DecodeCost(0.0, 0.0, 10)}
    inference = InferenceCost({1: 0.020, 2: 0.015, 4: 0.005}, threads=2)
    result = ceiling(clips, decode, inference)
    assert result.infer_batch == 2  # batch 4 is cheaper but two cameras never fill it


def test_bracketed_inference_meets_a_drifting_machine_halfway() -> None:
    """The ceiling of a run uses the mean of the timings before and after gridworker's window."""
    clips = [_clip("a", 25.0)] * 8
    decode = {clips[0].path: DecodeCost(0.001, 0.0005, 10)}
    before = InferenceCost({4: 0.012, 8: 0.010}, threads=2, per_image_cpu_s={8: 0.019})
    after = InferenceCost({4: 0.014, 8: 0.012}, threads=2, per_image_cpu_s={8: 0.023})
    mean = InferenceCost.mean([before, after])
    assert mean.per_image_s == {4: pytest.approx(0.013), 8: pytest.approx(0.011)}
    assert mean.per_image_cpu_s == {8: pytest.approx(0.021)}
    fps = [ceiling(clips, decode, c).fps for c in (before, mean, after)]
    assert fps[0] > fps[1] > fps[2]
    with pytest.raises(ValueError):
        InferenceCost.mean([])


def test_send_clock_and_live_log() -> None:
    clock = SendClock(t0=100.0)
    assert clock.sent_at(3.0) is None
    clock.p0 = 2.0
    assert clock.sent_at(3.5) == pytest.approx(101.5)
    clock.arrived(3.5, 101.7)  # 0.2 s of set-up before the first packets came
    assert clock.min_delay == pytest.approx(0.2)
    assert clock.sent_at(3.5) == pytest.approx(101.7)  # anchored on the least-delayed packet
    clock.arrived(4.5, 103.2)  # this packet waited 0.5 s more: the anchor stays, its age shows it
    assert clock.sent_at(4.5) == pytest.approx(102.7)
    clock.arrived(5.5, 103.6)  # one less delayed than the first: the anchor moves back to it
    assert clock.min_delay == pytest.approx(0.1)
    assert clock.sent_at(3.5) == pytest.approx(101.6)
    ages = AgeLog()
    ages.add(0, 10.0, 1.5)
    ages.add(1, 10.5, 0.3)
    assert ages.streams_seen() == {0, 1}
    assert ages.streams_live() == {1}
    assert [row[0] for row in ages.window(10.2, 11.0)] == [1]


def test_table_and_verdict() -> None:
    rows = [
        {"streams": 8, "ceiling_fps": 50.0, "e2e_fps": 45.0, "naive_fps": 20.0, "e2e_over_ceiling": 0.9, "e2e_over_naive": 2.25}
    ]
    table = format_table(rows)
    assert "ceiling" in table and "45.0" in table
    verdict = target_verdict(rows)
    assert verdict is not None and verdict.count("PASS") == 2
    assert target_verdict([{**rows[0], "streams": 4}]) is None
