"""A camera the models loaded now cannot run: refused through the API (422 naming ``imgsz`` or
``detectors``), and, when it was saved under other models, not started at the next start
while the service and the other cameras start; it stays saved, says why, and can be deleted.

Real parts: a tiny YOLO-shaped ONNX model with a dynamic input (built here, run by
onnxruntime through the product's loader), the real service and app, a real SQLite file.
The model the service restarts with is the scripted fixed-size detector (like the embedded
SSD, it cannot change its input size).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridworker.api import create_app
from gridworker.models import DetectorConfig, load_detector
from gridworker.models.base import Detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, free_port, local_client

pytest.importorskip("onnx", reason="the test model is built with the onnx package (the export extra)")

import onnx  # noqa: E402  (after the skip)
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _dynamic_yolo(path: Path) -> Path:
    """A YOLOv8-shaped model (boxes + 3 class scores per anchor) with a dynamic H x W input."""
    channels = 4 + 3
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", channels, "A"])
    weights = numpy_helper.from_array(np.full((channels, 3, 1, 1), 0.01, np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, channels, -1], np.int64), "shape")
    nodes = [
        helper.make_node("MaxPool", ["images"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["pooled", "w"], ["conv"]),
        helper.make_node("Reshape", ["conv", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "dyn", [image], [out], [weights, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, {"names": "{0: 'person', 1: 'car', 2: 'dog'}", "task": "detect", "stride": "32", "imgsz": "[64, 64]"})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _dynamic_yolo(tmp_path_factory.mktemp("dyn") / "dyn.onnx")


def _run(db: Path, detector: Detector, **extra: Any) -> tuple[dict[str, Service], Callable[[], Service]]:
    """A service factory on the database ``db`` (the app starts the service), and where it puts the service."""
    settings = Settings(database={"url": f"sqlite:///{db}"}, evidence={"clips": False}, **extra)
    holder: dict[str, Service] = {}

    def factory() -> Service:
        holder["service"] = Service(settings, detector)
        return holder["service"]

    return holder, factory


def _errors(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gridworker.cameras" and r.levelno >= logging.ERROR and word in r.getMessage()]


def _url() -> str:
    return f"rtsp://127.0.0.1:{free_port()}/s"  # nothing listens: the reader retries, nothing else depends on it


def test_a_saved_camera_whose_imgsz_the_model_cannot_take_is_not_started(tmp_path, dynamic_model, caplog):
    db = tmp_path / "gw.db"
    # 1. a dynamic-input YOLO as the default model: a far junction at 960 is accepted and saved
    _, factory = _run(db, load_detector(DetectorConfig(model=str(dynamic_model))))
    with local_client(create_app(factory)) as client:  # no key yet: a loopback caller is admin
        assert client.post("/cameras", json={"id": "far-junction", "url": _url(), "imgsz": 960}).status_code == 201
        assert client.post("/cameras", json={"id": "near", "url": _url()}).status_code == 201

    # 2. restarted with a fixed-size model: the service starts, the other camera runs
    holder, factory = _run(db, ParkedCarDetector())
    with caplog.at_level(logging.ERROR, logger="gridworker.cameras"):
        with local_client(create_app(factory)) as client:
            service = holder["service"]
            assert service.started
            assert [c["id"] for c in client.get("/cameras").json()] == ["near"]
            # one error line names the camera and why
            (line,) = _errors(caplog, "'far-junction'")
            assert "not started" in line and "imgsz 960" in line and "fixed input size" in line, line
            assert set(service.registry.not_started()) == {"far-junction"}
            # /health says so, as a count only (it answers without a key)
            reasons = client.get("/health").json()["reasons"]
            assert "1 saved camera(s) not started (see the log)" in reasons and not any("imgsz" in r for r in reasons)
            # it stays saved: nothing accepted is lost
            assert {cam_id for cam_id, _ in service.store.cameras.all()} == {"far-junction", "near"}
            # the operator sees why, and the id stays taken until it is deleted
            r = client.get("/cameras/far-junction")
            assert r.status_code == 404 and "saved but not running" in r.json()["detail"] and "imgsz" in r.json()["detail"], r.text
            r = client.post("/cameras", json={"id": "far-junction", "url": _url()})
            assert r.status_code == 409 and "not running" in r.json()["detail"] and "DELETE" in r.json()["detail"], r.text
            # a new camera asking this model for a size: 422 naming the field, nothing added
            r = client.post("/cameras", json={"id": "far2", "url": _url(), "imgsz": 960})
            assert r.status_code == 422 and "imgsz" in r.json()["detail"] and "fixed input size" in r.json()["detail"], r.text
            assert client.get("/cameras/far2").status_code == 404
            # DELETE removes the saved row; the id is free again
            assert client.delete("/cameras/far-junction").status_code == 204
            assert {cam_id for cam_id, _ in service.store.cameras.all()} == {"near"}
            assert service.registry.not_started() == {}
            assert not any("not started" in r for r in client.get("/health").json()["reasons"])
            assert client.delete("/cameras/far-junction").status_code == 404
            assert client.post("/cameras", json={"id": "far-junction", "url": _url()}).status_code == 201


def test_unknown_detectors_are_422_and_a_saved_camera_naming_a_gone_model_is_not_started(tmp_path, dynamic_model, caplog):
    db = tmp_path / "gw.db"
    fall = {"id": "fall", "model": str(dynamic_model)}
    rule = {"type": "intrusion", "classes": ["person"], "detector": "fall"}
    ward = {"id": "ward", "url": _url(), "detectors": ["default", "fall"], "zones": [{"id": "z", "rules": [rule]}]}
    # 1. the site runs a "fall" model: a camera using it is accepted; one naming a model nobody defined is not
    holder, factory = _run(db, ParkedCarDetector(), detectors=[fall])
    with local_client(create_app(factory)) as client:
        assert client.post("/cameras", json=ward).status_code == 201
        r = client.post("/cameras", json={"id": "c2", "url": _url(), "detectors": ["smoke"]})
        assert r.status_code == 422 and "detectors" in r.json()["detail"] and "'smoke'" in r.json()["detail"], r.text
        assert [c["id"] for c in client.get("/cameras").json()] == ["ward"]
        assert holder["service"].pipeline.slot("c2") is None

    # 2. restarted without the fall model: the camera's frames would go to no model, so it is not started
    holder, factory = _run(db, ParkedCarDetector())
    with caplog.at_level(logging.ERROR, logger="gridworker.cameras"):
        with local_client(create_app(factory)) as client:
            assert client.get("/cameras").json() == []
            assert holder["service"].pipeline.slot("ward") is None
            (line,) = _errors(caplog, "'ward'")
            assert "not started" in line and "detectors" in line and "'fall'" in line, line
            assert [cam_id for cam_id, _ in holder["service"].store.cameras.all()] == ["ward"]
            r = client.post("/cameras", json={"id": "c3", "url": _url(), "detectors": ["fall"]})
            assert r.status_code == 422 and "'fall'" in r.json()["detail"], r.text

    # 3. with the model back, the saved camera runs again as it was
    holder, factory = _run(db, ParkedCarDetector(), detectors=[fall])
    with local_client(create_app(factory)) as client:
        (cam,) = client.get("/cameras").json()
        assert cam["id"] == "ward" and cam["zones"][0]["rules"][0]["detector"] == "fall"
        assert holder["service"].pipeline.slot("ward").detectors == ("default", "fall")


def test_the_models_warm_up_at_a_new_imgsz_does_not_hold_the_camera_registry(tmp_path):
    """Found by review: the warm-up ran inside the registry's lock, which the post thread takes
    for every incident (camera_info, the clip's packet ring): adding a camera with a new imgsz
    froze every camera's analysis for as long as the model ran."""
    import threading
    import time

    from gridworker.settings import CameraConfig

    class SlowResizable(ParkedCarDetector):
        def with_imgsz(self, imgsz: int) -> Detector:
            time.sleep(1.5)  # the warm-up: runs the model at the new size
            return self

    holder, factory = _run(tmp_path / "g.db", SlowResizable())
    service = factory()
    service.start()
    try:
        service.registry.add(CameraConfig(id="near", url=_url()))
        adder = threading.Thread(target=service.registry.add, args=(CameraConfig(id="far", url=_url(), imgsz=640),))
        adder.start()
        time.sleep(0.3)  # the warm-up is under way
        t0 = time.monotonic()
        service.registry.info("near")  # what the post thread asks for each incident
        waited = time.monotonic() - t0
        adder.join(10)
        assert waited < 0.5, f"the registry was held {waited:.2f} s by a warm-up"
        assert service.registry.ids() == {"near", "far"}
    finally:
        service.stop()
