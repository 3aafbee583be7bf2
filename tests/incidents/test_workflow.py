"""The work-order lifecycle on real SQLite and real PostgreSQL: the transition table,
audit rows, the escalation floor, the overdue clock, auto-verified closing, the
on_change hook inside the transaction, and statistics."""

import threading

import pytest

from gridworker.incidents import IncidentStore
from gridworker.cases.workflow import (
    ADMIN,
    OPERATOR,
    SUPERVISOR,
    SYSTEM,
    TRANSITIONS,
    UNIT_HANDLER,
    VIEWER,
    Actor,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Workflow,
    WorkflowClock,
    allowed,
)
from gridworker.cases.workorders import AuditRow, WorkOrderQuery, WorkOrders
from tests.factories import pg_database
from tests.reports.conftest import jpeg_with_exif

PG_DB = "gw_workorders"  # a database of its own: other suites drop tables in the shared one

T0 = 1_700_000_000.0
OP = Actor("op-li", OPERATOR)
SUP = Actor("sup-wang", SUPERVISOR)
VIEW = Actor("viewer-zhao", VIEWER)
TRAFFIC_SQUAD = Actor("squad-7", UNIT_HANDLER, "traffic-squad")
GRID = Actor("grid-3", UNIT_HANDLER, "community-grid")
JPEG = jpeg_with_exif((320, 240))


def _pg_url():
    return pg_database(PG_DB)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def orders(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'wo.db'}" if request.param == "sqlite" else _pg_url()
    store = IncidentStore(url)
    yield WorkOrders(store.db)
    store.close()


def _incident(orders, type="illegal_parking", site="market", camera="cam-1", at=T0):
    inc = IncidentStore(orders.db).open(
        camera_id=camera, camera_name="Gate", site=site, zone_id="kerb", rule_id="r1", type=type,
        at=at, count=1, summary="a car parked", details={}, snapshot=None,
    )
    order = orders.on_incident_opened(inc)
    assert order is not None
    return order


def _wf(orders):
    return Workflow(orders, clock=lambda: T0 + 60)


# -- creation ---------------------------------------------------------------------------------
def test_opened_incident_becomes_a_graded_routed_work_order(orders):
    o = _incident(orders)
    assert (o.state, o.grade, o.unit, o.first_unit, o.responsible_unit) == ("detected", 3, "traffic-squad", "traffic-squad", "district-traffic")
    assert o.due_at == T0 + 60 * 60  # illegal parking, grade 3: 60 min
    school = _incident(orders, site="school")
    assert school.unit == "police-station"  # the routing rule for school areas
    fallen = _incident(orders, type="person_fallen")
    assert (fallen.grade, fallen.unit, fallen.due_at) == (1, "police-station", T0 + 5 * 60)
    # a second notification of the same incident changes nothing
    inc = IncidentStore(orders.db).get(o.incident_id)
    assert orders.on_incident_opened(inc) is None
    [audit] = orders.audit(o.incident_id)
    assert (audit.action, audit.from_state, audit.to_state, audit.actor, audit.to_unit) == ("detect", None, "detected", "system:detector", "traffic-squad")
    assert audit.at == T0 and audit.version == 1 and "a car parked" in audit.reason


# -- the table ---------------------------------------------------------------------------------
EXPECTED = {
    # action: (allowed source states, roles besides admin)
    "dispatch": ({"detected", "dispatched", "escalated", "handled"}, {OPERATOR, SUPERVISOR}),
    "accept": ({"dispatched", "escalated"}, {UNIT_HANDLER, SUPERVISOR}),
    "handle": ({"accepted"}, {UNIT_HANDLER, SUPERVISOR}),
    "close": ({"handled"}, {OPERATOR, SUPERVISOR, SYSTEM}),
    "reject": ({"detected", "dispatched", "accepted", "escalated"}, {OPERATOR, SUPERVISOR}),
    "escalate": ({"detected", "dispatched", "accepted", "escalated"}, {SUPERVISOR, SYSTEM}),
}
ALL_STATES = ["detected", "dispatched", "accepted", "handled", "closed", "rejected", "escalated"]
ALL_ROLES = [VIEWER, OPERATOR, UNIT_HANDLER, SUPERVISOR, ADMIN, SYSTEM]


