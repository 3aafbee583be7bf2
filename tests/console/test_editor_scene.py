"""The zone editor beyond zones (operator report, issue 17), in Debian's Chromium against the
real service: signal heads and the ground-plane calibration (four points with their metres)
are drawn, edited, saved and read back; a vertex is inserted on an edge by dragging its
midpoint; and the unit-handler role gets what it may do (its unit's queue and case actions),
not the editor, which the API refuses it too.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gridworker.api.auth import create_key
from tests.console.test_console import click_at, draw_shape, open_console

pytestmark = [pytest.mark.browser, pytest.mark.rtsp, pytest.mark.model]

GROUND = [[0.0, 0.0], [3.5, 0.0], [3.5, 30.0], [0.0, 30.0]]


def _drag(page: Any, selector: str, to: tuple[float, float]) -> None:
    hb = page.locator(selector).bounding_box()
    box = page.locator("#ed-svg").bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + to[0] * box["width"], box["y"] + to[1] * box["height"], steps=5)
    page.mouse.up()


def _open_editor(page: Any, camera: str) -> None:
    page.click('[data-view="editor"]')
    page.wait_for_selector(f"#ed-camera option[value='{camera}']", state="attached")
    page.select_option("#ed-camera", camera)
    page.wait_for_selector(f'#editor[data-camera="{camera}"]', state="attached", timeout=20_000)


def test_signals_calibration_and_a_vertex_on_an_edge(console_server, browser):
    live = console_server
    admin = live.client("admin")
    original = {k: admin.get("/cameras/bus-stop").json()[k] for k in ("zones", "masks", "lines", "signals", "calibration")}
    page = open_console(browser, live, "supervisor", lang="en")
    try:
        _open_editor(page, "bus-stop")

        # a triangle zone with a speeding rule (which needs the calibration below)
        draw_shape(page, "polygon", [(0.1, 0.5), (0.9, 0.5), (0.5, 0.9)], "road")
        page.select_option("#ed-props select[name=add-rule-type]", "speeding")
        page.click("#ed-props button[name=add-rule]")
        page.locator('#ed-props fieldset[data-rule="speeding"] input[name=max_speed_kmh]').fill("40")
        # a vertex on the top edge: drag its midpoint up
        page.click('.tool[data-tool="select"]')
        assert page.locator("#ed-svg circle.mid").count() == 3 and page.locator("#ed-svg circle.handle").count() == 3
        _drag(page, '#ed-svg circle.mid[data-mid="0"]', (0.5, 0.4))
        assert page.locator("#ed-svg circle.handle").count() == 4

        # a signal head read from the image, with its hold time
        draw_shape(page, "signal", [(0.05, 0.05), (0.15, 0.05), (0.1, 0.15)], "s1")
        page.fill("#ed-props input[name=hold_s]", "2")

        # the calibration: four clicks, then the metres; saving without them is refused in words
        page.click('.tool[data-tool="calibration"]')
        click_at(page, [(0.2, 0.6), (0.8, 0.6), (0.9, 0.95), (0.1, 0.95)])
        page.wait_for_selector("#ed-props table.cal")
        assert page.locator("#ed-props table.cal tr[data-point]").count() == 4
        page.click("#ed-save")
        page.wait_for_selector("#ed-status.err")
        assert "metres" in page.locator("#ed-status").inner_text()
        for i, (x, y) in enumerate(GROUND):
            page.fill(f"#ed-props input[name=ground-{i}-x]", str(x))
            page.fill(f"#ed-props input[name=ground-{i}-y]", str(y))

        # a signal pushed by a controller: no region, listed when nothing is selected
        page.click('.tool[data-tool="select"]')
        click_at(page, [(0.97, 0.25)])  # empty picture: nothing selected
        page.fill("#ed-props input[name=api-signal-id]", "ctrl-1")
        page.click("#ed-props button[name=add-api-signal]")
        page.wait_for_selector('#ed-props li[data-signal="ctrl-1"]')

        page.click("#ed-save")
        page.wait_for_selector("#ed-status.ok", timeout=10_000)
        cam = admin.get("/cameras/bus-stop").json()
        (road,) = cam["zones"]
        assert road["id"] == "road" and len(road["polygon"]) == 4 and [r["type"] for r in road["rules"]] == ["speeding"]
        inserted = road["polygon"][1]
        assert abs(inserted[0] - 0.5) < 0.01 and abs(inserted[1] - 0.4) < 0.01, road["polygon"]
        signals = {s["id"]: s for s in cam["signals"]}
        assert set(signals) == {"s1", "ctrl-1"}
        assert signals["s1"]["source"] == "image" and len(signals["s1"]["region"]) == 3 and signals["s1"]["hold_s"] == 2
        assert signals["ctrl-1"]["source"] == "api" and signals["ctrl-1"]["region"] is None
        cal = cam["calibration"]
        assert cal["ground"] == GROUND
        for got, want in zip(cal["image"], [(0.2, 0.6), (0.8, 0.6), (0.9, 0.95), (0.1, 0.95)], strict=True):
            assert abs(got[0] - want[0]) < 0.01 and abs(got[1] - want[1]) < 0.01

        # read back from the service (Discard reloads the saved scene), then edit the calibration's metres
        page.evaluate("document.querySelectorAll('#ed-svg polygon').forEach((p) => { p.dataset.stale = '1'; })")
        page.click("#ed-revert")
        page.wait_for_selector('#editor[data-camera="bus-stop"] #ed-svg polygon[data-kind="calibration"]:not([data-stale])')
        assert page.locator('#ed-svg polygon[data-kind="signal"][data-id="s1"]').count() == 1
        assert page.locator('#ed-props li[data-signal="ctrl-1"]').count() == 1
        click_at(page, [(0.5, 0.93)])  # inside the calibration quadrilateral, below the zone
        page.wait_for_selector("#ed-props table.cal")
        assert page.locator("#ed-props input[name=ground-2-y]").input_value() == "30"
        page.fill("#ed-props input[name=ground-2-y]", "40")
        page.fill("#ed-props input[name=ground-3-y]", "40")
        page.click("#ed-save")
        page.wait_for_selector("#ed-status.ok", timeout=10_000)
        assert admin.get("/cameras/bus-stop").json()["calibration"]["ground"] == [[0.0, 0.0], [3.5, 0.0], [3.5, 40.0], [0.0, 40.0]]
        assert page.errors == []
    finally:
        page.context.close()
        admin.put("/cameras/bus-stop/scene", json=original)


def test_unit_handler_gets_its_cases_not_the_editor(console_server, browser):
    live = console_server
    service = live.service
    _, key = create_key(service.keys, name="grid 3", role="unit_handler", unit="community-grid")
    live.keys["unit_handler"] = key
    # a case for the handler's unit, dispatched there by an operator
    inc = service.store.open(
        camera_id="bus-stop", camera_name="Bus stop", site="transport hub", zone_id="kerb", rule_id="dwell", type="dwell",
        at=time.time(), count=1, summary="stationary object: bus #1 for 20 s", details={}, snapshot=None,
    )
    service.workorders.on_incident_opened(inc)
    assert live.client("operator").post(f"/workorders/{inc.id}/dispatch", json={"unit": "community-grid"}).status_code == 200

    page = open_console(browser, live, "unit_handler", lang="en")
    try:
        me = live.client("unit_handler").get("/auth/me").json()
        assert me["role"] == "unit_handler" and me["may"]["edit_scene"] is False
        # no editor tab, no wall, no patrol: the queue of the unit's cases
        assert page.locator('[data-view="editor"]').is_hidden()
        assert page.locator(".wall-panel").is_hidden() and page.locator("#patrol-panel").is_hidden()
        row = page.locator(f'#queue li[data-incident="{inc.id}"]')
        row.wait_for(timeout=15_000)
        row.click()
        page.wait_for_selector("#detail[open] #detail-state")
        offered = sorted(page.locator("#detail button[data-act]").evaluate_all("bs => bs.map(b => b.dataset.act)"))
        assert offered == ["accept"], offered  # dispatch, close, escalate are not theirs
        page.click('#detail button[data-act="accept"]')
        page.wait_for_selector('#detail-state[data-state="accepted"]', timeout=10_000)
        page.fill("#act-note", "bus moved on")
        page.click('#detail button[data-act="handle"]')
        page.wait_for_selector('#detail-state[data-state="handled"]', timeout=10_000)
        assert page.errors == []
    finally:
        page.context.close()
    # what the console hides, the API refuses
    handler = live.client("unit_handler")
    scene = {k: live.client("admin").get("/cameras/bus-stop").json()[k] for k in ("zones", "masks", "lines", "signals", "calibration")}
    assert handler.put("/cameras/bus-stop/scene", json={**scene, "zones": []}).status_code == 403
