"""The evidence snapshot names the objects that triggered the rule, and nothing else is red."""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv

from gridworker.incidents.snapshots import OTHER_BGR, TRIGGER_BGR, EvidenceRenderer, subject_track_ids

TRUCK = (40, 60, 200, 180)
PERSON = (300, 80, 340, 200)
CAR = (420, 120, 560, 220)


def _dets() -> sv.Detections:
    dets = sv.Detections(
        xyxy=np.array([TRUCK, PERSON, CAR], dtype=np.float32),
        confidence=np.array([0.9, 0.6, 0.8], dtype=np.float32),
        class_id=np.array([7, 0, 2]),
        tracker_id=np.array([11, 12, -1]),
    )
    dets.data["class_name"] = np.array(["truck", "person", "car"])
    return dets


def _red(canvas: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels in the trigger colour."""
    return np.all(canvas == np.array(TRIGGER_BGR, dtype=np.uint8), axis=2)


def test_only_the_triggering_object_is_drawn_in_the_trigger_colour():
    image = np.full((300, 600, 3), 40, np.uint8)
    canvas = EvidenceRenderer().draw(image, _dets(), np.array([1]), zone=[(0.45, 0.2), (0.6, 0.2), (0.6, 0.8), (0.45, 0.8)], zone_name="crossing")
    red = _red(canvas)
    x1, y1, x2, y2 = PERSON
    assert red[y1 + 10 : y2 - 10, x1].all() and red[y1 + 10 : y2 - 10, x2].all(), "the person's box is red"
    # every red pixel belongs to the person's box or its label above it
    ys, xs = np.nonzero(red)
    assert xs.min() >= x1 - 3 and ys.max() <= y2 + 3 and ys.min() >= 0
    assert not red[:, : x1 - 3].any() and not red[:, x2 + 140 :].any(), "the truck and the car are not red"
    # the others are drawn, thin and grey
    grey = np.all(canvas == np.array(OTHER_BGR, dtype=np.uint8), axis=2)
    assert grey[TRUCK[1] + 5 : TRUCK[3] - 5, TRUCK[0]].all() and grey[CAR[1] + 5 : CAR[3] - 5, CAR[2]].all()


def test_a_zone_level_rule_names_every_contributing_object():
    canvas = EvidenceRenderer().draw(np.zeros((300, 600, 3), np.uint8), _dets(), np.array([0, 2]))
    red = _red(canvas)
    assert red[TRUCK[1] + 10 : TRUCK[3] - 10, TRUCK[0]].all() and red[CAR[1] + 10 : CAR[3] - 10, CAR[2]].all()
    assert not red[PERSON[1] + 10 : PERSON[3] - 10, PERSON[0]].any()


def test_track_ids_of_the_subjects_and_a_decodable_jpeg():
    dets = _dets()
    assert subject_track_ids(dets, np.array([1, 0, 2])) == [12, 11]  # the untracked car has none
    assert subject_track_ids(dets, np.zeros(0, dtype=np.int64)) == []
    jpeg = EvidenceRenderer(jpeg_quality=90).render(np.zeros((300, 600, 3), np.uint8), dets, np.array([2]))
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (300, 600, 3)
