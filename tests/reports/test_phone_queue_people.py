"""The phone page's offline queue on a shared duty phone, in Debian's Chromium: every queued
action names the person who queued it and is sent only in that person's session.

The reviewer's scenario: east1's session ends while the phone shows a case, east1 taps Accept
(queued after the 401), east3 logs in on the same phone. The action must not be sent as east3
(nor dropped by east3's 404): it waits, shown as east1's, and is sent as east1 when east1 logs
in again. An action the server refuses for good is shown to its person with the reason and
stays until they remove it; another person's actions are discarded only after a confirmation.
Logging out clears the list and the open case from the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.console.conftest import browser  # noqa: F401 - the Chromium fixture
from tests.factories import ParkedCarDetector, live_server, wait_until
from tests.reports.conftest import jpeg_with_exif

pytestmark = [pytest.mark.browser]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True, "locale": "en-GB"}
PW = "a long enough password"
UNIT = "community-grid"


class Env:
    def __init__(self, url: str, service: Service, admin: httpx.Client) -> None:
        self.url, self.service, self.admin = url, service, admin
        self.ids: dict[str, int] = {}

    def case(self, assignee: str) -> int:
        r = self.admin.post("/reports", json={"type": "exposed_garbage", "text": "bins overflowing"})
        assert r.status_code in (200, 201), r.text
        iid = int(r.json()["incident_id"])
        r = self.admin.post(f"/workorders/{iid}/dispatch", json={"unit": UNIT, "assignee": self.ids[assignee]})
        assert r.status_code == 200, r.text
        return iid

    def order(self, iid: int) -> dict[str, Any]:
        r = self.admin.get(f"/workorders/{iid}")
        assert r.status_code == 200, r.text
        return r.json()

    def end_session(self, username: str) -> None:
        """End the person's session from the server side (an admin disables and re-enables them;
        idle expiry does the same)."""
        for disabled in (True, False):
            r = self.admin.patch(f"/people/{self.ids[username]}", json={"disabled": disabled})
            assert r.status_code == 200, r.text


@pytest.fixture
def env(tmp_path) -> Iterator[Env]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'q.db'}"}, evidence={"clips": False},
        people={"password_memory_kib": 19456, "password_time_cost": 1},
    )
    service = Service(settings, ParkedCarDetector())
    _, key = create_key(service.keys, name="admin-q", role="admin")
    with live_server(create_app(lambda: service), start_timeout_s=60) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        e = Env(url, service, admin)
        for username in ("east1", "east3"):
            # a name that is markup: the page must show it (and the usernames) as text only
            r = admin.post("/people", json={"username": username, "name": f"<img src=x onerror=alert(1)>{username}", "unit": UNIT,
                                            "role": "unit_handler", "password": PW})
            assert r.status_code == 201, r.text
            e.ids[username] = r.json()["id"]
        yield e
        admin.close()


def _phone(browser: Any, env: Env) -> Any:  # noqa: F811
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    page.csp = []  # Content-Security-Policy violations: the page runs no inline script or style
    page.on("console", lambda m: page.csp.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"unexpected dialog {d.message}")))
    page.goto(env.url + "/m/")
    page.wait_for_selector("#login:not([hidden])")
    return page


def _login(page: Any, username: str) -> None:
    page.fill("#username", username)
    page.fill("#password", PW)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#list:not([hidden])")


def _logout(page: Any) -> None:
    if not page.is_visible("#list"):
        page.click("#back")
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")


def _queue(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("PhoneQueue.all().then(a => a.map(x => ({kind: x.kind, id: x.id, person: x.person,"
                         " person_name: x.person_name, refused: x.refused || null, photos: (x.photos || []).length, note: x.note || null})))")


def _accept_after_session_end(page: Any, env: Env, iid: int, username: str) -> None:
    """The person's session ends while the phone shows the case; they tap Accept: it is queued."""
    page.wait_for_selector(f'#cases li[data-id="{iid}"]')
    page.click(f'#cases li[data-id="{iid}"]')
    page.wait_for_selector("#accept:not([hidden])")
    env.end_session(username)
    page.click("#accept")
    page.wait_for_selector("#login:not([hidden])")  # the send got 401: the page asks for a login
    assert _queue(page) == [{"kind": "accept", "id": iid, "person": env.ids[username], "person_name": username,
                             "refused": None, "photos": 0, "note": None}]
    # the list and the case are no longer on the page
    assert page.locator("#cases li").count() == 0
    assert page.inner_text("#c-type") == "" and page.get_attribute("#c-snapshot", "src") is None


def _actions(env: Env, iid: int) -> list[tuple[str, str]]:
    return [(a["action"], a["actor"]) for a in env.order(iid)["audit"]]


