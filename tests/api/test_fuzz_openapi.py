"""Schemathesis over the whole OpenAPI of the app around a real ``Service`` (no cameras),
served by a real uvicorn, authentication on with an admin key, forwarding wired (a
webhook destination that is down, so dead letters and counters exist): no request may
get a 5xx.

Left out: endless server-sent-event streams (``GET /events``; tests/forwarding/test_sse.py
covers it) and ``DELETE /keys/{key}`` (it could revoke the key the fuzzer runs with).
"""

from __future__ import annotations

import faulthandler
import threading
import time

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.incidents.forwarding import ForwardingConfig, RetryPolicy, WebhookDestination
from gridworker.service import Service
from gridworker.settings import Settings

from tests.factories import ParkedCarDetector, free_port
from tests.forwarding.helpers import open_incident


def _operations():
    # the OpenAPI document needs no running service: built from the routes alone
    raw = schemathesis.openapi.from_dict(create_app(lambda: None).openapi())
    schema = raw.exclude(path_regex=r"^/keys/\{[^}]+\}$", method="DELETE")
    ops = [r.ok() for r in schema.get_all_operations()]
    return schema, [op for op in ops if not _streams(op)]


def _streams(op) -> bool:
    """An endless server-sent-event stream (``GET /events`` and the like)."""
    ok = (op.definition.raw.get("responses") or {}).get("200") or {}
    return "text/event-stream" in (ok.get("content") or {})


SCHEMA, OPERATIONS = _operations()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    dead_port = free_port()
    forwarding = ForwardingConfig(
        destinations=[WebhookDestination(name="down", url=f"http://127.0.0.1:{dead_port}/x", secret="fuzz-secret", connect_timeout_s=0.5)],
        retry=RetryPolicy(base_s=0.1, cap_s=0.5),
        poll_interval_s=0.1,
    )
    # forwarding comes from the settings, as in production; the app's lifespan starts and stops it
    service = Service(Settings(database={"url": f"sqlite:///{db}"}, forwarding=forwarding), ParkedCarDetector())
    orders = service.workorders
    orders.auth_enabled = True
    for i in range(3):
        open_incident(orders, camera=f"cam-{i}")
    _, key = create_key(orders, name="fuzzer", role="admin")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started and time.monotonic() < end:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(15)


def test_the_schema_has_the_routes():
    labels = {op.label for op in OPERATIONS}
    assert {"GET /forwarding/destinations", "GET /forwarding/dead", "POST /forwarding/dead/{delivery_id}/replay",
            "GET /workorders", "POST /keys", "GET /incidents"} <= labels
    assert "GET /events" not in labels and len(labels) >= 25


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_errors(live_api, operation):
    base, key = live_api

    @given(case=operation.as_strategy())
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        # a request that hangs: dump every thread (the service runs in this process) before the
        # client gives up, so the failure shows where it was stuck
        watchdog = threading.Timer(25, faulthandler.dump_traceback, kwargs={"all_threads": True})
        watchdog.start()
        try:
            response = case.call(base_url=base, headers={"X-API-Key": key}, timeout=30)
        finally:
            watchdog.cancel()
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        assert key not in response.text  # never the key itself in a response

    run()
