"""Lost and found (``rejoin_s``) gives a dormant stay back only to the same object: a track of
the same class never seen anywhere but at the stay's place (vision/rules/stays.py).

The kerb zone is drawn tight along the kerb (y 280..360 of a 640x360 frame). Car A parks
(track 1) and its incident opens at t=180; at t=300 the detector loses it as it pulls away
(never seen moving). Before: car B (track 2), which drove along the road *outside* the zone and
pulled sideways into the same spot at t=430, took A's clock and incident (its stay counted from
its first point in the zone): "car #2 (was #1) for 7 min 11 s" at once, A's closed case reopened
as rework. Real analyser (scripted track ids), real incident manager and store.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig, ZoneConfig
from tests.factories import make_detections

IMAGE = np.zeros((360, 640, 3), np.uint8)
KERB = ZoneConfig(id="kerb", polygon=[(0, 280 / 359), (1, 280 / 359), (1, 1), (0, 1)], rules=[{"type": "illegal_parking"}])
A = [200, 210, 320, 290]  # ground point (260, 290): in the zone
NOBODY = make_detections([], tracker_id=[])


def _road_then_kerb(t: float, cls: str = "car"):
    """Car B: drives along the road outside the zone (ground y 260), pulls sideways into the spot."""
    if t < 430:
        x = 600 - (t - 420) * 34
        return make_detections([[x - 60, 180, x + 60, 260]], class_name=[cls], tracker_id=[2])
    if t < 432:  # its ground point enters the zone at y 282 ...
        return make_detections([[205, 202, 325, 282]], class_name=[cls], tracker_id=[2])
    return make_detections([[202, 208, 322, 288]], class_name=[cls], tracker_id=[2])  # ... and it stops there


def _found_at_the_spot(t: float, cls: str = "car"):
    """The detector finds a car again at the spot (new track id), first seen right there; its
    first box's ground point is 2 px short of the zone (y 278), then in it."""
    if t < 422:
        return make_detections([[202, 198, 322, 278]], class_name=[cls], tracker_id=[2])
    return make_detections([[202, 208, 322, 288]], class_name=[cls], tracker_id=[2])


def _play(tmp_path, later):
    store = IncidentStore(f"sqlite:///{tmp_path / 'kerb.db'}")
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=1.0)
    reopened: list[int] = []
    manager.on_reopen.append(lambda i, _at: reopened.append(i))
    analyzer = CameraAnalyzer("cam", fps=1, scene=SceneConfig(zones=[KERB]), track=False)
    summaries = []
    for k in range(0, 700):
        if k < 300:
            dets = make_detections([A], class_name=["car"], tracker_id=[1])
        elif k < 420:
            dets = NOBODY
        else:
            dets = later(k)
        a = analyzer.analyze(Frame("cam", k, 1000.0 + k, IMAGE), dets)
        manager.observe(a)
        if k == 440:
            summaries = [h.summary for v in a.verdicts for h in v.result.hits]
    items, _ = store.list(IncidentQuery())
    store.close()
    return sorted(items, key=lambda i: i.id), reopened, summaries


def test_a_car_that_drove_in_along_the_road_does_not_take_the_lost_cars_clock(tmp_path):
    items, reopened, at_440 = _play(tmp_path, _road_then_kerb)
    a, b = items
    assert a.details["object"] == "1@1000.000" and a.status == "closed" and a.closed_at - 1000 < 330
    assert reopened == []  # A's case is not sent back as rework
    assert at_440 == []  # B has stood 10 s: nothing yet (before: "car #2 (was #1) for 7 min 20 s")
    # B is its own incident once it has stood min_duration_s (180 s) itself
    assert b.details["object"] == "2@1430.000" and b.opened_at == pytest.approx(1610.0)


def test_the_same_car_found_again_at_its_spot_continues(tmp_path):
    """The designed path: a track first seen at the spot (only 2 px outside the zone's edge) is
    the lost car found again: same clock, same key, the closed incident continues."""
    items, reopened, at_440 = _play(tmp_path, _found_at_the_spot)
    (a,) = items
    assert a.details["object"] == "1@1000.000" and a.status == "open"
    assert reopened == [a.id]
    assert at_440 and "(was #1)" in at_440[0]


@pytest.mark.parametrize("label", ["truck", "bus"])
def test_the_car_found_again_as_a_truck_or_bus_continues(tmp_path, label):
    """The embedded detector calls one parked van "car" and "truck" by turns: found again at
    its spot under the other label it is the same vehicle (SAME_OBJECT_CLASSES)."""
    items, reopened, at_440 = _play(tmp_path, lambda t: _found_at_the_spot(t, label))
    (a,) = items
    assert a.details["object"] == "1@1000.000" and a.status == "open"
    assert reopened == [a.id] and at_440 and "(was #1)" in at_440[0]


def test_without_class_groups_a_truck_at_the_cars_spot_is_another_vehicle(tmp_path, monkeypatch):
    """Only the groups count as one object: with none, a truck at the car's spot is its own
    stay (its own clock from its first point in the zone)."""
    from gridworker.vision.rules import stays as stays_module

    monkeypatch.setattr(stays_module, "SAME_OBJECT_CLASSES", ())
    items, reopened, at_440 = _play(tmp_path, lambda t: _found_at_the_spot(t, "truck"))
    a, b = items
    assert reopened == [] and at_440 == []
    assert b.details["object"] == "2@1422.000"
