"""``gridworker bench capacity``: the search finds the largest N that keeps up, and a short real
run (real RTSP server, real model, the real Service) reports every key."""

from __future__ import annotations

import pytest

from gridworker.bench.capacity import Trial, search


def _limit(capacity: int, calls: list[int]):
    def trial(n: int) -> Trial:
        calls.append(n)
        return Trial(n, 2.5 if n <= capacity else 1.0, 300.0, n <= capacity)

    return trial


@pytest.mark.parametrize("capacity", [0, 1, 3, 4, 5, 17, 31, 32, 33, 64, 100])
def test_search_finds_the_largest_n_that_keeps_up(capacity):
    calls: list[int] = []
    best, trials = search(_limit(capacity, calls), start=4, cap=64)
    if capacity == 0:
        assert best is None
    else:
        assert best is not None and best.cameras == min(capacity, 64) and best.ok
    assert len(calls) == len(set(calls)), "no N is measured twice"
    assert len(calls) <= 2 * 7, "doubling then bisection, not a linear scan"
    assert [t.cameras for t in trials] == calls


def test_a_trial_passes_only_when_every_camera_keeps_up():
    from gridworker.bench.capacity import CapacityConfig
    from gridworker.bench.pipelines import PipelineResult

    config = CapacityConfig(min_fps=2.0, max_age_ms=1000.0)
    good = PipelineResult(extra={"per_camera_fps": [2.4, 2.1], "p95_age_ms": 400.0})
    slow_one = PipelineResult(extra={"per_camera_fps": [2.4, 1.6], "p95_age_ms": 400.0})
    old = PipelineResult(extra={"per_camera_fps": [2.4, 2.1], "p95_age_ms": 1400.0})
    missing = PipelineResult(extra={"per_camera_fps": [2.4], "p95_age_ms": 400.0})
    assert Trial.of(2, good, config).ok and Trial.of(2, good, config).per_camera_fps_min == 2.1
    assert not Trial.of(2, slow_one, config).ok
    assert not Trial.of(2, old, config).ok
    assert not Trial.of(2, missing, config).ok


@pytest.mark.rtsp
@pytest.mark.model
def test_a_short_capacity_run_reports_every_key(gst_rtsp, bench_json, tmp_path):
    from gridworker.streams.clips import synthetic_clip

    media = tmp_path / "media"
    media.mkdir()
    synthetic_clip(media / "street.mp4", seconds=6, size=(640, 360), fps=10)
    result, _ = bench_json(
        "capacity", "--media", str(media), "--start", "1", "--max-cameras", "2", "--seconds", "3",
        "--no-naive", "--no-ultralytics",
    )
    for key in ("cameras_max", "per_camera_fps_min", "p95_age_ms", "cpu_cores", "rss_mb_per_stream", "inferred_fraction"):
        assert key in result, key
    assert 1 <= result["cameras_max"] <= 2
    assert result["per_camera_fps_min"] >= 2.0 and result["p95_age_ms"] < 1000
    assert 0.0 < result["inferred_fraction"] <= 1.0
    assert [t["cameras"] for t in result["trials"]][:1] == [1]
    assert result["tries"] == 2 and all(t["tries"] in (1, 2) and (t["ok"] or t["tries"] == 2) for t in result["trials"])
    assert result["ultralytics_skipped"] == "disabled (--no-ultralytics)"


def test_a_failed_trial_is_tried_again_and_passes_if_any_try_does():
    from gridworker.bench.capacity import confirmed

    outcomes = {4: [True], 5: [False, True], 6: [False, False, False]}
    calls: list[int] = []

    def trial(n: int) -> Trial:
        calls.append(n)
        ok = outcomes[n].pop(0)
        return Trial(n, 2.5 if ok else 1.0, 300.0, ok)

    run = confirmed(trial, tries=2)
    four = run(4)
    assert four.ok and four.tries == 1  # a pass is not tried again
    five = run(5)
    assert five.ok and five.tries == 2  # a chance failure, then a pass: N passes
    six = run(6)
    assert not six.ok and six.tries == 2 and outcomes[6] == [False]  # failed twice: no third try
    assert calls == [4, 5, 5, 6, 6]
