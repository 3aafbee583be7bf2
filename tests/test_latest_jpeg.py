"""The wall's picture of a camera is rendered once per analysed frame, not once per request."""

import pytest

from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, wait_until

pytestmark = [pytest.mark.rtsp]


def test_latest_jpeg_is_rendered_once_per_frame(tmp_path, sample_clip, rtsp_factory):
    server = rtsp_factory({"a": sample_clip})
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'j.db'}"}, cameras=[{"id": "a", "url": server.url("a"), "fps": 5}])
    service = Service(settings, ParkedCarDetector())
    service.start()
    try:
        wait_until(lambda: service.camera("a").frames_analysed >= 3, timeout=60)
        first = wait_until(lambda: service.latest_jpeg("a"), timeout=10)
        assert first[:2] == b"\xff\xd8"
        # a newer frame gives a new picture
        seen = service.camera("a").frames_analysed
        wait_until(lambda: service.camera("a").frames_analysed > seen, timeout=10)
        assert service.latest_jpeg("a") is not first
    finally:
        service.stop()
    # no new frames after stop: repeated requests get the very same bytes, rendered once
    a, b = service.latest_jpeg("a"), service.latest_jpeg("a")
    assert a is b
