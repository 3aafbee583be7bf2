"""The metrics read at scrape time from the parts that own the figures: delivery (queue depth,
oldest undelivered age, dead letters per destination) from a real outbox, cases (open by state,
overdue) from real work orders, on SQLite; and a listener that raises is counted."""

from __future__ import annotations

import re

import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.delivery.outbox import Outbox, Route
from gridworker.cases.workflow import OPERATOR, Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.metrics import Metrics
from gridworker.vision.observations import ObjectReport, ObjectSighting
from gridworker.vision.rules import IllegalParkingRule
from tests.forwarding.helpers import T0, open_incident


@pytest.fixture
def orders(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'm.db'}")
    yield WorkOrders(store.db)
    store.close()


def _value(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{re.escape('{' + want + '}') if labels else ''} (\S+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else None


def test_delivery_and_case_figures(orders):
    outbox = Outbox(orders.db, routes=[Route("city"), Route("bus")]).attach(orders)
    now = [T0 + 30.0]
    metrics = Metrics(lambda: [])
    metrics.watch_delivery(outbox, clock=lambda: now[0])
    metrics.watch_cases(orders, clock=lambda: now[0])
    a = open_incident(orders, camera="cam-a")
    open_incident(orders, camera="cam-b", at=T0 + 10)
    text = metrics.render().decode()
    assert _value(text, "gridworker_delivery_queue_depth", destination="city") == 2
    assert _value(text, "gridworker_delivery_oldest_undelivered_age_seconds", destination="city") == pytest.approx(30.0, abs=1.0)
    assert _value(text, "gridworker_delivery_dead_letters", destination="bus") == 0
    assert _value(text, "gridworker_cases_open", state="detected") == 2
    assert _value(text, "gridworker_cases_overdue") == 0

    for due in outbox.due("city", now[0]):
        outbox.mark_delivered(due.delivery_id, now[0])
    (first, *_) = outbox.due("bus", now[0])
    outbox.mark_dead(first.delivery_id, now[0], "gave up")
    Workflow(orders).dispatch(a.incident_id, Actor("op", OPERATOR), at=T0 + 40)
    now[0] = T0 + 10 * 24 * 3600.0  # long past every time limit
    text = metrics.render().decode()
    assert _value(text, "gridworker_delivery_queue_depth", destination="city") == 1  # the dispatch's message
    assert _value(text, "gridworker_delivery_dead_letters", destination="bus") == 1
    assert _value(text, "gridworker_cases_open", state="dispatched") == 1
    assert _value(text, "gridworker_cases_open", state="detected") == 1
    assert _value(text, "gridworker_cases_overdue") == 2


def test_a_failing_listener_is_counted(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'l.db'}")
    metrics = Metrics(lambda: [])

    def broken(_incident):
        raise RuntimeError("listener down")

    seen = []
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), on_listener_error=metrics.listener_failed)
    manager.on_open += [broken, seen.append]
    car = ObjectSighting("car", (0.1, 0.1, 0.3, 0.3), summary="parked")
    manager.report(ObjectReport("cam", "kerb", "illegal_parking", IllegalParkingRule.kind, at=T0, objects=(car,)))
    assert len(seen) == 1  # the next listener still ran
    text = metrics.render().decode()
    name = "test_a_failing_listener_is_counted.<locals>.broken"
    assert _value(text, "gridworker_listener_failures_total", event="open", listener=name) == 1
    store.close()


def test_crossing_counts_of_a_removed_camera_or_line_are_dropped():
    """``gridworker_line_crossings`` is labelled by camera and line: the label sets of cameras
    removed and lines taken out of a scene went on being exported (and held) for good."""
    live = {("gate", "in-lane"), ("gate", "out-lane"), ("yard", "door")}
    metrics = Metrics(lambda: [])
    metrics.watch_lines(lambda: set(live))
    for cam, line in sorted(live):
        metrics.line_crossings.labels(camera=cam, line=line, class_name="car", direction="in").inc()
    assert metrics.render().decode().count("gridworker_line_crossings_total{") == 3
    live -= {("gate", "out-lane"), ("yard", "door")}  # a line edited out, a camera removed
    text = metrics.render().decode()
    assert re.findall(r'gridworker_line_crossings_total\{[^}]*line="([^"]+)"', text) == ["in-lane"]
    metrics.line_crossings.labels(camera="yard", line="door", class_name="car", direction="in").inc()  # back again: counts afresh
    live.add(("yard", "door"))
    assert 'line="door"' in metrics.render().decode()
