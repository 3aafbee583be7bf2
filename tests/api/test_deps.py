"""The API's seams: routes take typed handles from api/deps.py (the only module that reads the
app's state), so an app is served around real parts by overriding getters."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.routing import APIRoute

import gridworker.api as api_pkg
from gridworker.api import create_app
from gridworker.api.deps import CaseParts, running_service
from gridworker.api.routers import catalogue, keys, stats, workorders
from gridworker.incidents import IncidentStore
from gridworker.cases.workorders import WorkOrders
from tests.factories import local_client

API_DIR = Path(api_pkg.__file__).resolve().parent


def test_only_deps_reads_the_app_state_and_nothing_falls_back_by_getattr():
    offenders = []
    for path in sorted(API_DIR.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(API_DIR).as_posix()
        if rel != "deps.py" and re.search(r"\bapp\.state\b|\bstate\.gw\b", text):
            offenders.append(f"{rel}: app state")
        if rel != "deps.py" and "getattr(" in text:
            offenders.append(f"{rel}: getattr")
    assert offenders == []


def _paths(router: APIRouter) -> set[tuple[str, str]]:
    return {(method, route.path) for route in router.routes if isinstance(route, APIRoute) for method in route.methods or ()}


def test_keys_catalogue_and_stats_have_routers_of_their_own():
    assert _paths(keys.router) == {("GET", "/keys"), ("POST", "/keys"), ("DELETE", "/keys/{key}")}
    assert _paths(catalogue.router) == {("GET", "/catalogue")}
    assert _paths(stats.router) == {("GET", "/stats/workorders"), ("GET", "/stats/cases"), ("GET", "/stats/cases.csv"), ("GET", "/stats/cases.xlsx")}
    assert all(path.startswith("/workorders") for _, path in _paths(workorders.router))
    served = set(create_app().openapi()["paths"])
    assert {"/keys", "/keys/{key}", "/catalogue", "/stats/workorders", "/workorders"} <= served


def test_an_app_around_case_parts(tmp_path):
    """No Service: the case routes answer from the parts, the camera-side ones say 503."""
    store = IncidentStore(f"sqlite:///{tmp_path / 'parts.db'}")
    orders = WorkOrders(store.db)
    app = CaseParts.of(store, orders).serve(create_app())
    try:
        with local_client(app) as client:
            assert running_service(app) is None
            assert client.get("/workorders").json()["total"] == 0
            assert client.get("/catalogue").json()["units"]
            assert client.get("/forwarding/destinations").json()["destinations"] == []
            me = client.get("/auth/me").json()
            assert me["events_url"] == "/console/events"  # this outbox is not hooked to the orders
            for path in ("/cameras", "/patrol/plans", "/health"):
                r = client.get(path)
                assert r.status_code == 503 and r.json()["detail"] == "the service is not running", path
    finally:
        store.close()
