"""``gridworker bench stats``: how long the numbers (``GET /stats/cases``) take over many cases.

Builds a scratch SQLite database at the current schema, fills it with ``cases`` work orders
spread over a year (seeded, so every run is the same), then times ``CaseStats.figures`` for
the last 30 days and for the whole year, alternately, ``repetitions`` times each. Keys:
``cases``, ``month_cases`` / ``year_cases`` (cases in the period), ``month_s`` / ``year_s``
(median seconds), ``month_first_s`` / ``year_first_s`` (the first, cold query).

A covering index over what the figures read (detection time, type, unit, site, state,
assignee, handled, due, overdue, on time) was tried with this bench and not kept: side by
side with the plain index on detection time it was 0.8-1.5x in three runs, within the noise
of the machine; the ``GROUP BY`` s over the period's cases, not reading them, are the cost.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gridworker.cases.stats import CaseStats, Figures, Period
from gridworker.cases.workorders import WorkOrderRow, WorkOrders
from gridworker.incidents import IncidentStore
from gridworker.incidents.store import IncidentRow

__all__ = ["StatsBenchConfig", "format_summary", "run_stats_bench"]

_YEAR_S = 365 * 86_400.0
_START = 1_764_547_200.0  # 2025-12-01 UTC
_TYPES = ("illegal_parking", "wrong_way", "crowd", "street_vending", "exposed_garbage")
_UNITS = ("traffic-squad", "city-mgmt", "police", "sanitation")
_STATES = ("new", "dispatched", "accepted", "handled", "closed", "rejected")


@dataclass(frozen=True, slots=True)
class StatsBenchConfig:
    cases: int = 100_000
    repetitions: int = 3
    workdir: Path | None = None


def _fill(store: IncidentStore, cases: int) -> None:
    rnd = random.Random(1)
    incidents: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for i in range(1, cases + 1):
        at = _START + rnd.random() * _YEAR_S
        state = rnd.choice(_STATES)
        handled = at + rnd.random() * 86_400 if state in ("handled", "closed") else None
        kind, unit, site = _TYPES[i % len(_TYPES)], _UNITS[i % len(_UNITS)], f"site-{i % 50}"
        incidents.append({
            "id": i, "camera_id": f"cam-{i % 300}", "camera_name": "", "site": site, "zone_id": "z", "rule_id": "r", "type": kind,
            "status": "open", "opened_at": at, "updated_at": at, "closed_at": None, "peak_count": 1, "observations": 1,
            "summary": "", "details": {},
        })
        orders.append({
            "incident_id": i, "type": kind, "site": site, "camera_id": f"cam-{i % 300}", "state": state, "grade": 2, "unit": unit,
            "first_unit": unit, "responsible_unit": unit, "floor_rank": 0, "escalations": 0, "detected_at": at, "clock_start": at,
            "due_at": at + 43_200, "handled_at": handled, "overdue": rnd.random() < 0.2, "top_overdue_noted": False,
            "on_time": handled is not None and handled < at + 43_200, "note": "", "version": 1, "updated_at": at,
            "assignee": (i % 40) or None, "area": "",
        })
    with store.db.transaction() as s:
        s.execute(insert(IncidentRow), incidents)
        s.execute(insert(WorkOrderRow), orders)


def run_stats_bench(config: StatsBenchConfig) -> dict[str, Any]:
    """Fill, then time both periods with and without the index; see the module docstring."""
    if config.cases < 1 or config.repetitions < 1:
        raise ValueError("cases and repetitions must be >= 1")
    with tempfile.TemporaryDirectory(dir=config.workdir) as tmp:
        store = IncidentStore(f"sqlite:///{Path(tmp) / 'stats.db'}")
        try:
            _fill(store, config.cases)
            stats = CaseStats(WorkOrders(store.db))
            now = _START + _YEAR_S
            periods = {
                "month": Period.of(since=now - 30 * 86_400, until=now, utc_offset_min=480),
                "year": Period.of(since=_START, until=now, utc_offset_min=480),
            }
            times: dict[str, list[float]] = {name: [] for name in periods}
            seen: dict[str, Figures] = {}
            for _ in range(config.repetitions):
                for name, period in periods.items():
                    t0 = time.perf_counter()
                    figures = stats.figures(period, now=now)
                    times[name].append(time.perf_counter() - t0)
                    if seen.setdefault(name, figures) != figures:
                        raise RuntimeError(f"the {name}'s figures changed between two runs")
            out: dict[str, Any] = {"cases": config.cases, "repetitions": config.repetitions}
            for name, spent in times.items():
                out[f"{name}_cases"] = seen[name].totals.total
                out[f"{name}_s"] = round(statistics.median(spent), 4)
                out[f"{name}_first_s"] = round(spent[0], 4)
            return out
        finally:
            store.close()


def format_summary(r: dict[str, Any]) -> str:
    return "\n".join(
        f"{name:5s} ({r[f'{name}_cases']:,} of {r['cases']:,} cases): {r[f'{name}_s']:.3f} s (median), "
        f"{r[f'{name}_first_s']:.3f} s the first time"
        for name in ("month", "year")
    )
