"""Camera secrets in every place a URL carries them (user-info, ``?pwd=``/``?token=`` query
parameters, ``;password=`` path parameters) stay out of API responses, errors, metrics and
every log line, FFmpeg's own (``libav.*`` at DEBUG, which dumps RTSP requests) included.

A real RTSP server with basic auth serves the cameras: two play (their query secrets went all
the way to the server and back), two fail with a 404 (their URL lands in ``last_error``).
Cameras come from the config file and through the API."""

from __future__ import annotations

import logging

import av.logging
import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.redact import RedactingFilter, install_handler_redaction

from tests.factories import ParkedCarDetector, local_client, wait_until

USER_PW = "Basic-Pw-4d3c"
QUERY_PW = "S3cretValue"
SEMI_PW = "Semi-P4ss-77"
API_TOKEN = "Tok-9f8e7d6c"
API_SEMI = "Api-Semi-55q"
API_ACCESS = "Acc-Tok-31z"
SECRETS = [USER_PW, QUERY_PW, SEMI_PW, API_TOKEN, API_SEMI, API_ACCESS]


@pytest.fixture
def libav_debug():
    """FFmpeg's log forwarded to Python logging at DEBUG for the test, then off again."""
    av.logging.set_level(av.logging.DEBUG)
    yield
    av.logging.set_level(None)


def test_camera_secrets_never_leave_the_service(tmp_path, rtsp_factory, sample_clip, caplog, libav_debug):
    caplog.set_level(logging.DEBUG)
    install_handler_redaction()  # what `gridworker run` does with its log handlers (caplog's is one now)
    server = rtsp_factory({"cam": sample_clip, "cam2": sample_clip}, user="admin", password=USER_PW)
    base = f"rtsp://admin:{USER_PW}@127.0.0.1:{server.port}"
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'secrets.db'}"},
        evidence={"clips": False},
        cameras=[
            {"id": "query", "url": f"{base}/cam?user=admin&pwd={QUERY_PW}", "fps": 5},
            {"id": "semi", "url": f"{base}/cam2;password={SEMI_PW}", "fps": 5, "stream": {"backoff_initial_s": 0.2, "backoff_max_s": 1}},
        ],
    )
    service = Service(settings, ParkedCarDetector())
    keys = {role: {"X-API-Key": create_key(service.keys, name=role, role=role)[1]} for role in ("admin", "viewer")}
    texts: list[str] = []
    with local_client(create_app(lambda: service)) as client:

        def get(path: str, role: str = "admin") -> str:
            r = client.get(path, headers=keys[role])
            assert r.status_code == 200, (path, r.text)
            texts.append(r.text)
            return r.text

        api_cameras = [
            {"id": "apiq", "url": f"{base}/cam?user=ops&token={API_TOKEN}", "fps": 5},
            {"id": "apisemi", "url": f"rtsp://127.0.0.1:{server.port}/nope;password={API_SEMI};user=x?access_token={API_ACCESS}"},
        ]
        for body in api_cameras:
            r = client.post("/cameras", json=body, headers=keys["admin"])
            assert r.status_code == 201, r.text
            texts.append(r.text)

        def state(cam_id: str) -> dict:
            return client.get(f"/cameras/{cam_id}", headers=keys["admin"]).json()["health"]

        wait_until(lambda: state("query")["state"] == "live" and state("apiq")["state"] == "live", timeout=30)
        wait_until(lambda: state("semi")["last_error"] and state("apisemi")["last_error"], timeout=30)
        for role in ("admin", "viewer"):
            get("/cameras", role)
            for cam_id in ("query", "semi", "apiq", "apisemi"):
                get(f"/cameras/{cam_id}", role)
        get("/metrics")
        get("/health")
        shown = {c["id"]: c for c in client.get("/cameras", headers=keys["admin"]).json()}
    logged = caplog.text + "\n" + "\n".join(r.getMessage() for r in caplog.records)
    everything = "\n".join(texts) + "\n" + logged
    for secret in SECRETS:
        assert secret not in everything, f"a camera secret leaked: {secret}"
    # what was shown is still useful: the URLs with their secrets masked, the errors with their cause
    assert shown["query"]["url"] == f"rtsp://***@127.0.0.1:{server.port}/cam?user=admin&pwd=***"
    assert shown["apisemi"]["url"] == f"rtsp://127.0.0.1:{server.port}/nope;password=***;user=x?access_token=***"
    assert "404" in shown["semi"]["health"]["last_error"] and ";password=***" in shown["semi"]["health"]["last_error"]
    assert f'gridworker_camera_up{{camera="query",state="live"}}' in everything
    # FFmpeg's own DEBUG log ran through the handler filter (it dumps the RTSP requests)
    libav = [r for r in caplog.records if r.name.startswith("libav")]
    assert libav and any("DESCRIBE" in r.getMessage() for r in libav)
    assert any(isinstance(f, RedactingFilter) for f in caplog.handler.filters)
