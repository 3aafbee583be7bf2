"""The transactional outbox on real SQLite and real PostgreSQL: one message per work-order
change, committed with it or not at all; delivery rows per route; per-incident order;
replay; ids that become visible in order under concurrent writers; the crash gap
between an incident and its work order closed at start-up."""

import threading
import time

import pytest
import sqlalchemy as sa

from gridworker.incidents import IncidentStore
from gridworker.delivery.outbox import DEAD, DELIVERED, PENDING, DeliveryRow, Outbox, OutboxRow, Route, WorkOrderRepair, reconcile_workorders
from gridworker.cases.workflow import OPERATOR, SUPERVISOR, UNIT_HANDLER, Actor, Workflow
from gridworker.cases.workorders import WorkOrderRow, WorkOrders

from tests.factories import pg_database
from tests.forwarding.helpers import T0, open_incident

OP = Actor("op-li", OPERATOR)
SUP = Actor("sup-wang", SUPERVISOR)
SQUAD = Actor("squad-7", UNIT_HANDLER, "traffic-squad")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def orders(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'ob.db'}" if request.param == "sqlite" else pg_database("gw_outbox")
    store = IncidentStore(url)
    yield WorkOrders(store.db)
    store.close()


def _rows(orders, model):
    with orders.transaction() as s:
        return s.scalars(sa.select(model).order_by(model.id)).all()


def test_one_message_per_change_with_key_and_payload(orders):
    outbox = Outbox(orders.db, routes=[Route("hook"), Route("gb", events=("workorder.detect",))]).attach(orders)
    order = open_incident(orders)
    wf = Workflow(orders)
    wf.dispatch(order.incident_id, OP, unit="traffic-squad", at=T0 + 10)
    wf.accept(order.incident_id, SQUAD, at=T0 + 20)
    wf.handle(order.incident_id, SQUAD, note="towed", at=T0 + 30)
    wf.close(order.incident_id, OP, at=T0 + 40)
    events = outbox.events_after(0)
    assert [e.event for e in events] == ["workorder.detect", "workorder.dispatch", "workorder.accept", "workorder.handle", "workorder.close"]
    assert [e.idempotency_key for e in events] == [f"{order.incident_id}:{v}" for v in range(1, 6)]
    # the audit trail and the outbox agree one to one
    audit = orders.audit(order.incident_id)
    assert [(a.version, a.action) for a in audit] == [(e.version, e.event.split(".")[1]) for e in events]
    first = events[0].document()
    assert first["event_id"] == events[0].id and first["incident"]["type_name_zh"] == "机动车违停"
    assert first["incident"]["camera_name"] == "东门 Gate" and first["workorder"]["state"] == "detected"
    assert first["change"] == {
        "action": "detect", "actor": "system:detector", "role": "system", "from_state": None, "to_state": "detected",
        "from_unit": None, "to_unit": order.unit, "reason": first["change"]["reason"], "details": first["change"]["details"],
    }
    last = events[-1].document()
    assert (last["change"]["from_state"], last["change"]["to_state"], last["change"]["actor"]) == ("handled", "closed", "op-li")
    # deliveries: every event to "hook", only the detection to "gb"
    deliveries = _rows(orders, DeliveryRow)
    assert sorted((d.destination, d.outbox_id) for d in deliveries) == sorted(
        [("hook", e.id) for e in events] + [("gb", events[0].id)]
    )
    assert all(d.state == PENDING and d.attempts == 0 for d in deliveries)
    assert outbox.counters()["hook"]["pending"] == 5 and outbox.counters()["gb"]["pending"] == 1


def test_a_failing_write_leaves_neither_change_nor_message(orders):
    outbox = Outbox(orders.db, routes=[Route("hook")]).attach(orders)
    order = open_incident(orders)

    def boom(session, row, audit):
        raise RuntimeError("disk full")

    orders.on_change.append(boom)  # runs after the outbox hook, in the same transaction
    with pytest.raises(RuntimeError):
        Workflow(orders).dispatch(order.incident_id, OP, at=T0 + 5)
    assert orders.get(order.incident_id).state == "detected"
    assert [e.event for e in outbox.events_after(0)] == ["workorder.detect"]
    assert len(_rows(orders, DeliveryRow)) == 1
    # and the creation of a work order is atomic with its message too
    inc = IncidentStore(orders.db).open(camera_id="c", camera_name="", site="", zone_id="z", rule_id="r", type="crowd",
                            at=T0, count=3, summary="", details={}, snapshot=None)
    with pytest.raises(RuntimeError):
        orders.on_incident_opened(inc)
    assert orders.get(inc.id) is None and outbox.count() == 1
    orders.on_change.remove(boom)
    assert orders.on_incident_opened(inc) is not None and outbox.count() == 2


