"""POST /cameras with a password holding an unencoded ``/``, ``?`` or ``#`` (security review,
/tmp/gw/review/url_leak.py): the camera is refused, the 422 names the fix (percent-encode) and
repeats neither the password nor urlsplit's message; viewers never see it, nor do the logs.
A camera saved that way by an older version is skipped at start, its password unlogged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.redact import install_handler_redaction

from tests.factories import ParkedCarDetector, free_port, local_client

PIECES = ("Secr3t", "Secr", "cr3t", "/34@")


def _service(tmp_path: Path) -> tuple[Service, dict[str, dict[str, str]]]:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'userinfo.db'}"}, evidence={"clips": False})
    service = Service(settings, ParkedCarDetector())
    keys = {role: {"X-API-Key": create_key(service.keys, name=role, role=role)[1]} for role in ("admin", "viewer")}
    return service, keys


def test_post_refuses_an_ambiguous_password_without_echoing_it(tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    install_handler_redaction()
    service, keys = _service(tmp_path)
    port = free_port()
    urls = [
        f"rtsp://admin:{port}/Secr3t@127.0.0.1:{port}/s",  # was accepted: host "admin", port <port>
        "rtsp://admin:Secr#3t@10.0.0.7/s",  # was a 422 quoting urlsplit: "...integer value as 'Secr'"
        "rtsp://admin:Se/cr3t@10.0.0.7/s",  # was a 422 repeating the whole URL
        "rtsp://admin:Se?cr3t@10.0.0.7/s",
        "rtsp://10.0.0.7/s",  # a good camera, recorded below with the wrong URL as its record_url
    ]
    with local_client(create_app(lambda: service), client=("10.1.2.3", 40000)) as client:
        for i, url in enumerate(urls[:-1]):
            r = client.post("/cameras", json={"id": f"c{i}", "url": url}, headers=keys["admin"])
            assert r.status_code == 422, (url, r.status_code, r.text)
            assert "%2F" in r.text and "%23" in r.text and "%3F" in r.text, r.text
            assert "admin" not in r.text and "integer" not in r.text, r.text
            assert not any(p in r.text for p in PIECES), r.text
        r = client.post("/cameras", json={"id": "rec", "url": urls[-1], "record_url": urls[0]}, headers=keys["admin"])
        assert r.status_code == 422 and "record_url" in r.text and not any(p in r.text for p in PIECES), r.text
        for role in ("viewer", "admin"):
            assert client.get("/cameras", headers=keys[role]).json() == []
    assert not any(p in caplog.text for p in PIECES), caplog.text


def test_a_saved_ambiguous_camera_is_skipped_and_not_logged(tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    install_handler_redaction()
    service, keys = _service(tmp_path)
    raw = {"id": "old", "url": "rtsp://admin:54863/Secr3t@127.0.0.1:54863/s"}
    service.store.cameras.put("old", json.dumps(raw))
    with local_client(create_app(lambda: service)) as client:
        assert client.get("/cameras", headers=keys["viewer"]).json() == []
    assert "old" in caplog.text and "ambiguous" in caplog.text, caplog.text
    assert not any(p in caplog.text for p in PIECES), caplog.text
