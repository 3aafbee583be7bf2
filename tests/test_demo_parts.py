"""The demo's parts without the demo: its webhook receiver, its crew, its key-site cameras.

* the receiver takes a real signed delivery from gridworker's own ``WebhookSender`` over HTTP,
  refuses a bad signature (401: the sender makes it a dead letter), drops a repeated
  idempotency key, and lists what it took at ``/deliveries`` and ``/``;
* the crew moves the first cases of the continuous cameras through dispatch → accept →
  handled with named actors, leaves patrol cases and old cases alone, and lets go of a case
  someone else acted on;
* the key-site cameras and their patrol plan make a valid config (20+ patrol-only cameras,
  all selected by the plan, zones mapped through each camera's crop and mirror).
"""

from __future__ import annotations

import json

import httpx
import pytest

from gridworker.demo import DemoWebhook, demo_config
from gridworker.demo_crew import DESK, DemoCrew
from gridworker.demo_sites import PLAN_ID, REVISIT_S, UNPLUGGED, Site, View, ZoneSpec, _sites, patrol_plan
from gridworker.demo_webhooks import WebhookReceiver
from gridworker.incidents import IncidentStore
from gridworker.delivery.config import WebhookDestination
from gridworker.delivery.dispatcher import Outcome
from gridworker.delivery.webhook import WebhookSender
from gridworker.delivery.outbox import OutboxEvent
from gridworker.cases.workflow import Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.patrol.config import PatrolTarget
from gridworker.patrol.selection import select_cameras
from gridworker.settings import Settings


def _event(n: int, key: str | None = None) -> OutboxEvent:
    payload = {
        "event": "workorder.dispatch",
        "idempotency_key": key or f"{n}:2",
        "incident": {"id": n, "type": "crowd", "camera_id": "campus"},
        "workorder": {"state": "dispatched"},
        "change": {"actor": "demo:command desk"},
    }
    return OutboxEvent(n, "workorder.dispatch", n, 2, key or f"{n}:2", "crowd", "school", "campus", "police-station", "", payload, 0.0)


@pytest.fixture
def receiver():
    r = WebhookReceiver(secret="the shared secret").start()
    try:
        yield r
    finally:
        r.stop()


def test_receiver_checks_signatures_and_drops_repeats(receiver):
    good = WebhookSender(WebhookDestination(name="demo", url=receiver.url, secret="the shared secret"))
    forged = WebhookSender(WebhookDestination(name="evil", url=receiver.url, secret="not the secret"))
    try:
        assert good.send(_event(1)).outcome is Outcome.DELIVERED
        assert good.send(_event(2)).outcome is Outcome.DELIVERED
        assert good.send(_event(2)).outcome is Outcome.DELIVERED  # a retry after a lost answer: acknowledged, not counted
        refused = forged.send(_event(3))
        assert refused.outcome is Outcome.DEAD and "401" in refused.error
    finally:
        good.close()
        forged.close()
    doc = httpx.get(receiver.base + "/deliveries").json()
    assert (doc["accepted"], doc["duplicates"], doc["bad_signature"]) == (2, 1, 1)
    assert [d["incident_id"] for d in doc["last"]] == [2, 1]  # newest first
    assert doc["last"][0] | {"received_at": 0} == {
        "received_at": 0, "delivery": "2", "event": "workorder.dispatch", "idempotency_key": "2:2", "incident_id": 2,
        "type": "crowd", "camera_id": "campus", "state": "dispatched", "actor": "demo:command desk",
    }
    page = httpx.get(receiver.base + "/").text
    assert "<b id='accepted'>2</b>" in page and "the shared secret" not in page
    # unsigned, and not JSON: refused before parsing; a wrong path is a 404
    assert httpx.post(receiver.url, content=b"{}").status_code == 401
    assert httpx.post(receiver.base + "/other", content=b"{}").status_code == 404
    assert httpx.get(receiver.base + "/deliveries").json()["bad_signature"] == 2


def test_receiver_takes_the_port_it_is_given_or_any(receiver):
    second = WebhookReceiver(secret="x", port=receiver.port).start()  # taken: it falls back to a free one
    try:
        assert second.port != receiver.port and httpx.get(second.base + "/deliveries").json()["accepted"] == 0
    finally:
        second.stop()
    with pytest.raises(ValueError):
        WebhookReceiver(secret="")


def _open(store: IncidentStore, camera: str, at: float, type_: str = "crowd") -> int:
    return store.open(
        camera_id=camera, camera_name="", site="school", zone_id="road", rule_id=type_, type=type_, at=at, count=4, summary="", details={}, snapshot=None
    ).id


