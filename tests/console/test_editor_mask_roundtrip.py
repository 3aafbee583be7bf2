"""The zone editor saves what it did not edit as it read it (Debian's Chromium against the real
service): a mask's ``by``/``min_overlap`` survive a save, and so do the camera's filters and
riders, which the editor does not send."""

from __future__ import annotations

import pytest

from tests.console.test_console import draw_shape, open_console
from tests.console.test_editor_scene import _open_editor

pytestmark = [pytest.mark.browser, pytest.mark.rtsp, pytest.mark.model]

OSD = {"id": "osd-clock", "polygon": [[0.0, 0.0], [0.4, 0.0], [0.4, 0.08], [0.0, 0.08]], "by": "box", "min_overlap": 0.3}
SKY = {"id": "sky", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 0.2]]}  # ground_point, the default


def test_a_save_keeps_mask_fields_filters_and_riders(console_server, browser):
    admin = console_server.client("admin")
    original = {k: v for k, v in admin.get("/cameras/bus-stop").json().items() if k in ("zones", "masks", "lines", "signals", "calibration", "filters", "riders")}
    tuned = {"masks": [OSD, SKY], "filters": {"confirm": {"hits": 3, "frames": 5}, "min_confidence": {"person": 0.6}}, "riders": {"enabled": False}}
    assert admin.put("/cameras/bus-stop/scene", json=tuned).status_code == 200
    page = open_console(browser, console_server, "supervisor", lang="en")
    try:
        _open_editor(page, "bus-stop")
        assert page.locator('#ed-svg polygon[data-kind="mask"]').count() == 2
        draw_shape(page, "polygon", [(0.1, 0.5), (0.9, 0.5), (0.5, 0.9)], "road")  # an edit, then save
        page.click("#ed-save")
        page.wait_for_selector("#ed-status.ok", timeout=10_000)
        cam = admin.get("/cameras/bus-stop").json()
        assert [z["id"] for z in cam["zones"]] == ["road"]
        masks = {m["id"]: m for m in cam["masks"]}
        assert masks["osd-clock"]["by"] == "box" and masks["osd-clock"]["min_overlap"] == 0.3, masks
        assert masks["sky"]["by"] == "ground_point" and masks["sky"]["min_overlap"] == 0.5
        assert cam["filters"]["confirm"] == {"hits": 3, "frames": 5} and cam["filters"]["min_confidence"] == {"person": 0.6}
        assert cam["riders"]["enabled"] is False
        assert page.errors == []
    finally:
        page.context.close()
        assert admin.put("/cameras/bus-stop/scene", json=original).status_code == 200
