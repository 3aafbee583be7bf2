"""Rule clocks survive a restart (operator report, issue 17): a vehicle parked for ten minutes
before a restart is not newly arrived after it.

At start the service adopts the open incidents (``IncidentManager.adopt_open``) and gives each
per-object incident's rule back its object's clock (``restore_rule_clocks``): the stay comes back
as an object just gone out of sight where the incident's box was, and the new tracker's track
that appears there takes it over like after an ID switch — same start time, same object key,
same incident.

* scripted frames through the real analyzer, rules and manager into SQLite (ten minutes);
* the service itself, on a real RTSP camera, stopped and started again on its database.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import ZoneConfig
from tests.factories import ParkedCarDetector, make_detections, wait_until

KERB = ZoneConfig(
    id="kerb",
    polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
    rules=[{"type": "illegal_parking", "min_duration_s": 60.0, "clear_after_s": 10.0, "lost_grace_s": 15.0}],
)
CAR = [40.0, 40.0, 100.0, 90.0]


def _frame(t: float, seq: int) -> Frame:
    return Frame("cam1", seq, t, np.full((120, 160, 3), 90, np.uint8))


def _car(track: int, dx: float = 0.0):
    return make_detections([[CAR[0] + dx, CAR[1], CAR[2] + dx, CAR[3]]], class_name=["car"], confidence=[0.9], tracker_id=[track])


def _manager(store: IncidentStore) -> IncidentManager:
    return IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=1.0)


def _before_restart(url: str) -> int:
    """Car #5 parked from t = 0 for ten minutes (1 fps); returns its incident's id."""
    store = IncidentStore(url)
    manager, analyzer = _manager(store), CameraAnalyzer("cam1", fps=1, scene=[KERB], track=False)
    opened = []
    for seq, t in enumerate(range(0, 601)):
        opened += manager.observe(analyzer.analyze(_frame(float(t), seq), _car(5)))
    assert len(opened) == 1 and opened[0].details["object"] == "5@0.000" and 60.0 <= opened[0].opened_at <= 61.0
    store.close()
    return opened[0].id


@pytest.mark.parametrize("restore", [True, False])
def test_a_car_parked_ten_minutes_before_a_restart_is_not_new_after_it(tmp_path, restore):
    url = f"sqlite:///{tmp_path / 'clocks.db'}"
    incident_id = _before_restart(url)

    store = IncidentStore(url)
    manager, analyzer = _manager(store), CameraAnalyzer("cam1", fps=1, scene=[KERB], track=False)
    manager.adopt_open([("cam1", "kerb", "illegal_parking")], now=610.0)
    if restore:
        assert manager.restore_rule_clocks(lambda cam: analyzer if cam == "cam1" else None) == 1
    opened, verdicts = [], []
    for seq, t in enumerate(range(610, 701)):
        # the new tracker calls the same car #1, and its box wobbles by a pixel
        analysis = analyzer.analyze(_frame(float(t), seq), _car(1, dx=float(seq % 2)))
        verdicts.append(analysis.verdicts[0].result)
        opened += manager.observe(analysis)
    case = store.get(incident_id)
    if restore:
        assert opened == [] and case.status == "open", "the same car continues its incident"
        assert verdicts[0].active, "still parked on the first frame after the restart (its clock came back)"
        assert case.details["object"] == "5@0.000" and case.details["since"] == 0.0
        assert case.details["stationary_s"] >= 699.0 and "11 min" in case.summary
        assert case.details["previous_tracks"] == [5] and case.details["track"] == 1
        assert store.list(IncidentQuery())[1] == 1
    else:  # what happens without the restored clock: the car is judged newly arrived
        assert not verdicts[0].active and not verdicts[59].active and verdicts[61].active
        assert case.status == "closed" and len(opened) == 1 and opened[0].details["object"] == "1@610.000"
    store.close()


def test_a_car_gone_during_the_restart_closes_its_incident(tmp_path):
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    incident_id = _before_restart(url)
    store = IncidentStore(url)
    manager, analyzer = _manager(store), CameraAnalyzer("cam1", fps=1, scene=[KERB], track=False)
    manager.adopt_open([("cam1", "kerb", "illegal_parking")], now=610.0)
    assert manager.restore_rule_clocks(lambda _cam: analyzer) == 1
    opened = []
    for seq, t in enumerate(range(610, 660)):
        opened += manager.observe(analyzer.analyze(_frame(float(t), seq), make_detections([], tracker_id=[])))
    case = store.get(incident_id)
    # out of sight for lost_grace_s (15 s) after the restart, then clear for clear_after_s (10 s)
    assert opened == [] and case.status == "closed" and 634.0 <= case.closed_at <= 637.0
    store.close()


def test_zone_rules_and_unknown_rules_take_no_clock():
    analyzer = CameraAnalyzer("cam1", fps=1, scene=[ZoneConfig(id="sq", rules=[{"type": "crowd"}]), KERB], track=False)
    assert analyzer.restore("sq", "crowd", "1@0.000", (0.1, 0.1, 0.2, 0.2), "person") is False
    assert analyzer.restore("kerb", "nope", "1@0.000", (0.1, 0.1, 0.2, 0.2), "car") is False
    assert analyzer.restore("kerb", "illegal_parking", "not-a-stay-key", (0.1, 0.1, 0.2, 0.2), "car") is False
    assert analyzer.restore("kerb", "illegal_parking", "3@12.500", (0.1, 0.1, 0.2, 0.2), "car") is True


def test_the_service_restores_clocks_at_start(tmp_path, rtsp_server):
    """Stopped and started again on its database, the service keeps the parked car's case and clock."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"

    def settings() -> Settings:
        return Settings(
            database={"url": url},
            evidence={"clips": False},
            cameras=[{
                "id": "kerb-cam", "url": rtsp_server.url("cam"), "fps": 5,
                "zones": [{"id": "kerb", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
                           "rules": [{"type": "illegal_parking", "min_duration_s": 2.0, "clear_after_s": 2.0, "lost_grace_s": 10.0}]}],
            }],
        )

    first = Service(settings(), ParkedCarDetector())
    first.start()
    try:
        case = wait_until(lambda: first.store.list(IncidentQuery(status="open"))[0], timeout=30)[0]
    finally:
        first.stop()
    before = first.store.get(case.id)
    since = before.details["since"]

    second = Service(settings(), ParkedCarDetector())
    second.start()
    try:
        # a few seconds of the new run: longer than min_duration_s and clear_after_s together
        wait_until(lambda: second.camera("kerb-cam").frames_analysed >= 25, timeout=30)
        after = wait_until(lambda: (c := second.store.get(case.id)).observations > before.observations and c, timeout=10)
        last_frame = second.camera("kerb-cam").last_analysed_at
    finally:
        second.stop()
    after = second.store.get(case.id)
    assert after.status == "open" and second.store.list(IncidentQuery())[1] == 1, "the same case, no new one"
    assert after.details["object"] == before.details["object"] and after.details["since"] == since
    assert after.details["stationary_s"] >= (last_frame - since) - 3.0  # counted from before the restart
    second.store.close()
