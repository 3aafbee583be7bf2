"""The demo's printed tour, walked in Debian's Chromium against ``gridworker demo`` run as a
child process (the README's command): the wall fills with the continuous and the key-site
cameras; 开始轮巡 starts the patrol and its progress moves over the key sites; a case opens with
its snapshot and its evidence clip playing; a dispatch from the console reaches the demo's
webhook receiver, whose count rises. Ctrl-C stops the demo cleanly.

With ``GRIDWORKER_SCREENSHOTS=docs/img`` it also takes the README's three screenshots
(``demo-wall.png``, ``demo-patrol.png``, ``demo-case.png``)::

    GRIDWORKER_SCREENSHOTS=docs/img .venv/bin/python -m pytest tests/console/test_demo_tour.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridworker.assets import opencv_doc_video, ultralytics_asset
from gridworker.demo_sites import PLAN_ID
from tests.console.test_console import save_shot
from tests.demo_process import DemoProcess
from tests.factories import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.rtsp, pytest.mark.model]


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    if os.environ.get("GRIDWORKER_SCREENSHOTS"):
        save_shot(page, tmp_path, name)


def _accepted(page: Any, receiver: str) -> int:
    page.goto(receiver + "/")
    return int(page.locator("#accepted").inner_text())


def test_walk_the_demo_tour(tmp_path, gst_rtsp, browser):
    if ultralytics_asset("bus.jpg") is None or opencv_doc_video() is None:
        pytest.skip("the demo's pictures: pip install --no-deps ultralytics (bus.jpg) and apt-get install opencv-doc")
    with DemoProcess(tmp_path / "demo") as demo:
        demo.wait_up()
        base = demo.base
        receiver = demo.printed_url("webhooks")
        assert demo.printed_url("console") == f"{base}/console"

        context = browser.new_context(viewport={"width": 1600, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None)
        page.goto(base + "/")
        page.evaluate("localStorage.setItem('gw.lang', 'en')")
        page.reload()
        page.wait_for_selector("#monitor:not([hidden])")

        # 1. the wall: 2 live cameras and the key sites
        page.wait_for_function("() => document.querySelectorAll('#wall .tile').length >= 22", timeout=20_000)
        page.wait_for_selector('.tile[data-camera="bus-stop"][data-health="live"]', timeout=30_000)

        # 3. 开始轮巡 (Start patrol): the progress moves over the key sites, the tiles visited turn purple
        plan = page.locator(f'.plan[data-plan="{PLAN_ID}"]')
        plan.wait_for()
        assert plan.locator(".counts").inner_text().startswith("visited 0/")
        # a visit is brief: record whether any tile was ever drawn as being visited (purple)
        page.evaluate(
            "() => { window.sawPatrolling = false; const wall = document.querySelector('#wall');"
            " new MutationObserver(() => { if (wall.querySelector('.tile.patrolling')) window.sawPatrolling = true; })"
            ".observe(wall, {subtree: true, attributes: true, attributeFilter: ['class'], childList: true}); }"
        )
        plan.locator('button[data-action="start"]').click()
        page.wait_for_selector(f'.plan[data-plan="{PLAN_ID}"][data-state="running"]', timeout=10_000)
        page.wait_for_function(
            f"() => {{ const b = document.querySelector('.plan[data-plan=\"{PLAN_ID}\"] .progress > div');"
            " const w = parseFloat(b?.style.width || '0'); return w >= 20 && w < 100; }",
            timeout=30_000,
        )
        if not os.environ.get("GRIDWORKER_SCREENSHOTS"):
            _shot(page, tmp_path, "demo-patrol.png")
        wait_until(lambda: httpx.get(f"{base}/patrol/plans/{PLAN_ID}").json()["status"]["completed_cycles"] >= 1, timeout=40)
        assert page.evaluate("window.sawPatrolling"), "no tile was ever shown as being visited"
        # every key site has its picture now (but the unplugged one), on standby between visits
        page.wait_for_function("() => [...document.querySelectorAll('#wall .tile')].filter((t) => !t.classList.contains('noframe')).length >= 25", timeout=15_000)
        page.wait_for_selector('.tile[data-camera="depot-yard"][data-health="offline"]', timeout=10_000)
        assert page.locator('.tile[data-health="standby"]').count() >= 20
        page.wait_for_selector('#queue li[data-type="crowd"]', timeout=30_000)
        _shot(page, tmp_path, "demo-wall.png")
        if os.environ.get("GRIDWORKER_SCREENSHOTS"):  # the README's picture: cycle 2, the tiles have pictures, revisit cases come in
            page.wait_for_function(
                f"() => {{ const p = document.querySelector('.plan[data-plan=\"{PLAN_ID}\"]');"
                " const w = parseFloat(p?.querySelector('.progress > div')?.style.width || '0');"
                " return p?.dataset.state === 'running' && w >= 25 && w < 100 && document.querySelector('.tile.patrolling:not(.noframe)'); }",
                timeout=60_000, polling=100,
            )
            _shot(page, tmp_path, "demo-patrol.png")

        # 2. a case: its snapshot and its evidence clip
        def campus_case_with_clip():
            items = httpx.get(f"{base}/incidents", params={"camera_id": "campus"}).json()["items"]
            return [i for i in items if i["has_clip"]]

        case = wait_until(campus_case_with_clip, timeout=40)[0]
        row = page.locator(f'#queue li[data-incident="{case["id"]}"]')
        row.wait_for(timeout=30_000)
        row.click()
        page.wait_for_selector("#detail[open] #detail-state")
        page.wait_for_function("() => document.querySelector('#detail .evidence img')?.naturalWidth > 0", timeout=10_000)
        # the clip loads and decodes: its length is known, and a frame shows once it is sought
        page.wait_for_function("() => (document.querySelector('#detail video')?.readyState || 0) >= 1", timeout=20_000)
        duration = page.evaluate("document.querySelector('#detail video').duration")
        assert duration > 5, f"the evidence clip is {duration} s"
        # (the dialog is drawn again when the case changes, e.g. the demo's crew dispatches it: a new <video>)
        page.wait_for_function(
            "() => { const v = document.querySelector('#detail video'); if (!v) return false;"
            " if (v.readyState >= 1 && v.currentTime < 3 && !v.seeking) v.currentTime = 4;"
            " return v.readyState >= 2 && !v.seeking && v.currentTime >= 3 && v.videoWidth > 0; }",
            timeout=20_000,
        )
        _shot(page, tmp_path, "demo-case.png")

        # 6. the webhook receiver's count rises with what the console does
        receiver_page = context.new_page()
        before = _accepted(receiver_page, receiver)
        assert before >= 1
        if page.locator('#detail button[data-act="dispatch"]').count():
            page.click('#detail button[data-act="dispatch"]')
            page.wait_for_selector('#detail-state[data-state="dispatched"]', timeout=10_000)
        wait_until(lambda: _accepted(receiver_page, receiver) > before, timeout=20)
        assert "bad signatures refused: <b id='bad'>0</b>" in receiver_page.content().replace('"', "'")
        assert errors == []
        context.close()
    assert demo.returncode == 0, demo.output[-2000:]
