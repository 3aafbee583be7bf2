import threading
import time

import numpy as np
import pytest

from gridworker.streams.frame import Frame
from gridworker.vision.batcher import Batcher

from tests.vision.live_camera import LiveCamera as _Camera
from tests.vision.live_camera import live_cameras as _cameras


@pytest.mark.parametrize(
    ("n_sources", "max_batch", "expected"),
    [(0, 8, 0), (1, 8, 1), (3, 8, 3), (8, 8, 8), (12, 8, 8)],
)
def test_batch_size_is_bounded_and_one_frame_per_camera(n_sources, max_batch, expected):
    batcher = Batcher(max_batch=max_batch)
    _cameras(batcher, n_sources)
    batch = batcher.next_batch(threading.Event(), idle_timeout_s=0.05)
    assert len(batch) == expected
    assert len({f.camera_id for f in batch}) == len(batch)
    assert all(f.image.shape == (2, 2, 3) and not f.image.flags.writeable for f in batch)


def test_no_frame_is_taken_twice_and_a_replaced_frame_counts_as_dropped():
    batcher = Batcher(max_batch=4)
    (cam,) = _cameras(batcher, 1)
    assert len(batcher.next_batch(threading.Event(), idle_timeout_s=0.05)) == 1
    assert batcher.next_batch(threading.Event(), idle_timeout_s=0.05) == []
    cam.publish()
    cam.publish()  # replaces the one not taken yet
    assert cam.dropped == 1
    assert [f.seq for f in batcher.next_batch(threading.Event(), idle_timeout_s=0.05)] == [3]


def test_oldest_waiting_first_serves_every_camera_when_batches_are_full():
    batcher = Batcher(max_batch=2)
    cams = _cameras(batcher, 5, publish=False)
    taken = {c.camera_id: 0 for c in cams}
    for _ in range(10):
        for c in cams:
            c.publish()
        for f in batcher.next_batch(threading.Event(), idle_timeout_s=0.05):
            taken[f.camera_id] += 1
    assert all(n >= 3 for n in taken.values()), taken


def test_deadline_waits_for_more_frames():
    batcher = Batcher(max_batch=8, deadline_s=0.3)
    early, late = _Camera(batcher, "a"), _Camera(batcher, "b")
    late.publish()
    assert len(batcher.next_batch(threading.Event(), idle_timeout_s=0.05)) == 1  # b is connected now
    early.publish()
    threading.Timer(0.05, late.publish).start()
    t0 = time.monotonic()
    batch = batcher.next_batch(threading.Event(), idle_timeout_s=1.0)
    assert {f.camera_id for f in batch} == {"a", "b"}
    assert time.monotonic() - t0 < 0.3, "returns as soon as every camera has its frame"


def test_zero_deadline_runs_what_is_ready():
    batcher = Batcher(max_batch=8, deadline_s=0.0)
    ready, _silent = _Camera(batcher, "a"), _Camera(batcher, "b")
    ready.publish()
    t0 = time.monotonic()
    assert [f.camera_id for f in batcher.next_batch(threading.Event(), idle_timeout_s=1.0)] == ["a"]
    assert time.monotonic() - t0 < 0.05


def test_stop_event_ends_the_wait():
    stop = threading.Event()
    stop.set()
    batcher = Batcher(max_batch=2)
    _cameras(batcher, 1)
    assert batcher.next_batch(stop, idle_timeout_s=5.0) == []


def test_frames_of_a_forgotten_camera_are_ignored_and_a_readded_camera_restarts():
    """A reader may publish once more while it is detached: that frame must not linger; a
    camera added again under the same id with its sequence restarted has its frames taken."""
    batcher = Batcher(max_batch=4)
    stop = threading.Event()
    (cam,) = _cameras(batcher, 1)
    batcher.forget("c0")
    cam.publish()  # the last frame of a detached reader
    assert batcher.next_batch(stop, idle_timeout_s=0.05) == []
    again = _Camera(batcher, "c0")
    again.publish()
    assert [f.seq for f in batcher.next_batch(stop, idle_timeout_s=0.05)] == [1]


def test_forget_does_not_wait_for_a_busy_gatherer():
    """A gatherer waiting for frames must not hold up removing a camera (a DELETE /cameras hung
    for 30 s once)."""
    batcher = Batcher(max_batch=4)
    _cameras(batcher, 2, publish=False)
    stop = threading.Event()

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
    finally:
        stop.set()
        batcher.wake()
        t.join(2)


def test_an_idle_gatherer_sleeps_instead_of_polling(monkeypatch):
    """No camera has a frame: the gatherer looks once, then sleeps on the condition until the
    idle timeout (the old batcher looked every 3 ms: ~100 times in 0.3 s)."""
    batcher = Batcher(max_batch=4)
    _cameras(batcher, 1, publish=False)
    calls = []
    collect = batcher._collect
    monkeypatch.setattr(batcher, "_collect", lambda *args: calls.append(1) or collect(*args))
    t0 = time.monotonic()
    assert batcher.next_batch(threading.Event(), idle_timeout_s=0.3) == []
    assert time.monotonic() - t0 >= 0.29
    assert len(calls) <= 2, len(calls)


def test_a_published_frame_wakes_the_gatherer_at_once():
    batcher = Batcher(max_batch=4)
    (cam,) = _cameras(batcher, 1, publish=False)
    threading.Timer(0.1, cam.publish).start()
    t0 = time.monotonic()
    batch = batcher.next_batch(threading.Event(), idle_timeout_s=3.0)
    assert [f.seq for f in batch] == [1]
    assert time.monotonic() - t0 < 0.4


def test_wait_room_blocks_until_a_batch_takes_submitted_frames():
    batcher = Batcher(max_batch=2)
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
