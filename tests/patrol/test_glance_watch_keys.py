"""A patrol-only camera in both a glance plan and a watch plan: the revisit check's incidents
and the watch stops' tracked-rule incidents share a camera + zone + rule, and each must leave
the other's incidents to what it can see (vision/visits.py, incidents/manager.py).

* A revisit incident is not closed by a watch stop (before: the first watch frame closed it as
  cleared, the car still there, its case verified; a second incident opened later for the same
  car); a watch stop's car standing there continues it; a later glance that finds the spot
  empty closes it verified, as designed.
* The other way round, a watch stop's parking incident is kept (and continued) by glances that
  see the car there, and closes verified once the glances have lost it.
* A glance with several keyframes fires every rule that fires on any of them.

Real visit judge (glance rules, revisit check, tracked watch stops with ByteTrack), real
incident manager and store.
"""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.config import SceneConfig, ZoneConfig
from gridworker.vision.observations import VisitJudgement
from gridworker.vision.visits import VisitAnalyzer
from tests.factories import make_detections

T0 = 1.7e9
IMAGE = np.zeros((360, 640, 3), np.uint8)
KERB = ZoneConfig(id="kerb", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)], rules=[{"id": "park", "type": "illegal_parking"}])  # 180 s
CAR = sv.Detections(
    xyxy=np.array([[200.0, 220.0, 320.0, 300.0]], np.float32),
    confidence=np.array([0.9], np.float32),
    class_id=np.array([2]),
    data={"class_name": np.array(["car"])},
)
EMPTY = make_detections([])


class _Patrol:
    def __init__(self, tmp_path, scene: SceneConfig | None = None) -> None:
        self.store = IncidentStore(f"sqlite:///{tmp_path / 'patrol.db'}")
        self.manager = IncidentManager(store=self.store, camera_info=lambda c: CameraInfo(name=c), write_interval_s=0.0)
        self.cleared: list[int] = []
        self.manager.on_close.append(lambda i, _at: self.cleared.append(i))
        self.judge = VisitAnalyzer("cam1", scene or SceneConfig(zones=[KERB]), annotator=FrameAnnotator())
        self.seq = 0

    def _submit(self, judgement: VisitJudgement | None) -> None:
        assert judgement is not None
        self.manager.observe(judgement.analysis, partial=judgement.partial)
        for report in judgement.reports:
            self.manager.report(report)

    def glance(self, t: float, dets: sv.Detections) -> None:
        self.seq += 1
        self._submit(self.judge.analyse_glance([Frame("cam1", self.seq, T0 + t, IMAGE)], [dets]))

    def watch(self, start: float, seconds: float, dets: sv.Detections, fps: float = 2.0) -> None:
        self.judge.begin_watch(fps)
        for t in np.arange(start, start + seconds, 1.0 / fps):
            self.seq += 1
            self._submit(self.judge.analyse_watch(Frame("cam1", self.seq, T0 + float(t), IMAGE), dets))

    def incidents(self) -> list:
        items, _ = self.store.list(IncidentQuery())
        return sorted(items, key=lambda i: i.id)


def _revisit_incident(patrol: _Patrol) -> int:
    patrol.glance(0.0, CAR)
    patrol.glance(400.0, CAR)  # two captures 400 s apart: the revisit check reports the car
    (inc,) = patrol.incidents()
    assert inc.status == "open" and inc.details["method"] == "revisit"
    return inc.id


@pytest.mark.parametrize("watch_s", [0.6, 240.0], ids=["short-stop", "stop-longer-than-min-duration"])
def test_a_watch_stop_does_not_clear_the_revisit_incident_of_a_car_still_there(tmp_path, watch_s):
    patrol = _Patrol(tmp_path)
    first = _revisit_incident(patrol)
    patrol.watch(500.0, watch_s, CAR)
    patrol.glance(900.0, CAR)
    (inc,) = patrol.incidents()  # one car, one incident (before: closed at the first watch frame, then a second one)
    assert inc.id == first and inc.status == "open"
    assert patrol.cleared == []
    if watch_s > 180:  # the stop's tracked rule fired on the car and continued the revisit incident
        assert inc.details["object"].startswith("kerb:")
        assert inc.details["stationary_s"] >= 180.0


def test_the_revisit_incident_closes_verified_when_glances_find_the_spot_empty(tmp_path):
    patrol = _Patrol(tmp_path)
    first = _revisit_incident(patrol)
    patrol.watch(500.0, 240.0, EMPTY)  # the car left before the stop: the stop alone does not close it ...
    assert [i.status for i in patrol.incidents()] == ["open"] and patrol.cleared == []
    for t in (900.0, 1300.0):  # ... the revisit check does, once it has lost the car (one missed visit allowed)
        patrol.glance(t, EMPTY)
    (inc,) = patrol.incidents()
    assert inc.status == "closed" and patrol.cleared == [first]


