"""Rate limits key a client by :func:`client_key` (security review): an IPv6 client by its /64,
so one subnet (2^64 addresses) is one client, not 2^64 of them; the login limit and the public
report form's per-client limit both use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.ratelimit import client_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::ffff:cb00:7107", "203.0.113.7"),
        ("testclient", "testclient"),
        ("", "?"),
        (None, "?"),
    ],
)
def test_client_key(host, key):
    assert client_key(host) == key


def test_one_ipv6_subnet_is_one_client_and_its_neighbour_another():
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1") != client_key("10.0.0.2")


@pytest.fixture
def service(tmp_path) -> Iterator[Service]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'rl.db'}"}, evidence={"clips": False},
        people={"login_attempts_per_client": 2, "login_failures_per_user": 100},
        reports={"public": True, "public_per_client_per_hour": 1},
    )
    service = Service(settings, ParkedCarDetector())
    create_key(service.keys, name="admin", role="admin")  # keys exist: remote callers are answered
    yield service


def _post(app, host: str, path: str, **kwargs) -> int:
    """Status of a POST from ``host`` (the app is started by the caller's ``local_client``)."""
    return local_client(app, client=(host, 40000)).post(path, **kwargs).status_code


def _login(app, host: str, username: str) -> int:
    return _post(app, host, "/auth/login", json={"username": username, "password": "x"})


def test_logins_from_one_ipv6_subnet_share_one_limit(service):
    app = create_app(lambda: service)
    with local_client(app):
        assert [_login(app, host, f"nobody{i}") for i, host in enumerate(["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:dead:beef:0:1"])] == [401, 401, 429]
        assert _login(app, "2001:db8:1:3::1", "nobody9") == 401  # the next /64: another client
        assert [_login(app, "::ffff:198.51.100.9", u) for u in "ab"] == [401, 401]
        assert _login(app, "198.51.100.9", "c") == 429  # the same IPv4 client


def test_public_reports_from_one_ipv6_subnet_share_one_limit(service):
    app = create_app(lambda: service)
    form = {"data": {"type": "exposed_garbage", "text": "bins overflowing"}, "files": [("photo", ("p.txt", b"x", "text/plain"))]}
    with local_client(app):
        assert _post(app, "2001:db8:7:7::1", "/report/submit", **form) != 429  # counted, whatever becomes of it
        assert _post(app, "2001:db8:7:7::abcd", "/report/submit", **form) == 429
        assert _post(app, "2001:db8:7:8::1", "/report/submit", **form) != 429
