"""Fail closed (issue 10, item 2), over real HTTP against the real app around a real Service:

* no key ⇒ only loopback clients are answered (a real uvicorn on 0.0.0.0 reached through
  this machine's non-loopback address, and an in-process remote client); ``auth.open``
  admits them and says so in a warning;
* keys come from the CLI or an admin key, never an anonymous caller; the last admin key
  cannot be revoked, and revoking keys never reopens the API;
* a foreign ``Host`` is refused (DNS rebinding), IP literals and configured names are not;
* a cross-site POST (``Origin``/``Sec-Fetch-Site``) is refused and changes nothing;
* every response carries the security headers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from gridworker.api import create_app
from gridworker.api.deps import running_service
from gridworker.api.auth import create_key
from gridworker.api.security import CSP, is_loopback_address, is_loopback_bind, parse_origin, split_host
from gridworker.cases.workorders import WorkOrders
from gridworker.keystore import KeyStore
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, free_port, live_server, local_client
from tests.forwarding.helpers import open_incident

NO_KEY = "no API key exists yet: this service answers only loopback clients"
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than 127.x (no packet is sent), or None."""
    for probe in ("192.0.2.1", "10.255.255.254", "203.0.113.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
            except OSError:
                continue
            addr = s.getsockname()[0]
            if not addr.startswith("127.") and addr != "0.0.0.0":
                return str(addr)
    return None


@dataclass
class Live:
    service: Service
    port: int

    @property
    def orders(self) -> WorkOrders:
        return self.service.workorders

    @property
    def keys(self) -> KeyStore:
        return self.service.keys

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"


def _settings(tmp_path, **extra) -> Settings:
    return Settings(
        database={"url": f"sqlite:///{tmp_path / 'sec.db'}"},
        cameras=[{"id": "gate", "url": f"rtsp://127.0.0.1:{free_port()}/none", "watch": "patrol"}],
        patrol_plans=[{"id": "am", "select": {"camera_ids": ["gate"]}, "cycles": 1, "open_timeout_s": 1.0}],
        **extra,
    )


@contextmanager
def serve(settings: Settings, bind: str = "127.0.0.1") -> Iterator[Live]:
    """The real app on a real uvicorn (a thread), bound to ``bind``."""
    service = Service(settings, ParkedCarDetector())
    with live_server(create_app(lambda: service), host=bind) as url:
        port = urlsplit(url).port
        assert port is not None
        yield Live(service, port)


def _key(keys: KeyStore, role: str = "admin", name: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(keys, name=name or role, role=role)[1]}"}


# -- loopback only without keys ---------------------------------------------------------------
def test_no_key_real_uvicorn_answers_loopback_only(tmp_path):
    addr = non_loopback_address()
    assert addr is not None, "this machine has no non-loopback IPv4 address (see test_no_key_remote_client_in_process)"
    with serve(_settings(tmp_path), bind="0.0.0.0") as live:
        assert httpx.get(live.url() + "/workorders").status_code == 200  # this machine: anonymous admin
        for path in ("/workorders", "/cameras", "/health", "/console/", "/keys"):
            r = httpx.get(live.url(addr) + path)
            assert r.status_code == 403, path
            assert NO_KEY in r.json()["detail"] and "gridworker keys create" in r.json()["detail"]
            assert r.headers["x-frame-options"] == "DENY"
        r = httpx.post(live.url(addr) + "/cameras", json={"id": "x", "url": "rtsp://127.0.0.1:9/x"})
        assert r.status_code == 403 and "x" not in {c.config.id for c in live.service.cameras()}
        # with a key, remote callers are answered, and only with the key
        admin = _key(live.keys)
        assert httpx.get(live.url(addr) + "/workorders", headers=admin).status_code == 200
        assert httpx.get(live.url(addr) + "/workorders").status_code == 401
        assert httpx.get(live.url() + "/workorders").status_code == 401  # loopback too: keys apply to all


def test_no_key_remote_client_in_process(tmp_path):
    with local_client(create_app(lambda: Service(_settings(tmp_path), ParkedCarDetector())), client=("10.1.2.3", 40000)) as c:
        r = c.get("/workorders")
        assert r.status_code == 403 and NO_KEY in r.json()["detail"]
        assert c.post("/patrol/plans/am/start").status_code == 403
        service = running_service(c.app)
        assert service is not None and service.patrol.status("am").state.value == "idle"
    settings = _settings(tmp_path, auth={"enabled": False})
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector())), client=("10.1.2.3", 40000)) as c:
        r = c.get("/workorders")
        assert r.status_code == 403 and "auth.enabled: false" in r.json()["detail"]


