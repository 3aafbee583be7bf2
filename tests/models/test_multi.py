"""Several models at once: frames batched per model, boxes tagged with their model, and each
model's objects tracked apart."""

from __future__ import annotations

import numpy as np
import supervision as sv

from gridworker.models.multi import DETECTOR_KEY, detect_models
from gridworker.vision.tracker import MODEL_ID_STRIDE, ModelTrackers


class _Model:
    """Finds one box of its own class in every image (in the image's pixels), records its batches."""

    def __init__(self, name: str, box: tuple[float, float, float, float]) -> None:
        self.name, self.box = name, box
        self.batches: list[int] = []

    def detect(self, images):
        self.batches.append(len(images))
        return [
            sv.Detections(
                xyxy=np.array([self.box], np.float32), confidence=np.array([0.9], np.float32), class_id=np.array([0]),
                data={"class_name": np.array([self.name])},
            )
            for _ in images
        ]


def test_frames_are_batched_per_model_and_tagged():
    coco, fall = _Model("person", (10, 10, 50, 90)), _Model("Fall", (12, 40, 90, 90))
    models = {"default": coco, "fall": fall}
    images = [np.zeros((100, 100, 3), np.uint8)] * 4
    chosen = [("default",), ("default", "fall"), ("fall",), ("default", "fall")]
    out = detect_models(models, "default", images, [None] * 4, [None] * 4, chosen)
    assert coco.batches == [3] and fall.batches == [3], "one batch per model"
    assert [sorted(d.data[DETECTOR_KEY].tolist()) for d in out] == [["default"], ["default", "fall"], ["fall"], ["default", "fall"]]
    assert out[2].data["class_name"].tolist() == ["Fall"]
    # one model everywhere: the model's answer, tagged all the same (a camera's boxes carry
    # their model whichever cameras share the batch: its tracks must not depend on that)
    coco.batches.clear()
    plain = detect_models(models, "default", images, [None] * 4, [None] * 4, [("default",)] * 4)
    assert coco.batches == [4] and all(d.data[DETECTOR_KEY].tolist() == ["default"] for d in plain)


def test_each_models_objects_are_tracked_apart():
    """A COCO person and the fall model's box on the same body overlap: with one tracker they
    would compete for one track; per model, each keeps its own, ids kept apart."""
    trackers = ModelTrackers(fps=5)
    ids = set()
    for t in range(6):
        dets = sv.Detections(
            xyxy=np.array([[10, 10, 50, 90], [12, 12, 52, 92]], np.float32), confidence=np.array([0.9, 0.8], np.float32),
            class_id=np.array([0, 1]), data={"class_name": np.array(["person", "Fall"]), DETECTOR_KEY: np.array(["default", "fall"], dtype=object)},
        )
        tracked = trackers.update(dets, ts=t * 0.2)
        by_model = dict(zip(tracked.data[DETECTOR_KEY].tolist(), tracked.tracker_id.tolist()))
        if t >= 2:
            assert set(by_model) == {"default", "fall"}, by_model
            assert by_model["fall"] >= MODEL_ID_STRIDE > by_model["default"] >= 0
            ids.add((by_model["default"], by_model["fall"]))
    assert len(ids) == 1, "both tracks are stable"
    assert len(trackers.update(sv.Detections.empty(), ts=2.0)) == 0


def test_a_cameras_own_input_size_runs_in_its_own_batch():
    """Images whose camera has an ``imgsz`` go through the resized model (per size, one batch);
    the others through the model itself; boxes keep the model's id."""
    coco, small = _Model("person", (10, 10, 50, 90)), _Model("person", (20, 20, 40, 40))
    images = [np.zeros((100, 100, 3), np.uint8)] * 4
    out = detect_models(
        {"default": coco}, "default", images, [None] * 4, [None] * 4, [("default",)] * 4,
        sizes=[None, 320, None, 320], sized={("default", 320): small},
    )
    assert coco.batches == [2] and small.batches == [2]
    assert [d.xyxy[0, 0] for d in out] == [10, 20, 10, 20]
    assert all(d.data[DETECTOR_KEY].tolist() == ["default"] for d in out)


def test_a_model_without_a_dynamic_input_cannot_be_resized():
    import pytest

    from gridworker.models.errors import ModelFormatError
    from gridworker.models.multi import resized

    with pytest.raises(ModelFormatError, match="fixed input size"):
        resized(_Model("person", (0, 0, 1, 1)), 320, "default")