def test_glances_keep_and_continue_a_watch_stops_parking_incident(tmp_path):
    """Before: the first glance after the stop closed the stop's incident as cleared (its object
    key is not one the revisit check knows), the car still there, and the second glance opened a
    revisit incident for the same car."""
    patrol = _Patrol(tmp_path)
    patrol.watch(0.0, 240.0, CAR)
    (watched,) = patrol.incidents()
    assert watched.status == "open" and "@" in watched.details["object"]  # a stay key: opened by the stop
    patrol.glance(400.0, CAR)
    patrol.glance(800.0, CAR)  # two captures 400 s apart: the check reports the car ... under the stop's key
    (inc,) = patrol.incidents()
    assert inc.id == watched.id and inc.status == "open" and patrol.cleared == []
    patrol.watch(900.0, 240.0, CAR)  # the next stop continues it too
    patrol.glance(1300.0, EMPTY)
    patrol.glance(1700.0, EMPTY)  # the check lost the car: the incident clears, verified
    (inc,) = patrol.incidents()
    assert inc.id == watched.id and inc.status == "closed" and patrol.cleared == [watched.id]


def test_a_revisit_report_right_after_a_stop_is_the_stops_incident(tmp_path):
    """The check's first capture came before the stop, its second (the report) right after it:
    the report is the stop's incident, not a second one (and the stop's is not cleared)."""
    patrol = _Patrol(tmp_path)
    patrol.glance(0.0, CAR)  # first capture
    patrol.watch(100.0, 240.0, CAR)  # the stop's rule fires at ~280 s
    (watched,) = patrol.incidents()
    patrol.glance(400.0, CAR)  # second capture, 400 s after the first: the check reports the car
    (inc,) = patrol.incidents()
    assert inc.id == watched.id and inc.status == "open" and patrol.cleared == []


def test_a_new_car_at_a_cleared_spot_is_a_new_incident(tmp_path):
    """Once the glances cleared the stop's incident, another car parking at that spot later is
    its own incident (the cleared one is not carried on to reopen as rework)."""
    patrol = _Patrol(tmp_path)
    reopened: list[int] = []
    patrol.manager.on_reopen.append(lambda i, _at: reopened.append(i))
    patrol.watch(0.0, 240.0, CAR)
    patrol.glance(300.0, EMPTY)
    (first,) = patrol.incidents()
    assert first.status == "closed" and patrol.cleared == [first.id]  # the check never saw a vehicle there: verified
    patrol.glance(350.0, CAR)
    patrol.glance(600.0, CAR)  # another car, two captures 250 s apart
    second = [i for i in patrol.incidents() if i.id != first.id]
    assert len(second) == 1 and second[0].status == "open" and reopened == []


# --- glances with several keyframes ----------------------------------------------------------------

GATE = ZoneConfig(id="gate", polygon=[(0, 0), (0.3, 0), (0.3, 1), (0, 1)], rules=[{"type": "intrusion", "classes": ["person"]}])
SQUARE = ZoneConfig(id="square", polygon=[(0.3, 0), (1, 0), (1, 1), (0.3, 1)], rules=[{"type": "crowd", "min_count": 5}])
INTRUDER = [[50, 100, 90, 200]]
CROWD = [[250 + 70 * i, 100, 290 + 70 * i, 200] for i in range(5)]


def _keyframes(tmp_path, *keyframes):
    patrol = _Patrol(tmp_path, SceneConfig(zones=[GATE, SQUARE]))
    frames = [Frame("cam1", k + 1, T0 + k, IMAGE) for k in range(len(keyframes))]
    judgement = patrol.judge.analyse_glance(frames, [make_detections(boxes) for boxes in keyframes])
    patrol._submit(judgement)
    assert judgement is not None
    return judgement, {i.zone_id: i for i in patrol.incidents()}


def test_every_rule_firing_on_any_keyframe_fires_for_the_visit(tmp_path):
    """Before: only the keyframe with the most rules firing was judged (the latest on a tie):
    the intruder at the gate on keyframe 1 opened nothing."""
    judgement, opened = _keyframes(tmp_path, INTRUDER, CROWD)  # keyframe 1: an intruder; keyframe 2: a crowd, the intruder gone
    assert sorted(opened) == ["gate", "square"]
    assert judgement.analysis.frame.seq == 2  # the shown keyframe: the crowd's (latest on a tie)
    (gate,) = [v for v in judgement.analysis.verdicts if v.zone_id == "gate"]
    assert gate.result.active and len(gate.result.subjects) == 0  # its boxes are on keyframe 1, not on the one shown
    assert opened["gate"].details["keyframe_seq"] == 1 and opened["square"].peak_count == 5


def test_the_worst_keyframe_is_shown(tmp_path):
    """Before: the latest keyframe with the rule firing (5 persons) was shown, not the crowd's peak (6)."""
    judgement, opened = _keyframes(tmp_path, CROWD + [[600, 250, 630, 330]], CROWD, CROWD[:4])  # 6, 5, 4 persons
    assert judgement.analysis.frame.seq == 1 and sorted(opened) == ["square"]
    assert opened["square"].peak_count == 6 and "keyframe_seq" not in opened["square"].details
