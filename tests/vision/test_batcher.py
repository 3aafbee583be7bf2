import threading
import time

import numpy as np
import pytest

from gridworker.streams.frame import Frame
from gridworker.vision.batcher import Batcher


class _Source:
    """A frame source that has a new frame whenever ``seq`` is bumped."""

    def __init__(self, camera_id: str, seq: int = 0) -> None:
        self.camera_id = camera_id
        self.seq = seq
        self.taken = 0

    def latest(self, after_seq: int = -1):
        if self.seq <= after_seq or self.seq == 0:
            return None
        self.taken += 1
        return Frame(self.camera_id, self.seq, time.time(), np.zeros((2, 2, 3), np.uint8))


@pytest.mark.parametrize(
    ("n_sources", "max_batch", "expected"),
    [(0, 8, 0), (1, 8, 1), (3, 8, 3), (8, 8, 8), (12, 8, 8)],
)
def test_batch_size_is_bounded_and_one_frame_per_camera(n_sources, max_batch, expected):
    sources = [_Source(f"c{i}", seq=1) for i in range(n_sources)]
    batch = Batcher(lambda: sources, max_batch=max_batch).next_batch(threading.Event(), idle_timeout_s=0.05)
    assert len(batch) == expected
    assert len({f.camera_id for f in batch}) == len(batch)


def test_no_frame_is_taken_twice():
    src = _Source("c0", seq=1)
    batcher = Batcher(lambda: [src], max_batch=4)
    assert len(batcher.next_batch(threading.Event(), idle_timeout_s=0.05)) == 1
    assert batcher.next_batch(threading.Event(), idle_timeout_s=0.05) == []
    src.seq = 2
    assert [f.seq for f in batcher.next_batch(threading.Event(), idle_timeout_s=0.05)] == [2]


def test_round_robin_serves_every_camera_when_batches_are_full():
    sources = [_Source(f"c{i}", seq=1) for i in range(5)]
    batcher = Batcher(lambda: sources, max_batch=2)
    for step in range(10):
        for s in sources:
            s.seq += 1
        batcher.next_batch(threading.Event(), idle_timeout_s=0.05)
    assert all(s.taken >= 3 for s in sources), [s.taken for s in sources]


def test_deadline_waits_for_more_frames():
    early, late = _Source("a", seq=1), _Source("b", seq=0)
    batcher = Batcher(lambda: [early, late], max_batch=8, deadline_s=0.3)
    threading.Timer(0.05, lambda: setattr(late, "seq", 1)).start()
    t0 = time.monotonic()
    batch = batcher.next_batch(threading.Event(), idle_timeout_s=1.0)
    assert {f.camera_id for f in batch} == {"a", "b"}
    assert time.monotonic() - t0 < 0.3, "returns as soon as every camera has its frame"


def test_zero_deadline_runs_what_is_ready():
    ready, silent = _Source("a", seq=1), _Source("b", seq=0)
    batcher = Batcher(lambda: [ready, silent], max_batch=8, deadline_s=0.0)
    t0 = time.monotonic()
    assert [f.camera_id for f in batcher.next_batch(threading.Event(), idle_timeout_s=1.0)] == ["a"]
    assert time.monotonic() - t0 < 0.05


def test_stop_event_ends_the_wait():
    stop = threading.Event()
    stop.set()
    assert Batcher(lambda: [_Source("a")], max_batch=2).next_batch(stop, idle_timeout_s=5.0) == []


def test_forget_does_not_wait_for_a_busy_gatherer_and_a_readded_camera_restarts():
    """A gatherer that keeps polling (no camera has frames) re-takes its lock at once; removing a
    camera must not starve behind it (a DELETE /cameras hung for 30 s that way)."""
    idle = _Source("idle")  # never has a frame
    cam = _Source("c0", seq=5)
    sources = [idle, cam]
    batcher = Batcher(lambda: list(sources), max_batch=4)
    stop = threading.Event()
    assert [f.seq for f in batcher.next_batch(stop, idle_timeout_s=0.05)] == [5]
    sources.remove(cam)

    def spin():
        while not stop.is_set():
            batcher.next_work(stop, idle_timeout_s=0.2)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        time.sleep(0.1)
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            batcher.forget("c0")
            worst = max(worst, time.monotonic() - t0)
        assert worst < 0.05
        # the camera comes back under the same id with its sequence restarted: its frames are taken
        sources.append(_Source("c0", seq=1))
        got = []
        end = time.monotonic() + 3
        while not got and time.monotonic() < end:
            time.sleep(0.05)
            got = [s for s in sources if s.camera_id == "c0" and s.taken]
        assert got, "a re-added camera's first frames must not be skipped as already seen"
    finally:
        stop.set()
        t.join(2)
