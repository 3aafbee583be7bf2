"""A model that gives NaN or inf boxes for one frame: that frame loses those boxes, the rest
of the batch keeps its own, and a warning counts them (real tiny ONNX models, built here)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from gridworker.models import DetectorConfig, SsdDetector, YoloDetector, YoloLayout
from gridworker.models._common import NonFiniteLog, build_detections
from gridworker.models.manifest import Manifest
from gridworker.models.onnx_session import create_session
from gridworker.models.yolo import decode_yolo

from tests.models.contract import arrays

pytest.importorskip("onnx", reason="the test models are built with the onnx package (the export extra)")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402  (after the skip)

NORMAL = np.full((480, 640, 3), 120, dtype=np.uint8)
WHITE = np.full((640, 640, 3), 255, dtype=np.uint8)  # all white: the models below answer NaN boxes


def nan_model(
    path: Path,
    image: tuple[int, str, list[int | str]],
    outputs: dict[str, list[tuple[np.ndarray, bool]]],
    white: float,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save an ONNX model whose outputs are constants (broadcast to the batch), except that
    the parts marked True become NaN for an image whose mean is ``white`` (0 / 0).

    Args:
        image: the input's element type, name and shape.
        outputs: per output, its parts ``(constant (1, ...), NaN for white)`` concatenated on axis 1.
    """
    elem, name, shape = image
    source = name
    nodes = []
    if elem == TensorProto.UINT8:
        nodes.append(helper.make_node("Cast", [name], ["pixels"], to=TensorProto.FLOAT))
        source = "pixels"
    nodes += [
        helper.make_node("ReduceMean", [source], ["mean"], keepdims=1, axes=[1, 2, 3]),
        helper.make_node("Reshape", ["mean", "shape3"], ["mean3"]),  # (N, 1, 1)
        helper.make_node("Sub", ["white", "mean3"], ["gap"]),
        helper.make_node("Div", ["gap", "gap"], ["one"]),  # 1, or NaN for a white image
        helper.make_node("Mul", ["mean3", "zero"], ["zeros"]),  # 0, with the batch dimension
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 1, 1], dtype=np.int64), "shape3"),
        numpy_helper.from_array(np.array(white, dtype=np.float32), "white"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    infos = []
    for out_name, parts in outputs.items():
        pieces = []
        for k, (constant, nan_for_white) in enumerate(parts):
            const_name, piece = f"{out_name}_c{k}", f"{out_name}_p{k}"
            inits.append(numpy_helper.from_array(constant.astype(np.float32), const_name))
            nodes.append(helper.make_node("Mul" if nan_for_white else "Add", ["one" if nan_for_white else "zeros", const_name], [piece]))
            pieces.append(piece)
        nodes.append(helper.make_node("Concat", pieces, [out_name], axis=1))
        rest = [sum(c.shape[1] for c, _ in parts), *parts[0][0].shape[2:]]
        infos.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", *rest]))
    graph = helper.make_graph(nodes, "nan_model", [helper.make_tensor_value_info(name, elem, shape)], infos, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def yolo_nan(tmp_path_factory: pytest.TempPathFactory) -> YoloDetector:
    """YOLOv8-like, 64x64 dynamic input, one person box (cx 32, cy 32, w 10, h 20) at 0.9."""
    boxes = np.zeros((1, 4, 10), dtype=np.float32)
    boxes[0, :, 0] = [32, 32, 10, 20]
    scores = np.zeros((1, 3, 10), dtype=np.float32)
    scores[0, 0, 0] = 0.9
    path = nan_model(
        tmp_path_factory.mktemp("yolo") / "nan.onnx",
        (TensorProto.FLOAT, "images", ["batch", 3, "h", "w"]),
        {"output0": [(boxes, True), (scores, False)]},
        white=1.0,
        metadata={"names": "{0: 'person', 1: 'car', 2: 'dog'}", "task": "detect", "stride": "32", "imgsz": "[64, 64]"},
    )
    return YoloDetector.from_path(path, DetectorConfig(confidence=0.3))


def test_yolo_nan_boxes_empty_that_frame_only(yolo_nan: YoloDetector, caplog: pytest.LogCaptureFixture) -> None:
    [alone] = yolo_nan.detect([NORMAL])
    before = yolo_nan.nonfinite_dropped
    with caplog.at_level(logging.WARNING, logger="gridworker.models._common"):
        normal, white, again = yolo_nan.detect([NORMAL, WHITE, NORMAL])  # one model run for all three
    # 64x64 input, 480x640 frame: ratio 0.1, 8 px of padding on top
    np.testing.assert_allclose(arrays(normal).xyxy, [[270, 140, 370, 340]], atol=1e-3)
    np.testing.assert_allclose(arrays(normal).xyxy, arrays(alone).xyxy)
    assert arrays(normal).class_name.tolist() == arrays(again).class_name.tolist() == ["person"]
    assert len(white) == 0 and arrays(white).xyxy.shape == (0, 4)
    assert yolo_nan.nonfinite_dropped == before + 1
    assert any("dropped 1 box(es) with non-finite" in r.getMessage() and "nan.onnx" in r.getMessage() for r in caplog.records)


def test_yolo_nan_warning_is_rate_limited(yolo_nan: YoloDetector, caplog: pytest.LogCaptureFixture) -> None:
    yolo_nan.detect([WHITE])  # the first warning may go out here
    caplog.clear()
    before = yolo_nan.nonfinite_dropped
    with caplog.at_level(logging.WARNING, logger="gridworker.models._common"):
        for _ in range(3):
            assert [len(d) for d in yolo_nan.detect([NORMAL, WHITE])] == [1, 0]
    assert yolo_nan.nonfinite_dropped == before + 3  # counted every time ...
    assert not [r for r in caplog.records if "non-finite" in r.getMessage()]  # ... said at most once a minute


def test_ssd_nan_boxes_empty_that_frame_only(tmp_path: Path) -> None:
    """SSD, 32x32 uint8 NHWC: anchor 0 (the centre half of the image) scores 0.9 as person."""
    anchors = np.array([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.1, 0.1]], dtype=np.float32)
    scores = np.array([[[0.0, 0.9], [0.0, 0.1]]], dtype=np.float32)
    path = nan_model(
        tmp_path / "model.onnx",
        (TensorProto.UINT8, "image", ["batch", 32, 32, 3]),
        {"box_encodings": [(np.zeros((1, 2, 4), dtype=np.float32), True)], "class_scores": [(scores, False)]},
        white=255.0,
    )
    manifest = Manifest.model_validate(
        {
            "name": "nan_ssd",
            "family": "ssd",
            "model": {"file": "model.onnx", "sha256": "0" * 64},
            "anchors": {"file": "anchors.npy", "sha256": "0" * 64, "count": 2},
            "input": {"name": "image", "layout": "NHWC", "dtype": "uint8", "height": 32, "width": 32},
            "outputs": {"box_encodings": "box_encodings", "class_scores": "class_scores"},
            "box_coder": {"y_scale": 10, "x_scale": 10, "h_scale": 5, "w_scale": 5},
            "labels": ["background", "person"],
            "label_offset": 1,
            "licence": {"spdx": "Apache-2.0"},
        }
    )
    detector = SsdDetector(create_session(path), manifest, anchors, confidence=0.3)
    normal, white = detector.detect([NORMAL, WHITE])
    np.testing.assert_allclose(arrays(normal).xyxy, [[160, 120, 480, 360]], atol=1e-3)
    assert arrays(normal).class_name.tolist() == ["person"]
    assert len(white) == 0
    assert detector.nonfinite_dropped == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("layout", [YoloLayout.V8, YoloLayout.V5, YoloLayout.END2END])
def test_decode_yolo_drops_and_counts_nonfinite_rows(layout: YoloLayout, bad: float) -> None:
    """Rows: a good box, a box with a bad coordinate, one with a bad score, one with a bad
    score below nothing (inf passes any threshold); and a bad box scoring below the threshold."""
    good, low = [10.0, 10.0, 20.0, 20.0, 0.9], [10.0, 10.0, 20.0, 20.0, 0.1]
    rows = [good, [bad, *good[1:]], [*good[:4], bad], [*low[:3], bad, 0.1]]
    if layout is YoloLayout.V8:
        output = np.asarray(rows, dtype=np.float32).T[None]  # [1, 4 + 1, A]
    elif layout is YoloLayout.V5:
        output = np.asarray([[*r[:4], 1.0, r[4]] for r in rows], dtype=np.float32)[None]  # objectness 1
    else:
        output = np.asarray([[*r, 0.0] for r in rows] + [[*good, bad]], dtype=np.float32)[None]  # and a bad class
    with np.errstate(over="ignore", invalid="ignore"):
        [cand] = decode_yolo(output, layout, 0.25)
    assert np.isfinite(cand.xyxy).all() and np.isfinite(cand.scores).all()
    assert len(cand.scores) == 1
    # bad coordinate, bad score (a -inf score is below the threshold: not counted), bad class
    expected = 1 + (bad != -np.inf) + (layout is YoloLayout.END2END)
    assert cand.dropped == expected


def test_build_detections_drops_what_the_decoders_missed(caplog: pytest.LogCaptureFixture) -> None:
    nonfinite = NonFiniteLog("test model", interval=3600)
    xyxy = np.array([[0, 0, 5, 5], [np.nan, 0, 5, 5], [0, 0, np.inf, 5], [1, 1, 2, 2]], dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="gridworker.models._common"):
        dets = build_detections(xyxy, np.array([0.9, 0.8, 0.7, np.nan]), np.array([0, 1, 0, 1]), np.array(["a", "b"]), nonfinite)
        build_detections(xyxy, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 1, 0, 1]), np.array(["a", "b"]), nonfinite)
    assert arrays(dets).xyxy.tolist() == [[0, 0, 5, 5]] and arrays(dets).class_name.tolist() == ["a"]
    assert nonfinite.total == 5
    [record] = [r for r in caplog.records if "non-finite" in r.getMessage()]  # the second call is within the hour
    assert "model test model: dropped 3 box(es)" in record.getMessage()
