"""The console in a real browser (Debian's Chromium via Playwright) against the real service:
real RTSP cameras, the real default model, uvicorn on a free port.

* the wall shows a live tile whose picture keeps changing; zh/en switch and stick;
* zones, a counting line and a directed lane drawn with the mouse are saved and applied
  (GET /cameras shows them); a vertex drag moves the saved polygon;
* the incident the new zone raises appears in the queue without a reload and is closed
  through the UI (dispatch → accept → handle → close);
* the patrol button starts a plan and its progress moves; stop stops it;
* a viewer is offered neither the editor nor patrol control nor case actions.

Screenshots go to ``$GRIDWORKER_SCREENSHOTS`` (e.g. ``docs/img``) when set, else to tmp.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.rtsp, pytest.mark.model]


def save_shot(page: Any, tmp_path: Path, name: str) -> Path:
    """A PNG of the page, in 256 colours (docs screenshots stay under 300 KB)."""
    from PIL import Image

    target = Path(os.environ.get("GRIDWORKER_SCREENSHOTS") or tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), type="png")
    Image.open(target).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target


def open_console(browser: Any, live: Any, role: str, *, lang: str | None = None, size: tuple[int, int] = (1600, 900)) -> Any:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the console runs under a strict Content-Security-Policy: any violation is an error too
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None)
    page.errors = errors
    page.goto(live.url + "/")
    if lang:
        page.evaluate(f"localStorage.setItem('gw.lang', '{lang}')")
        page.reload()
    page.fill("#login-key", live.keys[role])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#monitor:not([hidden])")
    page.evaluate("window.__noReload = 1")
    return page


def click_at(page: Any, points: list[tuple[float, float]]) -> None:
    box = page.locator("#ed-svg").bounding_box()
    for x, y in points:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
        time.sleep(0.05)


def draw_shape(page: Any, tool: str, points: list[tuple[float, float]], shape_id: str) -> None:
    """Draw a shape with the editor's ``tool`` through ``points`` (fractions of the frame), close it
    with Enter and give it ``shape_id``."""
    page.click(f'.tool[data-tool="{tool}"]')
    click_at(page, points)
    page.keyboard.press("Enter")
    page.fill("#ed-props input[name=id]", shape_id)


def test_wall_shows_a_live_tile_and_switches_language(console_server, browser, tmp_path):
    page = open_console(browser, console_server, "viewer")
    tile = page.locator('.tile[data-camera="bus-stop"]')
    tile.wait_for()
    page.wait_for_function("() => document.querySelector('.tile[data-camera=\"bus-stop\"] img').naturalWidth > 0", timeout=20_000)
    first = tile.locator("img").get_attribute("src")
    assert first.startswith("blob:")  # fetched with the key in a header, not in the URL
    page.wait_for_function(
        f"() => document.querySelector('.tile[data-camera=\"bus-stop\"] img').src !== '{first}'", timeout=10_000
    )
    size = page.evaluate("(() => { const i = document.querySelector('.tile[data-camera=\"bus-stop\"] img'); return [i.naturalWidth, i.naturalHeight]; })()")
    assert size == [810, 1080]  # bus.jpg, annotated
    assert tile.get_attribute("data-health") == "live"
    assert tile.locator(".health").inner_text() == "在线"  # Chinese by default
    # zh → en, remembered across a reload
    page.click("#lang")
    assert tile.locator(".health").inner_text() == "live"
    assert page.locator("h1").inner_text() == "AI grid worker · Command centre"
    page.reload()  # the key is kept for the tab (sessionStorage): no login again
    page.wait_for_selector('.tile[data-camera="bus-stop"] .health.live')
    assert page.locator('.tile[data-camera="bus-stop"] .health').inner_text() == "live"
    # a viewer may look, not act: no editor, no patrol button
    assert page.locator('[data-view="editor"]').is_hidden()
    page.wait_for_selector('.plan[data-plan="schools"]')
    assert page.locator('.plan[data-plan="schools"] button').count() == 0
    # click to enlarge
    tile.click()
    page.wait_for_function("() => document.querySelector('#zoom').open && document.querySelector('#zoom-img').naturalWidth > 0")
    page.keyboard.press("Escape")
    assert page.errors == []
    page.context.close()


def test_draw_save_incident_and_close_it(console_server, browser, tmp_path):
    live = console_server
    page = open_console(browser, live, "supervisor")
    page.click('[data-view="editor"]')
    page.wait_for_selector("#ed-camera option[value='bus-stop']", state="attached")
    page.select_option("#ed-camera", "bus-stop")
    page.wait_for_selector('#editor[data-camera="bus-stop"]', state="attached", timeout=20_000)
    assert page.evaluate("document.querySelector('#ed-frame').naturalWidth") > 0

    # a polygon zone over the pavement, closed with Enter
    draw_shape(page, "polygon", [(0.02, 0.45), (0.98, 0.45), (0.98, 0.99), (0.02, 0.99)], "walkway")
    page.select_option("#ed-props select[name=add-rule-type]", "intrusion")
    page.click("#ed-props button[name=add-rule]")
    fs = page.locator('#ed-props fieldset[data-rule="intrusion"]')
    fs.locator("input[name=min_duration_s]").fill("0")
    fs.locator("input[name=clear_after_s]").fill("30")
    # a counting line: two clicks
    page.click('.tool[data-tool="line"]')
    click_at(page, [(0.1, 0.3), (0.9, 0.3)])
    # a directed lane: polygon, Enter, then the arrow (downwards)
    page.click('.tool[data-tool="lane"]')
    click_at(page, [(0.3, 0.05), (0.6, 0.05), (0.6, 0.35)])
    page.keyboard.press("Enter")
    click_at(page, [(0.45, 0.1), (0.45, 0.3)])
    # move the lane's third vertex by dragging its handle
    page.click('.tool[data-tool="select"]')
    handle = page.locator('#ed-svg circle[data-handle="2"]')
    hb = handle.bounding_box()
    box = page.locator("#ed-svg").bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.4 * box["height"], steps=5)
    page.mouse.up()
    save_shot(page, tmp_path, "console-editor.png")
    page.click("#ed-save")
    page.wait_for_selector("#ed-status.ok", timeout=10_000)

    cam = live.client("viewer").get("/cameras/bus-stop").json()
    zones = {z["id"]: z for z in cam["zones"]}
    assert set(zones) == {"walkway", "lane-1"}
    assert [r["type"] for r in zones["walkway"]["rules"]] == ["intrusion"]
    assert zones["walkway"]["rules"][0]["min_duration_s"] == 0
    x0, y0 = zones["walkway"]["polygon"][0]
    assert abs(x0 - 0.02) < 0.01 and abs(y0 - 0.45) < 0.01
    lane = zones["lane-1"]
    assert lane["rules"][0]["type"] == "wrong_way"
    dx, dy = lane["rules"][0]["direction"]
    assert abs(dx) < 0.05 and dy > 0.99  # drawn downwards
    moved = lane["polygon"][2]
    assert abs(moved[0] - 0.3) < 0.01 and abs(moved[1] - 0.4) < 0.01  # the dragged vertex
    assert [(ln["id"], len(ln["points"])) for ln in cam["lines"]] == [("line-1", 2)]
    # the config-file camera keeps the edit until restart and the console says so
    assert "重启" in page.locator("#ed-status").inner_text()

    # the zone raises an intrusion; it appears in the queue without a reload
    page.click('[data-view="monitor"]')
    row = page.locator('#queue li[data-type="intrusion"]').first
    row.wait_for(timeout=30_000)
    assert page.evaluate("window.__noReload") == 1
    page.wait_for_selector('.tile[data-camera="bus-stop"].alert', timeout=10_000)
    page.wait_for_function("() => document.querySelector('#queue li[data-type=\"intrusion\"] img')?.naturalWidth > 0", timeout=10_000)
    save_shot(page, tmp_path, "console-wall.png")
    incident_id = int(row.get_attribute("data-incident"))

    # close it through the UI: dispatch → accept → handle (with a note) → close
    row.click()
    page.wait_for_selector("#detail[open] #detail-state")
    page.wait_for_function("() => document.querySelector('#detail img')?.naturalWidth > 0")
    for action, state in (("dispatch", "dispatched"), ("accept", "accepted"), ("handle", "handled"), ("close", "closed")):
        if action == "handle":
            page.fill("#act-note", "people moved on")
        page.click(f'#detail button[data-act="{action}"]')
        page.wait_for_selector(f'#detail-state[data-state="{state}"]', timeout=10_000)
    assert page.locator("#detail button[data-act]").count() == 0  # nothing left to do on a closed case
    order = live.client("viewer").get(f"/workorders/{incident_id}").json()
    assert order["state"] == "closed"
    assert [a["action"] for a in order["audit"]][-4:] == ["dispatch", "accept", "handle", "close"]
    assert page.locator('#detail tr[data-action="close"]').count() == 1  # the history shows it
    # the queue row follows
    page.keyboard.press("Escape")
    page.wait_for_selector(f'#queue li[data-incident="{incident_id}"][data-state="closed"]')
    assert page.errors == []
    page.context.close()


def test_case_clip_boxes_the_objects_that_triggered_it(console_server, browser):
    """The evidence clip plays with the triggering objects boxed in the trigger colour over
    it (the stored track boxes drawn on a canvas; the clip itself is the camera's video)."""
    live = console_server
    viewer = live.client("viewer")
    zones = [{"id": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
              "rules": [{"type": "intrusion", "classes": ["bus"], "min_duration_s": 0, "clear_after_s": 600}]}]
    assert live.client("supervisor").put("/cameras/bus-stop/scene", json={"zones": zones}).status_code == 200

    def with_tracks():
        for inc in viewer.get("/incidents", params={"camera_id": "bus-stop", "limit": 20}).json()["items"]:
            if inc["has_clip"] and inc["zone_id"] == "all":  # this test's bus, not an earlier test's walkway
                r = viewer.get(f"/incidents/{inc['id']}/clip/tracks")
                if r.status_code == 200 and r.json()["frames"]:
                    return inc["id"], r.json()
        return None

    incident_id, tracks = wait_until(with_tracks, timeout=60, interval=0.5)
    page = open_console(browser, live, "viewer")
    page.click(f'#queue li[data-incident="{incident_id}"]')
    page.wait_for_selector("#detail[open] .trackview video")
    page.wait_for_function("() => document.querySelector('.trackview video').readyState >= 2", timeout=20_000)
    page.wait_for_function(f"() => document.querySelector('canvas.tracks').dataset.frames === '{len(tracks['frames'])}'", timeout=10_000)
    # play it: the boxes follow the playing time (the bus stands in every analysed frame)
    page.evaluate("document.querySelector('.trackview video').play()")
    page.wait_for_function("() => Number(document.querySelector('canvas.tracks').dataset.boxes) > 0", timeout=20_000)
    # the browser decoded the clip past its first picture (a clip cut from a session's first
    # seconds once held that picture twice, and Chromium stopped there)
    assert page.evaluate("document.querySelector('.trackview video').error") is None
    page.evaluate("document.querySelector('.trackview video').pause()")
    page.wait_for_function("() => document.querySelector('.trackview video').paused")
    red = page.evaluate(
        """() => { const c = document.querySelector('canvas.tracks');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                   for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 60 && d[i + 2] < 60 && d[i + 3] > 200) n++;
                   return n; }"""
    )
    assert red > 100, "the trigger is drawn in red over the clip"
    assert page.errors == []
    page.context.close()
    assert live.client("supervisor").put("/cameras/bus-stop/scene", json={"zones": []}).status_code == 200


def test_patrol_button_starts_a_plan_and_progress_moves(console_server, browser):
    live = console_server
    page = open_console(browser, live, "operator")
    plan = page.locator('.plan[data-plan="schools"]')
    plan.wait_for()
    assert page.locator('[data-view="editor"]').is_hidden()  # operators don't edit zones
    plan.locator('button[data-action="start"]').click()
    page.wait_for_selector('.plan[data-plan="schools"][data-state="running"], .plan[data-plan="schools"][data-state="waiting"]')
    first = plan.locator(".counts").inner_text()
    wait_until(lambda: plan.locator(".counts").inner_text() != first, timeout=20)
    status = wait_until(lambda: (s := live.client("viewer").get("/patrol/plans/schools").json()["status"])["visits_total"] >= 2 and s, timeout=30)
    assert status["state"] in ("running", "waiting")
    plan.locator('button[data-action="stop"]').click()
    page.wait_for_selector('.plan[data-plan="schools"][data-state="stopped"]', timeout=15_000)
    assert live.client("viewer").get("/patrol/plans/schools").json()["status"]["state"] == "stopped"
    assert page.errors == []
    page.context.close()


def test_viewer_gets_no_case_actions(console_server, browser):
    live = console_server
    admin = live.client("admin")
    scene = {k: admin.get("/cameras/bus-stop").json()[k] for k in ("zones", "masks", "lines", "signals", "calibration")}
    scene["zones"].append({"id": "viewer-zone", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]], "rules": [{"type": "intrusion"}]})
    assert admin.put("/cameras/bus-stop/scene", json=scene).status_code == 200
    page = open_console(browser, live, "viewer")
    case = wait_until(lambda: [o for o in admin.get("/workorders").json()["items"] if o["state"] == "detected"], timeout=30)[0]
    row = page.locator(f'#queue li[data-incident="{case["incident_id"]}"]')
    row.wait_for(timeout=15_000)
    row.click()
    page.wait_for_selector("#detail[open] #detail-state")
    assert page.locator("#detail button[data-act]").count() == 0
    assert live.client("operator").get("/auth/me").json()["actions"]["dispatch"]  # an operator would get buttons
    page.context.close()
