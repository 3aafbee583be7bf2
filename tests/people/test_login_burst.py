"""Logins sent all at once for one username: the per-username limit counts each attempt before
its password is checked, so a burst gets no more password checks than logins sent one by one."""

import collections
import threading

import httpx

from gridworker.api.sessions import LoginGuard
from tests.factories import live_server
from tests.people.conftest import PW, make_env, people_config


def test_concurrent_wrong_logins_for_one_user_get_five_checks_then_429(tmp_path):
    env = make_env(f"sqlite:///{tmp_path / 'burst.db'}")  # 5 failures per user, 20 attempts per client
    codes: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    with live_server(env.app) as base:
        start = threading.Barrier(20)

        def one() -> None:
            start.wait()
            r = httpx.post(f"{base}/auth/login", json={"username": "east1", "password": "wrong-password-x"}, timeout=60)
            with lock:
                codes[r.status_code] += 1

        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert dict(codes) == {401: 5, 429: 15}
        r = httpx.post(f"{base}/auth/login", json={"username": "east1", "password": PW}, timeout=60)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0  # locked even with the right password


def test_an_admitted_attempt_counts_until_the_login_succeeds():
    guard = LoginGuard(people_config(login_failures_per_user=2, login_attempts_per_client=10))
    assert guard.admit("ann", "10.0.0.1", 0.0) is None and guard.admit("ann", "10.0.0.1", 1.0) is None
    assert guard.admit("ann", "10.0.0.1", 2.0) is not None  # two attempts in flight or failed: the third waits
    guard.succeeded("ann", "10.0.0.1", 2.5)
    assert guard.admit("ann", "10.0.0.1", 3.0) is None  # a success clears the username's count
    for n in range(8):
        guard.admit(f"u{n}", "10.0.0.9", 4.0)
    assert guard.admit("bob", "10.0.0.9", 5.0) is None and guard.admit("bob", "10.0.0.9", 5.0) is None
    assert guard.admit("cat", "10.0.0.9", 5.0) is not None  # the client's 10 attempts are used up
    assert guard.admit("cat", "10.0.0.1", 5.0) is None  # refused by the client limit: nothing counted for cat


def test_guessing_from_one_address_does_not_lock_the_person_out():
    """Found by review: 5 wrong passwords from an attacker's address made the real operator's
    right password answer 429 for 5 minutes, from any address."""
    guard = LoginGuard(people_config(login_failures_per_user=5, login_failures_per_user_total=12, login_attempts_per_client=100))
    assert all(guard.admit("east1", "203.0.113.7", float(t)) is None for t in range(5))
    assert guard.admit("east1", "203.0.113.7", 6.0) is not None  # the guesser is held back
    assert guard.admit("east1", "10.20.0.15", 7.0) is None  # the operator at their workstation is not
    guard.succeeded("east1", "10.20.0.15", 7.5)


def test_many_addresses_are_capped_together_except_a_known_client():
    guard = LoginGuard(people_config(login_failures_per_user=5, login_failures_per_user_total=12, login_attempts_per_client=100))
    assert guard.admit("east1", "10.20.0.15", 0.0) is None
    guard.succeeded("east1", "10.20.0.15", 0.5)  # the operator's workstation is known for east1 from now on
    admitted = [guard.admit("east1", f"198.51.100.{n}", 1.0 + n) is None for n in range(40)]
    assert admitted.count(True) == 12  # guesses from many addresses: capped for the username
    assert guard.admit("east1", "192.0.2.1", 50.0) is not None  # a new address waits too
    assert guard.admit("east1", "10.20.0.15", 51.0) is None  # the known client is not held to that cap
    assert guard.admit("east1", "192.0.2.1", 400.0) is None  # the window passed
