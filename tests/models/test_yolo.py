"""YOLO decoding on synthetic tensors: no model file, no ultralytics."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from typing import Any

import numpy as np
import pytest
import supervision as sv

from gridworker.models import Detector, ModelError, YoloDetector, YoloLayout
from gridworker.models.errors import ModelFormatError
from gridworker.models.yolo import decode_yolo, infer_yolo_layout, letterbox_params, undo_letterbox

from tests.models.contract import arrays

NAMES_3 = "{0: 'person', 1: 'car', 2: 'dog'}"


@pytest.mark.parametrize(
    ("shape", "num_classes", "end2end", "expected", "exception"),
    [
        # YOLOv8/11 raw head, dynamic export: [batch, 4 + nc, anchors]
        (["batch", 84, "anchors"], 80, None, (YoloLayout.V8, 80), does_not_raise()),
        (["batch", 6, "anchors"], 2, False, (YoloLayout.V8, 2), does_not_raise()),
        ([1, 84, 8400], None, None, (YoloLayout.V8, 80), does_not_raise()),
        ([None, 6, None], None, None, (YoloLayout.V8, 2), does_not_raise()),
        # YOLOv5: [batch, anchors, 5 + nc]
        ([1, 25200, 85], 80, None, (YoloLayout.V5, 80), does_not_raise()),
        ([1, 25200, 85], None, None, (YoloLayout.V5, 80), does_not_raise()),
        (["batch", "anchors", 6], 1, False, (YoloLayout.V5, 1), does_not_raise()),
        ([1, 25200, 6], 1, None, (YoloLayout.V5, 1), does_not_raise()),
        # end-to-end: [batch, K, 6]
        ([1, 300, 6], 80, True, (YoloLayout.END2END, 80), does_not_raise()),
        ([1, 300, 6], 80, None, (YoloLayout.END2END, 80), does_not_raise()),
        ([1, 300, 6], 1, None, (YoloLayout.END2END, 1), does_not_raise()),
        (["batch", 300, 6], None, None, (YoloLayout.END2END, 0), does_not_raise()),
        # errors
        ([1, 84], 80, None, None, pytest.raises(ModelFormatError, match="rank 3")),
        ([1, 84, 8400], 3, None, None, pytest.raises(ModelFormatError, match="fits no layout")),
        ([1, 300, 7], 80, True, None, pytest.raises(ModelFormatError, match="end-to-end")),
        ([None, None, None], None, None, None, pytest.raises(ModelFormatError, match="cannot tell")),
    ],
)
def test_infer_yolo_layout(
    shape: list[Any], num_classes: int | None, end2end: bool | None, expected: Any, exception: Any
) -> None:
    with exception:
        assert infer_yolo_layout(shape, num_classes, end2end) == expected


def _v8(rows: list[list[float]], anchors: int = 6) -> np.ndarray:
    """One image, [1, 4 + nc, anchors]; rows are (cx, cy, w, h, class scores...)."""
    nc = len(rows[0]) - 4
    out = np.zeros((1, 4 + nc, anchors), dtype=np.float32)
    for j, row in enumerate(rows):
        out[0, :, j] = row
    return out


def _v5(rows: list[list[float]], anchors: int = 6) -> np.ndarray:
    nc = len(rows[0]) - 5
    out = np.zeros((1, anchors, 5 + nc), dtype=np.float32)
    out[0, : len(rows)] = rows
    return out


def _e2e(rows: list[list[float]], k: int = 5) -> np.ndarray:
    out = np.zeros((1, k, 6), dtype=np.float32)
    out[0, : len(rows)] = rows
    return out


@pytest.mark.parametrize(
    ("layout", "output", "confidence", "keep_ids", "boxes", "scores", "classes"),
    [
        # (layout, raw output, confidence, class filter), then the boxes, scores and classes kept
        pytest.param(
            YoloLayout.V8, _v8([[50, 50, 20, 10, 0.1, 0.9, 0.0], [10, 10, 4, 4, 0.3, 0.2, 0.1]]), 0.25, None,
            [[40, 45, 60, 55], [8, 8, 12, 12]], [0.9, 0.3], [1, 0], id="v8",
        ),
        pytest.param(
            YoloLayout.V8, _v8([[50, 50, 20, 10, 0.1, 0.9, 0.5]]), 0.25, np.array([0, 2]),
            [[40, 45, 60, 55]], [0.5], [2], id="v8-class-filter-best-allowed-class",
        ),
        pytest.param(
            YoloLayout.V5, _v5([[50, 50, 20, 10, 0.5, 0.2, 0.8], [10, 10, 4, 4, 0.9, 0.9, 0.1]]), 0.3, None,
            [[40, 45, 60, 55], [8, 8, 12, 12]], [0.4, 0.81], [1, 0], id="v5-objectness-multiplies",
        ),
        pytest.param(YoloLayout.V5, _v5([[50, 50, 20, 10, 0.5, 0.2, 0.8]]), 0.5, None, [], [], [], id="v5-below-confidence"),
        pytest.param(
            YoloLayout.END2END, _e2e([[1, 2, 30, 40, 0.95, 3], [5, 5, 6, 6, 0.2, 1], [7, 8, 9, 10, 0.5, 0]]), 0.25, None,
            [[1, 2, 30, 40], [7, 8, 9, 10]], [0.95, 0.5], [3, 0], id="end2end",
        ),
        pytest.param(
            YoloLayout.END2END, _e2e([[1, 2, 30, 40, 0.95, 3], [7, 8, 9, 10, 0.5, 0]]), 0.25, np.array([0]),
            [[7, 8, 9, 10]], [0.5], [0], id="end2end-class-filter",
        ),
        pytest.param(YoloLayout.END2END, np.zeros((1, 0, 6), dtype=np.float32), 0.25, None, [], [], [], id="end2end-empty"),
    ],
)  # fmt: skip
def test_decode_yolo(
    layout: YoloLayout,
    output: np.ndarray,
    confidence: float,
    keep_ids: np.ndarray | None,
    boxes: list[list[float]],
    scores: list[float],
    classes: list[int],
) -> None:
    [cand] = decode_yolo(output, layout, confidence, keep_ids)
    np.testing.assert_allclose(cand.xyxy, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), atol=1e-5)
    np.testing.assert_allclose(cand.scores, scores, atol=1e-6)
    assert cand.class_ids.tolist() == classes
    assert cand.class_ids.dtype == np.int64


def test_decode_yolo_batch_is_per_image() -> None:
    one = _v8([[50, 50, 20, 10, 0.9, 0.0]])
    two = _v8([[10, 10, 4, 4, 0.0, 0.6], [30, 30, 2, 2, 0.7, 0.0]])
    cands = decode_yolo(np.concatenate([one, two]), YoloLayout.V8, 0.5)
    assert [c.class_ids.tolist() for c in cands] == [[0], [1, 0]]


@pytest.mark.parametrize(
    ("height", "width", "target", "expected"),
    [
        (1080, 810, (640, 640), (640 / 1080, 480, 640, 80, 0)),
        (480, 640, (640, 640), (1.0, 640, 480, 0, 80)),
        (640, 640, (640, 640), (1.0, 640, 640, 0, 0)),
        (100, 50, (640, 640), (6.4, 320, 640, 160, 0)),
        (720, 1280, (384, 640), (0.5, 640, 360, 0, 12)),
        (3, 1000, (640, 640), (0.64, 640, 2, 0, 319)),  # odd padding: extra pixel at the bottom
    ],
)
def test_letterbox_params(height: int, width: int, target: tuple[int, int], expected: tuple[Any, ...]) -> None:
    params = letterbox_params(height, width, target)
    assert params.ratio == pytest.approx(expected[0])
    assert params[1:] == expected[1:]


def test_undo_letterbox_round_trip() -> None:
    params = letterbox_params(1080, 810, (640, 640))
    source = np.array([[0, 0, 810, 1080], [100, 200, 300, 400]], dtype=np.float32)
    model = source * params.ratio + np.array([params.left, params.top] * 2, dtype=np.float32)
    np.testing.assert_allclose(undo_letterbox(model, params, 1080, 810), source, atol=1e-3)
    clipped = undo_letterbox(np.array([[-50, -50, 700, 700]], dtype=np.float32), params, 1080, 810)
    np.testing.assert_allclose(clipped, [[0, 0, 810, 1080]])


# ------------------------------------------------------------------ YoloDetector with a fake session


def _detector(fake_session: Any, output: Any, **kwargs: Any) -> tuple[YoloDetector, Any]:
    session_kwargs = {k: kwargs.pop(k) for k in ("input_shape", "output_shape", "metadata") if k in kwargs}
    session = fake_session(output, **session_kwargs)
    kwargs.setdefault("warmup", False)
    return YoloDetector(session, **kwargs), session


def _tile(rows: np.ndarray) -> Any:
    """Same scripted output for every image of the batch."""
    return lambda batch: np.repeat(rows, batch.shape[0], axis=0)


@pytest.mark.parametrize(
    ("output", "output_shape"),
    [
        # v8: a 200x100 box centred in the 640x640 input, class 1, plus a weaker overlapping duplicate
        (_v8([[320, 320, 200, 100, 0.0, 0.9, 0.0], [322, 320, 200, 100, 0.0, 0.6, 0.0]], 8400), ["batch", 7, "anchors"]),
        (_v5([[320, 320, 200, 100, 1.0, 0.0, 0.9, 0.0], [322, 320, 200, 100, 1.0, 0.0, 0.6, 0.0]], 100), ["batch", "anchors", 8]),
        (_e2e([[220, 270, 420, 370, 0.9, 1]]), ["batch", 300, 6]),
    ],
    ids=["v8", "v5", "end2end"],
)
def test_detector_maps_boxes_to_source_pixels(fake_session: Any, output: np.ndarray, output_shape: list[Any]) -> None:
    detector, session = _detector(
        fake_session, _tile(output), output_shape=output_shape, metadata={"names": NAMES_3}, confidence=0.25
    )
    assert isinstance(detector, Detector)
    assert detector.class_names == ["person", "car", "dog"]
    # 1280x960 (w x h) image: ratio 0.5, padded 80 px top and bottom.
    image = np.zeros((960, 1280, 3), dtype=np.uint8)
    [dets] = detector.detect([image])
    assert isinstance(dets, sv.Detections)
    np.testing.assert_allclose(dets.xyxy, [[440, 380, 840, 580]], atol=1e-3)
    assert dets.xyxy.dtype == np.float32 and arrays(dets).confidence.dtype == np.float32
    assert arrays(dets).class_id.tolist() == [1]
    assert arrays(dets).class_name.tolist() == ["car"]
    np.testing.assert_allclose(arrays(dets).confidence, [0.9])
    [batch] = session.calls
    assert batch.shape == (1, 3, 640, 640) and batch.dtype == np.float32
    assert batch[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # padding
    assert batch[0, :, 320, 320] == pytest.approx([0, 0, 0])  # image


def test_detector_preprocess_keeps_rgb_order(fake_session: Any) -> None:
    detector, session = _detector(fake_session, _tile(_v8([[1, 1, 1, 1, 0.0]], 10)), output_shape=["batch", 5, "a"])
    image = np.zeros((640, 640, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red
    detector.detect([image])
    np.testing.assert_allclose(session.calls[0][0, :, 10, 10], [1.0, 0.0, 0.0])


def test_detector_static_batch_runs_one_at_a_time(fake_session: Any) -> None:
    rows = _v8([[320, 320, 200, 100, 0.8, 0.0]], 50)
    detector, session = _detector(
        fake_session, _tile(rows), input_shape=[1, 3, 640, 640], output_shape=[1, 6, 50], max_batch=8
    )
    assert detector.max_batch == 1
    results = detector.detect([np.zeros((480, 640, 3), np.uint8)] * 3)
    assert [c.shape[0] for c in session.calls] == [1, 1, 1]
    assert [len(d) for d in results] == [1, 1, 1]
    assert detector.class_names == ["class0", "class1"]


def test_detector_splits_into_max_batch_chunks(fake_session: Any) -> None:
    detector, session = _detector(
        fake_session, _tile(_v8([[320, 320, 200, 100, 0.8]], 10)), output_shape=["batch", 5, "a"], max_batch=2
    )
    images = [np.zeros((100 + 10 * i, 200, 3), np.uint8) for i in range(5)]
    results = detector.detect(images)
    assert [c.shape[0] for c in session.calls] == [2, 2, 1]
    assert len(results) == 5
    for image, dets in zip(images, results):
        assert dets.xyxy[:, 3].max() <= image.shape[0]


def test_detector_nms_is_class_aware(fake_session: Any) -> None:
    rows = _v8([[320, 320, 200, 100, 0.9, 0.0], [321, 320, 200, 100, 0.0, 0.8], [322, 320, 200, 100, 0.7, 0.0]], 20)
    detector, _ = _detector(fake_session, _tile(rows), output_shape=["batch", 6, "a"], iou=0.5)
    [dets] = detector.detect([np.zeros((640, 640, 3), np.uint8)])
    assert arrays(dets).class_id.tolist() == [0, 1]
    np.testing.assert_allclose(arrays(dets).confidence, [0.9, 0.8])


def test_detector_class_filter(fake_session: Any) -> None:
    rows = _v8([[320, 320, 200, 100, 0.9, 0.0, 0.0], [100, 100, 50, 50, 0.0, 0.0, 0.7]], 20)
    detector, _ = _detector(
        fake_session, _tile(rows), output_shape=["batch", 7, "a"], metadata={"names": NAMES_3}, classes=["dog"]
    )
    [dets] = detector.detect([np.zeros((640, 640, 3), np.uint8)])
    assert arrays(dets).class_name.tolist() == ["dog"]


def test_detector_empty_results_keep_the_contract(fake_session: Any) -> None:
    detector, _ = _detector(fake_session, _tile(_v8([[1, 1, 1, 1, 0.01]], 10)), output_shape=["batch", 5, "a"])
    [dets] = detector.detect([np.zeros((50, 60, 3), np.uint8)])
    assert len(dets) == 0
    assert dets.xyxy.shape == (0, 4) and dets.xyxy.dtype == np.float32
    assert arrays(dets).confidence.shape == (0,) and arrays(dets).class_id.shape == (0,)
    assert arrays(dets).class_name.shape == (0,)
    assert detector.detect([]) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metadata": {"task": "segment"}}, "only 'detect'"),
        ({"classes": ["unicorn"], "metadata": {"names": NAMES_3}}, "unknown class name"),
        ({"output_shape": ["batch", 300, 6]}, "without 'names'"),
        ({"input_shape": ["batch", 1, 640, 640]}, "3 input channels"),
    ],
)
def test_detector_rejects(fake_session: Any, kwargs: dict[str, Any], match: str) -> None:
    kwargs.setdefault("output_shape", ["batch", 7, "anchors"])
    with pytest.raises(ModelError, match=match):
        _detector(fake_session, _tile(_v8([[1, 1, 1, 1, 0.5, 0.5, 0.5]], 10)), **kwargs)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((10, 10), np.uint8), "shape"),
        (np.zeros((10, 10, 4), np.uint8), "shape"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((0, 10, 3), np.uint8), "shape"),
    ],
)
def test_detector_rejects_bad_images(fake_session: Any, image: np.ndarray, match: str) -> None:
    detector, _ = _detector(fake_session, _tile(_v8([[1, 1, 1, 1, 0.5]], 10)), output_shape=["batch", 5, "a"])
    with pytest.raises(ValueError, match=match):
        detector.detect([image])


def test_detector_probes_fully_symbolic_output(fake_session: Any) -> None:
    rows = _v5([[320, 320, 200, 100, 1.0, 0.9]], 6300)  # YOLOv5 at 320: 6300 anchors
    detector, session = _detector(
        fake_session, _tile(rows), input_shape=["b", 3, "h", "w"], output_shape=[None, None, None], imgsz=320
    )
    assert detector.layout is YoloLayout.V5
    assert detector.input_size == (320, 320)
    assert detector.class_names == ["class0"]
    assert session.calls[0].shape == (1, 3, 320, 320)


def test_detector_input_size_from_metadata(fake_session: Any) -> None:
    detector, session = _detector(
        fake_session,
        _tile(_v8([[1, 1, 1, 1, 0.5]], 10)),
        input_shape=["batch", 3, "height", "width"],
        output_shape=["batch", 5, "anchors"],
        metadata={"imgsz": "[384, 640]"},
    )
    assert detector.input_size == (384, 640)
    detector.detect([np.zeros((720, 1280, 3), np.uint8)])
    assert session.calls[0].shape == (1, 3, 384, 640)


DYNAMIC_INPUT = ["batch", 3, "height", "width"]


def test_rect_letterbox_to_the_stride_for_dynamic_models(fake_session: Any) -> None:
    """A 16:9 frame runs at 384x640, not 640x640 (Ultralytics' stream predictor does the same);
    boxes still map back to the frame's pixels."""
    rows = _v8([[320, 192, 200, 100, 0.0, 0.9, 0.0]], 100)
    detector, session = _detector(
        fake_session, _tile(rows), input_shape=DYNAMIC_INPUT, output_shape=["batch", 7, "anchors"], metadata={"names": NAMES_3}
    )
    assert detector.target_size(720, 1280) == (384, 640) and detector.target_size(1280, 720) == (640, 384)
    assert detector.target_size(480, 640) == (480, 640) and detector.target_size(1080, 810) == (640, 480)
    [dets] = detector.detect([np.zeros((720, 1280, 3), np.uint8)])
    [batch] = session.calls
    assert batch.shape == (1, 3, 384, 640)
    # ratio 0.5: 1280x720 -> 640x360, padded 12 px top and bottom
    np.testing.assert_allclose(dets.xyxy, [[440, 260, 840, 460]], atol=1e-3)


def test_rect_batches_frames_of_one_shape_together(fake_session: Any) -> None:
    rows = _v8([[100, 100, 20, 20, 0.9]], 10)
    detector, session = _detector(fake_session, _tile(rows), input_shape=DYNAMIC_INPUT, output_shape=["batch", 5, "a"])
    wide, tall = np.zeros((720, 1280, 3), np.uint8), np.zeros((1280, 720, 3), np.uint8)
    results = detector.detect([wide, tall, wide, wide])
    assert sorted(c.shape for c in session.calls) == [(1, 3, 640, 384), (3, 3, 384, 640)]
    assert len(results) == 4 and all(len(d) == 1 for d in results)
    # the order of the results is the order of the images: the tall frame's box is in its own pixels
    assert results[1].xyxy[0, 0] == pytest.approx((100 - 10 - 12) / 0.5, abs=1e-3)  # 12 px padding left


def test_rect_off_or_a_fixed_input_keeps_the_square(fake_session: Any) -> None:
    rows = _v8([[100, 100, 20, 20, 0.9]], 10)
    square, session = _detector(fake_session, _tile(rows), input_shape=DYNAMIC_INPUT, output_shape=["batch", 5, "a"], rect=False)
    square.detect([np.zeros((720, 1280, 3), np.uint8)])
    assert session.calls[0].shape == (1, 3, 640, 640)
    fixed, session = _detector(fake_session, _tile(rows), output_shape=["batch", 5, "a"])
    fixed.detect([np.zeros((720, 1280, 3), np.uint8)])
    assert session.calls[0].shape == (1, 3, 640, 640)


def test_with_imgsz_shares_the_session_and_runs_at_its_own_size(fake_session: Any) -> None:
    """A camera's own ``imgsz``: the same session, a smaller (or larger) letterbox; boxes
    still in the frame's pixels; the original detector keeps its size."""
    rows = _v8([[160, 96, 100, 50, 0.0, 0.9, 0.0]], 100)
    detector, session = _detector(
        fake_session, _tile(rows), input_shape=DYNAMIC_INPUT, output_shape=["batch", 7, "anchors"], metadata={"names": NAMES_3}
    )
    small = detector.with_imgsz(320)
    assert small.target_size(720, 1280) == (192, 320) and detector.target_size(720, 1280) == (384, 640)
    [dets] = small.detect([np.zeros((720, 1280, 3), np.uint8)])
    assert [c.shape for c in session.calls] == [(1, 3, 192, 320)], "one session, run at 192x320"
    # ratio 0.25: 1280x720 -> 320x180, padded 6 px top and bottom
    np.testing.assert_allclose(dets.xyxy, [[440, 260, 840, 460]], atol=1e-3)
    fixed, _ = _detector(fake_session, _tile(rows), output_shape=["batch", 7, "anchors"])
    with pytest.raises(ModelFormatError, match="fixed"):
        fixed.with_imgsz(320)
