"""The README's first command: `gridworker demo` runs the whole service on cameras it builds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gridworker.assets import ultralytics_asset
from tests.factories import free_port

pytestmark = [pytest.mark.rtsp, pytest.mark.model]


def test_demo_opens_a_dwell_incident(tmp_path, gst_rtsp):
    if ultralytics_asset("bus.jpg") is None:
        pytest.skip("bus.jpg ships in the ultralytics wheel: pip install --no-deps ultralytics")
    port = free_port()
    exe = Path(sys.executable).with_name("gridworker")
    proc = subprocess.Popen(
        [str(exe), "demo", "--port", str(port), "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        found = None
        while time.time() < deadline and found is None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                page = httpx.get(f"{base}/incidents", params={"camera_id": "bus-stop", "type": "dwell"}, timeout=2).json()
                found = page["items"][0] if page["total"] else None
            except httpx.TransportError:
                pass
            time.sleep(1)
        assert found is not None, "the demo's bus should open a dwell incident"
        cams = {c["id"]: c for c in httpx.get(f"{base}/cameras").json()}
        assert cams["bus-stop"]["health"]["state"] == "live"
        assert cams["bus-stop"]["url"].startswith("rtsp://127.0.0.1:"), "served through the real RTSP server"
        assert httpx.get(base + found["snapshot_url"]).content[:2] == b"\xff\xd8"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "gridworker demo" in out and f"{base}/incidents" in out
    assert proc.returncode == 0, out[-2000:]
