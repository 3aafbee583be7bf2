"""One loop: a case found by patrol goes through the same path as every other case.

Through the real service (uvicorn, the real default model, Debian's RTSP server), a real
webhook receiver and mosquitto on 127.0.0.1:1883:

1. two patrol visits at least T apart see the same parked bus → one incident (the revisit
   check's, both captures as evidence), one work order routed by the catalogue (a school:
   the police station, not the default traffic squad), delivered once to the webhook and
   once to MQTT, listed by ``/workorders`` and on the console's queue (Playwright);
2. an operator dispatches, accepts and handles it through the API;
3. the service is stopped and a new one started on the same database (a restart);
4. a later visit finds the spot empty → the incident closes and the case closes
   ``verified`` (``system:auto-verify``); every change was delivered exactly once to both.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.incidents import IncidentQuery
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import bus_street_clips, live_server, wait_until
from tests.forwarding.helpers import Receiver
from tests.forwarding.test_mqtt import SHARED, Subscriber, _port_open

pytestmark = [pytest.mark.rtsp, pytest.mark.model]

T = 3.0  # the rule's min_duration_s: the two captures must be at least this far apart
SECRET = "whsec-one-loop"
PLAN = {"id": "street", "cycles": 3, "min_cycle_s": T, "concurrency": 1, "open_timeout_s": 3.0, "keyframe_timeout_s": 4.0, "stagger_s": 0.0}
ZONES = [
    {
        "id": "no-parking",
        "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
        "rules": [{"type": "illegal_parking", "classes": ["bus", "car", "truck"], "min_duration_s": T}],
    }
]


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig())


@pytest.fixture(scope="module")
def stills(tmp_path_factory) -> dict[str, Path]:
    """bus.jpg (a real photo) shrunk onto a grey 960x540 street, and the same street empty."""
    return bus_street_clips(tmp_path_factory.mktemp("loop"), {"parked": 0, "empty": None})


def _settings(db: str, camera_url: str, webhook_url: str, prefix: str) -> Settings:
    return Settings(
        database={"url": db},
        evidence={"clips": False},
        cameras=[{"id": "kerb", "name": "School kerb", "site": "school", "url": camera_url, "watch": "patrol", "zones": ZONES}],
        patrol_plans=[PLAN],
        forwarding={
            "destinations": [
                {"kind": "webhook", "name": "city", "url": webhook_url, "secret": SECRET, "timeout_s": 3, "connect_timeout_s": 1},
                {"kind": "mqtt", "name": "bus", "host": SHARED[0], "port": SHARED[1], "topic_prefix": prefix, "timeout_s": 5},
            ],
            "retry": {"base_s": 0.05, "cap_s": 0.3, "max_attempts": 5},
            "poll_interval_s": 0.1,
        },
    )


def _patrol(client: httpx.Client, service: Service) -> None:
    """Run the plan once through the API and wait for its cycles."""
    assert client.post("/patrol/plans/street/start").status_code in (200, 201, 202)
    run = service.patrol.run("street")
    assert run is not None and run.wait(timeout=90)
    last = run.status().last_cycle
    assert last is not None and last.failed == 0, run.status()


def _by_key(documents: list[dict]) -> dict[str, str]:
    return {d["idempotency_key"]: d["event"] for d in documents}


def test_a_patrol_case_goes_round_the_one_loop(tmp_path, rtsp_factory, stills, detector, receiver_and_mqtt, browser_or_none):
    receiver, sub, prefix = receiver_and_mqtt
    srv = rtsp_factory({"spot": stills["parked"]})
    db = f"sqlite:///{tmp_path / 'loop.db'}"
    settings = _settings(db, srv.url("spot"), receiver.url, prefix)

    # -- 1. two visits T apart: one incident, one routed work order, delivered once each ----
    service = Service(settings, detector)
    _, admin = create_key(service.keys, name="loop-admin", role="admin")
    auth = {"Authorization": f"Bearer {admin}"}
    with live_server(create_app(lambda: service)) as base, httpx.Client(base_url=base, headers=auth, timeout=15) as client:
        _patrol(client, service)
        incidents, total = service.store.list(IncidentQuery())
        assert total == 1, [(i.type, i.summary) for i in incidents]
        inc = incidents[0]
        assert inc.type == "illegal_parking" and inc.status == "open" and inc.camera_id == "kerb"
        assert inc.details["method"] == "revisit" and inc.details["gap_s"] >= T and inc.details["object"]
        page = client.get("/workorders").json()
        assert page["total"] == 1
        order = page["items"][0]
        assert order["incident_id"] == inc.id and order["state"] == "detected" and order["site"] == "school"
        # routed by the catalogue's rule for schools, not to the type's default unit
        assert order["first_unit"] == order["unit"] == "police-station"
        assert service.workorders.catalogue.type("illegal_parking").first_unit != "police-station"
        wait_until(lambda: len(receiver.requests) >= 1 and len(sub.messages) >= 1, timeout=20)
        time.sleep(0.5)  # a second delivery would have arrived by now
        assert [d["event"] for d in receiver.documents()] == ["workorder.detect"]
        assert [(m[0], m[2]["event"]) for m in sub.messages] == [(f"{prefix}/school/illegal_parking", "workorder.detect")]
        assert receiver.documents()[0]["incident_id"] == inc.id
        if browser_or_none is not None:
            _console_queue_shows(browser_or_none, base, admin, inc.id)
        # -- 2. the operator sends it out, the unit takes it on and reports it handled -----
        for action, body in (("dispatch", {}), ("accept", {}), ("handle", {"note": "towed away"})):
            r = client.post(f"/workorders/{inc.id}/{action}", json=body)
            assert r.status_code == 200, r.text
        assert client.get(f"/workorders/{inc.id}").json()["state"] == "handled"
    assert not service.started

    # -- 3. restart: a new service on the same database; the bus has gone -------------------
    srv.mounts["spot"] = stills["empty"]
    srv.restart()
    again = Service(settings, detector)
    with live_server(create_app(lambda: again)) as base, httpx.Client(base_url=base, headers=auth, timeout=15) as client:
        assert again.incidents.open_count("kerb") == 1  # the open revisit incident was adopted
        # -- 4. a later visit finds the spot empty: closed, verified on camera -------------
        _patrol(client, again)
        assert again.store.get(inc.id).status == "closed"
        order = client.get(f"/workorders/{inc.id}").json()
        assert order["state"] == "closed", order
        last = order["audit"][-1]
        assert (last["action"], last["actor"]) == ("close", "system:auto-verify"), order["audit"]
        events = ["workorder.detect", "workorder.dispatch", "workorder.accept", "workorder.handle", "workorder.close"]
        wait_until(lambda: len(receiver.requests) >= 5 and len(sub.messages) >= 5, timeout=20)
        time.sleep(0.5)
        # every change delivered exactly once to each destination, in order
        assert [d["event"] for d in receiver.documents()] == events
        assert len(_by_key(receiver.documents())) == 5
        assert [m[2]["event"] for m in sub.messages] == events
        assert len(_by_key([m[2] for m in sub.messages])) == 5
        assert client.get("/incidents").json()["total"] == 1  # and still one incident
    again.store.close()


def _console_queue_shows(browser, base: str, key: str, incident_id: int) -> None:
    """The case is on the console's queue (the same feed as every other case)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(base + "/")
        page.fill("#login-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#monitor:not([hidden])")
        page.wait_for_selector(f'#queue li[data-incident="{incident_id}"][data-type="illegal_parking"]', timeout=20_000)
    finally:
        context.close()


@pytest.fixture
def receiver_and_mqtt():
    if not _port_open(*SHARED):
        pytest.skip("no mosquitto at 127.0.0.1:1883 (apt-get install mosquitto)")
    prefix = f"gw-loop/{time.monotonic_ns()}"  # the broker is shared: a prefix of our own
    receiver = Receiver()
    sub = Subscriber(SHARED[1], f"{prefix}/#")
    try:
        yield receiver, sub, prefix
    finally:
        sub.close()
        receiver.close()


@pytest.fixture(scope="module")
def browser_or_none():
    """Debian's Chromium through Playwright, or None where either is missing (the rest of the loop still runs)."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        yield None
        return
    if shutil.which("/usr/bin/chromium") is None:
        yield None
        return
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()