def test_per_incident_order_dead_and_replay(orders):
    outbox = Outbox(orders.db, routes=[Route("hook")]).attach(orders)
    a = open_incident(orders, camera="cam-a")
    b = open_incident(orders, camera="cam-b")
    Workflow(orders).dispatch(a.incident_id, OP, at=T0 + 1)
    now = T0 + 100
    due = outbox.due("hook", now)
    assert [(d.event.incident_id, d.event.version) for d in due] == [(a.incident_id, 1), (b.incident_id, 1), (a.incident_id, 2)]
    # a's first message fails and waits: a's second must wait behind it, b goes on
    outbox.mark_retry(due[0].delivery_id, now, now + 30, "HTTP 503")
    assert [(d.event.incident_id, d.event.version) for d in outbox.due("hook", now)] == [(b.incident_id, 1)]
    assert [(d.event.incident_id, d.event.version) for d in outbox.due("hook", now + 31)] == [
        (a.incident_id, 1), (b.incident_id, 1), (a.incident_id, 2)]
    # unreachable: not counted against the message
    outbox.mark_retry(due[1].delivery_id, now, now, "refused", count=False)
    assert outbox.delivery(due[1].delivery_id).attempts == 0
    outbox.mark_delivered(due[1].delivery_id, now)
    outbox.mark_dead(due[0].delivery_id, now, "HTTP 410 Gone")
    # a dead message no longer holds its incident back
    assert [(d.event.incident_id, d.event.version) for d in outbox.due("hook", now)] == [(a.incident_id, 2)]
    d = outbox.delivery(due[0].delivery_id)
    assert (d.state, d.attempts, d.last_error, d.idempotency_key) == (DEAD, 2, "HTTP 410 Gone", f"{a.incident_id}:1")
    assert outbox.delivery(due[1].delivery_id).state == DELIVERED
    with pytest.raises(ValueError):
        outbox.replay(due[1].delivery_id)  # delivered, not dead
    assert outbox.replay(999_999) is None
    r = outbox.replay(due[0].delivery_id, now=now + 1)
    assert (r.state, r.attempts, r.replays) == (PENDING, 0, 1)
    assert [(x.event.incident_id, x.event.version) for x in outbox.due("hook", now + 1)] == [(a.incident_id, 1), (a.incident_id, 2)]
    dead, total = outbox.deliveries(state=DEAD)
    assert dead == [] and total == 0


def test_ids_become_visible_in_order_under_concurrent_writers(orders):
    """A reader that follows the outbox by id never skips a message that commits late."""
    outbox = Outbox(orders.db, routes=[]).attach(orders)
    ids = [open_incident(orders, camera=f"cam-{i}").incident_id for i in range(24)]
    seen: list[int] = []
    stop = threading.Event()

    def follow():
        last = outbox.last_id()
        while not stop.is_set() or outbox.events_after(last):
            for e in outbox.events_after(last):
                seen.append(e.id)
                last = e.id
            time.sleep(0.001)

    start = outbox.last_id()
    reader = threading.Thread(target=follow)
    reader.start()
    errors = []

    def work(chunk):
        try:
            wf = Workflow(orders)
            for i in chunk:
                wf.dispatch(i, OP, at=T0 + 5)
                wf.escalate(i, SUP, at=T0 + 6)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[k::6],)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join(30)
    assert not errors
    expected = [e.id for e in outbox.events_after(start, limit=1000)]
    assert len(expected) == 48
    assert seen == expected  # all of them, in id order, none skipped