def test_an_action_queued_by_one_person_is_sent_as_them_never_as_the_next_person_on_the_phone(env, browser):  # noqa: F811
    iid = env.case("east1")
    page = _phone(browser, env)
    _login(page, "east1")
    _accept_after_session_end(page, env, iid, "east1")
    line = f'#pending li.other[data-person="{env.ids["east1"]}"]'
    page.wait_for_selector(line)  # waiting for east1, shown on the login form too
    assert page.inner_text(line).startswith("1 action(s) of east1 wait for east1 to log in again")
    assert page.locator(f"{line} button.discard").count() == 0  # nobody logged in: nothing to discard with

    # east3 picks up the same duty phone
    _login(page, "east3")
    page.wait_for_timeout(6500)  # the login's flush and one 5 s round
    assert "accept" not in [a for a, _ in _actions(env, iid)]  # not sent as east3
    assert env.order(iid)["state"] == "dispatched"
    assert [(q["person"], q["refused"]) for q in _queue(page)] == [(env.ids["east1"], None)]  # not tried, not dropped by a 404
    assert page.inner_text(line).startswith("1 action(s) of east1 wait for east1 to log in again")
    assert page.is_hidden("#pending-own")
    # east3 starts to discard it, then keeps it: nothing goes without the confirmation
    page.click(f"{line} button.discard")
    page.wait_for_selector("#confirm:not([hidden])")
    assert "Discard 1 action(s) of east1?" in page.inner_text("#confirm-text")
    assert len(_queue(page)) == 1
    page.click("#confirm-no")
    page.wait_for_selector("#confirm", state="hidden")
    assert len(_queue(page)) == 1

    # east3 logs out: the list is cleared from the page; east1's action stays
    _logout(page)
    assert page.locator("#cases li").count() == 0
    assert len(_queue(page)) == 1

    # east1 logs in again: the action is sent, as east1
    _login(page, "east1")
    wait_until(lambda: env.order(iid)["state"] == "accepted", timeout=20)
    accepts = [actor for action, actor in _actions(env, iid) if action == "accept"]
    assert len(accepts) == 1 and "east1" in accepts[0] and "east3" not in accepts[0], accepts
    wait_until(lambda: _queue(page) == [], timeout=10)
    page.wait_for_selector("#pending", state="hidden")
    # what the page showed was text, never markup
    assert page.evaluate("document.querySelectorAll('#pending img, #cases img').length") == 0
    assert page.csp == []
    page.context.close()


def test_a_refused_action_is_shown_to_its_person_with_the_reason_and_removed_only_when_confirmed(env, browser, tmp_path):  # noqa: F811
    iid = env.case("east1")
    photo = tmp_path / "cleared.jpg"
    photo.write_bytes(jpeg_with_exif((1200, 900), color=(30, 120, 200)))
    page = _phone(browser, env)
    _login(page, "east1")
    page.click(f'#cases li[data-id="{iid}"]')
    page.click("#accept")
    wait_until(lambda: env.order(iid)["state"] == "accepted", timeout=15)
    page.wait_for_selector("#handle:not([hidden])")
    # east1 marks it handled with a note and a photo while offline; then the session ends
    page.set_input_files("#shots", str(photo))
    page.wait_for_selector("#shot-previews img")
    page.fill("#note", "bins emptied")
    page.context.set_offline(True)
    page.click("#handled")
    page.wait_for_selector("#pending-own:not([hidden])")
    env.end_session("east1")
    page.context.set_offline(False)
    page.wait_for_selector("#login:not([hidden])", timeout=15000)
    queued = _queue(page)
    assert [(q["kind"], q["person_name"], q["photos"], q["note"]) for q in queued] == [("handle", "east1", 1, "bins emptied")]

    # the case goes to east3 meanwhile; east3 logs in on the phone and cannot see it
    r = env.admin.post(f"/workorders/{iid}/assign", json={"assignee": env.ids["east3"]})
    assert r.status_code == 200, r.text
    _login(page, "east3")
    page.wait_for_timeout(1500)
    assert len(_queue(page)) == 1 and _queue(page)[0]["refused"] is None  # not sent by east3's session: no 404 drop
    _logout(page)

    # east1 logs in again: the server refuses east1's handle for good (404): shown with the reason, kept
    _login(page, "east1")
    refused = "#pending li.refused"
    page.wait_for_selector(refused, timeout=15000)
    text = page.inner_text(refused)
    assert "Not done: Mark handled" in text and f"#{iid}" in text and "404" in text and "bins emptied" in text, text
    queued = _queue(page)
    assert len(queued) == 1 and queued[0]["refused"]["status"] == 404 and queued[0]["photos"] == 1
    assert env.order(iid)["state"] == "accepted" and "handle" not in [a for a, _ in _actions(env, iid)]
    page.wait_for_timeout(5500)  # a refused action is not sent again
    assert len(_queue(page)) == 1
    # removing it asks first; only the confirmation removes it (and its photo)
    page.click(f"{refused} button.discard")
    page.wait_for_selector("#confirm:not([hidden])")
    assert len(_queue(page)) == 1
    page.click("#confirm-yes")
    wait_until(lambda: _queue(page) == [], timeout=5)
    page.wait_for_selector("#pending", state="hidden")
    assert page.csp == []
    page.context.close()


def test_another_persons_waiting_action_is_discarded_only_after_the_confirmation(env, browser):  # noqa: F811
    iid = env.case("east1")
    page = _phone(browser, env)
    _login(page, "east1")
    _accept_after_session_end(page, env, iid, "east1")
    _login(page, "east3")
    line = f'#pending li.other[data-person="{env.ids["east1"]}"]'
    page.click(f"{line} button.discard")
    page.wait_for_selector("#confirm:not([hidden])")
    assert len(_queue(page)) == 1  # asked, not yet discarded
    page.click("#confirm-yes")
    wait_until(lambda: _queue(page) == [], timeout=5)
    page.wait_for_selector("#pending", state="hidden")
    _logout(page)
    _login(page, "east1")
    page.wait_for_timeout(1500)
    assert env.order(iid)["state"] == "dispatched"  # discarded: never sent
    assert page.csp == []
    page.context.close()
