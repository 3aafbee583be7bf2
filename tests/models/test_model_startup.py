"""A model that loads but cannot run at the shapes live frames take is refused when it is loaded,
with ModelFormatError in one line, never an ONNX Runtime error later: an SSD manifest whose input
size or layout is not the model's, a YOLO model declaring a dynamic input size that runs only at
its square size (refused with ``rect``, and at a camera's ``imgsz``). Real tiny ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridworker.models import DetectorConfig, ModelFormatError, load_detector
from gridworker.models.multi import resized
from gridworker.models.yolo import YoloDetector

pytest.importorskip("onnx", reason="the test models are built with the onnx package (the export extra)")

from tests.models.tiny_onnx import square_only, ssd_with_input, width_640_only  # noqa: E402  (after the skip)


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"height": 320, "width": 320}, "NHWC 320x320 (shape [N, 320, 320, 3]), but the model's input is [N, 300, 300, 3]"),
        ({"layout": "NCHW"}, "NCHW 300x300 (shape [N, 3, 300, 300]), but the model's input is [N, 300, 300, 3]; it fits layout NHWC"),
        ({"height": 4096, "width": 4096}, "NHWC 4096x4096"),  # refused before a 4096x4096 warm-up frame is made
    ],
)
def test_an_ssd_manifest_input_unlike_the_models_is_refused_at_load(tmp_path: Path, changes: dict[str, object], said: str) -> None:
    directory = ssd_with_input(tmp_path / "ssd", **changes)
    with pytest.raises(ModelFormatError) as caught:
        load_detector(DetectorConfig(model=str(directory)))
    message = str(caught.value)
    assert said in message and "\n" not in message, message
    assert "'normalized_input_image_tensor'" in message


def test_a_square_only_model_is_refused_with_rect_and_says_why(tmp_path: Path) -> None:
    """Before: it loaded (warm-up at 640x640 only) and failed on every 16:9 frame."""
    path = square_only(tmp_path / "square.onnx")
    with pytest.raises(ModelFormatError) as caught:
        load_detector(DetectorConfig(model=str(path)))
    message = str(caught.value)
    assert message.startswith(f"model {path}: a test run on a 1280x720 frame (letterboxed to 384x640, height x width) failed"), message
    assert "requested shape:{-1,6,400}" in message and "rect: false" in message and "\n" not in message
    # rect: false letterboxes every frame to the square it runs at: it loads and detects a 16:9 frame
    square = load_detector(DetectorConfig(model=str(path), rect=False))
    assert [len(d) for d in square.detect([np.zeros((360, 640, 3), np.uint8)])] == [0]


def test_a_camera_imgsz_the_model_cannot_run_is_refused(tmp_path: Path) -> None:
    """Before: ``with_imgsz`` only copied the detector; the camera's frames failed in every batch."""
    square = load_detector(DetectorConfig(model=str(square_only(tmp_path / "square.onnx")), rect=False))
    with pytest.raises(ModelFormatError, match=r"at imgsz 320: a test run on a 320x320 frame .* failed"):
        resized(square, 320, "fall")
    assert isinstance(square, YoloDetector) and square.input_size == (640, 640)  # the model's own size still runs


def test_a_model_that_runs_at_the_warm_up_shapes_loads_and_resizes(tmp_path: Path) -> None:
    """Width 640 only: the square and a 16:9 frame run, so it loads (a portrait frame fails later,
    at run time: tests/vision/test_pipeline_detector_failures.py); at imgsz 320 the width is 320: refused."""
    detector = load_detector(DetectorConfig(model=str(width_640_only(tmp_path / "w640.onnx"))))
    assert [len(d) for d in detector.detect([np.zeros((720, 1280, 3), np.uint8)])] == [0]
    with pytest.raises(Exception) as caught:
        detector.detect([np.zeros((1280, 720, 3), np.uint8)])
    assert not isinstance(caught.value, ModelFormatError)  # an ONNX Runtime error: the pipeline's to count
    with pytest.raises(ModelFormatError, match="at imgsz 320"):
        resized(detector, 320, "w640")
