"""A rule's ``cooldown_s``: once an incident closes, the same camera + zone + rule + object opens
no new one for that long (the condition back within it continues the closed incident); and reports (the patrol's revisit check) go through the same
manager as frames: open, continue after a restart, clear, cool down."""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import ZoneConfig
from gridworker.vision.observations import ObjectReport, ObjectSighting
from gridworker.vision.rules import IllegalParkingRule
from tests.factories import make_detections


def _manager(store: IncidentStore) -> IncidentManager:
    return IncidentManager(store=store, camera_info=lambda _c: CameraInfo(name="Kerb"), write_interval_s=0.0)


def _zone(cooldown_s: float) -> ZoneConfig:
    return ZoneConfig(
        id="gate",
        polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
        rules=[{"type": "intrusion", "classes": ["person"], "clear_after_s": 1.0, "cooldown_s": cooldown_s}],
    )


@pytest.mark.parametrize(
    ("cooldown_s", "openings", "continued"),
    [
        (0.0, [0.0, 4.0, 8.0], 0),  # every return of the person is a new incident
        # the return at 4 s is 2.5 s after the close at 1.5 s: the closed incident continues;
        # it closes again at 5.5 s, and the return at 8 s continues it once more
        (5.0, [0.0], 2),
        (30.0, [0.0], 2),
    ],
)
def test_zone_rule_does_not_reopen_within_its_cooldown(tmp_path, cooldown_s, openings, continued):
    store = IncidentStore(f"sqlite:///{tmp_path / 'c.db'}")
    manager = _manager(store)
    reopened: list[int] = []
    manager.on_reopen.append(lambda incident_id, at: reopened.append(incident_id))
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[_zone(cooldown_s)], track=False)
    image = np.full((100, 100, 3), 80, np.uint8)
    person = make_detections([[40, 40, 60, 90]], class_name=["person"], tracker_id=[1])
    nobody = make_detections([], tracker_id=[])
    present = lambda t: t < 1.0 or 4.0 <= t < 5.0 or 8.0 <= t < 9.0  # noqa: E731
    for seq, t in enumerate(np.arange(0.0, 12.0, 0.5)):
        manager.observe(analyzer.analyze(Frame("cam1", seq, float(t), image), person if present(t) else nobody))
    items, _ = store.list(IncidentQuery())
    assert sorted(i.opened_at for i in items) == openings
    assert all(i.status == "closed" for i in items)
    assert len(reopened) == continued
    store.close()


def _report(at: float, *objects: ObjectSighting, cooldown_s: float = 0.0) -> ObjectReport:
    return ObjectReport("kerb-cam", "kerb", "illegal_parking", IllegalParkingRule.kind, at=at, objects=objects, cooldown_s=cooldown_s)


CAR = ObjectSighting("car-1", (0.4, 0.6, 0.6, 0.9), summary="a car twice at the same spot", details={"method": "revisit"}, snapshot=b"\xff\xd8jpeg")


def test_report_opens_keeps_and_clears_one_incident_per_object(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'r.db'}")
    manager = _manager(store)
    seen = []
    manager.on_open.append(seen.append)
    pending = ObjectSighting("car-2", (0.0, 0.6, 0.2, 0.9), qualifies=False)
    assert manager.report(_report(10.0, pending)) == []  # seen once: no incident yet
    (inc,) = manager.report(_report(20.0, CAR, pending))
    assert seen == [inc]  # the listeners of every opened incident (work orders, clips, metrics)
    assert manager.report(_report(30.0, CAR)) == []  # still there: the same incident
    stored = store.get(inc.id)
    assert stored.status == "open" and stored.type == "illegal_parking" and stored.camera_name == "Kerb"
    assert stored.details["object"] == "car-1" and stored.details["box"] == [0.4, 0.6, 0.6, 0.9] and stored.details["method"] == "revisit"
    assert store.snapshot(inc.id) == b"\xff\xd8jpeg"
    manager.report(_report(40.0))  # the spot is empty: it clears (clear_after_s 0)
    assert store.get(inc.id).status == "closed" and store.get(inc.id).closed_at == 40.0
    store.close()


def test_report_cooldown_and_continuation_after_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = IncidentStore(url)
    manager = _manager(store)
    reopened = []
    manager.on_reopen.append(lambda incident_id, at: reopened.append((incident_id, at)))
    (first,) = manager.report(_report(0.0, CAR, cooldown_s=60.0))
    manager.report(_report(10.0, cooldown_s=60.0))  # gone: closed, cooling down until 70 s
    assert store.get(first.id).status == "closed"
    # back within the cooldown: the same incident continues (and its case hears of it), as on a live camera
    assert manager.report(_report(20.0, CAR, cooldown_s=60.0)) == []
    assert store.get(first.id).status == "open" and reopened == [(first.id, 20.0)]
    manager.report(_report(30.0, cooldown_s=60.0))  # gone again: closed, cooling down until 90 s
    (second,) = manager.report(_report(95.0, CAR, cooldown_s=60.0))  # after the cooldown: a new incident
    assert second.id != first.id and store.get(first.id).status == "closed"
    store.close()

    # a restart: a new manager adopts the open incident; the vehicle, seen again where it
    # stood under a new key (the check's memory restarted), continues it and keeps it open
    store = IncidentStore(url)
    manager = _manager(store)
    manager.adopt_open([("kerb-cam", "kerb", "illegal_parking")], now=100.0)
    again = ObjectSighting("car-9", (0.41, 0.6, 0.61, 0.9), qualifies=False)
    assert manager.report(_report(110.0, again)) == []
    assert store.get(second.id).status == "open"
    assert manager.report(_report(120.0, ObjectSighting("car-9", again.box, summary="still"))) == []  # qualifies again: the same
    manager.report(_report(130.0))  # the spot is empty: the adopted incident closes
    assert store.get(second.id).status == "closed"
    items, total = store.list(IncidentQuery())
    assert total == 2
    store.close()
