"""``gridworker patrol`` against a real running service (uvicorn in a thread, real RTSP cameras,
the real default model)."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import pytest
import uvicorn

from gridworker.api import create_app
from gridworker.cli import main
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import free_port

pytestmark = [pytest.mark.model]


@pytest.fixture
def service_url(tmp_path, rtsp_factory, sample_clip):
    server = rtsp_factory({"a": sample_clip, "b": sample_clip})
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'cli.db'}"},
        cameras=[
            {"id": "gate", "url": server.url("a"), "watch": "patrol", "patrol": {"site_type": "school"}},
            {"id": "ward", "url": server.url("b"), "watch": "patrol", "patrol": {"site_type": "hospital"}},
            {"id": "dead", "url": f"rtsp://127.0.0.1:{free_port()}/x", "watch": "patrol"},
        ],
        patrol_plans=[
            {"id": "all", "cycles": 0, "min_cycle_s": 0.5, "concurrency": 3, "open_timeout_s": 2, "keyframe_timeout_s": 3}
        ],
    )
    detector = load_detector(DetectorConfig())
    port = free_port()
    config = uvicorn.Config(create_app(lambda: Service(settings, detector)), host="127.0.0.1", port=port, log_level="warning")
    server_thread = uvicorn.Server(config)
    thread = threading.Thread(target=server_thread.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        pytest.fail("service did not come up")
    yield url
    server_thread.should_exit = True
    thread.join(30)


def _json(capsys) -> object:
    return json.loads(capsys.readouterr().out)


def test_cli_drives_a_running_service(service_url, capsys, caplog):
    caplog.set_level(logging.INFO)
    assert main(["patrol", "status", "--url", service_url]) == 0
    assert "all: idle" in capsys.readouterr().out
    # the client's own request lines are not printed (httpx logs each at INFO)
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]

    assert main(["patrol", "start", "all", "--url", service_url]) == 0
    assert "all: running" in capsys.readouterr().out
    assert main(["patrol", "start", "all", "--url", service_url]) == 0
    assert "already running" in capsys.readouterr().out

    # wait (through the CLI) for a finished cycle: the dead camera is listed offline with its reason
    deadline = time.monotonic() + 40
    while True:
        assert main(["patrol", "status", "all", "--json", "--url", service_url]) == 0
        body = _json(capsys)
        if body["status"]["completed_cycles"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    st = body["status"]
    assert st["completed_cycles"] >= 1 and body["cameras"] == 3
    assert st["last_cycle"]["ok"] == 2 and [f["camera_id"] for f in st["last_cycle"]["failed_visits"]] == ["dead"]
    assert main(["patrol", "status", "all", "--url", service_url]) == 0
    out = capsys.readouterr().out
    assert "offline: dead" in out and "open_failed" in out

    assert main(["patrol", "pause", "all", "--url", service_url]) == 0
    assert "all: paused" in capsys.readouterr().out
    assert main(["patrol", "status", "all", "--json", "--url", service_url]) == 0
    assert _json(capsys)["status"]["state"] in ("paused", "waiting")
    assert main(["patrol", "resume", "all", "--url", service_url]) == 0
    capsys.readouterr()
    assert main(["patrol", "stop", "all", "--url", service_url]) == 0
    assert "all: stopped" in capsys.readouterr().out
    # errors: unknown plan (404), pause of a stopped plan (409)
    assert main(["patrol", "start", "nope", "--url", service_url]) == 4
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["patrol", "pause", "all", "--url", service_url]) == 5
    assert "HTTP 409" in capsys.readouterr().err


def test_cli_says_clearly_when_the_service_is_down(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["patrol", "status", "--url", url, "--timeout", "2"]) == 3
    err = capsys.readouterr().err
    assert "cannot reach the service at" in err and url in err and "--url" in err
