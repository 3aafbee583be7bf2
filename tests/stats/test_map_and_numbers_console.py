"""The console's map and statistics views in Debian's Chromium (Playwright) against a real
service: patrol-only cameras with positions (no stream is opened), cases opened through the
real work-order store (positions from their cameras or from a report's details).

* the map with a local tile server (PNG tiles generated with Pillow, served over HTTP on
  another origin): tiles load (the CSP admits that origin), cameras and case markers are
  drawn, dense cases cluster, a click on a case opens it;
* the map with no tile server: the plain degree grid and the area/site outlines, no tile
  image requested anywhere;
* the statistics page shows the numbers ``GET /stats/cases`` gives for the same query, and
  its CSV export downloads.

Screenshots go to ``$GRIDWORKER_SCREENSHOTS`` (e.g. ``docs/img``) when set.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.console.conftest import browser  # noqa: F401  (the fixture)
from tests.console.test_console import open_console as console_page, save_shot
from tests.factories import ParkedCarDetector, live_server, wait_until
from tests.streams.live_servers import ServedHttp

pytestmark = [pytest.mark.browser]

CENTRE = (121.4737, 31.2304)  # lon, lat
CAMERAS: list[dict[str, Any]] = [
    {"id": "gate-east", "name": "East gate", "site": "school", "dlon": 0.0, "dlat": 0.0},
    {"id": "gate-west", "name": "West gate", "site": "school", "dlon": -0.004, "dlat": 0.001},
    {"id": "market-1", "name": "Market", "site": "market", "dlon": 0.012, "dlat": -0.006},
]
AREA = {"id": "grid-7", "name": "第七网格", "polygon": [[121.465, 31.225], [121.49, 31.225], [121.49, 31.24], [121.465, 31.24]]}


class TileServer(ServedHttp):
    """XYZ tiles generated with Pillow: /{z}/{x}/{y}.png, a 256 px square whose colour follows
    the tile; counts the tiles served."""

    def __init__(self) -> None:
        self.served: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                from PIL import Image, ImageDraw

                parts = self.path.strip("/").removesuffix(".png").split("/")
                if len(parts) != 3 or not all(p.isdigit() for p in parts):
                    self.send_error(404)
                    return
                z, x, y = (int(p) for p in parts)
                img = Image.new("RGB", (256, 256), (40 + (x * 37) % 120, 60 + (y * 53) % 120, 90 + z * 5 % 100))
                draw = ImageDraw.Draw(img)
                draw.rectangle((0, 0, 255, 255), outline=(230, 230, 230))
                draw.text((8, 8), f"{z}/{x}/{y}", fill=(255, 255, 255))
                buf = io.BytesIO()
                img.save(buf, "PNG")
                body = buf.getvalue()
                owner.served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, "tiles")
        self.url = self.base


class Live:
    def __init__(self, url: str, service: Service, keys: dict[str, str]) -> None:
        self.url, self.service, self.keys = url, service, keys

    def client(self, role: str = "viewer") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=10)


@contextmanager
def serve(tmp_path: Path, tiles_url: str | None) -> Iterator[Live]:
    lon0, lat0 = CENTRE
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'map.db'}"},
        cameras=[
            {"id": c["id"], "name": c["name"], "site": c["site"], "url": "rtsp://127.0.0.1:9/none", "watch": "patrol",
             "position": {"lon": lon0 + c["dlon"], "lat": lat0 + c["dlat"]}}
            for c in CAMERAS
        ],
        areas=[AREA],
        console={"map": {"tiles_url": tiles_url, "attribution": "test tiles <b>not html</b>"}} if tiles_url else {},
    )
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for role in ("admin", "viewer"):
        _, keys[role] = create_key(service.keys, name=f"{role}-map", role=role)
    with live_server(create_app(lambda: service), start_timeout_s=60) as url:
        yield Live(url, service, keys)


def open_case(service: Service, camera_id: str, type_: str = "illegal_parking", at: float | None = None, position: dict | None = None) -> int:
    inc = service.store.open(
        camera_id=camera_id, camera_name=camera_id, site="school", zone_id="kerb", rule_id="r1", type=type_,
        at=time.time() if at is None else at, count=1, summary="seen", details={"position": position} if position else {}, snapshot=None,
    )
    order = service.workorders.on_incident_opened(inc)
    assert order is not None
    return order.incident_id


def open_console(browser: Any, live: Live) -> Any:
    """The console in English, logged in as a viewer (the console tests' helper)."""
    return console_page(browser, live, "viewer", lang="en", size=(1500, 900))


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    if os.environ.get("GRIDWORKER_SCREENSHOTS"):
        save_shot(page, tmp_path, name)


def test_map_with_a_tile_server_shows_tiles_markers_clusters_and_opens_a_case(tmp_path, browser):
    with TileServer() as tiles, serve(tmp_path, tiles.url + "/{z}/{x}/{y}.png") as live:
        s = live.service
        first = open_case(s, "gate-east", "illegal_parking")
        open_case(s, "market-1", "street_vending")
        reported = open_case(s, "report", "garbage_overflow", position={"lon": CENTRE[0] - 0.008, "lat": CENTRE[1] - 0.004})
        for _ in range(25):  # a crowd of reports at one corner: clustered
            open_case(s, "report", "crowd", position={"lon": CENTRE[0] + 0.006, "lat": CENTRE[1] + 0.006})
        api = live.client().get("/map").json()
        assert api["basemap"]["tiles_url"].startswith(tiles.url) and len(api["cameras"]) == 3 and len(api["cases"]) == 28
        assert {c["incident_id"] for c in api["cases"]} >= {first, reported}
        assert live.client().get("/map").headers["content-security-policy"].count(tiles.url) == 1

        page = open_console(browser, live)
        page.click('.tab[data-view="map"]')
        page.wait_for_selector("#map-canvas img.leaflet-tile-loaded", timeout=20_000)
        assert tiles.served and all(p.endswith(".png") for p in tiles.served)
        page.wait_for_selector(f'.case-marker[data-incident="{first}"]', timeout=10_000)
        assert page.locator(".cam-marker").count() == 3
        assert page.locator('.cam-marker[data-camera="gate-east"]').count() == 1
        assert page.locator(".marker-cluster").count() >= 1  # the 25 reports at one spot
        assert page.locator(".case-marker").count() < 28
        assert page.locator(".area-outline").count() == 1 and page.locator(".site-outline").count() == 2
        # the configured attribution is text, not markup
        assert "test tiles <b>not html</b>" in page.locator(".leaflet-control-attribution").inner_text()
        _shot(page, tmp_path, "map-tiles.png")
        page.click(f'.case-marker[data-incident="{first}"]')
        page.wait_for_selector("#detail[open]")
        assert f"#{first}" in page.locator("#detail h2").inner_text()
        assert page.errors == []


def test_map_without_tiles_draws_the_plain_grid_and_outlines(tmp_path, browser):
    with serve(tmp_path, None) as live:
        i = open_case(live.service, "gate-west")
        api = live.client().get("/map").json()
        assert api["basemap"]["tiles_url"] is None and api["basemap"]["crs"] == "wgs84"
        assert api["areas"][0]["id"] == "grid-7" and [s["site"] for s in api["sites"]] == ["market", "school"]
        page = open_console(browser, live)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.click('.tab[data-view="map"]')
        page.wait_for_selector("#map-canvas.plain canvas.grid-tile", timeout=20_000)
        page.wait_for_selector(f'.case-marker[data-incident="{i}"]')
        assert page.locator("#map-canvas img.leaflet-tile").count() == 0
        assert all(u.startswith(live.url) for u in requested), requested  # nothing fetched from elsewhere
        assert page.locator(".area-outline").count() == 1 and page.locator(".site-outline").count() == 2
        assert page.locator("#map-plain").is_visible()
        _shot(page, tmp_path, "map-plain.png")
        page.click(f'.case-marker[data-incident="{i}"]')
        page.wait_for_selector("#detail[open]")
        assert page.errors == []


def test_statistics_page_shows_the_api_numbers_and_exports(tmp_path, browser):
    with serve(tmp_path, None) as live:
        s = live.service
        now = time.time()
        ids = [open_case(s, cam, type_, at=now - hours * 3600) for cam, type_, hours in [
            ("gate-east", "illegal_parking", 30), ("gate-west", "illegal_parking", 50), ("market-1", "street_vending", 5),
            ("market-1", "crowd", 1), ("gate-east", "street_vending", 80)]]
        boss = __import__("gridworker.cases.workflow", fromlist=["Actor"]).Actor("boss", "supervisor")
        from gridworker.cases.people import PersonIn

        units = sorted({s.workorders.get(i).unit for i in ids[:3]})
        staff = {p.unit: p.id for p in s.people.add(
            [PersonIn(username=f"worker{n}", name=f"网格员{n}", unit=u, role="unit_handler") for n, u in enumerate(units)])}
        for i, minutes in zip(ids[:3], (20, 60 * 30, 45)):
            o = s.workorders.get(i)
            s.workflow.dispatch(i, boss, assignee=staff[o.unit], at=o.detected_at + 60)
            s.workflow.accept(i, boss, at=o.detected_at + 120)
            s.workflow.handle(i, boss, note="done", at=o.detected_at + minutes * 60)
        s.workflow.reject(ids[3], boss, note="false alarm")

        page = open_console(browser, live)
        with page.expect_response(lambda r: "/stats/cases?" in r.url) as answer:
            page.click('.tab[data-view="stats"]')
        query = answer.value.url.split("?", 1)[1]
        page.wait_for_selector('#st-kpis [data-kpi="total"]')
        api = live.client().get(f"/stats/cases?{query}").json()
        kpi = lambda k: page.locator(f'#st-kpis [data-kpi="{k}"]')  # noqa: E731
        assert kpi("total").locator("b").inner_text() == str(api["totals"]["total"]) == "5"
        assert kpi("finished").locator("b").inner_text() == str(api["totals"]["finished"]) == "3"
        rate = api["totals"]["on_time_rate"]
        assert kpi("on_time_rate").locator("b").inner_text() == f"{100 * rate:.1f}%"
        assert kpi("mean_handling").locator("b").inner_text() == f"{api['totals']['mean_handling_s'] / 60:.1f}"
        assert len(api["by_person"]) == len(units) and sum(g["total"] for g in api["by_person"]) == 3
        for g in api["by_person"]:
            row = page.locator(f'#st-person tr[data-key="{g["key"]}"]')
            assert row.locator('[data-col="name"]').inner_text() == api["person_names"][g["key"]]
        for table, groups in (("#st-unit", api["by_unit"]), ("#st-type", api["by_type"]), ("#st-site", api["by_site"]),
                              ("#st-person", api["by_person"])):
            assert page.locator(f"{table} tr[data-key]").count() == len(groups) > 0
            for g in groups:
                row = page.locator(f'{table} tr[data-key="{g["key"]}"]')
                assert row.locator('[data-col="total"]').inner_text() == str(g["total"])
                assert row.locator('[data-col="on_time"]').inner_text() == f"{g['on_time']}/{g['judged']}"
                want = "—" if g["on_time_rate"] is None else f"{100 * g['on_time_rate']:.1f}%"
                assert row.locator('[data-col="on_time_rate"]').inner_text() == want
        wait_until(lambda: page.locator("#st-chart-trend canvas").count() > 0, timeout=20)
        _shot(page, tmp_path, "stats.png")
        with page.expect_download() as dl:
            page.click("#st-csv")
        text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
        assert dl.value.suggested_filename.endswith(".csv") and text.splitlines()[1].startswith("all,all,,5,3,")
        page.select_option("#st-trend", "week")
        assert page.errors == []