def test_auth_open_warns_and_admits_remote_clients(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    addr = non_loopback_address()
    assert addr is not None
    with serve(_settings(tmp_path, auth={"open": True}), bind="0.0.0.0") as live:
        assert httpx.get(live.url(addr) + "/workorders").status_code == 200
        assert httpx.post(live.url(addr) + "/keys", json={"name": "n", "role": "admin"}).status_code == 403  # still no anonymous keys
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "auth.open" in r.getMessage()]
    assert warned and "ANYONE" in warned[0].getMessage()
    # without auth.open, the start says the API is loopback-only instead
    caplog.clear()
    Service(_settings(tmp_path), ParkedCarDetector())
    assert any("answers only loopback clients" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_loopback_helpers():
    assert all(is_loopback_address(a) for a in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback_address(a) for a in ("10.1.2.3", "0.0.0.0", "::", "testclient", "", None, "192.0.2.2"))
    assert all(is_loopback_bind(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "LOCALHOST."))
    assert not any(is_loopback_bind(h) for h in ("0.0.0.0", "::", "", "gw.example.org", "192.168.1.2"))


# -- keys ---------------------------------------------------------------------------------------
def test_anonymous_cannot_create_keys(tmp_path):
    with serve(_settings(tmp_path)) as live:
        r = httpx.post(live.url() + "/keys", json={"name": "me", "role": "admin"})
        assert r.status_code == 403 and "gridworker keys create" in r.json()["detail"]
        assert live.keys.keys(include_revoked=True) == []
        assert httpx.get(live.url() + "/workorders").status_code == 200  # and the service is still usable from here
        admin, viewer = _key(live.keys), _key(live.keys, "viewer")
        assert httpx.post(live.url() + "/keys", json={"name": "v", "role": "viewer"}, headers=viewer).status_code == 403
        r = httpx.post(live.url() + "/keys", json={"name": "ops", "role": "admin"}, headers=admin)
        assert r.status_code == 201 and r.json()["key"].startswith("gwk_")


def test_keys_off_still_no_anonymous_keys(tmp_path):
    with serve(_settings(tmp_path, auth={"enabled": False})) as live:
        assert httpx.post(live.url() + "/keys", json={"name": "me", "role": "admin"}).status_code == 403
        assert live.keys.keys() == []


def test_last_admin_key_cannot_be_revoked(tmp_path):
    with serve(_settings(tmp_path)) as live:
        store = live.keys
        first = create_key(store, name="first", role="admin")
        viewer = create_key(store, name="viewer", role="viewer")[0]
        h = {"X-API-Key": first[1]}
        assert httpx.delete(live.url() + f"/keys/{viewer.id}", headers=h).status_code == 204
        r = httpx.delete(live.url() + f"/keys/{first[0].id}", headers=h)
        assert r.status_code == 409 and "last admin key" in r.json()["detail"]
        assert httpx.get(live.url() + "/keys", headers=h).status_code == 200  # still valid
        second = httpx.post(live.url() + "/keys", json={"name": "second", "role": "admin"}, headers=h).json()
        assert httpx.delete(live.url() + f"/keys/{first[0].id}", headers={"X-API-Key": second["key"]}).status_code == 204
        assert httpx.get(live.url() + "/keys", headers=h).status_code == 401
        assert httpx.delete(live.url() + f"/keys/{second['id']}", headers={"X-API-Key": second["key"]}).status_code == 409
        assert [k.name for k in store.keys()] == ["second"]


def test_two_revocations_at_once_leave_one_admin(tmp_path):
    with serve(_settings(tmp_path)) as live:
        keys = [create_key(live.keys, name=f"a{i}", role="admin") for i in range(2)]
        codes: list[int] = []
        barrier = threading.Barrier(2)

        def revoke(stored_id: int, raw: str) -> None:
            barrier.wait()
            codes.append(httpx.delete(live.url() + f"/keys/{stored_id}", headers={"X-API-Key": raw}, timeout=10).status_code)

        # each revokes the *other* admin: exactly one may succeed
        threads = [threading.Thread(target=revoke, args=(keys[1 - i][0].id, keys[i][1])) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) in ([204, 401], [204, 409]), codes
        assert len([k for k in live.keys.keys() if k.role == "admin"]) == 1


def test_revoking_every_key_does_not_reopen(tmp_path):
    with serve(_settings(tmp_path)) as live:
        create_key(live.keys, name="only", role="admin")
        assert httpx.get(live.url() + "/workorders").status_code == 401
        # revoked behind the API's back (straight in the database): still closed
        with live.keys.db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE api_keys SET revoked_at = 1"))
        assert live.keys.keys() == []
        assert httpx.get(live.url() + "/workorders").status_code == 401
        assert KeyStore(live.keys.db).auth_required()  # a fresh store (a restart) agrees


# -- trusted hosts ----------------------------------------------------------------------------------
def test_host_header_is_checked(tmp_path):
    settings = _settings(tmp_path, server={"allowed_hosts": ["gridworker.example.org"]})
    with serve(settings) as live:
        def status(host: str) -> int:
            return httpx.get(live.url() + "/workorders", headers={"Host": host}).status_code

        for host in ("evil.example", f"evil.example:{live.port}", "127.0.0.1.nip.io", "gridworker.example.org.evil.example"):
            assert status(host) == 400, host
        r = httpx.get(live.url() + "/workorders", headers={"Host": "evil.example"})
        assert "server.allowed_hosts" in r.json()["detail"] and r.headers["x-content-type-options"] == "nosniff"
        for host in ("localhost", f"localhost:{live.port}", f"127.0.0.1:{live.port}", f"[::1]:{live.port}", "10.9.8.7",
                     "gridworker.example.org", f"GridWorker.Example.org.:{live.port}"):
            assert status(host) == 200, host


def test_configured_server_host_is_trusted(tmp_path):
    settings = _settings(tmp_path, server={"host": "gw-box.lan"})
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector())), base_url="http://gw-box.lan:8080") as c:
        assert c.get("/workorders").status_code == 200
        assert c.get("/workorders", headers={"Host": "other.lan"}).status_code == 400


