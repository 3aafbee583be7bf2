"""Webhooks against a real HTTP server: signed JSON, idempotency keys, retries with
backoff, dead letters (visible and replayable through the API), a receiver that is down,
and no secret in any stored error."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from gridworker.keystore import KeyStore
from gridworker.api import create_app
from gridworker.api.deps import CaseParts
from gridworker.api.auth import create_key
from gridworker.incidents import IncidentStore
from gridworker.delivery import ForwardingConfig, RetryPolicy, WebhookDestination, build_forwarding
from gridworker.delivery.outbox import DEAD, DELIVERED, PENDING
from gridworker.cases.workflow import OPERATOR, Actor, Workflow

from tests.forwarding.helpers import T0, Receiver, open_incident
from tests.factories import free_port, local_client, wait_until

SECRET = "whsec-4f1d9c2b7a"
FAST = RetryPolicy(base_s=0.05, cap_s=0.2, max_attempts=3, jitter=0.5)
OP = Actor("op-li", OPERATOR)


def _config(url: str, **kw: Any) -> ForwardingConfig:
    return ForwardingConfig(
        destinations=[WebhookDestination(name="city", url=url, secret=SECRET, timeout_s=2, connect_timeout_s=1, **kw)],
        retry=FAST,
        poll_interval_s=0.05,
    )


def test_signed_json_with_idempotency_keys_in_order(orders, receiver):
    disp = build_forwarding(_config(receiver.url, headers={"X-Tenant": "pudong"}), orders.db, orders=orders)
    with disp:
        a = open_incident(orders, camera="cam-a")
        b = open_incident(orders, camera="cam-b", type="wrong_way")
        wf = Workflow(orders)
        wf.dispatch(a.incident_id, OP, unit="traffic-squad", at=T0 + 5)
        wf.reject(b.incident_id, OP, note="a shadow", at=T0 + 6)
        assert disp.drain(15)
    reqs = receiver.requests
    assert len(reqs) == 4
    for r in reqs:
        h = r["headers"]
        expected = "sha256=" + hmac.new(SECRET.encode(), r["body"], hashlib.sha256).hexdigest()
        assert h["x-gridworker-signature"] == expected
        doc = json.loads(r["body"])
        assert h["idempotency-key"] == doc["idempotency_key"] == f"{doc['incident_id']}:{doc['version']}"
        assert h["x-gridworker-event"] == doc["event"] and h["x-gridworker-delivery"] == str(doc["event_id"])
        assert h["content-type"].startswith("application/json") and h["x-tenant"] == "pudong"
        assert SECRET not in r["body"].decode()
    keys = [r["headers"]["idempotency-key"] for r in reqs]
    assert keys == [f"{a.incident_id}:1", f"{b.incident_id}:1", f"{a.incident_id}:2", f"{b.incident_id}:2"]
    assert receiver.documents()[3]["change"]["reason"] == "a shadow"
    assert disp.outbox.counters()["city"] == {"pending": 0, "delivered": 4, "dead": 0,
                                               "last_delivered_at": disp.outbox.counters()["city"]["last_delivered_at"]}


def test_retries_with_backoff_then_dead_letter_then_replay(orders, receiver):
    calls: dict[str, int] = {}
    gone: set[str] = set()

    def respond(req):
        key = req["headers"]["idempotency-key"]
        calls[key] = calls.get(key, 0) + 1
        if key in gone:
            return 500
        return 503 if calls[key] <= 2 else 200

    receiver.respond = respond
    disp = build_forwarding(_config(receiver.url), orders.db, orders=orders)
    with disp:
        a = open_incident(orders, camera="cam-a")
        assert wait_until(lambda: disp.outbox.counters()["city"]["delivered"] == 1)
        d = disp.outbox.deliveries(destination="city")[0][0]
        assert (d.state, d.attempts) == (DELIVERED, 3)  # 503, 503, 200
        gone.add(f"{a.incident_id}:2")
        Workflow(orders).dispatch(a.incident_id, OP, at=T0 + 5)
        assert wait_until(lambda: disp.outbox.counters()["city"]["dead"] == 1)
        dead = disp.outbox.deliveries(state=DEAD)[0][0]
        assert dead.attempts == FAST.max_attempts and "HTTP 500" in dead.last_error and "after 3 attempts" in dead.last_error
        assert calls[f"{a.incident_id}:2"] == 3
        # retries were spaced out: the three attempts of one message took at least base + 2*base (less jitter)
        times = [r for r in receiver.requests if r["headers"]["idempotency-key"] == f"{a.incident_id}:2"]
        assert len(times) == 3
        gone.clear()
        r = disp.replay(dead.id)
        assert r.state == PENDING and r.replays == 1
        assert wait_until(lambda: disp.outbox.delivery(dead.id).state == DELIVERED)
    assert calls[f"{a.incident_id}:2"] == 4


@pytest.mark.parametrize("code, outcome", [(400, DEAD), (404, DEAD), (422, DEAD), (408, DELIVERED), (429, DELIVERED)])
def test_4xx_dead_at_once_except_408_and_429(sqlite_orders, receiver, code, outcome):
    orders = sqlite_orders
    n = {"calls": 0}

    def respond(req):
        n["calls"] += 1
        return (code, {"Retry-After": "0"}) if n["calls"] == 1 else 200

    receiver.respond = respond
    disp = build_forwarding(_config(receiver.url), orders.db, orders=orders)
    with disp:
        open_incident(orders)
        assert wait_until(lambda: disp.outbox.counters()["city"]["pending"] == 0)
    d = disp.outbox.deliveries()[0][0]
    assert d.state == outcome
    assert n["calls"] == (1 if outcome == DEAD else 2)
    if outcome == DEAD:
        assert d.attempts == 1 and d.last_error.startswith(f"HTTP {code}")


def test_receiver_down_keeps_everything_pending_then_delivers(sqlite_orders):
    orders = sqlite_orders
    port = free_port()
    url = f"http://hookuser:pa55-w0rd-x@127.0.0.1:{port}/hook"
    disp = build_forwarding(_config(url), orders.db, orders=orders)
    with disp:
        ids = [open_incident(orders, camera=f"cam-{i}").incident_id for i in range(20)]
        # many more probes than max_attempts: an unreachable receiver kills nothing
        assert wait_until(lambda: disp.statuses()[0].consecutive_failures >= 6, 20)
        c = disp.outbox.counters()["city"]
        assert (c["pending"], c["dead"], c["delivered"]) == (20, 0, 0)
        st = disp.statuses()[0]
        assert st.state == "unreachable" and "ConnectError" in st.last_error
        assert "pa55-w0rd-x" not in st.last_error and "pa55-w0rd-x" not in st.target
        items, _ = disp.outbox.deliveries(destination="city", limit=100)
        assert all(d.attempts == 0 for d in items) and all("pa55-w0rd-x" not in d.last_error for d in items)
        # the receiver comes up on that port
        rec = Receiver(port=port)
        try:
            assert disp.drain(20)
            keys = [r["headers"]["idempotency-key"] for r in rec.requests]
            assert keys == [f"{i}:1" for i in ids]
            assert all(r["headers"].get("authorization", "").startswith("Basic ") for r in rec.requests)
        finally:
            rec.close()


def test_forwarding_api_roles_status_dead_letters_and_replay(sqlite_orders, receiver):
    orders = sqlite_orders
    receiver.respond = lambda req: 410
    disp = build_forwarding(_config(receiver.url), orders.db, orders=orders)
    _, admin = create_key(KeyStore(orders.db), name="admin", role="admin")
    _, sup = create_key(KeyStore(orders.db), name="sup", role="supervisor")
    _, viewer = create_key(KeyStore(orders.db), name="viewer", role="viewer")
    _, op = create_key(KeyStore(orders.db), name="op", role="operator")
    with disp, local_client(CaseParts.of(IncidentStore(orders.db), orders, disp).serve(create_app())) as client:
        inc = open_incident(orders)
        assert wait_until(lambda: disp.statuses()[0].dead == 1)  # published after the outbox row: both are in
        for key in (viewer, op):
            assert client.get("/forwarding/destinations", headers={"X-API-Key": key}).status_code == 403
            assert client.get("/forwarding/dead", headers={"X-API-Key": key}).status_code == 403
        assert client.get("/forwarding/dead").status_code == 401
        r = client.get("/forwarding/destinations", headers={"X-API-Key": sup})
        assert r.status_code == 200
        body = r.json()
        assert body["outbox"]["events"] == 1
        (dest,) = body["destinations"]
        assert (dest["name"], dest["kind"], dest["dead"], dest["pending"], dest["configured"]) == ("city", "webhook", 1, 0, True)
        assert dest["last_error"].startswith("HTTP 410") and dest["target"] == receiver.url.rsplit("/", 1)[0] + "/..."  # path elided
        dead = client.get("/forwarding/dead", headers={"X-API-Key": admin}).json()
        assert dead["total"] == 1
        (item,) = dead["items"]
        assert (item["idempotency_key"], item["event"], item["state"]) == (f"{inc.incident_id}:1", "workorder.detect", "dead")
        receiver.respond = lambda req: 200
        assert client.post(f"/forwarding/dead/{item['id']}/replay", headers={"X-API-Key": viewer}).status_code == 403
        r = client.post(f"/forwarding/dead/{item['id']}/replay", headers={"X-API-Key": sup})
        assert r.status_code == 200 and r.json()["state"] == "pending" and r.json()["replays"] == 1
        assert wait_until(lambda: disp.outbox.delivery(item["id"]).state == DELIVERED)
        assert client.post(f"/forwarding/dead/{item['id']}/replay", headers={"X-API-Key": sup}).status_code == 409
        assert client.post("/forwarding/dead/424242/replay", headers={"X-API-Key": sup}).status_code == 404
        assert client.get("/forwarding/dead", headers={"X-API-Key": sup}).json()["total"] == 0
    assert [r["headers"]["idempotency-key"] for r in receiver.requests] == [f"{inc.incident_id}:1"] * 2


def test_a_receiver_echoing_the_request_headers_leaks_no_header_value(sqlite_orders, receiver, caplog):
    """An extra header is how many receivers take an API key (``Authorization: Bearer …``,
    ``X-Api-Key``); a receiver whose error page echoes the request's headers put them in the
    stored error, which supervisors read in the forwarding status and dead letters, and in the log."""
    token, api_key = "tk_LIVE_9f8e7d6c5b", "ak-31c9e07f2d"

    def echo(req):
        got = {k: req["headers"][k] for k in ("x-tenant", "authorization", "x-api-key")}  # first: within the 200 characters kept
        return 400, {"Content-Type": "application/json"}, json.dumps({"error": "bad tenant", "got": got}).encode()

    receiver.respond = echo
    config = _config(receiver.url, headers={"Authorization": f"Bearer {token}", "X-Api-Key": api_key, "X-Tenant": "pudong-district"})
    disp = build_forwarding(config, sqlite_orders.db, orders=sqlite_orders)
    with disp:
        open_incident(sqlite_orders)
        assert wait_until(lambda: disp.outbox.counters()["city"]["dead"] == 1)
        statuses = json.dumps([vars(s) for s in disp.statuses()], default=str)
    d = disp.outbox.deliveries()[0][0]
    assert d.last_error.startswith("HTTP 400") and "bad tenant" in d.last_error  # the error is still told
    assert "pudong-district" in d.last_error  # a header that is no credential stays readable
    for secret in (token, api_key, SECRET):
        assert secret not in d.last_error and secret not in statuses
        assert not any(secret in m for m in caplog.messages)
    assert receiver.requests[0]["headers"]["x-api-key"] == api_key  # the header was sent
