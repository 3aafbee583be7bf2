"""Login sessions kept in the database (api/sessions.py, migration 0009), on SQLite and
PostgreSQL: a session started by one app (or ``Sessions``) is accepted by another built on the
same database, as after a restart, with the same CSRF token; logout, a person's changes, idle
expiry, the maximum age and the caps hold across them; the database holds neither the cookie's
token nor the CSRF token; a database that fails refuses the request (503), never lets it in."""

from __future__ import annotations

import hashlib
import logging

import pytest
import sqlalchemy as sa

from gridworker.api import create_app
from gridworker.api.deps import CaseParts
from gridworker.api.sessions import SESSION_COOKIE, Sessions
from gridworker.cases.people import LoginSessionRow, People
from gridworker.cases.workorders import WorkOrders
from gridworker.incidents import IncidentStore
from gridworker.incidents.db import Database
from tests.factories import local_client
from tests.people.conftest import AREAS, EAST, PW, make_env, people_config

T0 = 1_000_000.0


@pytest.fixture
def env(db_url):
    e = make_env(db_url)
    yield e
    e.store.close()


class Restarted:
    """A second app on the same database, through its own engine (what a restarted service has)."""

    def __init__(self, url: str) -> None:
        self.store = IncidentStore(url)
        orders = WorkOrders(self.store.db, areas=AREAS)
        self.app = CaseParts.of(self.store, orders, people=People(self.store.db, orders.catalogue, AREAS, people_config())).serve(create_app())

    def client(self, token: str):
        return local_client(self.app, cookies={SESSION_COOKIE: token})

    def close(self) -> None:
        self.store.close()


def _rows(db: Database) -> list[tuple[str, int, float, float]]:
    with db.transaction() as s:
        return [(r.digest, r.person_id, r.created_at, r.last_seen) for r in s.scalars(sa.select(LoginSessionRow)).all()]


def _everything_stored(db: Database) -> str:
    """Every value of every table, as text."""
    meta = sa.MetaData()
    meta.reflect(db.engine)
    with db.engine.connect() as conn:
        return "\n".join(repr(row) for table in meta.sorted_tables for row in conn.execute(table.select()).all())


def _dispatched_and_logged_in(env, c) -> tuple[int, dict[str, str], str]:
    """A case dispatched to east1, who logs in on client ``c``: (the case, the CSRF header, the cookie's token)."""
    i = env.case(EAST)
    assert c.post(f"/workorders/{i}/dispatch", json={}, headers=env.h("operator")).status_code == 200
    csrf = env.login(c, "east1")
    token = c.cookies.get(SESSION_COOKIE)
    assert token
    return i, csrf, token


def test_a_session_survives_a_restart_with_its_csrf_token(env, db_url):
    with env.client() as c:
        i, csrf, token = _dispatched_and_logged_in(env, c)
    again = Restarted(db_url)
    try:
        with again.client(token) as c:
            me = c.get("/auth/me")
            assert me.status_code == 200 and me.json()["person"]["username"] == "east1"
            assert me.json()["csrf_token"] == csrf["X-CSRF-Token"]  # a reloaded page gets the same token
            assert c.post(f"/workorders/{i}/accept").status_code == 403
            assert c.post(f"/workorders/{i}/accept", headers={"X-CSRF-Token": "forged"}).status_code == 403
            r = c.post(f"/workorders/{i}/accept", headers=csrf)
            assert r.status_code == 200 and r.json()["state"] == "accepted"
            assert [a.actor for a in env.orders.audit(i) if a.action == "accept"] == [f"person:{env.ids['east1']}:east1"]
            assert c.post("/auth/logout", headers=csrf).status_code == 204
        # logged out on the new instance: the old one refuses the cookie too
        with env.client(cookies={SESSION_COOKIE: token}) as c:
            r = c.get("/auth/me")
            assert r.status_code == 401 and "Max-Age=0" in r.headers["set-cookie"]
        assert _rows(env.store.db) == []
    finally:
        again.close()


