"""The two-captures illegal-parking check over scripted glance detections."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from pydantic import ValidationError

from gridworker.patrol import RevisitChecker, RevisitConfig
from gridworker.vision.config import ZoneConfig
from gridworker.vision.zones import Zone
from tests.factories import make_detections

SIZE = (640, 360)
# no-parking: the lower half of the frame
NO_PARKING = [Zone(ZoneConfig(id="no-parking", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)]))]
CAR = [200.0, 220.0, 320.0, 300.0]  # ground point (260, 300): inside
CAR_NUDGED = [204.0, 222.0, 324.0, 302.0]  # same spot, detector jitter (IoU ~0.9)
CAR_MOVED = [400.0, 220.0, 520.0, 300.0]  # same zone, another spot (IoU 0)
CAR_OUTSIDE = [200.0, 40.0, 320.0, 120.0]  # ground point in the upper half


def dets(*boxes: list[float], cls: str = "car", conf: float = 0.9) -> Any:
    return make_detections(xyxy=list(boxes), class_name=[cls] * len(boxes), confidence=[conf] * len(boxes))


def visit(checker: RevisitChecker, ts: float, detections: Any, ref: str | None = None, camera: str = "cam") -> list:
    return checker.observe(camera, ref or f"snap@{ts:g}", ts, detections, SIZE, NO_PARKING)


@pytest.mark.parametrize(
    ("visits", "fires_at"),
    [
        # a still car seen twice >= T apart fires once, at the visit that completes the gap
        ([(0, [CAR]), (120, [CAR_NUDGED]), (310, [CAR]), (500, [CAR])], [310]),
        # exactly T apart counts
        ([(0, [CAR]), (300, [CAR])], [300]),
        # not yet T apart
        ([(0, [CAR]), (299, [CAR])], []),
        # the car moved between the captures: no violation
        ([(0, [CAR]), (400, [CAR_MOVED])], []),
        # moved, then stood still at the new spot for T: fires counted from the new spot
        ([(0, [CAR]), (400, [CAR_MOVED]), (650, [CAR_MOVED]), (700, [CAR_MOVED])], [700]),
        # outside the no-parking zone: never
        ([(0, [CAR_OUTSIDE]), (400, [CAR_OUTSIDE])], []),
        # one missed detection is tolerated (max_misses=1) ...
        ([(0, [CAR]), (200, []), (400, [CAR])], [400]),
        # ... two in a row are not: the car is forgotten
        ([(0, [CAR]), (100, []), (200, []), (400, [CAR]), (500, [CAR])], []),
        # empty visits only
        ([(0, []), (400, [])], []),
        # two cars, only the still one fires
        ([(0, [CAR, CAR_MOVED]), (350, [CAR])], [350]),
    ],
)
def test_revisit_parking(visits: list[tuple[float, list[list[float]]]], fires_at: list[float]) -> None:
    checker = RevisitChecker(RevisitConfig(min_gap_s=300, iou_threshold=0.6, max_misses=1))
    fired = []
    for ts, boxes in visits:
        for v in visit(checker, ts, dets(*boxes)):
            fired.append(v.second.ts)
    assert fired == fires_at


def test_violation_carries_both_captures_as_evidence() -> None:
    checker = RevisitChecker(RevisitConfig(min_gap_s=300))
    assert visit(checker, 1000.0, dets(CAR), ref="cam/1") == []
    (v,) = visit(checker, 1360.0, dets(CAR_NUDGED), ref="cam/2")
    assert v.camera_id == "cam" and v.zone_id == "no-parking" and v.class_name == "car"
    assert v.evidence == ("cam/1", "cam/2")
    assert v.gap_s == pytest.approx(360.0)
    assert v.first.xyxy == tuple(CAR) and v.second.xyxy == tuple(CAR_NUDGED)
    assert 0.6 <= v.iou < 1.0


def test_classes_confidence_cameras_and_max_gap() -> None:
    checker = RevisitChecker(RevisitConfig(min_gap_s=60, max_gap_s=600))
    # a person standing there is not parking; a low-confidence car does not count
    assert visit(checker, 0, dets(CAR, cls="person")) == [] and visit(checker, 100, dets(CAR, cls="person")) == []
    assert visit(checker, 200, dets(CAR, conf=0.1)) == [] and visit(checker, 300, dets(CAR, conf=0.1)) == []
    # cameras are independent
    assert visit(checker, 400, dets(CAR), camera="a") == []
    assert visit(checker, 500, dets(CAR), camera="b") == []
    assert len(visit(checker, 500, dets(CAR), camera="a")) == 1
    # a first capture older than max_gap_s no longer counts
    assert visit(checker, 0, dets(CAR), camera="c") == []
    assert visit(checker, 700, dets(CAR), camera="c") == []
    assert checker.remembered("c") == 1
    checker.forget("c")
    assert checker.remembered("c") == 0


def test_visits_must_come_in_time_order() -> None:
    checker = RevisitChecker()
    visit(checker, 100, dets(CAR))
    with pytest.raises(ValueError):
        visit(checker, 50, dets(CAR))


@pytest.mark.parametrize(
    ("kwargs", "raises"),
    [
        ({"min_gap_s": 300}, contextlib.nullcontext()),
        ({"min_gap_s": 0}, pytest.raises(ValidationError)),
        ({"min_gap_s": 300, "max_gap_s": 100}, pytest.raises(ValidationError)),
        ({"iou_threshold": 1.5}, pytest.raises(ValidationError)),
        ({"classes": []}, pytest.raises(ValidationError)),
        ({"typo": 1}, pytest.raises(ValidationError)),
    ],
)
def test_config_validation(kwargs: dict[str, Any], raises: Any) -> None:
    with raises:
        RevisitConfig(**kwargs)


def _kerb_scene(min_duration_s: float, *, extra_zone: bool = False) -> Any:
    from gridworker.vision.config import SceneConfig

    zones = [{"id": "no-parking", "polygon": [(0, 0.5), (1, 0.5), (1, 1), (0, 1)],
              "rules": [{"type": "illegal_parking", "classes": ["car"], "min_duration_s": min_duration_s}]}]
    if extra_zone:
        zones.append({"id": "gate", "polygon": [(0, 0), (0.3, 0), (0.3, 0.3)], "rules": [{"type": "intrusion"}]})
    return SceneConfig.model_validate({"zones": zones})


def _glance(judge: Any, ts: float, detections: Any) -> list:
    import numpy as np

    from gridworker.streams.frame import Frame

    frame = Frame("cam", int(ts) + 1, ts, np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
    judgement = judge.analyse_glance([frame], [detections])
    return [o for r in judgement.reports for o in r.objects if o.qualifies]


@pytest.mark.parametrize("edit", [False, True])
def test_a_scene_edit_between_visits_keeps_what_the_revisit_check_remembers(edit: bool) -> None:
    """The car seen before the console edit is still reported on the visit after it (the old
    behaviour built a new visit judge and forgot it: the car would need two more visits)."""
    from gridworker.vision.annotate import FrameAnnotator
    from gridworker.vision.visits import VisitAnalyzer

    judge = VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator())
    assert _glance(judge, 1000.0, dets(CAR)) == []
    if edit:  # a zone added elsewhere and the gap shortened: the kerb's memory stays
        judge.set_scene(_kerb_scene(120, extra_zone=True))
    reported = _glance(judge, 1200.0, dets(CAR_NUDGED))
    assert len(reported) == (1 if edit else 0)  # 200 s apart: over the edited 120 s, under 300 s
    if edit:
        assert reported[0].snapshot is not None and reported[0].details["gap_s"] >= 120
    # a rule removed by an edit forgets its vehicles: nothing is reported for it any more
    judge.set_scene(_kerb_scene(120).model_copy(update={"zones": []}))
    assert _glance(judge, 1500.0, dets(CAR)) == []
