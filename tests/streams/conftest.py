"""Fixtures for the stream tests: a camera factory that always stops its cameras and
fails the test if an exception escaped a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gridworker.streams import CameraStream, StreamConfig

# Short timeouts so failure paths take seconds, not the production defaults.
FAST: dict[str, Any] = {
    "open_timeout_s": 3.0,
    "read_timeout_s": 2.0,
    "stall_after_s": 0.5,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "backoff_jitter": 0.1,
}


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Exceptions that escaped any thread during the test (there must be none)."""
    errors: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    yield errors
    threading.excepthook = previous


@pytest.fixture
def camera(thread_errors: list[threading.ExceptHookArgs]) -> Iterator[Callable[..., CameraStream]]:
    """``camera(camera_id, url, **config) -> CameraStream`` (started, with FAST timeouts)."""
    cams: list[CameraStream] = []

    def make(camera_id: str, url: str, **overrides: Any) -> CameraStream:
        cam = CameraStream(camera_id, StreamConfig(url=url, **{**FAST, **overrides}))
        cams.append(cam)
        cam.start()
        return cam

    yield make
    stuck = [cam.camera_id for cam in cams if not cam.stop(timeout=5)]
    assert not stuck, f"workers did not stop: {stuck}"
    assert not thread_errors, f"exception escaped a worker: {thread_errors[0].exc_value!r}"