def test_a_password_change_on_one_instance_ends_the_sessions_on_another(env, db_url):
    with env.client() as c:
        env.login(c, "west1")
        env.login(c, "west1")
        token = c.cookies.get(SESSION_COOKIE)
        assert c.get("/me/cases").status_code == 200
    again = Restarted(db_url)
    try:
        with again.client(token) as c:
            assert c.get("/me/cases").status_code == 200
        with local_client(again.app) as admin:
            r = admin.patch(f"/people/{env.ids['west1']}", json={"password": PW + " new"}, headers=env.h("admin"))
            assert r.status_code == 200
        assert [p for _, p, _, _ in _rows(env.store.db)] == []  # both of west1's sessions
        with env.client(cookies={SESSION_COOKIE: token}) as c:  # the first instance
            assert c.get("/me/cases").status_code == 401
    finally:
        again.close()


def test_the_database_holds_neither_the_cookie_token_nor_the_csrf_token(env, db_url):
    with env.client() as c:
        csrf = env.login(c, "boss")["X-CSRF-Token"]
        token = c.cookies.get(SESSION_COOKIE)
    [(digest, person, created, seen)] = _rows(env.store.db)
    assert digest == hashlib.sha256(token.encode()).hexdigest() and person == env.ids["boss"] and created == seen
    stored = _everything_stored(env.store.db)
    assert digest in stored  # the dump does show the sessions' table
    assert token not in stored and csrf not in stored and csrf != token
    if db_url.startswith("sqlite"):  # nor anywhere in the files, the write-ahead log included
        path = db_url.removeprefix("sqlite:///")
        for name in (path, path + "-wal"):
            try:
                data = open(name, "rb").read()
            except FileNotFoundError:
                continue
            assert token.encode() not in data and csrf.encode() not in data


def test_idle_expiry_and_max_age_hold_across_instances(db_url):
    one, two = Database.open(db_url), Database.open(db_url)
    now = [T0]
    config = people_config(session_idle_s=600, session_max_age_s=3600)
    a, b = Sessions(one, config, clock=lambda: now[0]), Sessions(two, config, clock=lambda: now[0])
    try:
        assert a.touch_every_s == 60.0
        token, info = a.create(7)
        now[0] += 30
        assert b.get(token).csrf == info.csrf
        assert _rows(one)[0][3] == T0  # used 30 s after the last write: nothing written
        now[0] += 470  # T0 + 500
        assert b.get(token) is not None and _rows(one)[0][3] == T0 + 500  # written: 500 s old
        now[0] += 550  # T0 + 1050: idle 550 s by the use through b, which a sees
        assert a.get(token) is not None
        now[0] += 601
        assert b.get(token) is None and _rows(one) == []  # idle: ended, and its row deleted
        assert a.get(token) is None

        token, _ = b.create(7)
        for n in range(7):  # used every 500 s, through either: 3500 s old, still in
            now[0] += 500
            assert (a if n % 2 else b).get(token) is not None
        now[0] += 101  # 3601 s since login
        assert a.get(token) is None and b.get(token) is None and _rows(two) == []

        # the precision of idle expiry: a use less than touch_every_s after the last write is not written,
        # so the session ends up to that much early (never late)
        token, _ = a.create(7)
        now[0] += 59
        assert b.get(token) is not None
        now[0] += 542  # 601 s after the write, 542 s after the last use
        assert a.get(token) is None
    finally:
        one.close()
        two.close()


