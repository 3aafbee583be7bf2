"""A hung or dead camera never slows the others: two real RTSP servers, one service."""

import time

import pytest

from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, wait_until

pytestmark = pytest.mark.rtsp




def _state(service, cam):
    return service.camera(cam).health.state.value


def _analysed(service, cam):
    return service.camera(cam).frames_analysed


@pytest.fixture
def two_camera_service(tmp_path, rtsp_factory, sample_clip):
    a = rtsp_factory({"a": sample_clip})
    b = rtsp_factory({"b": sample_clip})
    fast = {"read_timeout_s": 2.0, "stall_after_s": 1.5, "backoff_initial_s": 0.3, "backoff_max_s": 2.0}
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'faults.db'}"},
        cameras=[
            {"id": "a", "url": a.url("a"), "fps": 5, "stream": fast},
            {"id": "b", "url": b.url("b"), "fps": 5, "stream": fast},
        ],
    )
    service = Service(settings, ParkedCarDetector())
    service.start()
    try:
        wait_until(lambda: _state(service, "a") == "live" and _state(service, "b") == "live")
        yield service, a
    finally:
        service.stop()


def _b_keeps_delivering(service, seconds):
    start = _analysed(service, "b")
    time.sleep(seconds)
    gained = _analysed(service, "b") - start
    assert gained >= 5 * seconds * 0.6, f"camera b analysed only {gained} frames in {seconds} s while a was down"


def test_hung_camera_goes_stalled_then_recovers(two_camera_service):
    service, server_a = two_camera_service
    server_a.pause()  # SIGSTOP: the socket stays open but nothing arrives
    try:
        wait_until(lambda: _state(service, "a") in ("stalled", "backoff"), timeout=10)
        _b_keeps_delivering(service, 3)
    finally:
        server_a.resume()
    wait_until(lambda: _state(service, "a") == "live", timeout=30)
    before = _analysed(service, "a")
    wait_until(lambda: _analysed(service, "a") > before + 3, timeout=10)


def test_killed_camera_backs_off_and_reconnects(two_camera_service):
    service, server_a = two_camera_service
    reconnects = service.camera("a").health.reconnects
    server_a.kill()
    wait_until(lambda: _state(service, "a") in ("backoff", "connecting"), timeout=10)
    _b_keeps_delivering(service, 3)
    assert service.camera("a").health.last_error
    server_a.restart()
    wait_until(lambda: _state(service, "a") == "live", timeout=30)
    assert service.camera("a").health.reconnects > reconnects
