"""Motion gating: the model runs where something moved in a rule zone, and at every refresh."""

from __future__ import annotations

import threading

import av
import numpy as np

from gridworker.streams.frame import DecodedFrame
from gridworker.vision.batcher import Batcher
from gridworker.vision.motion import MotionConfig, MotionGate

W, H = 320, 180
KERB = [(0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)]  # the lower 40 % of the frame


def _picture(square_at: tuple[int, int] | None = None, noise: int = 0, seed: int = 0) -> av.VideoFrame:
    """A grey street with sensor noise and, optionally, a dark 30x30 'car' at (x, y)."""
    rng = np.random.default_rng(seed)
    image = np.full((H, W, 3), 120, np.int16)
    if noise:
        image += rng.integers(-noise, noise + 1, size=(H, W, 1), dtype=np.int16)
    if square_at is not None:
        x, y = square_at
        image[y : y + 30, x : x + 30] = 20
    return av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")


def test_still_frames_coast_until_the_refresh():
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=2.0), [KERB])
    decisions = [gate.should_infer(_picture((100, 130), noise=6, seed=i), t) for i, t in enumerate([0.0, 0.2, 0.4, 1.0, 1.9, 2.1, 2.5])]
    # the first frame, then nothing until 2 s after it (sensor noise is not motion)
    assert decisions == [True, False, False, False, False, True, False]


def test_motion_inside_a_rule_zone_is_inferred_outside_it_is_not():
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=30.0, margin=0.0), [KERB])
    assert gate.should_infer(_picture(), 0.0)
    assert not gate.should_infer(_picture((40, 20)), 0.2), "a car in the sky (outside every zone) costs nothing"
    assert gate.should_infer(_picture((150, 130)), 0.4), "a car on the kerb is looked at"
    assert not gate.should_infer(_picture((150, 130)), 0.6), "then it stands still"
    assert gate.should_infer(_picture((160, 130)), 0.8), "and moves again"


def test_slow_change_adds_up_against_the_last_inferred_frame():
    """A car creeping 2 px a frame changes little between two frames, but the comparison is with
    the frame the model last saw, so the gate opens once the creep is visible."""
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=30.0, min_changed=0.01), [KERB])
    assert gate.should_infer(_picture((100, 130)), 0.0)
    opened = [t for t in range(1, 20) if gate.should_infer(_picture((100 + 2 * t, 130)), t * 0.1)]
    assert opened and opened[0] <= 10


def test_without_zones_the_whole_frame_is_watched_and_a_new_size_is_looked_at():
    gate = MotionGate(MotionConfig(enabled=True, refresh_s=30.0))
    assert gate.should_infer(_picture(), 0.0)
    assert gate.should_infer(_picture((40, 20)), 0.1)
    bigger = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 120, np.uint8), format="rgb24")
    assert gate.should_infer(bigger, 0.2)


def test_the_batcher_coasts_what_the_gate_keeps_from_the_model():
    batcher = Batcher(max_batch=4)
    batcher.attach("kerb", MotionGate(MotionConfig(enabled=True, refresh_s=30.0), [KERB]))
    batcher.attach("plain")
    stop = threading.Event()
    for seq, ts in [(1, 0.0), (2, 0.5)]:
        batcher.offer(DecodedFrame("kerb", seq, ts, _picture((100, 130))))
        batcher.offer(DecodedFrame("plain", seq, ts, _picture((100, 130))))
        work = batcher.next_work(stop, idle_timeout_s=0.05)
        if seq == 1:
            assert sorted(f.camera_id for f in work.live) == ["kerb", "plain"] and work.coasted == []
        else:  # nothing moved on the kerb: coasted; the camera without a gate is inferred
            assert [f.camera_id for f in work.live] == ["plain"]
            assert [(c.camera_id, c.seq, c.ts) for c in work.coasted] == [("kerb", 2, 0.5)]
