"""A real gridworker serving the console: Debian's RTSP server, the real default model,
uvicorn on a free port, and Debian's Chromium driven by Playwright.

* ``console_server``  module  a ``Live`` (base URL, service, API keys by role)
* ``browser``         module  a headless Chromium (skips when Playwright or /usr/bin/chromium is missing)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import encode_still
from gridworker.streams.rtsp_serve import RtspServerProcess
from tests.factories import bus_photo, live_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Live:
    url: str
    service: Service
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=10)


@pytest.fixture(scope="module")
def bus_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode_still(bus_photo(), tmp_path_factory.mktemp("console") / "bus_still.mp4", seconds=6, fps=10)


@pytest.fixture(scope="module")
def console_server(gst_rtsp: None, bus_clip: Path, sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("console-svc")
    with RtspServerProcess({"bus": bus_clip, "gate": sample_clip}) as rtsp:
        settings = Settings(
            database={"url": f"sqlite:///{work / 'console.db'}"},
            cameras=[
                {"id": "bus-stop", "name": "Bus stop", "site": "transport hub", "url": rtsp.url("bus"), "fps": 4},
                {"id": "gate", "name": "School gate", "site": "school", "url": rtsp.url("gate"), "watch": "patrol",
                 "patrol": {"site_type": "school"}},
            ],
            patrol_plans=[
                {"id": "schools", "name": "Schools", "select": {"camera_ids": ["gate", "bus-stop"]}, "cycles": 0, "min_cycle_s": 1.0,
                 "open_timeout_s": 3.0, "keyframe_timeout_s": 4.0, "stagger_s": 0.0},
            ],
        )
        service = Service(settings, load_detector(DetectorConfig()))
        keys = {}
        for role in ("admin", "supervisor", "operator", "viewer"):
            _, keys[role] = create_key(service.keys, name=f"{role}-console", role=role)
        with live_server(create_app(lambda: service), start_timeout_s=60) as url:
            yield Live(url, service, keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses Debian's chromium)")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} absent: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