def test_crew_works_the_first_cases_with_named_actors(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'crew.db'}")
    orders = WorkOrders(store.db)
    workflow = Workflow(orders)
    old = _open(store, "campus", 50.0)  # from an earlier run of the demo
    ids = [_open(store, "campus", 100.0), _open(store, "key-site-1", 101.0), _open(store, "bus-stop", 102.0), _open(store, "campus", 103.0)]
    for i in (old, *ids):
        orders.on_incident_opened(store.get(i))
    crew = DemoCrew(workflow, orders, cameras={"campus", "bus-stop"}, since=90.0, cases=2, step_s=5.0)
    a, patrol_case, b, c = ids
    crew.step(104.0)  # not yet due (detected + 5 s)
    assert orders.get(a).state == "detected"
    crew.step(105.0)
    assert orders.get(a).state == "dispatched" and orders.get(b).state == "detected"
    crew.step(107.0)
    assert orders.get(b).state == "dispatched"
    for t in (110.0, 115.0, 120.0):
        crew.step(t)
    assert orders.get(a).state == "handled" and orders.get(b).state == "handled"
    assert orders.get(c).state == "detected", "only the first `cases` cases"
    assert orders.get(patrol_case).state == "detected" and orders.get(old).state == "detected"
    history = [(e.action, e.actor, e.role) for e in orders.audit(a)]
    unit = orders.get(a).unit
    assert history[1:] == [
        ("dispatch", DESK.name, "operator"),
        ("accept", f"demo:{unit} street team", "unit_handler"),
        ("handle", f"demo:{unit} street team", "unit_handler"),
    ]
    assert crew.done == [(a, "dispatch"), (b, "dispatch"), (a, "accept"), (a, "handle"), (b, "accept"), (b, "handle")]
    store.close()


def test_crew_lets_go_of_a_case_taken_in_the_console(tmp_path):
    from gridworker.cases.workflow import Actor

    store = IncidentStore(f"sqlite:///{tmp_path / 'crew.db'}")
    orders = WorkOrders(store.db)
    workflow = Workflow(orders)
    case = _open(store, "campus", 100.0)
    orders.on_incident_opened(store.get(case))
    crew = DemoCrew(workflow, orders, cameras={"campus"}, since=0.0, cases=1, step_s=5.0)
    crew.step(100.0)
    workflow.reject(case, Actor("key:0:ops", "operator"), note="false alarm", at=101.0)
    crew.step(106.0)  # its dispatch is refused (409): the crew drops the case, nothing raises
    crew.step(120.0)
    assert orders.get(case).state == "rejected" and crew.done == []
    store.close()


def test_view_maps_zones_through_crop_and_mirror():
    view = View((0.0, 0.2, 0.5, 1.0), mirror=True)
    assert view.polygon((0.0, 0.6, 0.25, 1.0)) == [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
    assert View().polygon((0.1, 0.2, 0.3, 0.4)) == [[0.1, 0.2], [0.3, 0.2], [0.3, 0.4], [0.1, 0.4]]
    import numpy as np

    img = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    out = view.image(img)
    assert out.shape == (8, 10, 3) and (out[0, 0] == img[2, 9]).all()


@pytest.mark.parametrize("have", [{"bus", "zidane", "campus"}, set()])
def test_key_sites_make_a_valid_config_with_a_plan_over_them(tmp_path, have):
    sites = _sites(have)
    assert len(sites) >= 20 and len({s.id for s in sites}) == len(sites)
    urls = [(s, f"rtsp://127.0.0.1:8554/{s.id}") for s in sites]
    config = demo_config(
        {"bus-stop": "rtsp://127.0.0.1:8554/bus-stop"}, tmp_path, "127.0.0.1", 8080,
        sites=urls, unplugged_url="rtsp://127.0.0.1:8554/" + UNPLUGGED, webhook=DemoWebhook("http://127.0.0.1:8081/hooks/gridworker", "s"),
    )
    settings = Settings(**config)
    patrol = [c for c in settings.cameras if c.watch == "patrol"]
    assert len(patrol) == len(sites) + 1
    (plan,) = settings.patrol_plans
    assert plan.id == PLAN_ID and plan.cycles == 0 and plan.min_cycle_s > REVISIT_S
    targets = [PatrolTarget(c.id, c.url, c.patrol) for c in settings.cameras]
    assert {t.camera_id for t in select_cameras(targets, plan.select)} == {c.id for c in patrol}, "the plan visits every key site, not the continuous cameras"
    revisit = [c.id for c in patrol for z in c.zones for r in z.rules if r.type == "illegal_parking"]
    if have:
        assert len(revisit) >= 3 and all(r.min_duration_s == REVISIT_S for c in patrol for z in c.zones for r in z.rules if r.type == "illegal_parking")
    assert settings.forwarding.destinations[0].url.endswith("/hooks/gridworker")
    assert json.dumps(patrol_plan())  # plain data


def test_a_site_camera_is_plain_config():
    site = Site("x-1", "X", "x", "school", 5, "bus", View(mirror=True), (ZoneSpec("z", "Z", (0.0, 0.5, 0.5, 1.0), ({"type": "crowd"},)),))
    cam = site.camera("rtsp://h/x-1")
    assert cam["watch"] == "patrol" and cam["patrol"]["tags"] == ["key-site"]
    assert cam["zones"][0]["polygon"] == [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
