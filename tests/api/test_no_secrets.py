"""No camera password, API key or forwarding secret in any API response or log line over a
scripted session: cameras with passwords in their URLs (from the config and through the
API), keys created and used, incidents and work-order actions, forwarding to
destinations that fail (a webhook and an MQTT broker with credentials, both down), dead
letters, the status and event endpoints. The one documented exception: ``POST /keys``
shows the new key once, in its own response."""

from __future__ import annotations

import logging
import time


from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.delivery import ForwardingConfig, MqttDestination, RetryPolicy, WebhookDestination
from gridworker.service import Service
from gridworker.settings import Settings

from tests.factories import ParkedCarDetector, free_port, local_client
from tests.forwarding.helpers import Receiver, open_incident

CAM_PW = "Cam-P4ss-9z7q"
CAM_PW2 = "Api-Cam-Pw-5k2m"
HOOK_PW = "Hook-Pw-77xq"
HOOK_SECRET = "hook-hmac-secret-31f"
MQTT_PW = "Mqtt-Pw-0a9b"


def test_no_secret_in_responses_or_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    receiver = Receiver()  # a destination that works: httpx logs each request's URL
    forwarding = ForwardingConfig(
        destinations=[
            WebhookDestination(name="hook", url=f"http://hookuser:{HOOK_PW}@127.0.0.1:{port}/x", secret=HOOK_SECRET, connect_timeout_s=0.5),
            WebhookDestination(name="up", url=receiver.url.replace("http://", f"http://hookuser:{HOOK_PW}@"), secret=HOOK_SECRET),
            MqttDestination(name="bus", host="127.0.0.1", port=port, username="gw", password=MQTT_PW, timeout_s=0.5),
        ],
        retry=RetryPolicy(base_s=0.05, cap_s=0.2, max_attempts=2),
        poll_interval_s=0.05,
    )
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'secrets.db'}"},
        cameras=[{"id": "gate", "url": f"rtsp://admin:{CAM_PW}@127.0.0.1:{port}/stream1", "fps": 5}],
        forwarding=forwarding,
    )
    service = Service(settings, ParkedCarDetector())
    orders = service.workorders
    service.keys.auth_enabled = True
    _, admin = create_key(service.keys, name="admin", role="admin")
    texts: list[str] = []
    new_keys: list[str] = []
    with local_client(create_app(lambda: service)) as client:  # the lifespan starts the forwarding
        h = {"X-API-Key": admin}

        def call(method: str, path: str, **kw) -> object:
            r = client.request(method, path, headers={**h, **kw.pop("headers", {})}, **kw)
            assert r.status_code < 500, (method, path, r.status_code, r.text)
            if not (method == "POST" and path == "/keys"):
                texts.append(r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()))
            return r

        r = call("POST", "/cameras", json={"id": "side", "url": f"rtsp://ops:{CAM_PW2}@127.0.0.1:{port}/s2", "fps": 5})
        assert r.status_code == 201
        r = call("POST", "/keys", json={"name": "dispatcher", "role": "operator"})
        assert r.status_code == 201
        op = r.json()["key"]
        new_keys.append(op)
        for i in range(3):
            open_incident(orders, camera="gate")
        time.sleep(2.0)  # the cameras fail to open, forwarding fails a few times
        call("POST", "/workorders/1/dispatch", json={"note": "go"}, headers={"X-API-Key": op})
        call("POST", "/workorders/2/reject", json={"note": "false alarm"}, headers={"X-API-Key": op})
        call("GET", "/workorders/1", headers={"X-API-Key": op})
        call("GET", "/workorders", headers={"Authorization": f"Bearer {op}"})
        call("GET", "/workorders", headers={"X-API-Key": op[:-2] + ("xx" if op[-2:] != "xx" else "yy")})  # a wrong key: 401
        for path in ("/cameras", "/cameras/gate", "/cameras/side", "/health", "/incidents", "/incidents/1", "/keys",
                     "/forwarding/destinations", "/forwarding/dead", "/stats/workorders", "/catalogue", "/openapi.json",
                     "/events?after=0&max_s=1", "/metrics"):
            call("GET", path)
        status = client.get("/forwarding/destinations", headers=h).json()["destinations"]
        states = {d["name"]: d["state"] for d in status}
        assert (states["hook"], states["bus"]) == ("unreachable", "unreachable") and states["up"] in ("idle", "delivering")
        assert all(r["headers"]["authorization"].startswith("Basic ") for r in receiver.requests) and len(receiver.requests) >= 5
        assert all(d["last_error"] for d in status if d["name"] != "up")  # the errors are there, scrubbed
    receiver.close()
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in logged and "127.0.0.1" in logged  # the failures were logged
    assert f"POST http://127.0.0.1:{receiver.server.server_address[1]}/hook" in logged  # and the requests
    everything = "\n".join(texts) + "\n" + logged
    assert "***@127.0.0.1" in everything  # the URLs with credentials were shown and logged, redacted
    secrets = [CAM_PW, CAM_PW2, HOOK_PW, HOOK_SECRET, MQTT_PW, admin, admin[17:], *new_keys, *(k[17:] for k in new_keys)]
    for s in secrets:
        assert s not in everything, f"a secret leaked: {s[:4]}…"
    # the database holds no API key either (the camera URLs it keeps are configuration)
    service.store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("secrets.db*"))
    for k in [admin, *new_keys]:
        assert k[17:].encode() not in raw
