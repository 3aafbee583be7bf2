"""A camera with ``detect_tiles`` is detected tile by tile inside the live service, and a
camera without it is not: frames from a real RTSP server, sizes seen by the detector."""

import pytest

from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, wait_until

pytestmark = [pytest.mark.rtsp]


class _SizeRecorder(ParkedCarDetector):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def detect(self, images):
        self.sizes.extend((img.shape[1], img.shape[0]) for img in images)
        return super().detect(images)


def test_tiled_camera_is_detected_on_tiles(tmp_path, sample_clip, rtsp_factory):
    server = rtsp_factory({"a": sample_clip, "b": sample_clip})
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 't.db'}"},
        cameras=[
            {"id": "tiled", "url": server.url("a"), "fps": 5, "detect_tiles": {"rows": 2, "cols": 2, "overlap": 0.2}},
            {"id": "plain", "url": server.url("b"), "fps": 5},
        ],
    )
    detector = _SizeRecorder()
    service = Service(settings, detector)
    service.start()
    try:
        wait_until(lambda: all(v.frames_analysed >= 3 for v in service.cameras()), timeout=60)
    finally:
        service.stop()
    whole = detector.sizes.count((320, 240))
    tiles = [s for s in detector.sizes if s != (320, 240)]
    # every analysed frame of both cameras ran whole (the tiled one keeps its full-frame pass) …
    assert whole >= 6
    # … and the tiled camera's frames also ran as 4 overlapping tiles bigger than a quarter
    assert len(tiles) >= 12 and all(160 < w < 320 and 120 < h < 240 for w, h in tiles)
