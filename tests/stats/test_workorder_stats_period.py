"""``GET /stats/workorders`` takes its period as ``/stats/cases`` does (api/routers/stats.py
``chosen_period``): at most 367 days, not reversed or empty, by default the 30 days before now;
anything else is a 422, and its OpenAPI says so. Real work orders in a real SQLite database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.deps import CaseParts
from gridworker.cases.workorders import WorkOrders
from gridworker.incidents import IncidentStore
from gridworker.keystore import KeyStore
from tests.factories import local_client

UTC = timezone.utc
DAY = 86_400.0
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def env(tmp_path) -> Iterator[tuple[Any, WorkOrders, dict[str, str]]]:
    store = IncidentStore(f"sqlite:///{tmp_path / 'wo-stats.db'}")
    orders = WorkOrders(store.db)
    headers = {"Authorization": f"Bearer {create_key(KeyStore(orders.db), name='viewer', role='viewer')[1]}"}
    with local_client(CaseParts.of(store, orders).serve(create_app())) as client:
        yield client, orders, headers
    store.close()


def _open(orders: WorkOrders, at: float) -> int:
    inc = IncidentStore(orders.db).open(
        camera_id="cam-1", camera_name="Gate", site="market", zone_id="kerb", rule_id="r1", type="illegal_parking",
        at=at, count=1, summary="seen", details={}, snapshot=None,
    )
    order = orders.on_incident_opened(inc)
    assert order is not None
    return order.incident_id


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _cases(r) -> int:
    assert r.status_code == 200, r.text
    return sum(r.json()["by_state"].values())


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "longer than 367 days"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-01-03T00:00:01Z"}, "longer than 367 days"),  # 367 days and a second
        ({"until": "2026-01-01T00:00:00Z", "since": "2010-01-01T00:00:00Z"}, "longer than"),
        ({"since": "2026-11-10T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "'since' must be before 'until'"),
        ({"since": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "'since' must be before 'until'"),
        ({"since": "2099-12-31T00:00:00Z"}, "'since' must be before 'until'"),  # after the default 'until' (now)
        ({"since": "1960-01-01T00:00:00Z", "until": "1960-02-01T00:00:00Z"}, "1970"),
        ({"since": "2099-12-01T00:00:00Z", "until": "2100-06-01T00:00:00Z"}, "2100"),
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-01-02T00:00:00Z"}, None),
        ({"since": "yesterday"}, None),
    ],
)
def test_over_long_reversed_and_out_of_range_periods_are_422(env, params, needle):
    client, orders, h = env
    _open(orders, T0)
    r = client.get("/stats/workorders", params=params, headers=h)
    assert r.status_code == 422, (params, r.text)
    if needle:
        assert needle in r.json()["detail"]
    # the same answer as /stats/cases gives for the same period
    assert client.get("/stats/cases", params=params, headers=h).status_code == 422


def test_a_period_within_the_cap_counts_the_cases_detected_in_it(env):
    client, orders, h = env
    _open(orders, T0)
    _open(orders, T0 + 5 * DAY)
    _open(orders, T0 - 400 * DAY)  # more than a year earlier
    assert _cases(client.get("/stats/workorders", params={"since": _iso(T0 - DAY), "until": _iso(T0 + DAY)}, headers=h)) == 1
    assert _cases(client.get("/stats/workorders", params={"since": _iso(T0 - DAY), "until": _iso(T0 + 6 * DAY)}, headers=h)) == 2
    a_year = {"since": _iso(T0 + 6 * DAY - 367 * DAY), "until": _iso(T0 + 6 * DAY)}  # exactly the cap: still taken
    assert _cases(client.get("/stats/workorders", params=a_year, headers=h)) == 2
    assert _cases(client.get("/stats/workorders", params={"since": _iso(T0 - 401 * DAY), "until": _iso(T0 - 399 * DAY)}, headers=h)) == 1


def test_without_a_period_the_last_30_days_count(env):
    client, orders, h = env
    now = time.time()
    _open(orders, now - 60)
    _open(orders, now - 29 * DAY)
    _open(orders, now - 31 * DAY)  # before the default period
    _open(orders, now - 500 * DAY)
    assert _cases(client.get("/stats/workorders", headers=h)) == 2
    assert _cases(client.get("/stats/workorders", params={"until": _iso(now - 30 * DAY)}, headers=h)) == 1  # 30 days before 'until'


def test_openapi_names_the_same_parameters_and_the_422(env):
    client, _, h = env
    op = client.get("/openapi.json", headers=h).json()["paths"]["/stats/workorders"]["get"]
    assert sorted(p["name"] for p in op["parameters"]) == ["since", "until"]  # no utc_offset_min: no days or weeks here
    cases = client.get("/openapi.json", headers=h).json()["paths"]["/stats/cases"]["get"]
    assert op["responses"]["422"]["description"] == cases["responses"]["422"]["description"]
    assert "longer than the cap" in op["responses"]["422"]["description"]
