"""The embedded SSD-MobileNetV2 COCO model on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from gridworker.models import Detector, DetectorConfig, ModelError, SsdDetector, load_detector
from gridworker.models.nms import box_iou_matrix
from gridworker.models.ssd_codec import BoxCoderScales, best_class, decode_boxes, generate_ssd_anchors

from tests.models.contract import arrays

# TFLite's own post-processed output on bus.jpg (810x1080), printed by
# models/tools/convert_ssd_mobilenet_v2.py when it built the weights: (label, score, box).
BUS_REFERENCE = [
    ("person", 0.9805, [51.5, 401.8, 236.1, 900.6]),
    ("bus", 0.8789, [10.6, 211.7, 810.9, 743.4]),
    ("person", 0.7305, [224.8, 392.6, 337.7, 850.9]),
    ("person", 0.4180, [676.5, 358.3, 809.4, 885.3]),
]


def assert_matches(dets: sv.Detections, expected: list[tuple[str, float, list[float]]], min_iou: float) -> None:
    """Each expected box has a detection of the same label with IoU >= min_iou and a close score."""
    names = arrays(dets).class_name
    for label, score, box in expected:
        same = names == label
        assert same.any(), f"no {label!r} detected; got {names.tolist()}"
        ious = box_iou_matrix(np.asarray([box], np.float32), dets.xyxy[same])[0]
        best = int(np.argmax(ious))
        assert ious[best] >= min_iou, f"{label} {box}: best IoU {ious[best]:.3f}"
        assert arrays(dets).confidence[same][best] == pytest.approx(score, abs=0.1)


def assert_same(a: sv.Detections, b: sv.Detections) -> None:
    np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=0, atol=1e-3)
    got, want = arrays(a), arrays(b)
    np.testing.assert_allclose(got.confidence, want.confidence, rtol=0, atol=1e-6)
    assert got.class_id.tolist() == want.class_id.tolist()
    assert got.class_name.tolist() == want.class_name.tolist()


# ----------------------------------------------------------------------------- pure numpy


def test_zero_encodings_decode_to_the_anchor() -> None:
    anchors = np.array([[0.5, 0.25, 0.2, 0.1], [0.1, 0.9, 0.4, 0.6]], dtype=np.float32)
    boxes = decode_boxes(np.zeros((3, 2, 4), np.float32), anchors)
    assert boxes.shape == (3, 2, 4)
    np.testing.assert_allclose(boxes[0], [[0.2, 0.4, 0.3, 0.6], [0.6, -0.1, 1.2, 0.3]], atol=1e-6)


def test_encodings_use_the_box_coder_scales() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.2]], dtype=np.float32)
    enc = np.array([[[10.0, -10.0, 5 * np.log(2.0), 0.0]]], dtype=np.float32)  # dy=+1 anchor, dx=-1, h x2
    [[box]] = decode_boxes(enc, anchors, BoxCoderScales(10, 10, 5, 5))
    np.testing.assert_allclose(box, [0.2, 0.5, 0.4, 0.9], atol=1e-6)


def test_best_class_skips_background() -> None:
    scores = np.array([[[0.9, 0.1, 0.3], [0.0, 0.6, 0.6]]], dtype=np.float32)
    best, ids = best_class(scores, label_offset=1)
    np.testing.assert_allclose(best, [[0.3, 0.6]])
    assert ids.tolist() == [[1, 0]]


def test_shipped_anchors_are_the_standard_ssd_anchors(ssd_dir: Path) -> None:
    shipped = np.load(ssd_dir / "anchors.npy")
    assert shipped.shape == (1917, 4) and shipped.dtype == np.float32
    # The TFLite file stores them as uint8 with a step of 0.00645.
    np.testing.assert_allclose(generate_ssd_anchors(), shipped, rtol=0, atol=0.00645 / 2 + 1e-6)


# ---------------------------------------------------------------------------- real model


@pytest.mark.model
def test_bus_finds_the_bus_and_the_people(ssd_detector: SsdDetector, bus_image: np.ndarray) -> None:
    [dets] = ssd_detector.detect([bus_image])
    assert_matches(dets, BUS_REFERENCE, min_iou=0.7)
    assert set(arrays(dets).class_name.tolist()) <= {"person", "bus", "car", "truck"}
    height, width = bus_image.shape[:2]
    assert (dets.xyxy >= 0).all() and (dets.xyxy[:, [0, 2]] <= width).all() and (dets.xyxy[:, [1, 3]] <= height).all()


@pytest.mark.model
def test_detections_follow_the_contract(ssd_detector: SsdDetector, hopper_image: np.ndarray) -> None:
    assert isinstance(ssd_detector, Detector)
    [dets] = ssd_detector.detect([hopper_image])
    assert isinstance(dets, sv.Detections)
    assert dets.xyxy.dtype == np.float32 and dets.xyxy.shape == (len(dets), 4)
    got = arrays(dets)
    assert got.confidence.dtype == np.float32
    assert np.issubdtype(got.class_id.dtype, np.integer)
    assert got.class_name.tolist() == [ssd_detector.class_names[i] for i in got.class_id]
    assert (np.diff(got.confidence) <= 0).all()  # best first
    assert "person" in got.class_name.tolist()
    assert len(ssd_detector.class_names) == 90 and ssd_detector.class_names[:3] == ["person", "bicycle", "car"]


@pytest.mark.model
def test_batch_of_8_equals_8_batches_of_1(
    ssd_detector: SsdDetector, scene_image: np.ndarray, hopper_image: np.ndarray
) -> None:
    height, width = scene_image.shape[:2]
    images = [  # eight different sizes and contents
        scene_image,
        hopper_image,
        np.ascontiguousarray(scene_image[:, ::-1]),
        scene_image[height // 5 : 4 * height // 5, width // 8 : 7 * width // 8],
        np.ascontiguousarray(hopper_image[::2, ::2]),
        scene_image[: height // 2],
        np.full((300, 300, 3), 127, np.uint8),
        np.ascontiguousarray(np.rot90(scene_image)),
    ]
    assert ssd_detector.max_batch == 8
    batched = ssd_detector.detect(images)
    singles = [ssd_detector.detect([image])[0] for image in images]
    assert len(batched) == 8
    for a, b in zip(batched, singles):
        assert_same(a, b)
    assert sum(len(d) for d in batched) >= 6


@pytest.mark.model
def test_more_images_than_max_batch(ssd_dir: Path, hopper_image: np.ndarray) -> None:
    detector = SsdDetector.from_directory(ssd_dir, DetectorConfig(max_batch=3, threads=1))
    results = detector.detect([hopper_image] * 7)
    assert len(results) == 7
    for dets in results[1:]:
        assert_same(dets, results[0])


@pytest.mark.model
def test_class_filter_keeps_only_those_classes(ssd_dir: Path, bus_image: np.ndarray) -> None:
    detector = SsdDetector.from_directory(ssd_dir, DetectorConfig(classes=["bus"], confidence=0.3))
    [dets] = detector.detect([bus_image])
    assert arrays(dets).class_name.tolist() == ["bus"]
    assert_matches(dets, BUS_REFERENCE[1:2], min_iou=0.7)


@pytest.mark.model
def test_unknown_class_in_filter_is_a_model_error(ssd_dir: Path) -> None:
    with pytest.raises(ModelError, match="unicorn"):
        SsdDetector.from_directory(ssd_dir, DetectorConfig(classes=["unicorn"]))


@pytest.mark.model
def test_load_detector_default_is_the_embedded_ssd(hopper_image: np.ndarray) -> None:
    detector = load_detector(DetectorConfig())
    assert isinstance(detector, SsdDetector)
    assert detector.detect([]) == []
    [dets] = detector.detect([hopper_image])
    assert "person" in arrays(dets).class_name.tolist()


@pytest.mark.model
@pytest.mark.parametrize(
    ("image", "match"),
    [(np.zeros((10, 10), np.uint8), "shape"), (np.zeros((10, 10, 3), np.float64), "uint8")],
)
def test_bad_images_raise_value_error(ssd_detector: SsdDetector, image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ssd_detector.detect([image])
