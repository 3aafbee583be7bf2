"""A cluster worker runs every model the site names, as `gridworker run` does: a camera that lists
a second model (``detectors:``) is analysed by it on whichever worker holds the camera; and the
worker's /health says when the model's batches fail. Real NATS (the shared one), real models."""

from __future__ import annotations

import time

import pytest

from gridworker.cluster.observations import build_worker_sink
from gridworker.cluster.worker import WorkerProcess
from gridworker.models import DetectorConfig, load_detector
from gridworker.settings import Settings
from tests.cluster.cluster_core_support import FAST
from tests.cluster.cluster_h5_support import SHARED_URL
from tests.forwarding.test_mqtt import _port_open


def test_a_worker_loads_the_sites_other_models_and_reports_failing_batches(tmp_path):
    if not _port_open("127.0.0.1", 4222):
        pytest.skip("no nats-server at 127.0.0.1:4222 (apt-get install nats-server)")
    settings = Settings(
        server={"host": "127.0.0.1", "port": 0},
        database={"url": f"sqlite:///{tmp_path / 'w.db'}"},
        evidence={"clips": False},
        detectors=[{"id": "second", "model": "ssd_mobilenet_v2_coco", "confidence": 0.5}],
        cluster={"nats_url": SHARED_URL, "prefix": f"ztm{time.monotonic_ns() % 10**9}", "worker_id": "wm", **FAST},
    )
    worker = WorkerProcess(settings, load_detector(DetectorConfig()), sink_factory=build_worker_sink)
    worker.start()
    try:
        pipeline = worker._pipeline
        assert pipeline is not None
        assert set(pipeline.models) == {"default", "second"}  # before: the default model only
        health = worker.health()
        assert health["status"] == "ok" and health["detector"]["failing"] is False
        pipeline.detector_failures.failed(3, RuntimeError("ONNX Runtime: bad input"))  # as a failing batch records it
        health = worker.health()
        assert health["status"] == "degraded"
        assert health["detector"]["failing"] is True and health["detector"]["frames_failed"] == 3
        assert health["detector"]["last_error"] == "RuntimeError"  # the type only: /health answers without a key
        assert "bad input" not in str(health)
    finally:
        worker.stop()