def test_the_caps_and_logout_hold_across_instances(db_url):
    one, two = Database.open(db_url), Database.open(db_url)
    now = [T0]
    config = people_config(max_sessions=3, max_sessions_per_person=2)
    a, b = Sessions(one, config, clock=lambda: now[0]), Sessions(two, config, clock=lambda: now[0])
    step = a.touch_every_s
    try:
        p1, _ = a.create(1)
        now[0] += step
        p2, _ = b.create(1)
        now[0] += step
        p3, _ = a.create(1)  # person 1's third: their oldest, started on a, ends for b too
        assert b.get(p1) is None and b.get(p2) and a.get(p3)
        now[0] += step
        q1, _ = b.create(2)
        now[0] += step
        assert a.get(p2) and b.get(p3)  # used: q1 is the least recently used
        now[0] += step
        r1, _ = a.create(3)  # 4 > 3 in all
        assert b.get(q1) is None and len(a) == len(b) == 3
        assert b.end(r1) and a.get(r1) is None and not a.end(r1)
        assert a.end_person(1) == 2 and b.get(p2) is None and b.get(p3) is None and len(b) == 0
    finally:
        one.close()
        two.close()


def test_expired_sessions_are_pruned_so_the_table_stays_bounded(db_url):
    db = Database.open(db_url)
    now = [T0]
    sessions = Sessions(db, people_config(session_idle_s=600, max_sessions_per_person=100), clock=lambda: now[0])
    try:
        tokens = [sessions.create(n)[0] for n in range(20)]
        assert len(_rows(db)) == 20
        now[0] += 601  # all idle: nobody comes back, yet the next use of any session (even a stranger's) clears them
        assert sessions.get("never-issued") is None
        assert _rows(db) == [] and all(sessions.get(t) is None for t in tokens)
        for n in range(5):
            sessions.create(n)
        now[0] += 100
        assert sessions.prune() == 0 and len(_rows(db)) == 5
        now[0] += 601
        assert sessions.prune() == 5 and _rows(db) == []
    finally:
        db.close()


def test_a_failing_database_refuses_the_session_with_503_and_no_secrets(env, caplog):
    with env.client() as c:
        i, csrf, token = _dispatched_and_logged_in(env, c)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with env.store.db.engine.begin() as conn:  # the sessions' table is gone: every query on it fails
            conn.exec_driver_sql("ALTER TABLE login_sessions RENAME TO login_sessions_away")
        caplog.set_level(logging.DEBUG)
        for r in (c.get("/auth/me"), c.post(f"/workorders/{i}/accept", headers=csrf)):
            assert r.status_code == 503 and "try again" in r.json()["detail"], r.text
            assert "set-cookie" not in r.headers  # the session may be fine: the cookie is kept
            assert token not in r.text and digest not in r.text and "SELECT" not in r.text
        assert env.orders.get(i).state == "dispatched"  # nothing let through
        assert c.post("/auth/login", json={"username": "west1", "password": PW}).status_code == 503
        logged = "\n".join(rec.getMessage() + (str(rec.exc_info) if rec.exc_info else "") for rec in caplog.records)
        assert "answered 503" in logged and token not in logged and digest not in logged and "Traceback" not in logged
        with env.store.db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE login_sessions_away RENAME TO login_sessions")
        assert c.get("/auth/me").status_code == 200
        assert c.post(f"/workorders/{i}/accept", headers=csrf).json()["state"] == "accepted"


def test_a_password_change_is_refused_whole_when_the_sessions_cannot_be_ended(env):
    """Found by review: the new password was saved, then ending the person's sessions failed
    (503), and the old cookie, maybe a stolen one, stayed valid."""
    with env.client() as c:
        env.login(c, "west1")
        person_id = c.get("/auth/me").json()["person"]["id"]
        with env.store.db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE login_sessions RENAME TO login_sessions_away")
        with env.client() as admin:
            r = admin.patch(f"/people/{person_id}", json={"password": "a brand new password 42"}, headers=env.h("admin"))
            assert r.status_code == 503, r.text
        with env.store.db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE login_sessions_away RENAME TO login_sessions")
        assert c.get("/auth/me").status_code == 200  # nothing changed: the old password still logs in
        with env.client() as other:
            env.login(other, "west1")
        with env.client() as admin:
            assert admin.patch(f"/people/{person_id}", json={"password": "a brand new password 42"}, headers=env.h("admin")).status_code == 200
        assert c.get("/auth/me").status_code == 401  # the change ended the session
