"""The console in a real browser (Debian's Chromium via Playwright): a person logs in with a
username and password (no API key), sees only the case assigned to them, accepts it through
the UI (the session cookie plus the CSRF token the console sends), and logs out."""

from __future__ import annotations

import pytest

from gridworker.api.deps import wiring
from gridworker.cases.people import PersonIn
from tests.console.conftest import browser  # noqa: F401 - the headless Chromium fixture
from tests.factories import live_server, wait_until
from tests.people.conftest import EAST, PW, WEST, make_env

pytestmark = [pytest.mark.browser]


def logged_in_page(browser, url, username, password=PW):  # noqa: F811
    """A new browser context's page on the console, logged in as ``username`` (its ``errors``: page errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#login-user", username)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    return context, page


def test_a_person_logs_in_to_the_console_and_accepts_their_case(tmp_path, browser):  # noqa: F811
    env = make_env(f"sqlite:///{tmp_path / 'console.db'}")
    try:
        mine, theirs = env.dispatched(EAST, WEST)
        with live_server(env.app) as url:
            context, page = logged_in_page(browser, url, "east1", PW + "-wrong")
            errors = page.errors
            wait_until(lambda: page.inner_text("#login-error").strip() != "", timeout=10)
            page.fill("#login-user", "east1")
            page.fill("#login-password", PW)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#monitor:not([hidden])")
            assert "east1" in page.inner_text("#who")
            page.wait_for_selector(f'#queue li[data-incident="{mine}"]')
            assert page.locator(f'#queue li[data-incident="{theirs}"]').count() == 0
            page.click(f'#queue li[data-incident="{mine}"]')
            page.click('button[data-act="accept"]')
            wait_until(lambda: env.orders.get(mine).state == "accepted", timeout=15)
            actor = [a.actor for a in env.orders.audit(mine) if a.action == "accept"]
            assert actor == [f"person:{env.ids['east1']}:east1"]
            page.keyboard.press("Escape")  # close the case's dialog
            page.click("#logout")
            page.wait_for_selector("#login:not([hidden])")
            assert len(wiring(env.app).sessions) == 0  # the session really ended on the server
            assert errors == []
            context.close()
    finally:
        env.store.close()


def test_an_admin_manages_people_in_the_console(tmp_path, browser):  # noqa: F811
    env = make_env(f"sqlite:///{tmp_path / 'console.db'}")
    try:
        env.people.add([PersonIn(username="root", name="Root", role="admin", password=PW)])
        csv_file = tmp_path / "people.csv"
        csv_file.write_text("username,name,unit,area,role,password\nzhou,Zhou,community-grid,west,unit_handler,zhou-password-1\n", encoding="utf-8")
        with live_server(env.app) as url:
            context, page = logged_in_page(browser, url, "root")
            errors = page.errors
            page.wait_for_selector("#monitor:not([hidden])")
            page.click('.tab[data-view="people"]')
            page.wait_for_selector(f'#pp-table tr[data-person="{env.ids["east1"]}"]')
            page.fill("#pp-form input[name=username]", "wu")
            page.fill("#pp-form input[name=name]", "Wu")
            page.select_option("#pp-form select[name=unit]", "community-grid")
            page.fill("#pp-form input[name=area]", "east")
            page.select_option("#pp-form select[name=role]", "unit_handler")
            page.fill("#pp-form input[name=password]", "wu-password-12")
            page.click("#pp-form button[type=submit]")
            wu = wait_until(lambda: next((p for p in env.people.list()[0] if p.username == "wu"), None), timeout=10)
            assert (wu.unit, wu.area, wu.role, wu.has_password) == ("community-grid", "east", "unit_handler", True)
            page.set_input_files("#pp-csv", str(csv_file))
            wait_until(lambda: any(p.username == "zhou" for p in env.people.list()[0]), timeout=10)
            page.click(f'#pp-table button[data-toggle="{env.ids["west1"]}"]')
            wait_until(lambda: env.people.get(env.ids["west1"]).disabled, timeout=10)
            page.wait_for_selector(f'#pp-table tr[data-person="{env.ids["west1"]}"][data-disabled="1"]')
            assert errors == []
            context.close()
        # a grid worker is not offered the people view
        with live_server(env.app) as url:
            context, page = logged_in_page(browser, url, "east1")
            page.wait_for_selector("#monitor:not([hidden])")
            assert page.locator('.tab[data-view="people"]').is_hidden()
            context.close()
    finally:
        env.store.close()


def test_the_console_shows_the_login_as_soon_as_its_event_stream_is_refused(tmp_path, browser):  # noqa: F811
    """The session ends on the server (the person's sessions ended by an admin): the event stream's
    re-check closes it, the console's reconnect gets 401, and the login shows then, not at the
    queue's 30 s safety-net poll (before, the feed retried the 401 every 3 s meanwhile)."""
    import time

    env = make_env(f"sqlite:///{tmp_path / 'console.db'}")
    try:
        with live_server(env.app) as url:
            context, page = logged_in_page(browser, url, "east1")
            page.wait_for_selector("#monitor:not([hidden])")
            page.wait_for_selector('#feed-state[data-state="on"]', timeout=15_000)
            events: list[int] = []
            page.on("response", lambda r: events.append(r.status) if "/events" in r.url else None)
            ended_at = time.monotonic()  # within a few seconds of the queue's first poll: the next is ~30 s away
            assert wiring(env.app).sessions.end_person(env.ids["east1"]) == 1
            page.wait_for_selector("#login:not([hidden])", timeout=25_000)
            took = time.monotonic() - ended_at
            assert took < 15, took  # the stream's re-check (5 s) + the reconnect delay (3 s), not the 30 s poll
            assert page.inner_text("#login-error").strip() != ""  # "your session has ended"
            time.sleep(4)  # longer than the feed's reconnect delay
            assert events.count(401) == 1  # refused once, then no more tries
            assert page.errors == []
            context.close()
    finally:
        env.store.close()
