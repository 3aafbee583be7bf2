"""The motion gate watches a band around each counting line, not only the rule zones: a car
crossing a line outside every zone is inferred and counted with gating on (found by review:
10 cars crossed, 0 counted with gating on)."""

from __future__ import annotations

import av
import cv2
import numpy as np
import supervision as sv

from gridworker.cameras import line_band, motion_gate
from gridworker.settings import CameraConfig
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer

W, H, FPS = 640, 360, 5


def _cars(t: float) -> list[list[float]]:
    """A car every 3 s driving down the right lane at 60 px/s, across the line at y = 0.65."""
    out = []
    for j in range(10):
        t0 = j * 3.0
        if t0 <= t <= t0 + 3.5:
            y = 130 + (t - t0) * 60
            out.append([420.0, y, 500.0, y + 50])
    return out


def _camera() -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "cam", "url": "rtsp://127.0.0.1:8554/cam", "fps": FPS, "motion": {"enabled": True},
        "zones": [{"id": "kerb", "polygon": [[0, 0], [1, 0], [1, 0.25], [0, 0.25]], "rules": [{"type": "illegal_parking"}]}],
        "lines": [{"id": "road", "points": [[0.0, 0.65], [1.0, 0.65]], "classes": ["car"]}],
    })


def test_cars_crossing_a_line_outside_every_zone_are_counted_with_gating_on() -> None:
    config = _camera()
    gate = motion_gate(config)
    assert gate is not None
    analyzer = CameraAnalyzer("cam", fps=FPS, scene=config.scene())
    last, inferred, frames = sv.Detections.empty(), 0, int(32 * FPS)
    for k in range(frames):  # the pipeline's coasting: a gated frame is analysed with the last inferred detections
        t = k / FPS
        boxes = _cars(t)
        img = np.full((H, W, 3), 90, np.uint8)
        for x0, y0, x1, y1 in boxes:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), (230, 230, 230), -1)
        dets = sv.Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=np.full(len(boxes), 0.9, np.float32),
                             class_id=np.full(len(boxes), 2), data={"class_name": np.array(["car"] * len(boxes))})
        if gate.should_infer(av.VideoFrame.from_ndarray(img, format="rgb24"), 1000.0 + t):
            last, inferred = dets, inferred + 1
        analyzer.analyze(Frame("cam", k, 1000.0 + t, img), last)
    lines = analyzer._state.lines
    assert lines is not None and dict(lines.counts["road"]) == {("car", "in"): 10}
    assert inferred < frames  # gating still saves model runs: the still stretches between cars coast


def test_line_band_is_clipped_to_the_frame() -> None:
    band = line_band((0.0, 0.95), (1.0, 0.95))
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in band)
    assert band == [(0.0, 1.0), (1.0, 1.0), (1.0, 0.85), (0.0, 0.85)]
