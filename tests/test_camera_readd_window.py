"""A camera deleted and added again at once under the same id (how a URL is changed: DELETE
then POST) keeps the new camera's incidents and pushed signal states, even while the old
camera's reader is still stopping (up to seconds): the old camera's incidents close and its
signals are forgotten as soon as its slot is retired, before its reader stops."""

from __future__ import annotations

import threading
import time

import numpy as np

from gridworker.service import Service
from gridworker.settings import CameraConfig, Settings
from gridworker.streams.config import StreamConfig
from gridworker.streams.frame import Frame
from gridworker.streams.reader import CameraStream
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import ZoneConfig
from tests.factories import ParkedCarDetector, free_port, make_detections

ZONE = {"id": "gate", "polygon": [(0, 0), (1, 0), (1, 1), (0, 1)], "rules": [{"type": "intrusion", "classes": ["person"]}]}


class _SlowStop(CameraStream):
    """A reader whose first stop takes as long as the test holds it (a reader stuck in a read)."""

    def __init__(self, camera_id: str, config: StreamConfig, stopping: threading.Event, release: threading.Event) -> None:
        super().__init__(camera_id, config)
        self._stopping, self._release = stopping, release

    def stop(self, timeout: float | None = None) -> bool:
        self._stopping.set()
        self._release.wait(10.0)
        return super().stop(timeout=timeout)


def test_a_camera_added_again_while_the_old_reader_stops_keeps_its_incidents_and_signals(tmp_path):
    stopping, release = threading.Event(), threading.Event()
    made: list[CameraStream] = []

    def reader(camera_id: str, config: StreamConfig) -> CameraStream:
        stream = _SlowStop(camera_id, config, stopping, release) if not made else CameraStream(camera_id, config)
        made.append(stream)
        return stream

    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'readd.db'}"}, evidence={"clips": False})
    service = Service(settings, ParkedCarDetector(), reader=reader)
    service.start()
    camera = CameraConfig(id="cam", url=f"rtsp://127.0.0.1:{free_port()}/s1", zones=[ZONE])  # nothing answers: no frames
    removing: threading.Thread | None = None
    try:
        service.add_camera(camera)
        removing = threading.Thread(target=service.remove_camera, args=("cam",))
        removing.start()
        assert stopping.wait(10.0), "the old camera's reader is stopping"
        service.add_camera(camera)  # the same id again, the URL "changed"
        # the new camera gets an incident and a pushed signal state while the old reader stops
        analyzer = CameraAnalyzer("cam", fps=2, scene=[ZoneConfig.model_validate(ZONE)], track=False)
        person = make_detections([[40, 40, 60, 90]], class_name=["person"], tracker_id=[1])
        now = time.time()
        service.incidents.observe(analyzer.analyze(Frame("cam", 0, now, np.full((100, 100, 3), 80, np.uint8)), person))
        service.signals.push("cam", "light", "red", now)
        assert service.incidents.open_types("cam") == ["intrusion"]
        release.set()
        removing.join(15.0)
        assert not removing.is_alive()
        assert service.incidents.open_types("cam") == ["intrusion"], "the new camera's incident stays open"
        assert service.signals.get("cam", "light", time.time(), 60.0) == "red", "the new camera's signal state stays"
        assert "cam" in {v.config.id for v in service.cameras()}
    finally:
        release.set()
        if removing is not None:
            removing.join(15.0)
        service.stop()
        service.store.close()