@pytest.mark.parametrize("action", sorted(EXPECTED))
def test_transition_table(action):
    sources, roles = EXPECTED[action]
    assert set(TRANSITIONS) == set(EXPECTED)
    for state in ALL_STATES:
        for role in ALL_ROLES:
            want = state in sources and (role in roles or role == ADMIN)
            assert allowed(action, state, role) is want, (action, state, role)
    # nothing leaves a terminal state; a viewer can do nothing
    assert not any(allowed(a, s, r) for a in TRANSITIONS for s in ("closed", "rejected") for r in ALL_ROLES)
    assert not any(allowed(a, s, VIEWER) for a in TRANSITIONS for s in ALL_STATES)


def _to_state(wf, orders, state):
    """A fresh order driven to ``state`` by the shortest legal path."""
    o = _incident(orders)
    i = o.incident_id
    path = {
        "detected": [],
        "dispatched": [lambda: wf.dispatch(i, OP)],
        "accepted": [lambda: wf.dispatch(i, OP), lambda: wf.accept(i, TRAFFIC_SQUAD)],
        "handled": [lambda: wf.dispatch(i, OP), lambda: wf.accept(i, TRAFFIC_SQUAD), lambda: wf.handle(i, TRAFFIC_SQUAD, note="towed")],
        "closed": [lambda: wf.dispatch(i, OP), lambda: wf.accept(i, TRAFFIC_SQUAD), lambda: wf.handle(i, TRAFFIC_SQUAD, note="towed"), lambda: wf.close(i, OP)],
        "rejected": [lambda: wf.reject(i, OP, note="a delivery van loading")],
        "escalated": [lambda: wf.escalate(i, SUP)],
    }[state]
    for step in path:
        step()
    assert orders.get(i).state == state
    return i


def _call(wf, action, i, actor):
    kwargs = {"handle": {"note": "done"}, "reject": {"note": "false alarm"}}.get(action, {})
    return getattr(wf, action)(i, actor, **kwargs)


@pytest.mark.parametrize("state", ALL_STATES)
def test_applied_transitions_follow_the_table(orders, state):
    """Every action from ``state`` by an operator and a supervisor: allowed ones move the
    case and write one audit row, refused ones leave it and the audit untouched."""
    wf = _wf(orders)
    for action in sorted(TRANSITIONS):
        for actor in (OP, SUP, VIEW):
            i = _to_state(wf, orders, state)
            before = orders.audit(i)
            if allowed(action, state, actor.role):
                after = _call(wf, action, i, actor)
                assert after.state == TRANSITIONS[action].target
                audit = orders.audit(i)
                assert len(audit) == len(before) + 1
                last = audit[-1]
                assert (last.action, last.from_state, last.to_state, last.actor, last.role) == (action, state, after.state, actor.name, actor.role)
                assert last.version == after.version == before[-1].version + 1
            else:
                error = Forbidden if actor.role not in TRANSITIONS[action].roles else Conflict
                with pytest.raises(error) as info:
                    _call(wf, action, i, actor)
                assert info.value.reason
                assert orders.get(i).state == state and orders.audit(i) == before


def test_happy_path_audit_trail(orders):
    clock = iter(range(1, 100))
    wf = Workflow(orders, clock=lambda: T0 + 60 * next(clock))
    i = _incident(orders).incident_id
    wf.dispatch(i, OP, note="please tow")
    wf.accept(i, TRAFFIC_SQUAD)
    o = wf.handle(i, TRAFFIC_SQUAD, note="ticketed and towed", photo=JPEG)
    stored = orders.photo(i)  # re-encoded (cases/photos.py: normalise_photo)
    assert o.has_photo and o.on_time and o.handled_at == T0 + 180 and stored is not None and stored[:3] == JPEG[:3] and b"PhoneMaker" not in stored
    o = wf.close(i, OP, note="checked on camera")
    assert o.state == "closed" and o.closed_at == T0 + 240 and o.version == 5
    rows = [(a.action, a.from_state, a.to_state, a.actor, a.at, a.reason) for a in orders.audit(i)]
    assert rows == [
        ("detect", None, "detected", "system:detector", T0, rows[0][5]),
        ("dispatch", "detected", "dispatched", "op-li", T0 + 60, "please tow"),
        ("accept", "dispatched", "accepted", "squad-7", T0 + 120, ""),
        ("handle", "accepted", "handled", "squad-7", T0 + 180, "ticketed and towed"),
        ("close", "handled", "closed", "op-li", T0 + 240, "checked on camera"),
    ]
    assert orders.audit(i)[3].details == {"photo_bytes": len(stored)}


