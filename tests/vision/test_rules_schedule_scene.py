"""A rule that stops judging (its schedule's window closed, or a scene edit changed or removed
it) closes its open incidents *not* as cleared: on_close (work orders' verify_cleared, "closed
verified on camera") is told only when the camera saw the condition clear. A scene edit that
leaves a rule as it was keeps that rule's state, so its incidents simply continue.

Real analyser (scripted track ids), real incident manager and store; the car never moves.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig, ZoneConfig
from tests.factories import make_detections

IMAGE = np.zeros((360, 640, 3), np.uint8)
CAR = make_detections([[200, 220, 320, 300]], class_name=["car"], tracker_id=[7])
KERB_POLYGON = [(0, 0.5), (1, 0.5), (1, 1), (0, 1)]


class _Desk:
    """The manager, its store and what on_close / on_reopen were told."""

    def __init__(self, tmp_path) -> None:
        self.store = IncidentStore(f"sqlite:///{tmp_path / 'desk.db'}")
        self.manager = IncidentManager(store=self.store, camera_info=lambda _c: CameraInfo(), write_interval_s=5.0)
        self.cleared: list[tuple[int, float]] = []
        self.reopened: list[int] = []
        self.manager.on_close.append(lambda i, at: self.cleared.append((i, at)))
        self.manager.on_reopen.append(lambda i, _at: self.reopened.append(i))

    def incidents(self):
        items, _ = self.store.list(IncidentQuery())
        return sorted(items, key=lambda i: i.id)


# --- schedules -------------------------------------------------------------------------------


def test_the_window_closing_does_not_clear_the_parked_cars_incident(tmp_path):
    """illegal_parking armed 07:00-19:00 UTC; a car parks at 18:50 and stays. Before: at 19:00 the
    idle rule's verdict read "clear" and the incident closed as cleared at 19:00:09 (its case
    closed as verified on camera) with the car still there."""
    desk = _Desk(tmp_path)
    rule = {"type": "illegal_parking", "schedule": {"timezone": "UTC", "windows": [{"start": "07:00", "end": "19:00"}]}}
    analyzer = CameraAnalyzer("cam", fps=1, scene=[ZoneConfig(id="kerb", polygon=KERB_POLYGON, rules=[rule])], track=False)
    t0 = dt.datetime(2024, 5, 6, 18, 50, tzinfo=dt.timezone.utc).timestamp()
    after_close = []
    for k in range(0, 1200):
        analysis = analyzer.analyze(Frame("cam", k, t0 + k, IMAGE), CAR)
        desk.manager.observe(analysis)
        if k >= 600:
            after_close.append(analysis)
    (inc,) = desk.incidents()
    assert inc.opened_at == pytest.approx(t0 + 180)
    assert inc.status == "closed" and inc.closed_at == pytest.approx(t0 + 600)  # at 19:00 itself
    assert desk.cleared == []  # not told "cleared": the case is left as it is
    # the idle rule gives no verdict at all (not a "clear" one)
    assert all(v.rule_id != "illegal_parking" for a in after_close for v in a.verdicts)


def test_a_condition_that_clears_inside_the_window_is_still_verified(tmp_path):
    desk = _Desk(tmp_path)
    rule = {"type": "illegal_parking", "schedule": {"timezone": "UTC", "windows": [{"start": "07:00", "end": "19:00"}]}}
    analyzer = CameraAnalyzer("cam", fps=1, scene=[ZoneConfig(id="kerb", polygon=KERB_POLYGON, rules=[rule])], track=False)
    t0 = dt.datetime(2024, 5, 6, 18, 40, tzinfo=dt.timezone.utc).timestamp()
    gone = make_detections([], tracker_id=[])
    for k in range(0, 900):
        desk.manager.observe(analyzer.analyze(Frame("cam", k, t0 + k, IMAGE), CAR if k < 400 else gone))
    (inc,) = desk.incidents()
    assert inc.status == "closed" and desk.cleared == [(inc.id, inc.closed_at)]
    assert t0 + 400 < inc.closed_at < t0 + 600  # lost_grace_s + clear_after_s after it left, before 19:00


# --- scene edits -----------------------------------------------------------------------------


def _kerb(**rule: object) -> ZoneConfig:
    return ZoneConfig(id="kerb", polygon=KERB_POLYGON, rules=[{"type": "illegal_parking", **rule}])


CROSSWALK = ZoneConfig(id="crosswalk", polygon=[(0, 0), (0.2, 0), (0.2, 0.2), (0, 0.2)], rules=[{"type": "intrusion"}])


def _parked_then_edited(tmp_path, edited: SceneConfig, until: int = 700) -> _Desk:
    """The car parks at t=0 (incident at t=180); at t=300 the scene is replaced by ``edited``."""
    desk = _Desk(tmp_path)
    analyzer = CameraAnalyzer("cam", fps=1, scene=SceneConfig(zones=[_kerb()]), track=False)
    for k in range(0, until):
        if k == 300:
            analyzer.set_scene(edited)
        desk.manager.observe(analyzer.analyze(Frame("cam", k, 1000.0 + k, IMAGE), CAR))
    return desk


@pytest.mark.parametrize(
    "edited",
    [
        SceneConfig(zones=[_kerb(), CROSSWALK]),  # an unrelated zone added
        SceneConfig(zones=[CROSSWALK, _kerb()]),  # ... before the kerb
        SceneConfig(zones=[ZoneConfig(id="kerb", name="Main St kerb", polygon=KERB_POLYGON, rules=[{"type": "illegal_parking"}])]),  # renamed
        SceneConfig(zones=[_kerb()]),  # saved unchanged
    ],
    ids=["zone-added", "zone-added-first", "zone-renamed", "unchanged"],
)
def test_an_edit_that_leaves_the_rule_as_it_was_keeps_its_incident(tmp_path, edited):
    """Before: every rule was rebuilt, so the car counted as newly arrived: its incident closed
    as cleared 9 s after the edit (case verified, car still there) and a second incident opened
    for the same car 180 s after the edit."""
    desk = _parked_then_edited(tmp_path, edited)
    (inc,) = desk.incidents()
    assert inc.status == "open" and inc.opened_at == pytest.approx(1180.0)
    assert inc.details["object"] == "7@1000.000"  # the same stay: parked since t=0
    assert desk.cleared == [] and desk.reopened == []


@pytest.mark.parametrize(
    "edited",
    [
        SceneConfig(zones=[_kerb(min_duration_s=240)]),  # the rule's settings changed
        SceneConfig(zones=[ZoneConfig(id="kerb", polygon=[(0, 0.45), (1, 0.45), (1, 1), (0, 1)], rules=[{"type": "illegal_parking"}])]),  # zone redrawn
        SceneConfig(zones=[ZoneConfig(id="kerb", polygon=KERB_POLYGON)]),  # the rule removed
        SceneConfig(zones=[CROSSWALK]),  # the zone removed
    ],
    ids=["rule-changed", "zone-redrawn", "rule-removed", "zone-removed"],
)
def test_a_changed_or_removed_rule_closes_its_incident_not_as_cleared(tmp_path, edited):
    desk = _parked_then_edited(tmp_path, edited)
    first, *later = desk.incidents()
    assert first.status == "closed" and first.closed_at == pytest.approx(1300.0)  # at the edit
    assert desk.cleared == []  # its case is not verified: nobody saw the car leave
    still_parking = any(z.id == "kerb" and z.rules for z in edited.zones)
    if still_parking:  # the new rule judges afresh: the car is a new incident once it qualifies under it
        (second,) = later
        minimum = edited.zones[0].rules[0].min_duration_s
        assert second.status == "open" and second.opened_at == pytest.approx(1300.0 + minimum, abs=1.0)
    else:
        assert later == []
