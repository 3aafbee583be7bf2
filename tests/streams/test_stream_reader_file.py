"""CameraStream on file sources: real-time pacing, looping, latest-frame semantics."""

from __future__ import annotations

import itertools
import os
import statistics
import time

import numpy as np
import pytest
from tests.streams.stream_helpers import collect, wait_state, wait_until

from gridworker.streams import StreamState
from gridworker.streams.clips import synthetic_clip


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """1.5 s at 10 fps: loops several times within a test."""
    return synthetic_clip(tmp_path_factory.mktemp("short") / "short.mp4", seconds=1.5, size=(160, 120), fps=10, gop=5)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_file_plays_at_real_time_and_loops(short_clip, camera):
    cam = camera("file", short_clip.as_uri(), fps=10)
    first = cam.wait(timeout=5)
    assert first is not None
    t0 = time.monotonic()
    frames = collect(cam, 2.5, after_seq=first.seq)
    elapsed = time.monotonic() - t0

    # 10 fps for 2.5 s, across at least one loop of the 1.5 s clip
    assert 20 <= len(frames) <= 28, len(frames)
    gaps = np.diff([f.ts for f in frames])
    assert statistics.median(gaps) == pytest.approx(0.1, abs=0.02)
    assert gaps.max() < 0.35  # no pause at the loop point
    h = cam.health()
    assert h.frames_decoded > 15 * 1.3  # more than one pass
    assert h.state is StreamState.LIVE and h.reconnects == 0 and h.last_error is None
    assert h.fps == pytest.approx(10, abs=1.5)
    assert elapsed == pytest.approx(2.5, abs=0.3)


def test_file_sampling_rate_below_source_rate(short_clip, camera):
    cam = camera("file5", str(short_clip), fps=5)
    assert cam.wait(timeout=5) is not None
    frames = collect(cam, 2.0)
    assert 8 <= len(frames) <= 12
    assert statistics.median(np.diff([f.ts for f in frames])) == pytest.approx(0.2, abs=0.04)


def test_file_not_realtime_runs_fast_and_stops_without_loop(short_clip, camera):
    fast = camera("fast", str(short_clip), fps=10, realtime=False)
    wait_until(lambda: fast.health().frames_decoded > 150, timeout=5, what="fast decode")

    once = camera("once", str(short_clip), fps=10, realtime=False, loop=False)
    wait_state(once, StreamState.STOPPED, timeout=5)
    h = once.health()
    assert h.frames_decoded == 15 and h.frames_published == 15
    assert h.last_error is None
    # the last frame stays available; waiting for a newer one returns at once
    last = once.latest()
    assert last is not None and last.seq == 15
    t = time.monotonic()
    assert once.wait(after_seq=15, timeout=5) is None
    assert time.monotonic() - t < 0.5


def test_slow_consumer_gets_newest_frame_and_memory_is_bounded(sample_clip, camera):
    cam = camera("slow", str(sample_clip), fps=10, realtime=False)  # publishes as fast as it decodes
    wait_until(lambda: cam.health().frames_published > 50, timeout=5)
    rss_start = _rss_bytes()
    # nobody consumes: thousands of 320x240 frames go through the one-frame slot
    wait_until(lambda: cam.health().frames_published > 1500, timeout=20, what="fast publishing")
    rss_growth = _rss_bytes() - rss_start

    published_before = cam.health().frames_published
    frame = cam.latest()
    assert frame is not None
    assert frame.seq >= published_before  # the newest, not the oldest unconsumed
    assert cam.latest(after_seq=frame.seq) is None or cam.latest(after_seq=frame.seq).seq > frame.seq

    h = cam.health()
    assert h.frames_dropped >= h.frames_published - 10  # almost every frame replaced unconsumed
    assert rss_growth < 40 * 2**20, f"RSS grew {rss_growth / 2**20:.1f} MiB"


def test_slow_consumer_drop_counter_and_image_conversion(short_clip, camera):
    cam = camera("slow-rt", str(short_clip), fps=10)
    seen = []
    assert cam.wait(timeout=5) is not None
    for _ in range(4):
        time.sleep(0.35)  # a consumer slower than the 10 fps stream
        frame = cam.latest(after_seq=seen[-1].seq if seen else -1)
        assert frame is not None
        seen.append(frame)
    h = cam.health()
    assert h.frames_dropped >= 6  # ~2-3 replaced per 0.35 s
    assert all(b.seq - a.seq >= 2 for a, b in itertools.pairwise(seen))
    # consumed frames are RGB, read-only and shared
    img = seen[-1].image
    assert img.shape == (120, 160, 3) and not img.flags.writeable
    again = cam.latest(after_seq=seen[-1].seq - 1)
    assert again is None or again.seq > seen[-1].seq or again.image is img


def test_stop_is_prompt_and_final(short_clip, camera):
    cam = camera("stopper", str(short_clip), fps=10)
    assert cam.wait(timeout=5) is not None
    t = time.monotonic()
    assert cam.stop(timeout=3)
    assert time.monotonic() - t < 1.0
    assert cam.health().state is StreamState.STOPPED
    assert cam.wait(after_seq=10**9, timeout=5) is None  # returns at once when stopped
    with pytest.raises(RuntimeError):
        cam.start()


def test_keyframes_only_decodes_one_frame_per_gop(short_clip, camera):
    """short_clip: 10 fps, a keyframe every 5 frames: keyframe-only decoding publishes ~2 fps
    whatever fps asks, and decodes nothing else."""
    full = camera("full", short_clip.as_uri(), fps=10)
    keys = camera("keys", short_clip.as_uri(), fps=10, keyframes_only=True)
    assert full.wait(timeout=5) is not None and keys.wait(timeout=5) is not None
    time.sleep(3.0)
    h_full, h_keys = full.health(), keys.health()
    assert h_keys.state is StreamState.LIVE
    # over the same 3 s of real-time playback: a fifth of the frames decoded, each of them published
    assert h_keys.frames_decoded <= 0.3 * h_full.frames_decoded, (h_keys.frames_decoded, h_full.frames_decoded)
    assert h_keys.frames_decoded >= 4 and h_keys.frames_published == h_keys.frames_decoded