def test_refusals_with_reasons(orders):
    wf = _wf(orders)
    i = _incident(orders).incident_id
    with pytest.raises(Conflict, match="cannot accept a case that is detected"):
        wf.accept(i, SUP)
    with pytest.raises(Forbidden, match="operator role may not escalate"):
        wf.escalate(i, OP)
    with pytest.raises(Invalid, match="unknown unit 'ministry'"):
        wf.dispatch(i, OP, unit="ministry")
    with pytest.raises(Invalid, match="why the case is a false alarm"):
        wf.reject(i, OP, note="  ")
    wf.dispatch(i, OP)
    # a handler of another unit does not even see the case
    with pytest.raises(NotFound):
        wf.accept(i, GRID)
    with pytest.raises(NotFound):
        wf.visible(i, GRID)
    assert wf.visible(i, TRAFFIC_SQUAD).incident_id == i
    wf.accept(i, TRAFFIC_SQUAD)
    with pytest.raises(Invalid, match="note is required"):
        wf.handle(i, TRAFFIC_SQUAD, note="")
    with pytest.raises(Invalid, match="not a JPEG"):
        wf.handle(i, TRAFFIC_SQUAD, note="done", photo=b"\x89PNG\r\n")
    with pytest.raises(Invalid, match="does not decode"):
        wf.handle(i, TRAFFIC_SQUAD, note="done", photo=b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9")
    with pytest.raises(NotFound):
        wf.accept(999_999, SUP)
    assert [a.action for a in orders.audit(i)] == ["detect", "dispatch", "accept"]


def test_regrade_on_dispatch_moves_the_due_time(orders):
    wf = _wf(orders)
    i = _incident(orders).incident_id
    o = wf.dispatch(i, OP, grade=1)
    assert o.grade == 1 and o.due_at == T0 + 15 * 60
    assert orders.audit(i)[-1].details == {"grade": [3, 1]}


def test_escalated_case_cannot_go_back_down(orders):
    wf = _wf(orders)
    i = _incident(orders, type="street_vending").incident_id
    assert orders.get(i).unit == "community-grid"
    wf.dispatch(i, OP)
    o = wf.escalate(i, SUP, note="the grid cannot move the stall")
    assert (o.state, o.unit, o.escalations, o.floor_rank) == ("escalated", "street-enforcement", 1, 1)
    assert o.due_at == T0 + 60 + 120 * 60  # a fresh grade-3 limit for the upper level
    for actor in (OP, SUP, Actor("root", ADMIN)):
        with pytest.raises(Conflict, match="cannot be sent back down to 'community-grid'"):
            wf.dispatch(i, actor, unit="community-grid")
    assert orders.get(i).unit == "street-enforcement"
    # same level elsewhere is fine, and up is fine
    assert wf.dispatch(i, OP, unit="police-station").unit == "police-station"
    with pytest.raises(Conflict, match="escalation must go up"):
        wf.escalate(i, SUP, unit="traffic-squad")
    assert wf.escalate(i, SUP, unit="city-centre").floor_rank == 3
    with pytest.raises(Conflict, match="top level"):
        wf.escalate(i, SUP)
    with pytest.raises(Conflict, match="back down"):
        wf.dispatch(i, OP, unit="district-urban")
    # the unit above accepts the escalated case itself
    assert wf.accept(i, SUP).state == "accepted"


def test_overdue_cases_escalate_on_the_clock(orders):
    wf = Workflow(orders, clock=lambda: T0)
    clock = WorkflowClock(wf)
    i = _incident(orders, type="street_vending").incident_id  # grade 3: 120 min
    wf.dispatch(i, OP, at=T0 + 10)
    due = orders.get(i).due_at
    assert due == T0 + 120 * 60
    assert clock.tick(due - 1) == {"escalated": 0, "noted": 0, "skipped": 0}
    assert clock.tick(due + 1)["escalated"] == 1
    o = orders.get(i)
    assert (o.state, o.unit, o.overdue, o.floor_rank, o.due_at) == ("escalated", "street-enforcement", True, 1, due + 1 + 120 * 60)
    last = orders.audit(i)[-1]
    assert (last.actor, last.role, last.action, last.from_state, last.from_unit) == ("system:overdue", "system", "escalate", "dispatched", "community-grid")
    assert "overdue" in last.reason and "120 min" in last.reason
    # nothing more until the new due time; then up again, and again, to the top
    assert clock.tick(due + 60)["escalated"] == 0
    t = o.due_at + 1
    assert clock.tick(t)["escalated"] == 1 and orders.get(i).unit == "district-urban"
    t = orders.get(i).due_at + 1
    assert clock.tick(t)["escalated"] == 1 and orders.get(i).unit == "city-centre"
    # at the top: the lateness is recorded once, not on every tick
    t = orders.get(i).due_at + 1
    assert clock.tick(t) == {"escalated": 0, "noted": 1, "skipped": 0}
    assert clock.tick(t + 3600)["noted"] == 0
    actions = [a.action for a in orders.audit(i)]
    assert actions == ["detect", "dispatch", "escalate", "escalate", "escalate", "overdue"]
    # a late case can no longer be on time, even handled by the top
    wf.accept(i, SUP, at=t + 10)
    o = wf.handle(i, SUP, note="done at last", at=t + 20)
    assert o.on_time is False and o.overdue


def test_escalation_or_regrade_just_after_the_due_time_keeps_the_lateness(orders):
    """A new due time (escalation's fresh limit, a re-grade) does not erase a lateness the
    clock has not seen yet (it ticks every 30 s): the case stays overdue, not on time."""
    wf = _wf(orders)
    late_up, late_regrade, early_up = (_incident(orders).incident_id for _ in range(3))  # grade 3: 60 min
    for i in (late_up, late_regrade, early_up):
        wf.dispatch(i, OP, at=T0 + 10)
    o = wf.escalate(late_up, SUP, at=T0 + 60 * 60 + 20)  # 20 s late
    assert o.overdue and o.due_at == T0 + 60 * 60 + 20 + 60 * 60
    wf.accept(late_up, SUP, at=T0 + 61 * 60)
    o = wf.handle(late_up, SUP, note="done", at=T0 + 62 * 60)
    assert o.overdue and o.on_time is False
    o = wf.dispatch(late_regrade, OP, grade=4, at=T0 + 60 * 60 + 20)
    assert o.overdue and o.due_at == T0 + 240 * 60 and o.is_overdue(T0 + 61 * 60)
    o = wf.escalate(early_up, SUP, at=T0 + 59 * 60)  # in time: not late
    assert not o.overdue
    [parking] = orders.stats(now=T0 + 62 * 60)["by_type"]
    assert (parking.judged, parking.on_time) == (2, 0)


def test_a_case_sent_back_down_from_the_top_escalates_again_when_late(orders):
    """Late at the top level is noted once; dispatched back down (its floor allows it), the
    case is the clock's again: escalated when late, noted again at the top."""
    wf = _wf(orders)
    clock = WorkflowClock(wf)
    i = _incident(orders).incident_id  # traffic-squad, 60 min
    wf.dispatch(i, OP, unit="city-centre", at=T0 + 10)
    assert clock.tick(T0 + 60 * 60 + 1)["noted"] == 1
    wf.dispatch(i, OP, unit="traffic-squad", at=T0 + 62 * 60)
    assert clock.tick(T0 + 63 * 60) == {"escalated": 1, "noted": 0, "skipped": 0}
    o = orders.get(i)
    assert (o.state, o.unit, o.escalations, o.overdue) == ("escalated", "district-traffic", 1, True)
    assert wf.escalate(i, SUP, unit="city-centre", at=T0 + 64 * 60).unit == "city-centre"
    t = orders.get(i).due_at + 1
    assert clock.tick(t)["noted"] == 1 and clock.tick(t + 60)["noted"] == 0
    assert [a.action for a in orders.audit(i)] == ["detect", "dispatch", "overdue", "dispatch", "escalate", "escalate", "overdue"]


def test_handled_and_finished_cases_do_not_escalate(orders):
    wf = _wf(orders)
    handled = _to_state(wf, orders, "handled")
    rejected = _to_state(wf, orders, "rejected")
    running = _to_state(wf, orders, "accepted")
    assert WorkflowClock(wf).tick(T0 + 10 * 86400)["escalated"] == 1
    assert orders.get(handled).state == "handled" and orders.get(rejected).state == "rejected"
    assert orders.get(running).state == "escalated"


def test_auto_verified_close(orders):
    wf = _wf(orders)
    i = _to_state(wf, orders, "handled")
    assert wf.verify_cleared(i, at=T0 + 500) == "closed"
    o = orders.get(i)
    assert (o.state, o.closed_at, o.cleared_at) == ("closed", T0 + 500, T0 + 500)
    last = orders.audit(i)[-1]
    assert (last.actor, last.action, last.from_state, last.to_state) == ("system:auto-verify", "close", "handled", "closed")
    assert "verified on camera" in last.reason
    assert wf.verify_cleared(i, at=T0 + 600) == "ignored"

    j = _to_state(wf, orders, "dispatched")
    assert wf.verify_cleared(j, at=T0 + 700) == "noted"
    o = orders.get(j)
    assert (o.state, o.cleared_at) == ("dispatched", T0 + 700)
    last = orders.audit(j)[-1]
    assert (last.actor, last.action, last.from_state, last.to_state) == ("system:auto-verify", "verify", "dispatched", "dispatched")
    assert wf.verify_cleared(123_456) == "ignored"


def test_condition_back_continues_the_case(orders):
    wf = _wf(orders)
    j = _to_state(wf, orders, "dispatched")
    assert wf.verify_cleared(j, at=T0 + 700) == "noted"
    assert wf.condition_back(j, at=T0 + 760) == "noted"
    o = orders.get(j)
    assert (o.state, o.cleared_at) == ("dispatched", None), "no longer cleared: the car is back"
    last = orders.audit(j)[-1]
    assert (last.actor, last.action, last.to_state) == ("system:auto-verify", "verify", "dispatched") and "again" in last.reason
    # closed by the camera itself, then the condition is back within the cooldown: the close
    # was too soon, the case goes back to its unit as rework (the docs: "same case")
    i = _to_state(wf, orders, "handled")
    assert wf.verify_cleared(i, at=T0 + 800) == "closed"
    assert wf.condition_back(i, at=T0 + 810) == "reopened"
    o = orders.get(i)
    assert (o.state, o.closed_at, o.handled_at, o.cleared_at) == ("dispatched", None, None, None)
    last = orders.audit(i)[-1]
    assert (last.actor, last.action, last.from_state, last.to_state) == ("system:auto-verify", "dispatch", "closed", "dispatched")
    assert last.details.get("rework") is True and "undone" in last.reason
    # a case a person closed stays closed: the camera only notes it
    k = _to_state(wf, orders, "handled")
    wf.close(k, OP, at=T0 + 820)
    assert wf.condition_back(k, at=T0 + 830) == "noted-finished"
    assert orders.get(k).state == "closed" and "already finished" in orders.audit(k)[-1].reason
    assert wf.condition_back(123_456) == "ignored"


def test_on_change_runs_inside_the_transaction(orders):
    """The outbox hook: called with the session, the row and the audit row of every change;
    if it fails, the change is rolled back with it."""
    seen = []

    def hook(session, row, audit):
        assert session.get(AuditRow, audit.id) is audit  # flushed, same transaction
        seen.append((row.incident_id, row.version, audit.action, row.state))

    orders.on_change.append(hook)
    wf = _wf(orders)
    i = _incident(orders).incident_id
    wf.dispatch(i, OP)
    assert seen == [(i, 1, "detect", "detected"), (i, 2, "dispatch", "dispatched")]

    def broken(session, row, audit):
        raise RuntimeError("outbox unavailable")

    orders.on_change.append(broken)
    with pytest.raises(RuntimeError):
        wf.accept(i, TRAFFIC_SQUAD)
    o = orders.get(i)
    assert (o.state, o.version) == ("dispatched", 2)
    assert [a.action for a in orders.audit(i)] == ["detect", "dispatch"]


def test_concurrent_accepts_one_wins(orders):
    wf = _wf(orders)
    i = _to_state(wf, orders, "dispatched")
    results = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            wf.accept(i, TRAFFIC_SQUAD)
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["conflict"] * 3 + ["ok"]
    assert [a.action for a in orders.audit(i)].count("accept") == 1


def test_list_filters(orders):
    wf = _wf(orders)
    a = _incident(orders, site="school").incident_id  # police-station
    b = _incident(orders, type="street_vending").incident_id  # community-grid
    wf.dispatch(b, OP)
    assert orders.list(WorkOrderQuery())[1] == 2
    assert [o.incident_id for o in orders.list(WorkOrderQuery(unit="police-station"))[0]] == [a]
    assert [o.incident_id for o in orders.list(WorkOrderQuery(state="dispatched"))[0]] == [b]
    assert [o.incident_id for o in orders.list(WorkOrderQuery(site="school", type="illegal_parking"))[0]] == [a]
    # a is due at T0+60min, b at T0+120min
    late = orders.list(WorkOrderQuery(overdue=True, now=T0 + 90 * 60))[0]
    assert [o.incident_id for o in late] == [a]
    assert [o.incident_id for o in orders.list(WorkOrderQuery(overdue=False, now=T0 + 90 * 60))[0]] == [b]


def test_stats_on_a_known_dataset(orders):
    """Four parking cases at the market (traffic-squad, 60 min limit), one street vending
    case at the school (community-grid, 120 min):

    p1 handled after 30 min (on time), closed; p2 handled after 90 min (late);
    p3 still dispatched, 100 min old at ``now`` (late, unfinished); p4 rejected;
    v1 handled after 60 min (on time).
    """
    wf = Workflow(orders)
    p1, p2, p3, p4 = (_incident(orders).incident_id for _ in range(4))
    v1 = _incident(orders, type="street_vending", site="school").incident_id
    for i, minutes in ((p1, 30), (p2, 90)):
        wf.dispatch(i, OP, at=T0 + 60)
        wf.accept(i, TRAFFIC_SQUAD, at=T0 + 120)
        wf.handle(i, TRAFFIC_SQUAD, note="done", at=T0 + minutes * 60)
    wf.close(p1, OP, at=T0 + 40 * 60)
    wf.dispatch(p3, OP, at=T0 + 60)
    wf.reject(p4, OP, note="a bus stop", at=T0 + 60)
    wf.dispatch(v1, OP, at=T0 + 60)
    wf.accept(v1, GRID, at=T0 + 120)
    wf.handle(v1, GRID, note="stall moved on", at=T0 + 60 * 60)
    s = orders.stats(now=T0 + 100 * 60)
    assert s["by_state"] == {"detected": 0, "dispatched": 1, "accepted": 0, "handled": 2, "closed": 1, "rejected": 1, "escalated": 0}
    by_type = {g.key: g for g in s["by_type"]}
    parking = by_type["illegal_parking"]
    assert (parking.total, parking.finished, parking.judged, parking.on_time) == (4, 2, 3, 1)
    assert parking.on_time_rate == pytest.approx(1 / 3)
    assert parking.mean_handling_s == pytest.approx((30 + 90) / 2 * 60)
    vending = by_type["street_vending"]
    assert (vending.total, vending.finished, vending.judged, vending.on_time, vending.on_time_rate) == (1, 1, 1, 1, 1.0)
    assert vending.mean_handling_s == pytest.approx(3600)
    by_unit = {g.key: g for g in s["by_unit"]}
    assert set(by_unit) == {"traffic-squad", "community-grid"} and by_unit["traffic-squad"].judged == 3
    by_site = {g.key: g for g in s["by_site"]}
    assert by_site["school"].on_time_rate == 1.0 and by_site["market"].on_time_rate == pytest.approx(1 / 3)
    # the same data earlier: p3 not late yet, so not judged
    early = {g.key: g for g in orders.stats(now=T0 + 50 * 60)["by_type"]}
    assert early["illegal_parking"].judged == 2
    assert orders.stats(now=T0, unit="community-grid")["by_state"]["handled"] == 1
    assert orders.stats(since=T0 + 1)["by_type"] == []
