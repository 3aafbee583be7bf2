"""The batcher's second, lower-priority source: submitted frames fill what the live cameras leave."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gridworker.streams.frame import Frame
from gridworker.vision.batcher import Batcher

from tests.vision.live_camera import LiveCamera, live_cameras


def _frame(cam: str, seq: int = 1) -> Frame:
    return Frame(cam, seq, time.time(), np.zeros((2, 2, 3), np.uint8))


STOP = threading.Event()


def test_live_frames_come_first_and_patrol_takes_the_free_slots():
    batcher = Batcher(max_batch=8, submit_max_per_batch=4)
    live_cameras(batcher, 3, prefix="live")
    futures = [batcher.submit(_frame(f"p{i}")) for i in range(10)]
    assert batcher.pending() == 10
    work = batcher.next_work(STOP, idle_timeout_s=0.05)
    assert {f.camera_id for f in work.live} == {"live0", "live1", "live2"}
    # live cameras connected: patrol capped at 4 slots even though 5 are free
    assert [f.camera_id for f, _ in work.submitted] == ["p0", "p1", "p2", "p3"]
    assert work.frames[:3] == work.live and len(work.frames) == 7
    live_out = work.resolve([f"d-{f.camera_id}" for f in work.frames])
    assert [d for _, d in live_out] == [f"d-{f.camera_id}" for f in work.live]
    assert [fut.result(timeout=0) for fut in futures[:4]] == ["d-p0", "d-p1", "d-p2", "d-p3"]
    assert not futures[4].done() and batcher.pending() == 6


def test_full_live_batch_leaves_no_room_for_patrol():
    batcher = Batcher(max_batch=8)
    live_cameras(batcher, 8, prefix="live")
    fut = batcher.submit(_frame("p"))
    work = batcher.next_work(STOP, idle_timeout_s=0.05)
    assert len(work.live) == 8 and work.submitted == []
    # next round no live frame is new: the patrol frame goes alone, at once
    t0 = time.monotonic()
    work = batcher.next_work(STOP, idle_timeout_s=2.0)
    assert time.monotonic() - t0 < 0.5
    assert work.live == [] and [f.camera_id for f, _ in work.submitted] == ["p"]
    work.resolve(["x"])
    assert fut.result(timeout=0) == "x"


def test_without_live_cameras_patrol_fills_whole_batches():
    batcher = Batcher(max_batch=8, submit_max_per_batch=2)
    for i in range(12):
        batcher.submit(_frame(f"p{i}"))
    sizes = [len(batcher.next_work(STOP, idle_timeout_s=0.05)) for _ in range(3)]
    assert sizes == [8, 4, 0]


def test_a_submitted_frame_wakes_an_idle_gatherer():
    batcher = Batcher(max_batch=4)
    threading.Timer(0.1, lambda: batcher.submit(_frame("late"))).start()
    t0 = time.monotonic()
    work = batcher.next_work(STOP, idle_timeout_s=3.0)
    took = time.monotonic() - t0
    assert [f.camera_id for f, _ in work.submitted] == ["late"]
    assert took < 0.45  # woken by the submit at once


def test_cancelled_frames_never_reach_the_detector_and_failures_propagate():
    batcher = Batcher(max_batch=4)
    gone = batcher.submit(_frame("gone"))
    kept = batcher.submit(_frame("kept"))
    assert gone.cancel()
    work = batcher.next_work(STOP, idle_timeout_s=0.05)
    assert [f.camera_id for f, _ in work.submitted] == ["kept"]
    work.fail(RuntimeError("model exploded"))
    with pytest.raises(RuntimeError, match="exploded"):
        kept.result(timeout=0)
    # a result count that does not match fails the futures instead of mis-assigning them
    f1, f2 = batcher.submit(_frame("a")), batcher.submit(_frame("b"))
    work = batcher.next_work(STOP, idle_timeout_s=0.05)
    with pytest.raises(RuntimeError, match="2 frames"):
        work.resolve(["only-one"])
    assert isinstance(f1.exception(timeout=0), RuntimeError) and isinstance(f2.exception(timeout=0), RuntimeError)
    # shutdown: waiting frames fail with the given error
    f3 = batcher.submit(_frame("c"))
    assert batcher.cancel_pending(RuntimeError("service stopped")) == 1
    with pytest.raises(RuntimeError, match="stopped"):
        f3.result(timeout=0)


def test_live_rate_is_kept_under_a_flood_of_patrol_frames():
    """A live camera publishing every 20 ms keeps getting into batches while the patrol queue
    never empties: every batch carries the newest live frame first, patrol at most 2 slots."""
    batcher = Batcher(max_batch=8, submit_max_per_batch=2)
    live = LiveCamera(batcher, "live")
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            live.publish()
            time.sleep(0.02)

    for i in range(2000):
        batcher.submit(_frame(f"p{i}"))
    t = threading.Thread(target=publish, daemon=True)
    t.start()
    taken: list[int] = []
    patrol_per_batch: list[int] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        work = batcher.next_work(stop, idle_timeout_s=0.1)
        taken.extend(f.seq for f in work.live)
        patrol_per_batch.append(len(work.submitted))
        time.sleep(0.01)  # the "detector"
        work.resolve([None] * len(work))
    stop.set()
    t.join()
    assert max(patrol_per_batch) == 2
    published = live.seq
    assert len(taken) >= 0.8 * published, (len(taken), published)
    assert taken == sorted(set(taken))
