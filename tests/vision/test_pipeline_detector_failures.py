"""A model that loads but fails on live frames: the failed batches are counted (``/metrics``),
``/health`` says degraded with the reason while they go on, and the log says it once with the
traceback, then one summing-up line a minute, not one traceback per batch.

The model (tests/models/tiny_onnx.py) runs the shapes the warm-up tries (640x640 and a 16:9
frame's 384x640) but not a portrait camera's 640x384: it loads, and every batch of that camera
fails in ONNX Runtime. Real ONNX model, real service, real SQLite, a real (file) camera."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from gridworker.api import create_app
from gridworker.models import DetectorConfig, load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import synthetic_clip
from gridworker.vision.pipeline import DetectorFailures
from tests.factories import local_client, wait_until

LOGGER = "gridworker.vision.pipeline"


def _metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def test_failing_batches_are_counted_logged_once_and_make_health_degraded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnx", reason="the test model is built with the onnx package (the export extra)")
    from tests.models.tiny_onnx import width_640_only

    detector = load_detector(DetectorConfig(model=str(width_640_only(tmp_path / "w640.onnx"))))  # loads: the warm-up shapes run
    media = tmp_path / "media"
    media.mkdir()
    clip = synthetic_clip(media / "portrait.mp4", seconds=6, size=(360, 640), fps=25)  # 360 wide, 640 high
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'f.db'}"}, media_dir=str(media), evidence={"clips": False},
        cameras=[{"id": "tower", "url": str(clip), "fps": 10}],
    )
    caplog.set_level(logging.ERROR, logger=LOGGER)
    service = Service(settings, detector)
    with local_client(create_app(lambda: service)) as client:
        # before: /health stayed "ok" (the camera is live) while every batch failed
        # one answer with both: the 6 s clip loops, and a snapshot taken as it reopens reads 0 live
        health = wait_until(lambda: (h := client.get("/health").json())["status"] == "degraded" and h["cameras_live"] == 1 and h, timeout=30)
        assert health["status"] == "degraded" and health["cameras_live"] == 1, health
        wait_until(lambda: service.detector_health().batches_failed >= 8, timeout=30)
        health = client.get("/health").json()
        assert health["status"] == "degraded", health
        [reason] = health["reasons"]
        assert reason.startswith("detector: ") and "batch(es) failed since start" in reason and "(Fail)" in reason, reason
        assert "Reshape" not in reason and "onnxruntime" not in reason  # the error's message is the log's, not /health's
        text = client.get("/metrics").text
        failed = _metric(text, "gridworker_detector_failed_batches_total")
        assert failed is not None and failed >= 8, text
        assert (_metric(text, "gridworker_detector_failed_frames_total") or 0) >= failed
        assert _metric(text, "gridworker_detector_failing") == 1.0
        assert client.get("/cameras/tower").json()["frames_inferred"] == 0
    records = [r for r in caplog.records if r.name == LOGGER and "detector failed" in r.getMessage()]
    # before: one ERROR with a traceback per batch (1275 in 10 s in the review); now the first only
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is not None and "batch skipped" in records[0].getMessage()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_are_summed_up_once_a_minute_and_health_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    failures = DetectorFailures(log_interval_s=60.0, window_s=60.0, clock=clock)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    error = RuntimeError("Got invalid dimensions for input")
    for _ in range(100):  # 100 batches of 4 in 50 s
        failures.failed(4, error)
        clock.now += 0.5
    assert [r.exc_info is not None for r in caplog.records] == [True]  # the first one, with its traceback
    clock.now = 1060.0
    failures.failed(4, error)  # 60 s after the first line: the summary of the 100 since
    [summary] = caplog.records[1:]
    assert summary.levelno == logging.ERROR and summary.exc_info is None
    assert "detector failed on 100 batch(es) (400 frame(s) skipped) in the last 60 s, 101 since start" in summary.getMessage()
    assert "RuntimeError: Got invalid dimensions for input" in summary.getMessage()
    status = failures.status()
    assert status.failing and status.batches_failed == 101 and status.frames_failed == 404 and status.last_error == "RuntimeError"
    assert status.reason is not None and "101 batch(es) failed since start" in status.reason

    clock.now += 10.0
    failures.failed(2, error)  # within the minute: counted, not said
    failures.succeeded()  # the batches run again, but the last line was 10 s ago: not said yet
    assert len(caplog.records) == 2
    clock.now += 55.0
    failures.succeeded()
    assert "detector failed on 1 more batch(es) (2 frame(s) skipped)" in caplog.records[-1].getMessage()
    assert "runs again" in caplog.records[-1].getMessage()
    assert failures.status().failing  # the last failure was 55 s ago
    clock.now += 5.0
    assert failures.status().failing is False and failures.status().reason is None  # a minute without failures
    failures.succeeded()
    assert len(caplog.records) == 3  # nothing more to say

    clock.now += 120.0
    failures.failed(1, error)  # a new run of failures: its traceback again
    assert caplog.records[-1].exc_info is not None and failures.status().failing
