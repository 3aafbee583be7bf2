"""``gridworker bench stats`` on a small database: both periods timed with and without the
covering index, the same figures both ways (the migration's index is the model's:
tests/incidents/test_migrations.py compares them)."""

from __future__ import annotations

import json

from gridworker.bench.stats import StatsBenchConfig, format_summary, run_stats_bench


def test_bench_stats_times_both_ways_on_the_same_figures(tmp_path):
    r = run_stats_bench(StatsBenchConfig(cases=3000, repetitions=1, workdir=tmp_path))
    assert r["year_cases"] == 3000 and 0 < r["month_cases"] < 3000
    for key in ("month_s", "month_no_index_s", "year_s", "year_no_index_s", "year_speedup"):
        assert r[key] > 0
    assert "with the index" in format_summary(r)
    json.dumps(r)

