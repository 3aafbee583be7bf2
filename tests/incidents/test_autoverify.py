"""Closing verified on camera: a handled case closes by itself once the camera shows the
condition cleared (its detection incident closed), through the real manager's on_close."""

from gridworker.incidents import IncidentManager, IncidentQuery, IncidentStore
from gridworker.incidents.manager import CameraInfo
from gridworker.cases.workflow import Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig
from tests.scenario import Scenario

ZONES = [{"id": "kerb", "rules": [{"type": "illegal_parking", "min_duration_s": 10, "clear_after_s": 5, "lost_grace_s": 1}]}]


def _case_loop(path):
    """The store, work orders and workflow, and the incident manager opening work orders and
    verifying closes on them, as the service wires them."""
    store = IncidentStore(f"sqlite:///{path}")
    orders = WorkOrders(store.db)
    flow = Workflow(orders)
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(site="market"), write_interval_s=0.0)
    manager.on_open.append(orders.on_incident_opened)
    manager.on_close.append(flow.verify_cleared)
    return store, orders, flow, manager


def test_handled_case_closes_when_the_car_is_gone(tmp_path):
    store, orders, flow, manager = _case_loop(tmp_path / "v.db")
    sc = Scenario(fps=5)
    sc.track("car", (400, 600, 600, 700)).stay(0, 40)  # parked 0-40 s, then gone
    analyzer = CameraAnalyzer("cam", 5, SceneConfig(zones=ZONES), track=False)
    operator = Actor("op", "operator")
    case = None
    for frame, dets in sc.frames(until=60):
        opened = manager.observe(analyzer.analyze(frame, dets))
        if opened:
            case = opened[0].id
            flow.dispatch(case, operator, at=frame.ts)
        if case is not None and frame.ts == 20.0:
            order = orders.get(case)
            flow.accept(case, Actor("squad", "unit_handler", order.unit), at=frame.ts)
            flow.handle(case, Actor("squad", "unit_handler", order.unit), note="driver told to move", at=frame.ts)
            assert orders.get(case).state == "handled"
    assert case is not None
    order = orders.get(case)
    assert order.state == "closed"
    assert store.get(case).closed_at is not None and 44.0 <= store.get(case).closed_at <= 46.5
    store.close()


def test_running_case_is_only_noted_when_condition_clears(tmp_path):
    store, orders, flow, manager = _case_loop(tmp_path / "n.db")
    sc = Scenario(fps=5)
    sc.track("car", (400, 600, 600, 700)).stay(0, 30)
    run = sc.run(ZONES, until=50)
    for a in run.analyses:
        manager.observe(a)
    (inc,) = store.list(IncidentQuery())[0]
    order = orders.get(inc.id)
    assert order.state == "detected" and order.cleared_at is not None  # not closed: nobody handled it
    store.close()
