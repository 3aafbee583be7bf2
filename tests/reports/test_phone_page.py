"""The phone page and the residents' report page in Debian's Chromium, in a phone's viewport
(390x844, touch): a resident reports a problem with a photo; the case is dispatched to a grid
worker, who logs in on the phone page, accepts it, takes a photo, goes offline, marks it
handled, comes back online, and the case is handled exactly once with the photo on it.

With ``GRIDWORKER_SCREENSHOTS=docs/img`` it also writes ``phone-report.png``,
``phone-cases.png`` and ``phone-case.png``::

    GRIDWORKER_SCREENSHOTS=docs/img .venv/bin/python -m pytest tests/reports/test_phone_page.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.console.conftest import browser  # noqa: F401 - the Chromium fixture
from tests.console.test_console import open_console
from tests.factories import ParkedCarDetector, live_server, wait_until
from tests.reports.conftest import jpeg_with_exif, street_jpeg

pytestmark = [pytest.mark.browser]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
WHERE = {"longitude": 121.4737, "latitude": 31.2304}


def _shot(page: Any, name: str) -> None:
    out = os.environ.get("GRIDWORKER_SCREENSHOTS")
    if out:
        page.evaluate("window.scrollTo(0, 0)")
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name), full_page=False)


@pytest.fixture
def live(tmp_path) -> Iterator[tuple[str, Service, dict[str, str]]]:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'phone.db'}"}, evidence={"clips": False})
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for role in ("admin", "operator"):
        _, keys[role] = create_key(service.keys, name=f"{role}-phone", role=role)
    with live_server(create_app(lambda: service), start_timeout_s=60) as url:
        yield url, service, keys


def test_a_residents_photo_reaches_a_grid_worker_who_handles_it_once_offline(live, browser, tmp_path):  # noqa: F811
    url, service, keys = live
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=10)
    op = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['operator']}"}, timeout=10)
    r = admin.post("/people", json={"username": "li.wei", "name": "李伟", "unit": "community-grid", "role": "unit_handler", "password": "grid-worker-pass-1"})
    assert r.status_code == 201, r.text
    person_id = r.json()["id"]
    photo = tmp_path / "street.jpg"
    photo.write_bytes(street_jpeg())  # a resident's street photo
    after = tmp_path / "cleared.jpg"
    after.write_bytes(jpeg_with_exif((3000, 2000), color=(30, 120, 200)))

    # 1. a resident reports overflowing bins with a photo and the phone's position
    resident = browser.new_context(**PHONE, geolocation=WHERE, permissions=["geolocation"], locale="zh-CN")
    page = resident.new_page()
    page.goto(url + "/report/")
    page.wait_for_selector("#type option[value=exposed_garbage]", state="attached")
    page.select_option("#type", "exposed_garbage")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#preview:not([hidden])")
    page.fill("#text", "小区东门垃圾桶满溢")
    page.click("details summary")
    page.fill("#contact_phone", "13912345678")
    wait_until(lambda: "31.23040" in page.inner_text("#where"), timeout=10)
    _shot(page, "phone-report.png")
    page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    receipt = page.inner_text("#receipt").strip()
    resident.close()
    cases = op.get("/workorders").json()["items"]
    assert len(cases) == 1 and cases[0]["camera_id"] == "report:resident"
    case_id = cases[0]["incident_id"]
    assert "13912345678" not in op.get(f"/incidents/{case_id}").text
    uploaded = op.get(f"/workorders/{case_id}/photos").json()
    assert len(uploaded) == 1 and max(uploaded[0]["width"], uploaded[0]["height"]) <= 1600  # resized in the browser

    # 2. the grid worker logs in on the phone: nothing assigned yet
    ctx = browser.new_context(**PHONE, geolocation=WHERE, permissions=["geolocation"], locale="zh-CN")
    phone = ctx.new_page()
    phone.goto(url + "/m/")
    phone.fill("#username", "li.wei")
    phone.fill("#password", "grid-worker-pass-1")
    phone.click("#login button[type=submit]")
    phone.wait_for_selector("#empty:not([hidden])")

    # 3. the operator dispatches the case to the grid worker: it arrives on the open page by a server-sent event
    r = op.post(f"/workorders/{case_id}/dispatch", json={"unit": "community-grid", "assignee": person_id})
    assert r.status_code == 200, r.text
    phone.wait_for_selector(f"#cases li[data-id='{case_id}']", timeout=10000)  # no reload: the page re-reads on the event
    _shot(phone, "phone-cases.png")
    # 4. accept, take a photo, go offline, mark handled, come back online
    phone.click(f"#cases li[data-id='{case_id}']")
    phone.wait_for_selector("#accept:not([hidden])")
    phone.click("#accept")
    wait_until(lambda: op.get(f"/workorders/{case_id}").json()["state"] == "accepted", timeout=15)
    phone.wait_for_selector("#handle:not([hidden])")
    phone.set_input_files("#shots", str(after))
    phone.wait_for_selector("#shot-previews img")
    phone.fill("#note", "已清运，桶已复位")
    ctx.set_offline(True)
    phone.click("#handled")
    phone.wait_for_selector("#pending:not([hidden])")
    assert op.get(f"/workorders/{case_id}").json()["state"] == "accepted"  # nothing left the phone
    _shot(phone, "phone-case.png")
    ctx.set_offline(False)
    wait_until(lambda: op.get(f"/workorders/{case_id}").json()["state"] == "handled", timeout=30)
    phone.wait_for_selector("#pending", state="hidden", timeout=15000)
    order = op.get(f"/workorders/{case_id}").json()
    assert [a["action"] for a in order["audit"]].count("handle") == 1
    assert order["note"] == "已清运，桶已复位"
    kinds = [p["kind"] for p in op.get(f"/workorders/{case_id}/photos").json()]
    assert kinds == ["report", "handling"]

    # 5. the resident's receipt shows the progress
    status = httpx.get(f"{url}/report/receipts/{receipt}", timeout=10).json()
    assert status["state"] == "handled" and "13912345678" not in str(status)
    ctx.close()

    # 6. the operator sees both photos on the case in the console, and closes it
    console = open_console(browser, SimpleNamespace(url=url, keys=keys), "operator")
    console.click(f'#queue li[data-incident="{case_id}"]')
    for kind in ("report", "handling"):
        console.wait_for_function(f"() => document.querySelector('#case-photos img[data-kind={kind}]')?.naturalWidth > 0", timeout=10_000)
    assert "13912345678" not in console.content()
    assert console.errors == []
    console.context.close()
    assert op.post(f"/workorders/{case_id}/close", json={}).json()["state"] == "closed"
    assert httpx.get(f"{url}/report/receipts/{receipt}", timeout=10).json()["state"] == "closed"
