"""Tiny real ONNX models that load but run only at some input shapes, built with onnx's helper
API (the export extra's ``onnx`` package), and SSD directories with a wrong manifest. For the
tests of what loading refuses (tests/models/test_model_startup.py, tests/test_cli_load_models.py)
and of batches failing at run time (tests/vision/test_pipeline_detector_failures.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gridworker.models.loader import WEIGHTS_DIR
from gridworker.models.manifest import MANIFEST_NAME, sha256_file

NAMES = "{0: 'person', 1: 'car'}"
CHANNELS = 4 + 2  # a YOLOv8 head for the two classes: cx, cy, w, h, two scores


def _save(path: Path, nodes: list[Any], inits: list[Any], anchors: int | str) -> Path:
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])  # dynamic H, W
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", CHANNELS, anchors])
    model = helper.make_model(helper.make_graph(nodes, path.stem, [image], [output], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"names": NAMES, "task": "detect", "stride": "32", "imgsz": "[640, 640]"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


def _head() -> tuple[list[Any], list[Any]]:
    """MaxPool by 32, then a 1x1 conv to the head's channels: ``cells`` (N, 6, H/32, W/32), all 0.01."""
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("MaxPool", ["images"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["pooled", "weight"], ["cells"]),
    ]
    return nodes, [numpy_helper.from_array(np.full((CHANNELS, 3, 1, 1), 0.01, np.float32), "weight")]


def square_only(path: Path) -> Path:
    """Declares a dynamic input size but reshapes to a fixed 400 anchors: runs only at 640x640."""
    from onnx import helper, numpy_helper

    nodes, inits = _head()
    nodes.append(helper.make_node("Reshape", ["cells", "shape"], ["output0"]))
    inits.append(numpy_helper.from_array(np.array([-1, CHANNELS, 400], np.int64), "shape"))
    return _save(path, nodes, inits, 400)


def width_640_only(path: Path) -> Path:
    """Declares a dynamic input size but adds a bias 20 cells wide: runs at any height, only at
    width 640 (640x640 and a landscape 384x640 run; a portrait frame's 640x384 fails)."""
    from onnx import helper, numpy_helper

    nodes, inits = _head()
    nodes += [
        helper.make_node("Add", ["cells", "bias"], ["biased"]),  # broadcasts only over 20 (or 1) cells
        helper.make_node("Reshape", ["biased", "shape"], ["output0"]),
    ]
    inits += [
        numpy_helper.from_array(np.zeros((1, 1, 1, 20), np.float32), "bias"),
        numpy_helper.from_array(np.array([0, CHANNELS, -1], np.int64), "shape"),
    ]
    return _save(path, nodes, inits, "anchors")


def ssd_with_input(out: Path, **changes: Any) -> Path:
    """A copy of the embedded SSD whose manifest's ``input`` has ``changes`` (e.g. height=320,
    layout="NCHW"), its sha256s right: the manifest loads, the model does not fit it."""
    source = WEIGHTS_DIR / "ssd_mobilenet_v2_coco"
    out.mkdir(parents=True)
    manifest = json.loads((source / MANIFEST_NAME).read_text())
    for name in (manifest["model"]["file"], manifest["anchors"]["file"]):
        shutil.copy(source / name, out / name)
    manifest["input"].update(changes)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert manifest["model"]["sha256"] == sha256_file(out / manifest["model"]["file"])
    return out
