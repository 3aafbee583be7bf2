"""Gathers the newest frame of every live camera into one inference batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from gridworker.streams.frame import Frame


class FrameSource(Protocol):
    @property
    def camera_id(self) -> str: ...

    def latest(self, after_seq: int = -1) -> Frame | None: ...


class Batcher:
    """Collects up to ``max_batch`` new frames, waiting at most ``deadline_s`` after the first.

    Cameras are visited round-robin from a rotating start so that, when more cameras have
    a frame than fit in a batch, none is starved. Each camera contributes at most one frame
    per batch: its latest (older, unconsumed frames were already replaced in the reader).

    Example:
        >>> batcher = Batcher(lambda: [], max_batch=8, deadline_s=0.03)
        >>> batcher.next_batch(threading.Event(), idle_timeout_s=0.01)
        []
    """

    def __init__(
        self,
        sources: Callable[[], Sequence[FrameSource]],
        max_batch: int = 8,
        deadline_s: float = 0.0,
        poll_s: float = 0.003,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._sources = sources
        self.max_batch = max_batch
        self.deadline_s = deadline_s
        self._poll_s = poll_s
        self._last_seq: dict[str, int] = {}
        self._start = 0
        # several inference workers may ask for batches at once; one gathers at a time
        self._lock = threading.Lock()

    def forget(self, camera_id: str) -> None:
        with self._lock:
            self._last_seq.pop(camera_id, None)

    def _collect(self, batch: list[Frame], taken: set[str]) -> int:
        """Add new frames to ``batch``; returns how many sources there are."""
        sources = list(self._sources())
        n = len(sources)
        if n == 0:
            return 0
        self._start = (self._start + 1) % n
        for k in range(n):
            if len(batch) >= self.max_batch:
                return n
            src = sources[(self._start + k) % n]
            cam = src.camera_id
            if cam in taken:
                continue
            frame = src.latest(self._last_seq.get(cam, -1))
            if frame is not None:
                self._last_seq[cam] = frame.seq
                batch.append(frame)
                taken.add(cam)
        return n

    def next_batch(self, stop: threading.Event, idle_timeout_s: float = 0.5) -> list[Frame]:
        """Block until a batch is ready, ``stop`` is set, or ``idle_timeout_s`` passes with no frame.

        Safe to call from several threads: each frame goes to exactly one batch.
        """
        with self._lock:
            return self._next_batch(stop, idle_timeout_s)

    def _next_batch(self, stop: threading.Event, idle_timeout_s: float) -> list[Frame]:
        batch: list[Frame] = []
        taken: set[str] = set()
        t0 = time.monotonic()
        first_at: float | None = None
        while not stop.is_set():
            n_sources = self._collect(batch, taken)
            now = time.monotonic()
            if batch and first_at is None:
                first_at = now
            # full, or every camera already has its frame in: waiting longer gains nothing
            if len(batch) >= self.max_batch or (batch and len(batch) >= n_sources):
                break
            if first_at is not None and now - first_at >= self.deadline_s:
                break
            if first_at is None and now - t0 >= idle_timeout_s:
                break
            time.sleep(self._poll_s)
        return batch