def test_reconcile_creates_the_work_order_a_crash_skipped(orders):
    outbox = Outbox(orders.db, routes=[Route("hook")]).attach(orders)
    old = IncidentStore(orders.db).open(camera_id="c", camera_name="", site="", zone_id="z", rule_id="r", type="crowd",
                            at=T0 - 1000, count=1, summary="before work orders existed", details={}, snapshot=None)
    IncidentStore(orders.db).close_incident(old.id, at=T0 - 900)
    first = open_incident(orders, camera="cam-1")
    # the process dies after IncidentStore.open and before on_incident_opened
    lost = IncidentStore(orders.db).open(camera_id="cam-2", camera_name="", site="s", zone_id="z", rule_id="r", type="wrong_way",
                             at=T0 + 5, count=1, summary="", details={}, snapshot=None)
    assert orders.get(lost.id) is None
    assert reconcile_workorders(orders) == 1
    assert orders.get(lost.id) is not None and orders.get(old.id) is None  # history left alone
    assert [e.incident_id for e in outbox.events_after(0)] == [first.incident_id, lost.id]
    assert reconcile_workorders(orders) == 0
    with orders.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(WorkOrderRow)) == 2
        assert s.scalar(sa.select(sa.func.count()).select_from(OutboxRow)) == 2


def _stored(orders, camera: str, at: float):
    """An incident stored whose work order was never made (a crash, a listener that failed)."""
    return IncidentStore(orders.db).open(camera_id=camera, camera_name="", site="s", zone_id="z", rule_id="r", type="wrong_way",
                                         at=at, count=1, summary="", details={}, snapshot=None)


def test_reconcile_fills_a_gap_below_the_newest_work_order(orders):
    """Threads open incidents at once: one stored, another stored and given its case, then the
    crash. The gap is below the newest work order and is filled all the same."""
    first = open_incident(orders, camera="cam-1")
    lost = _stored(orders, "cam-2", T0 + 5)
    later = open_incident(orders, camera="cam-3")
    assert orders.get(lost.id) is None and later.incident_id > lost.id
    assert reconcile_workorders(orders) == 1
    assert orders.get(lost.id) is not None and orders.get(first.incident_id) is not None


def test_repair_makes_the_work_order_a_failed_listener_missed_once_the_incident_settles(orders, monkeypatch):
    open_incident(orders, camera="cam-1")
    repair = WorkOrderRepair(orders, settle_s=30.0)  # the service builds it before it starts
    missed = _stored(orders, "cam-2", T0 + 100)  # on_incident_opened raised ("database is locked")
    made_live = open_incident(orders, camera="cam-3")  # a later incident whose case was made
    assert repair.run(now=T0 + 110) == 0  # not settled yet: the live listener may be making it now
    # creating it fails once more: the watermark stays at it, and it is made on a later run
    real = orders.on_incident_opened
    monkeypatch.setattr(orders, "on_incident_opened", lambda inc: (_ for _ in ()).throw(RuntimeError("database is locked")))
    assert repair.run(now=T0 + 200) == 0 and orders.get(missed.id) is None
    monkeypatch.setattr(orders, "on_incident_opened", real)
    assert repair.run(now=T0 + 260) == 1
    assert orders.get(missed.id) is not None and orders.get(made_live.incident_id) is not None
    assert repair.run(now=T0 + 320) == 0
    with orders.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(WorkOrderRow)) == 3


def test_repair_of_more_than_a_page_goes_on_from_where_the_page_ended(orders, monkeypatch):
    """Repair makes at most ``page`` work orders a run; the watermark stops after the last
    incident it looked at, so the rest are made on later runs (not skipped)."""
    repair = WorkOrderRepair(orders, settle_s=30.0, page=3)
    missed = [_stored(orders, f"cam-{i}", T0 + i) for i in range(8)]
    real = orders.on_incident_opened
    stuck = missed[1].id  # its creation fails on the first run
    runs = [0]

    def flaky(inc):
        if inc.id == stuck and runs[0] == 1:
            raise RuntimeError("database is locked")
        return real(inc)

    monkeypatch.setattr(orders, "on_incident_opened", flaky)
    made = []
    for n in range(1, 6):
        runs[0] = n
        made.append(repair.run(now=T0 + 1000))
    assert made == [2, 3, 3, 0, 0]
    assert all(orders.get(inc.id) is not None for inc in missed)
