"""``gridworker bench stats`` on a small database: both periods timed, the same figures
every time."""

from __future__ import annotations

import json

from gridworker.bench.stats import StatsBenchConfig, format_summary, run_stats_bench


def test_bench_stats_times_both_ways_on_the_same_figures(tmp_path):
    r = run_stats_bench(StatsBenchConfig(cases=3000, repetitions=1, workdir=tmp_path))
    assert r["year_cases"] == 3000 and 0 < r["month_cases"] < 3000
    for key in ("month_s", "month_first_s", "year_s", "year_first_s"):
        assert r[key] > 0
    assert "the first time" in format_summary(r)
    json.dumps(r)

