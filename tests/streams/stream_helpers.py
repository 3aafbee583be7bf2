"""Small polling helpers for the stream tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from gridworker.streams import CameraStream, Frame, StreamState

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        time.sleep(interval)


def wait_state(cam: CameraStream, *states: StreamState, timeout: float) -> float:
    """Wait until the camera is in one of ``states``; returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: cam.health().state in states, timeout, what=f"{cam.camera_id} in {states}: {cam.health()}")
    return time.monotonic() - t0


def collect(cam: CameraStream, seconds: float, after_seq: int = -1) -> list[Frame]:
    """Consume every frame the camera publishes for ``seconds`` (a fast consumer)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        frame = cam.wait(after_seq, timeout=left)
        if frame is not None:
            frames.append(frame)
            after_seq = frame.seq
    return frames
