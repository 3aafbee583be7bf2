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


def _handled_parked_car(path, until: float = 30.0):
    """A car parked from 0 s, its case handled at 20 s; the car still there at ``until``."""
    store, orders, flow, manager = _case_loop(path)
    sc = Scenario(fps=5)
    sc.track("car", (400, 600, 600, 700)).stay(0, 120)
    analyzer = CameraAnalyzer("cam", 5, SceneConfig(zones=ZONES), track=False)
    case = None
    for frame, dets in sc.frames(until=until):
        opened = manager.observe(analyzer.analyze(frame, dets))
        if opened:
            case = opened[0].id
            flow.dispatch(case, Actor("op", "operator"), at=frame.ts)
        if case is not None and frame.ts == 20.0:
            squad = Actor("squad", "unit_handler", orders.get(case).unit)
            flow.accept(case, squad, at=frame.ts)
            flow.handle(case, squad, note="driver told to move", at=frame.ts)
    assert case is not None and orders.get(case).state == "handled"
    return store, orders, manager, analyzer, sc, case


def test_removing_the_camera_does_not_close_its_handled_case_as_verified(tmp_path):
    store, orders, manager, _, _, case = _handled_parked_car(tmp_path / "r.db")
    manager.close_camera(store.get(case).camera_id, 31.0)
    assert store.get(case).closed_at is not None  # the incident closes with its camera
    order = orders.get(case)
    assert order.state == "handled" and order.cleared_at is None  # nothing was seen to clear
    store.close()


def test_taking_the_rule_out_of_the_scene_does_not_verify_its_case(tmp_path):
    store, orders, manager, analyzer, sc, case = _handled_parked_car(tmp_path / "s.db")
    analyzer.set_scene(SceneConfig(zones=[{"id": "kerb-2", "rules": ZONES[0]["rules"]}]))  # the zone renamed
    for frame, dets in sc.frames(until=32):
        if frame.ts > 30.0:
            manager.observe(analyzer.analyze(frame, dets))
    assert store.get(case).closed_at is not None
    assert orders.get(case).state == "handled" and orders.get(case).cleared_at is None
    store.close()
