"""The README's first command: `gridworker demo` runs the whole product on cameras it builds.

One run of the real command (real RTSP server, real model, real HTTP), checked the way a
newcomer would look at it:

* up on 127.0.0.1 well within a minute (clips built from scratch);
* the bus stop's bus opens a dwell incident, with a snapshot;
* 20+ key-site cameras on the same RTSP server and a patrol plan over them; started through
  the API, the patrol runs its cycles, lists the unplugged camera offline, and at its second
  cycle opens revisit parking cases (both captures as evidence), each a work order;
* the demo's webhook receiver gets every work-order change, signatures verified, none refused;
* the simulated crew takes a case through dispatch → accept → handled with named actors,
  which ``/stats/workorders`` counts;
* Ctrl-C stops it all cleanly (exit code 0, no RTSP server left behind).
"""

import time

import httpx
import pytest

from gridworker.assets import opencv_doc_video, ultralytics_asset
from gridworker.demo_sites import PLAN_ID, UNPLUGGED
from tests.demo_process import DemoProcess
from tests.factories import wait_until

pytestmark = [pytest.mark.rtsp, pytest.mark.model]


def test_demo_shows_the_whole_loop(tmp_path, gst_rtsp):
    if ultralytics_asset("bus.jpg") is None or opencv_doc_video() is None:
        pytest.skip("the demo's pictures: pip install --no-deps ultralytics (bus.jpg) and apt-get install opencv-doc")
    with DemoProcess(tmp_path / "demo") as demo:
        took = demo.wait_up()
        assert took < 60, f"the demo took {took:.0f} s to come up"
        base = demo.base
        cams = {c["id"]: c for c in httpx.get(f"{base}/cameras").json()}
        continuous = {"bus-stop", "campus"}
        patrol_cams = [c for c in cams.values() if c["id"] not in continuous]
        assert len(patrol_cams) >= 20 and all(c["health"]["state"] == "stopped" for c in patrol_cams), "patrol-only: never streamed"
        rtsp = cams["bus-stop"]["url"].rsplit("/", 1)[0]
        assert rtsp.startswith("rtsp://127.0.0.1:") and all(c["url"].startswith(rtsp + "/") for c in patrol_cams), "one RTSP server"
        plan = httpx.get(f"{base}/patrol/plans/{PLAN_ID}").json()
        assert plan["status"]["state"] == "idle" and plan["cameras"] == len(patrol_cams)

        # the bus stands in the no-parking lane
        dwell = wait_until(lambda: httpx.get(f"{base}/incidents", params={"camera_id": "bus-stop", "type": "dwell"}).json()["items"], timeout=60)[0]
        assert httpx.get(f"{base}/cameras/bus-stop").json()["health"]["state"] == "live"
        assert httpx.get(base + dwell["snapshot_url"]).content[:2] == b"\xff\xd8"

        # 开始轮巡: cycle 1 visits every key site; cycle 2 (~30 s later) opens revisit parking cases
        assert httpx.post(f"{base}/patrol/plans/{PLAN_ID}/start").status_code == 202
        status = wait_until(lambda: (s := httpx.get(f"{base}/patrol/plans/{PLAN_ID}").json()["status"])["completed_cycles"] >= 1 and s, timeout=60)
        assert status["last_cycle"]["ok"] == len(patrol_cams) - 1
        assert [o["camera_id"] for o in status["offline"]] == [UNPLUGGED]
        revisit = wait_until(
            lambda: [o for o in httpx.get(f"{base}/workorders", params={"type": "illegal_parking", "limit": 100}).json()["items"]],
            timeout=75,
        )
        inc = httpx.get(f"{base}/incidents/{revisit[0]['incident_id']}").json()
        assert inc["details"]["method"] == "revisit" and inc["details"]["gap_s"] >= 20
        assert inc["camera_id"] not in continuous and httpx.get(base + inc["snapshot_url"]).content[:2] == b"\xff\xd8"

        # the crew's case: dispatched, accepted, handled by named actors
        def handled():
            page = httpx.get(f"{base}/workorders", params={"limit": 100}).json()["items"]
            return [o for o in page if o["state"] in ("handled", "closed")]

        case = wait_until(handled, timeout=60)[0]
        actors = [(a["action"], a["actor"]) for a in httpx.get(f"{base}/workorders/{case['incident_id']}").json()["audit"]]
        assert ("dispatch", "demo:command desk") in actors and any(a == "handle" and who.endswith("street team") for a, who in actors)
        stats = httpx.get(f"{base}/stats/workorders").json()
        assert stats["by_state"].get("handled", 0) + stats["by_state"].get("closed", 0) >= 1

        # the webhook receiver: every change arrived signed, none refused
        receiver = demo.printed_url("webhooks")
        got = wait_until(lambda: (d := httpx.get(f"{receiver}/deliveries").json())["accepted"] >= 5 and d, timeout=20)
        assert got["bad_signature"] == 0
        events = {d["event"] for d in got["last"]}
        assert {"workorder.detect", "workorder.dispatch", "workorder.handle"} <= events
        assert any(d["incident_id"] == revisit[0]["incident_id"] for d in got["last"]), "the revisit case was forwarded too"
        assert "signature ok" in demo.output

        # the simulated smart breakers: an alarm over MQTT became a graded case, like a camera's
        iot = wait_until(lambda: [i for i in httpx.get(f"{base}/incidents", params={"limit": 200}).json()["items"]
                                  if i["camera_id"].startswith("iot:demo-brk-")], timeout=60)
        # the work order is written just after the incident (its listener): wait for it too
        order = wait_until(lambda: (r := httpx.get(f"{base}/workorders/{iot[0]['id']}")).status_code == 200 and r.json(), timeout=10)
        assert order["grade"] in (1, 2, 3, 4)
        assert len(httpx.get(f"{base}/devices").json()) == 3
        started = time.monotonic()
    assert demo.returncode == 0, demo.output[-2000:]
    assert time.monotonic() - started < 20, "Ctrl-C stops the demo promptly"
    out = demo.output
    assert "gridworker demo" in out and f"{base}/console/" in out and "开始轮巡" in out
    assert "Traceback" not in out and "ERROR" not in out, out[-3000:]
