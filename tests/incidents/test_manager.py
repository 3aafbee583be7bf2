"""Incident lifecycle on a real database (SQLite, and PostgreSQL when reachable)."""

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import ZoneConfig
from tests.factories import make_detections

ZONE = ZoneConfig(
    id="no-parking",
    polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
    rules=[{"type": "dwell", "min_duration_s": 2.0, "clear_after_s": 3.0, "lost_grace_s": 0.0}],
)


def _frame(t: float, seq: int) -> Frame:
    return Frame("cam1", seq, t, np.full((120, 160, 3), 90, np.uint8))


def _car():
    return make_detections([[40, 40, 100, 90]], class_name=["car"], confidence=[0.9])


def _run(manager: IncidentManager, analyzer: CameraAnalyzer, times, present):
    opened = []
    for seq, t in enumerate(times):
        dets = _car() if present(t) else make_detections([])
        opened += manager.observe(analyzer.analyze(_frame(t, seq), dets))
    return opened


def _manager(store: IncidentStore) -> IncidentManager:
    return IncidentManager(store=store, camera_info=lambda cid: CameraInfo(name="Gate", site="school"), write_interval_s=1.0)


def test_one_incident_per_condition_then_closed(store):
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    times = [i * 0.5 for i in range(40)]  # 20 s: car present 0..10 s, then gone
    opened = _run(manager, analyzer, times, present=lambda t: t < 10)
    assert len(opened) == 1, "a parked car must open exactly one incident"
    items, total = store.list(IncidentQuery())
    assert total == 1
    inc = items[0]
    assert inc.type == "dwell" and inc.zone_id == "no-parking" and inc.camera_name == "Gate" and inc.site == "school"
    assert inc.status == "closed"
    assert 2.0 <= inc.opened_at <= 3.5  # the dwell threshold, plus the tracker's confirmation frame
    assert inc.closed_at is not None and 12.5 <= inc.closed_at <= 14.0  # clear for clear_after_s
    assert inc.observations > 5
    jpeg = store.snapshot(inc.id)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000


def test_reopens_after_close(store):
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    times = [i * 0.5 for i in range(80)]
    opened = _run(manager, analyzer, times, present=lambda t: t < 10 or t > 20)
    assert len(opened) == 2
    assert store.list(IncidentQuery(status="open"))[1] == 1
    assert store.list(IncidentQuery(status="closed"))[1] == 1


def test_open_incident_survives_restart(store_url):
    store = IncidentStore(store_url)
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    _run(manager, analyzer, [i * 0.5 for i in range(10)], present=lambda t: True)
    first = store.list(IncidentQuery(status="open"))[0]
    assert len(first) == 1
    store.close()

    # "restart": new store, manager and analyzer on the same database
    store2 = IncidentStore(store_url)
    manager2 = _manager(store2)
    manager2.adopt_open([("cam1", "no-parking", "dwell")], now=5.0)
    analyzer2 = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    opened = _run(manager2, analyzer2, [5 + i * 0.5 for i in range(10)], present=lambda t: True)
    assert opened == [], "the still-parked car continues the incident adopted after the restart"
    items, total = store2.list(IncidentQuery())
    assert total == 1 and items[0].id == first[0].id and items[0].status == "open"
    store2.close()


def test_adopt_closes_incidents_of_removed_rules(store):
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    _run(manager, analyzer, [i * 0.5 for i in range(10)], present=lambda t: True)
    fresh = _manager(store)
    fresh.adopt_open([], now=100.0)
    assert store.list(IncidentQuery(status="open"))[1] == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (IncidentQuery(), 3),
        (IncidentQuery(camera_id="a"), 2),
        (IncidentQuery(type="crowd"), 1),
        (IncidentQuery(status="open"), 3),
        (IncidentQuery(status="closed"), 0),
        (IncidentQuery(since=150.0), 2),
        (IncidentQuery(since=150.0, until=250.0), 1),
        (IncidentQuery(limit=2), 3),
    ],
)
def test_list_filters(store, query, expected):
    for cam, typ, at in (("a", "dwell", 100.0), ("a", "crowd", 200.0), ("b", "dwell", 300.0)):
        store.open(
            camera_id=cam, camera_name="", site="", zone_id="z", rule_id=typ, type=typ, at=at, count=1, summary="", details={}, snapshot=None
        )
    items, total = store.list(query)
    assert total == expected
    assert len(items) == min(expected, query.limit)
    assert [i.opened_at for i in items] == sorted((i.opened_at for i in items), reverse=True)
