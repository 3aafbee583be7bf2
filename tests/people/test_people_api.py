"""People over HTTP, on the real app around real parts (SQLite and PostgreSQL): logins and their
cookie, CSRF, login limits, idle expiry, a person's own cases only, dispatch to a person by
area then load, audited reassignment, idempotent actions, the admin API and its CSV import."""

import base64
import io
import time

import pytest
from PIL import Image

from gridworker.api.deps import wiring
from gridworker.api.routers.events import _visible
from gridworker.api.sessions import Sessions
from tests.people.conftest import EAST, PW, WEST, make_env, people_config


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 60)).save(out, "JPEG")
    return out.getvalue()


JPEG = _jpeg()  # a real, decodable photo: the handle step refuses bytes that only look like one

@pytest.fixture
def env(db_url):
    e = make_env(db_url)
    yield e
    e.store.close()


def test_login_cookie_is_httponly_strict_and_me_gives_the_csrf_token(env):
    with env.client() as c:
        r = c.post("/auth/login", json={"username": "EAST1", "password": PW})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("gw_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here; over https it is Secure
        body = r.json()
        assert body["person"]["username"] == "east1" and body["person"]["area"] == "east"
        assert PW not in r.text and "argon2" not in r.text and "password_hash" not in r.text
        me = c.get("/auth/me").json()
        assert me["name"] == f"person:{env.ids['east1']}:east1" and me["role"] == "unit_handler" and me["unit"] == "community-grid"
        assert me["csrf_token"] == body["csrf_token"] and me["person"]["id"] == env.ids["east1"]
        assert me["events_url"] == "/console/events"
        assert c.post("/auth/login", json={"username": "east1", "password": PW + "!"}).status_code == 401
    with env.client(base_url="https://127.0.0.1") as c:
        assert "Secure" in c.post("/auth/login", json={"username": "east1", "password": PW}).headers["set-cookie"]


def test_csrf_token_is_required_on_unsafe_methods_by_cookie(env):
    i = env.case(EAST)
    env.client().post(f"/workorders/{i}/dispatch", json={}, headers=env.h("operator"))
    with env.client() as c:
        csrf = env.login(c, "east1")
        assert c.get(f"/workorders/{i}").status_code == 200  # reads need no token
        assert c.post(f"/workorders/{i}/accept").status_code == 403
        r = c.post(f"/workorders/{i}/accept", headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        assert env.orders.get(i).state == "dispatched"
        r = c.post(f"/workorders/{i}/accept", headers=csrf)
        assert r.status_code == 200 and r.json()["state"] == "accepted"
        assert c.post("/auth/logout").status_code == 403  # logging out is a change too
        assert c.post("/auth/logout", headers=csrf).status_code == 204
        assert c.get("/auth/me").status_code == 401  # the session ended
    # a key needs no CSRF token, and a key wins over a cookie
    with env.client() as c:
        env.login(c, "east1")
        r = c.post(f"/workorders/{i}/handle", json={"note": "done"}, headers=env.h("grid"))
        assert r.status_code == 200 and r.json()["state"] == "handled"


def test_login_is_rate_limited_per_username_and_per_client(db_url):
    env = make_env(db_url, login_failures_per_user=3, login_attempts_per_client=6)
    try:
        with env.client() as c:
            for _ in range(3):
                assert c.post("/auth/login", json={"username": "east1", "password": "wrong password"}).status_code == 401
            r = c.post("/auth/login", json={"username": "east1", "password": PW})  # right, but too late
            assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 300
            assert c.post("/auth/login", json={"username": "west1", "password": PW}).status_code == 200  # another username
            # the client's own cap: 3 failures + the refused one (not counted) + 1 success = 4 counted; 2 more, then 429
            assert c.post("/auth/login", json={"username": "squad1", "password": PW}).status_code == 200
            assert c.post("/auth/login", json={"username": "boss", "password": PW}).status_code == 200
            assert c.post("/auth/login", json={"username": "boss", "password": PW}).status_code == 429
        with env.client(client=("10.9.8.7", 4000)) as other:  # another client: the guesser's failures do not lock east1 out
            assert other.post("/auth/login", json={"username": "east1", "password": PW}).status_code == 200
            assert other.post("/auth/login", json={"username": "boss", "password": PW}).status_code == 200
    finally:
        env.store.close()


def test_a_session_ends_when_idle_and_when_too_old(env):
    now = [1_000_000.0]
    wiring(env.app).sessions = Sessions(env.people.db, people_config(session_idle_s=600, session_max_age_s=3600), clock=lambda: now[0])
    with env.client() as c:
        env.login(c, "boss")
        for _ in range(5):  # used every 9 minutes: alive for 45 minutes
            now[0] += 540
            assert c.get("/auth/me").status_code == 200
        now[0] += 601  # idle too long
        r = c.get("/auth/me")
        assert r.status_code == 401 and "gw_session=" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
        env.login(c, "boss")
        for _ in range(6):  # used every 599 s: 3594 s old, still in
            now[0] += 599
            assert c.get("/auth/me").status_code == 200
        now[0] += 10  # over the hour since login, though used 10 s ago
        assert c.get("/auth/me").status_code == 401


def test_disabling_a_person_ends_their_sessions(env):
    with env.client() as c, env.client() as admin:
        env.login(c, "west1")
        assert c.get("/me/cases").status_code == 200
        r = admin.patch(f"/people/{env.ids['west1']}", json={"disabled": True}, headers=env.h("admin"))
        assert r.status_code == 200 and r.json()["disabled"] is True
        assert c.get("/me/cases").status_code == 401
        assert c.post("/auth/login", json={"username": "west1", "password": PW}).status_code == 401


def test_a_person_sees_only_their_own_cases(env):
    op = env.h("operator")
    with env.client() as c:
        mine, theirs, other_unit = env.case(EAST), env.case(WEST), env.case(type="illegal_parking")
        for i in (mine, theirs, other_unit):
            assert c.post(f"/workorders/{i}/dispatch", json={}, headers=op).status_code == 200
    assert env.orders.get(mine).assignee == env.ids["east1"] and env.orders.get(theirs).assignee == env.ids["west1"]
    assert env.orders.get(other_unit).assignee == env.ids["squad1"]
    with env.client() as c:
        csrf = env.login(c, "east1")
        assert [o["incident_id"] for o in c.get("/workorders").json()["items"]] == [mine]
        assert [o["incident_id"] for o in c.get("/me/cases").json()["items"]] == [mine]
        assert c.get("/workorders", params={"assignee": env.ids["west1"]}).status_code == 403
        assert c.get("/workorders", params={"unit": "traffic-squad"}).status_code == 403
        for i in (theirs, other_unit):
            assert c.get(f"/workorders/{i}").status_code == 404
            assert c.get(f"/workorders/{i}/photo.jpg").status_code == 404
            assert c.get(f"/incidents/{i}").status_code == 404
            assert c.post(f"/workorders/{i}/accept", headers=csrf).status_code == 404
        assert c.get(f"/incidents/{mine}").status_code == 200
        assert c.get("/incidents").status_code == 403  # the list of all incidents is for readers
        assert c.get("/people").status_code == 403
    # the unit's key (a machine, not a person) still sees the whole unit, as before
    with env.client() as c:
        assert {o["incident_id"] for o in c.get("/workorders", headers=env.h("grid")).json()["items"]} == {mine, theirs}
    # the outbox feed cannot tell whose a case is: a person gets none of it
    from gridworker.cases.people import Person

    person = env.people.get(env.ids["east1"])
    assert isinstance(person, Person)

    class Ev:
        unit, from_unit = "community-grid", ""

    assert _visible(Ev(), person.actor()) is False


def test_dispatch_assigns_by_area_then_load_and_reassignment_is_audited(env):
    op = env.h("operator")
    with env.client() as c:
        a, b = env.case(EAST), env.case(None)
        assert c.post(f"/workorders/{a}/dispatch", json={}, headers=op).json()["assignee"] == env.ids["east1"]
        r = c.post(f"/workorders/{b}/dispatch", json={}, headers=op)  # no area: the least loaded (west1, 0 cases)
        assert r.json()["assignee"] == env.ids["west1"] and r.json()["area"] == "" and r.json()["position"] is None
        assert c.get(f"/workorders/{a}", headers=op).json()["position"] == EAST
        with env.client() as boss:
            csrf = env.login(boss, "boss")
            r = boss.post(f"/workorders/{a}/assign", json={"assignee": env.ids["west1"], "note": "east1 is off sick"}, headers=csrf)
            assert r.status_code == 200 and r.json()["assignee"] == env.ids["west1"] and r.json()["state"] == "dispatched"
            bad = boss.post(f"/workorders/{a}/assign", json={"assignee": env.ids["squad1"]}, headers=csrf)
            assert bad.status_code == 422  # not a person of the unit holding the case
        with env.client() as east:
            csrf = env.login(east, "east1")
            assert east.post(f"/workorders/{a}/assign", json={"assignee": env.ids["east1"]}, headers=csrf).status_code == 403
            assert east.get(f"/workorders/{a}").status_code == 404  # not theirs any more
        trail = c.get(f"/workorders/{a}", headers=op).json()["audit"]
        assign = [e for e in trail if e["action"] == "assign"]
        assert len(assign) == 1 and assign[0]["actor"] == f"person:{env.ids['boss']}:boss" and assign[0]["reason"] == "east1 is off sick"
        assert assign[0]["details"] == {"assignee": [env.ids["east1"], env.ids["west1"]], "assigned_by": "chosen"}
        dispatch = [e for e in trail if e["action"] == "dispatch"][0]
        assert dispatch["details"] == {"assignee": [None, env.ids["east1"]], "assigned_by": "area"}
        # an explicit assignee on dispatch
        d = env.case(WEST)
        r = c.post(f"/workorders/{d}/dispatch", json={"assignee": env.ids["east1"]}, headers=op)
        assert r.json()["assignee"] == env.ids["east1"]


def test_my_queue_puts_late_cases_first_then_newest(env):
    op = env.h("operator")
    now = time.time()
    late = env.case(EAST, at=now - 3 * 86_400)  # long past its time limit
    old = env.case(EAST, at=now - 60)
    new = env.case(EAST, at=now - 10)
    done = env.case(EAST, at=now - 5)
    with env.client() as c:
        for i in (late, old, new, done):
            c.post(f"/workorders/{i}/dispatch", json={"assignee": env.ids["east1"]}, headers=op)
        c.post(f"/workorders/{done}/reject", json={"note": "no vendor there"}, headers=op)
        csrf = env.login(c, "east1")
        page = c.get("/me/cases").json()
        assert [o["incident_id"] for o in page["items"]] == [late, new, old] and page["total"] == 3
        assert page["items"][0]["overdue"] is True and page["items"][1]["overdue"] is False
        assert [o["incident_id"] for o in c.get("/me/cases", params={"finished": True}).json()["items"]] == [late, done, new, old]
        assert c.get("/me/cases", headers=env.h("grid")).status_code == 403  # a key is not a person
        assert csrf


def test_a_repeated_action_with_the_same_idempotency_key_runs_once(env):
    op = env.h("operator")
    i, j = env.dispatched(EAST, EAST)
    with env.client() as c:
        csrf = env.login(c, "east1")
        first = c.post(f"/workorders/{i}/accept", json={"note": "on my way"}, headers={**csrf, "Idempotency-Key": "phone-1-accept-0001"})
        again = c.post(f"/workorders/{i}/accept", json={"note": "on my way"}, headers={**csrf, "Idempotency-Key": "phone-1-accept-0001"})
        assert first.status_code == again.status_code == 200 and again.json() == first.json()
        photo = base64.b64encode(JPEG).decode()
        h1 = c.post(f"/workorders/{i}/handle", json={"note": "moved on", "photo_base64": photo}, headers={**csrf, "Idempotency-Key": "phone-1-handle-0001"})
        h2 = c.post(f"/workorders/{i}/handle", json={"note": "moved on", "photo_base64": photo}, headers={**csrf, "Idempotency-Key": "phone-1-handle-0001"})
        assert h1.status_code == h2.status_code == 200 and h1.json() == h2.json() and h1.json()["state"] == "handled"
        trail = [e["action"] for e in c.get(f"/workorders/{i}").json()["audit"]]
        assert trail == ["detect", "dispatch", "accept", "handle"]
        # without a key the repeat is refused by the state machine, as before
        assert c.post(f"/workorders/{i}/accept", headers=csrf).status_code == 409
        # the same key for another case, or a malformed key: refused, nothing happens
        r = c.post(f"/workorders/{j}/accept", headers={**csrf, "Idempotency-Key": "phone-1-accept-0001"})
        assert r.status_code == 422 and env.orders.get(j).state == "dispatched"
        assert c.post(f"/workorders/{j}/accept", headers={**csrf, "Idempotency-Key": "bad key!"}).status_code == 422
    # keys are per caller: the same key from another caller is a new request
    with env.client() as c:
        r = c.post(f"/workorders/{j}/reject", json={"note": "gone"}, headers={**op, "Idempotency-Key": "phone-1-accept-0001"})
        assert r.status_code == 200 and r.json()["state"] == "rejected"


def test_a_repeat_after_the_case_moved_away_still_gets_the_first_result(env):
    """The phone's retry after a lost response, once the case went to someone else (escalated,
    reassigned): the first result, not a 404. Only to the caller who stored it: the same key
    from another caller, or for another case the caller cannot see, is a plain 404."""
    i, j = env.dispatched(EAST, EAST)
    key = {"Idempotency-Key": "phone-1-accept-0002"}
    with env.client() as c:
        csrf = env.login(c, "east1")
        first = c.post(f"/workorders/{i}/accept", headers={**csrf, **key})
        assert first.status_code == 200 and first.json()["state"] == "accepted"
        r = c.post(f"/workorders/{i}/assign", json={"assignee": env.ids["west1"]}, headers=env.h("operator"))
        assert r.status_code == 200
        assert c.get(f"/workorders/{i}").status_code == 404  # no longer theirs
        again = c.post(f"/workorders/{i}/accept", headers={**csrf, **key})
        assert again.status_code == 200 and again.json() == first.json()
        assert c.post(f"/workorders/{i}/escalate", headers=env.h("operator")).status_code == 403
        assert c.post(f"/workorders/{i}/escalate", json={}, headers=env.h("admin")).status_code == 200
        assert c.post(f"/workorders/{i}/accept", headers={**csrf, **key}).json() == first.json()
        # without the key, or with it for a case they cannot see: 404 as for any other case
        assert c.post(f"/workorders/{i}/accept", headers=csrf).status_code == 404
        r = c.post(f"/workorders/{j}/assign", json={"assignee": env.ids["west1"]}, headers=env.h("operator"))
        assert r.status_code == 200
        assert c.post(f"/workorders/{j}/accept", headers={**csrf, **key}).status_code == 404
    with env.client() as c:  # another person with the same key: not the stored result
        csrf = env.login(c, "west1")
        r = c.post(f"/workorders/{i}/accept", headers={**csrf, **key})
        assert r.status_code == 404
        r = c.post(f"/workorders/{j}/accept", headers={**csrf, **key})
        assert r.status_code == 200 and r.json()["incident_id"] == j
    trail = [e["action"] for e in env.client().get(f"/workorders/{i}", headers=env.h("operator")).json()["audit"]]
    assert trail == ["detect", "dispatch", "accept", "assign", "escalate"]  # the repeats changed nothing


def test_people_admin_api_and_csv_import(env):
    admin = env.h("admin")
    with env.client() as c:
        body = {"username": "liu", "name": "Liu", "unit": "community-grid", "area": "east", "role": "unit_handler", "password": "liu-password-1"}
        assert c.post("/people", json=body, headers=env.h("operator")).status_code == 403
        r = c.post("/people", json=body, headers=admin)
        assert r.status_code == 201 and r.json()["has_password"] is True and "liu-password-1" not in r.text
        assert c.post("/people", json=body, headers=admin).status_code == 409
        assert c.post("/people", json={**body, "username": "liu2", "area": "north"}, headers=admin).status_code == 422
        page = c.get("/people", params={"unit": "community-grid"}, headers=env.h("operator")).json()
        assert {p["username"] for p in page["items"]} == {"east1", "west1", "liu"}
        assert c.get("/people", headers=env.h("viewer")).status_code == 403
        csv_text = "username,name,unit,area,role,password\nzhao,Zhao,community-grid,west,unit_handler,zhao-password-1\nqian,Qian,,,viewer,\n"
        r = c.post("/people/import", content=csv_text, headers={**admin, "Content-Type": "text/csv"})
        assert r.status_code == 200 and r.json() == {"imported": 2, "usernames": ["zhao", "qian"]}
        assert c.post("/people/import", content=csv_text, headers={**admin, "Content-Type": "application/json"}).status_code == 415
        r = c.post("/people/import", content="username,name,role,password\nsun,Sun,wizard,sun-secret-pw\n", headers={**admin, "Content-Type": "text/csv"})
        assert r.status_code == 422 and "line 2" in r.json()["detail"] and "sun-secret-pw" not in r.text
        # a column twice: refused (csv would keep the last one — a second "role" column granting admin unseen)
        r = c.post("/people/import", content="username,name,role,unit,role\nbob,Bob,viewer,,admin\n", headers={**admin, "Content-Type": "text/csv"})
        assert r.status_code == 422 and "'role' twice" in r.json()["detail"]
        assert "bob" not in {p["username"] for p in c.get("/people", headers=admin).json()["items"]}
        huge = "username,name,role\n" + "x" * (2 << 20)
        assert c.post("/people/import", content=huge, headers={**admin, "Content-Type": "text/csv"}).status_code == 413
        # an admin logged in manages people too; others do not
        assert c.post("/people", json={"username": "root", "name": "Root", "role": "admin", "password": PW}, headers=admin).status_code == 201
        with env.client() as root, env.client() as zhao:
            csrf = env.login(root, "root")
            assert root.post("/people", json={**body, "username": "liu3"}, headers=csrf).status_code == 201
            csrf = env.login(zhao, "zhao", "zhao-password-1")
            assert zhao.post("/people", json={**body, "username": "liu4"}, headers=csrf).status_code == 403


def test_no_key_loopback_admin_cannot_create_people(db_url):
    env = make_env(db_url, keyed=False)
    try:
        with env.client() as c:
            body = {"username": "liu", "name": "Liu", "role": "admin", "password": "liu-password-1"}
            r = c.post("/people", json=body)
            assert r.status_code == 403 and "admin key" in r.json()["detail"]
        # without keys a remote caller is refused at the front door, even with a person's password
        with env.client(client=("10.1.2.3", 40000)) as remote:
            assert remote.post("/auth/login", json={"username": "boss", "password": PW}).status_code == 403
    finally:
        env.store.close()


def test_a_grid_worker_rejects_a_false_alarm_assigned_to_them_only(env):
    mine, theirs = env.dispatched(EAST, WEST)
    with env.client() as c:
        # a unit's key (a machine) still may not reject
        assert c.post(f"/workorders/{mine}/reject", json={"note": "x"}, headers=env.h("grid")).status_code == 403
        assert "reject" not in c.get("/auth/me", headers=env.h("grid")).json()["actions"]
        csrf = env.login(c, "east1")
        assert c.get("/auth/me").json()["actions"]["reject"] == ["accepted", "detected", "dispatched", "escalated"]
        assert c.post(f"/workorders/{mine}/reject", json={"note": ""}, headers=csrf).status_code == 422  # the reason is required
        assert c.post(f"/workorders/{theirs}/reject", json={"note": "nothing here"}, headers=csrf).status_code == 404
        r = c.post(f"/workorders/{mine}/reject", json={"note": "nothing here: a parked delivery van"}, headers=csrf)
        assert r.status_code == 200 and r.json()["state"] == "rejected"
        last = env.orders.audit(mine)[-1]
        assert (last.action, last.actor, last.role, last.reason) == (
            "reject", f"person:{env.ids['east1']}:east1", "unit_handler", "nothing here: a parked delivery van"
        )
        assert env.orders.get(theirs).state == "dispatched"


def test_a_grid_worker_on_the_scene_rejects_a_case_already_accepted(env):
    """Accepted, walked there, nothing to see: the person rejects it as a false alarm."""
    mine, _ = env.dispatched(EAST, WEST)
    with env.client() as c:
        csrf = env.login(c, "east1")
        assert c.post(f"/workorders/{mine}/accept", headers=csrf).json()["state"] == "accepted"
        r = c.post(f"/workorders/{mine}/reject", json={"note": "on the scene: a parked delivery van, loading"}, headers=csrf)
        assert r.status_code == 200 and r.json()["state"] == "rejected"
        assert [a.action for a in env.orders.audit(mine)][-2:] == ["accept", "reject"]