def test_host_and_origin_parsing():
    assert split_host("Example.ORG.:8080") == ("example.org", 8080)
    assert split_host("[::1]:80") == ("::1", 80) and split_host("::1") == ("::1", None)
    assert all(split_host(h) is None for h in ("", "a b", "x:99999", "x:", "[::1", "[zz]:1", "u@host", "h/x"))
    assert parse_origin("http://127.0.0.1") == parse_origin("http://127.0.0.1:80") == "http://127.0.0.1:80"
    assert parse_origin("https://GW.example.org") == "https://gw.example.org:443"
    assert all(parse_origin(o) is None for o in ("null", "file://", "ftp://x", "http://x/path", "http://x:70000"))


# -- cross-site requests ----------------------------------------------------------------------------
def test_cross_site_posts_are_refused_and_change_nothing(tmp_path):
    settings = _settings(tmp_path, server={"allowed_origins": ["https://gw.example.org"]})
    with serve(settings) as live:
        order = open_incident(live.orders)
        i = order.incident_id
        plan = live.url() + "/patrol/plans/am/start"
        escalate = live.url() + f"/workorders/{i}/escalate"
        text = {"Content-Type": "text/plain"}
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://localhost:{live.port}"},  # same host, another origin (the Host is 127.0.0.1)
            {"Origin": f"https://127.0.0.1:{live.port}"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
        ):
            r = httpx.post(plan, content=b"x", headers={**text, **headers})
            assert r.status_code == 403, headers
            assert "cross-" in r.json()["detail"]
            r = httpx.post(escalate, content=b'{"note": "from evil"}', headers={**text, **headers})
            assert r.status_code == 403, headers
            r = httpx.delete(live.url() + "/cameras/gate", headers=headers)
            assert r.status_code == 403, headers
        assert live.service.patrol.status("am").state.value == "idle"
        assert live.orders.get(i).state == order.state == "detected"
        assert len(live.orders.audit(i)) == 1  # only the "opened" audit row
        assert "gate" in {c.config.id for c in live.service.cameras()}
        # reads are not refused (and no CORS header lets the other site read them)
        r = httpx.get(live.url() + "/workorders", headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        # the same origin (the console), a configured origin, and a non-browser caller pass
        same = {"Origin": live.url(), "Sec-Fetch-Site": "same-origin"}
        r = httpx.post(escalate, json={"note": "from the console"}, headers=same)
        assert r.status_code == 200 and r.json()["state"] == "escalated"
        assert httpx.post(live.url() + f"/workorders/{i}/escalate", json={}, headers={"Origin": "https://gw.example.org"}).status_code != 403
        assert httpx.post(plan).status_code == 202


# -- headers --------------------------------------------------------------------------------------
def test_security_headers_on_every_response(tmp_path):
    with serve(_settings(tmp_path)) as live:
        for path in ("/console/", "/console/app.js", "/workorders", "/cameras", "/health", "/openapi.json", "/nope"):
            r = httpx.get(live.url() + path)
            assert r.headers["content-security-policy"] == CSP, path
            for name, value in HEADERS.items():
                assert r.headers[name] == value, (path, name)
        csp = httpx.get(live.url() + "/console/").headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        docs = httpx.get(live.url() + "/docs").headers
        assert "frame-ancestors 'none'" in docs["content-security-policy"] and docs["x-frame-options"] == "DENY"
        # refusals carry them too
        r = httpx.get(live.url() + "/workorders", headers={"Host": "evil.example"})
        assert r.status_code == 400 and r.headers["content-security-policy"] == CSP


def test_server_settings_are_validated():
    from pydantic import ValidationError

    ok = Settings(server={"allowed_hosts": ["GW.Example.org."], "allowed_origins": ["HTTPS://gw.example.org/"]})
    assert ok.server.allowed_hosts == ["gw.example.org"] and ok.server.allowed_origins == ["https://gw.example.org"]
    for bad in ("http://gw.example.org", "gw.example.org:8080", "gw/x", "", "*"):
        with pytest.raises(ValidationError, match="allowed_hosts"):
            Settings(server={"allowed_hosts": [bad]})
    for bad in ("gw.example.org", "ftp://gw", "https://gw.example.org/path", "https://u@gw", "null"):
        with pytest.raises(ValidationError, match="allowed_origins"):
            Settings(server={"allowed_origins": [bad]})
