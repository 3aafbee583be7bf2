"""Motion gating in the running service, on a real RTSP camera and the real model.

A bus parked on a still street: with gating on, most frames skip the model (the camera's
``inferred_fraction`` in /cameras and the coasted-frame counter in /metrics say so), yet
the parking incident opens as it does without gating: the coasted frames keep the
tracker and the stay's clock going, and the refresh re-confirms the bus.
"""

from __future__ import annotations

import time

import pytest

from gridworker.api.app import create_app
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import bus_street_clips, local_client, wait_until

pytestmark = [pytest.mark.model, pytest.mark.rtsp]

KERB = {
    "id": "kerb",
    "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]],
    "rules": [{"type": "illegal_parking", "classes": ["bus"], "min_duration_s": 4.0}],
}


@pytest.fixture(scope="module")
def detector():
    return load_detector(DetectorConfig())


@pytest.mark.parametrize("gated", [True, False])
def test_a_parked_bus_is_found_with_a_fraction_of_the_inferences(tmp_path, rtsp_factory, detector, gated):
    clip = bus_street_clips(tmp_path, {"parked": 0})["parked"]
    server = rtsp_factory({"kerb": clip})
    camera = {"id": "kerb", "url": server.url("kerb"), "fps": 5, "zones": [KERB], "motion": {"enabled": gated, "refresh_s": 1.5}}
    if gated:  # and the model sees only the kerb's left half, where the bus stands (detect_region)
        camera["zones"] = [{**KERB, "polygon": [[0, 0.3], [0.5, 0.3], [0.5, 1], [0, 1]]}]
        camera["detect_region"] = {"enabled": True}
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'm.db'}"}, cameras=[camera], evidence={"clips": False})
    service = Service(settings, detector)
    with local_client(create_app(lambda: service)) as client:
        assert wait_until(lambda: service.incidents.open_count("kerb") == 1, timeout=40), "the parked bus opens its case"
        region = service.pipeline.slot("kerb").region
        assert (region is None) if not gated else (region is not None and region == pytest.approx((0.0, 0.22, 0.58, 1.0)))
        box = client.get("/incidents").json()["items"][0]["details"]["box"]
        assert box[2] <= 0.5, box  # the bus (left 405 of 960 px), in whole-frame coordinates
        time.sleep(2.0)
        cam = client.get("/cameras/kerb").json()
        assert cam["frames_analysed"] >= 20
        if gated:  # a still street: about one frame in refresh_s * fps goes to the model
            assert cam["inferred_fraction"] is not None and cam["inferred_fraction"] <= 0.5, cam
            metrics = client.get("/metrics").text
            coasted = [ln for ln in metrics.splitlines() if ln.startswith('gridworker_camera_frames_coasted_total{camera="kerb"}')]
            assert coasted and float(coasted[0].split()[-1]) > 0
        else:
            assert cam["inferred_fraction"] == 1.0
            assert cam["frames_inferred"] >= 20
    service.store.close()
