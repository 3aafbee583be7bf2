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
    def publish() -> None:  # what a reader does: publish, then wake the batcher
        late.seq = 1
        batcher.wake()

    threading.Timer(0.05, publish).start()
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


def test_an_idle_gatherer_sleeps_instead_of_polling():
    """No camera has a frame: the gatherer asks its sources once, then sleeps on the condition
    until the idle timeout (the old batcher asked every 3 ms: ~100 times in 0.3 s)."""
    silent = _Source("a", seq=0)
    calls = []
    latest = silent.latest
    silent.latest = lambda after_seq=-1: calls.append(after_seq) or latest(after_seq)
    batcher = Batcher(lambda: [silent], max_batch=4)
    t0 = time.monotonic()
    assert batcher.next_batch(threading.Event(), idle_timeout_s=0.3) == []
    assert time.monotonic() - t0 >= 0.29
    assert len(calls) <= 2, len(calls)


def test_a_published_frame_wakes_the_gatherer_at_once():
    src = _Source("a", seq=0)
    batcher = Batcher(lambda: [src], max_batch=4)

    def publish() -> None:
        src.seq = 1
        batcher.wake()

    threading.Timer(0.1, publish).start()
    t0 = time.monotonic()
    batch = batcher.next_batch(threading.Event(), idle_timeout_s=3.0)
    assert [f.seq for f in batch] == [1]
    assert time.monotonic() - t0 < 0.4


def test_wait_room_blocks_until_a_batch_takes_submitted_frames():
    batcher = Batcher(lambda: [], max_batch=2)
    stop = threading.Event()
    for i in range(3):
        batcher.submit(Frame(f"p{i}", 1, time.time(), np.zeros((2, 2, 3), np.uint8)))
    assert not batcher.wait_room(3, stop, timeout=0.1)  # 3 wait, the limit is 3: no room
    threading.Timer(0.1, lambda: batcher.next_work(stop, idle_timeout_s=0.05)).start()
    t0 = time.monotonic()
    assert batcher.wait_room(3, stop, timeout=3.0)  # the batch took 2: room
    assert time.monotonic() - t0 < 1.0 and batcher.pending() == 1
    # a stop (with its wake-up) ends the wait
    for i in range(3):
        batcher.submit(Frame(f"q{i}", 1, time.time(), np.zeros((2, 2, 3), np.uint8)))

    def stop_now() -> None:
        stop.set()
        batcher.wake()

    threading.Timer(0.1, stop_now).start()
    t0 = time.monotonic()
    assert not batcher.wait_room(3, stop)
    assert time.monotonic() - t0 < 0.4
