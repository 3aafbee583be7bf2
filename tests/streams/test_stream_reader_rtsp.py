"""CameraStream against a real RTSP server (Debian's gst-rtsp-server in a child process).

No mocks: hangs are SIGSTOP, deaths are SIGKILL, restarts reuse the port.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from urllib.parse import quote

import numpy as np
import pytest
from tests.streams.stream_helpers import collect, wait_state, wait_until

from gridworker.streams import CameraStream, StreamState
from tests.factories import BackgroundLoop, free_port

LIVE, STALLED, BACKOFF = StreamState.LIVE, StreamState.STALLED, StreamState.BACKOFF


class FrameWatch(BackgroundLoop):
    """Consumes a camera's frames in a background thread and records arrival times."""

    join_s = 2.0

    def __init__(self, cam: CameraStream) -> None:
        self.cam = cam
        self.arrivals: list[float] = []
        super().__init__(f"watch-{cam.camera_id}")

    def loop(self) -> None:
        seq = -1
        while not self._stop.is_set():
            frame = self.cam.wait(seq, timeout=0.2)
            if frame is not None:
                seq = frame.seq
                self.arrivals.append(time.monotonic())

    def frames_between(self, t0: float, t1: float) -> int:
        return sum(t0 <= t <= t1 for t in self.arrivals)

    def longest_gap(self, t0: float, t1: float) -> float:
        times = [t0, *(t for t in self.arrivals if t0 <= t <= t1), t1]
        return max(b - a for a, b in itertools.pairwise(times))


def test_goes_live_and_publishes_at_sampling_fps(rtsp_server, camera):
    cam = camera("a", rtsp_server.url("cam"), fps=5)
    first = cam.wait(timeout=10)
    assert first is not None, cam.health()
    frames = collect(cam, 3.0, after_seq=first.seq)

    assert 11 <= len(frames) <= 19, f"{len(frames)} frames in 3 s at fps=5"
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    gaps = np.diff([f.ts for f in frames])
    assert statistics.median(gaps) == pytest.approx(0.2, abs=0.05)

    f = frames[-1]
    assert f.camera_id == "a" and f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
    # RGB order: the clip's bottom band is pure blue
    r, g, b = f.image[-5:, :].reshape(-1, 3).mean(axis=0)
    assert b > 200 and r < 40 and g < 40

    h = cam.health()
    assert h.state is LIVE and h.last_error is None and h.reconnects == 0
    assert 3.5 <= h.fps <= 6.5
    assert h.frames_decoded >= 1.6 * h.frames_published  # 10 fps source sampled at 5
    assert h.last_frame_ts is not None and time.time() - h.last_frame_ts < 1.0


def _clip_phase(frame) -> int:
    """(wall-clock frame number - frame index within the clip) mod 40, for the session's
    synthetic clip (40 frames at 10 fps; the red square moves 0 -> 272 px over the clip).
    Constant while a stream plays on; it changes if the stream is rewound."""
    red = (frame.image[..., 0] > 200) & (frame.image[..., 1] < 80) & (frame.image[..., 2] < 80)
    cols = np.flatnonzero(red.any(axis=0))
    index = round(cols[0] * 39 / (320 - 48))
    return (round(frame.ts * 10) - index) % 40


def _circular_median_distance(a: list[int], b: list[int], period: int = 40) -> int:
    d = abs(statistics.median_low(a) - statistics.median_low(b)) % period
    return min(d, period - d)


def test_two_clients_share_one_live_position(rtsp_server, camera):
    """A client joining later sees the same position, and does not rewind the first one."""
    a = camera("a", rtsp_server.url("cam2"), fps=10)
    assert a.wait(timeout=10) is not None
    before = [_clip_phase(f) for f in collect(a, 1.0)]
    b = camera("b", rtsp_server.url("cam2"), fps=10)
    assert b.wait(timeout=10) is not None
    after_a = [_clip_phase(f) for f in collect(a, 1.5)]
    b_phase = [_clip_phase(f) for f in collect(b, 0.5)]
    assert len(before) >= 7 and len(after_a) >= 10
    assert _circular_median_distance(before, after_a) <= 2, (before, after_a)
    assert _circular_median_distance(after_a, b_phase) <= 2, (after_a, b_phase)
    assert a.health().reconnects == 0 and a.health().state is LIVE


def test_hung_server_stalls_then_backs_off_and_recovers_without_slowing_others(
    rtsp_server, rtsp_factory, sample_clip, camera
):
    victim = rtsp_factory({"cam": sample_clip})
    hung = camera("hung", victim.url("cam"), fps=5)
    other = camera("other", rtsp_server.url("cam"), fps=5)  # a separate server process
    wait_state(hung, LIVE, timeout=10)
    wait_state(other, LIVE, timeout=10)

    with FrameWatch(other) as watch:
        victim.pause()  # SIGSTOP: sockets stay open, nothing is sent or answered
        t0 = time.monotonic()
        seen: set[StreamState] = set()

        def backed_off() -> bool:
            seen.add(hung.health().state)
            return BACKOFF in seen

        wait_until(backed_off, timeout=12, what="hung camera in backoff")
        t_backoff = time.monotonic()
        assert STALLED in seen, f"never reported stalled before backoff: {seen}"
        h = hung.health()
        assert h.fps == 0 and h.last_error is not None and "StreamTimeout" in h.last_error
        # reconnect attempts against the frozen server time out too; stay down a little
        time.sleep(1.0)
        t1 = time.monotonic()

        # meanwhile the other camera never missed a beat
        assert watch.frames_between(t0, t1) >= 0.5 * 5 * (t1 - t0)
        assert watch.longest_gap(t0, t1) < 1.5
        assert other.health().state is LIVE

        victim.resume()  # SIGCONT
        wait_state(hung, LIVE, timeout=12)
    assert t_backoff - t0 < 6  # read_timeout_s=2 after the last byte, plus slack
    assert hung.health().reconnects >= 1
    assert other.health().reconnects == 0


def test_killed_server_reconnects_when_restarted_on_same_port(rtsp_server, rtsp_factory, sample_clip, camera):
    victim = rtsp_factory({"cam": sample_clip})
    dead = camera("dead", victim.url("cam"), fps=5)
    other = camera("other", rtsp_server.url("cam2"), fps=5)
    wait_state(dead, LIVE, timeout=10)
    wait_state(other, LIVE, timeout=10)
    port = victim.port

    with FrameWatch(other) as watch:
        victim.kill()  # SIGKILL: connection dropped, then refused
        t0 = time.monotonic()
        wait_state(dead, BACKOFF, timeout=5)
        before = dead.health().reconnects
        # refused while down: keeps retrying (backoff 0.2 s .. 1 s)
        wait_until(lambda: dead.health().reconnects >= before + 2, timeout=6, what="retries while down")
        assert "StreamOpenError" in (dead.health().last_error or "")
        time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))  # watch the other camera >= 2 s
        t1 = time.monotonic()
        assert watch.frames_between(t0, t1) >= 0.5 * 5 * (t1 - t0)
        assert watch.longest_gap(t0, t1) < 1.5

        victim.start()  # same port
        assert victim.port == port
        wait_state(dead, LIVE, timeout=10)
    h = dead.health()
    assert h.reconnects > before
    assert dead.wait(timeout=3) is not None
    assert other.health().reconnects == 0


@pytest.mark.parametrize(
    ("make_url", "expected"),
    [
        pytest.param(lambda srv: f"rtsp://127.0.0.1:{free_port()}/cam", "Connection refused", id="closed-port"),
        pytest.param(lambda srv: f"{srv.base_url}/no-such-mount", "404", id="unknown-mount"),
    ],
)
def test_bad_url_backs_off_with_clear_error(rtsp_server, camera, make_url, expected):
    cam = camera("bad", make_url(rtsp_server), fps=5)
    wait_state(cam, BACKOFF, timeout=5)
    h = cam.health()
    assert h.last_error is not None and h.last_error.startswith("StreamOpenError")
    assert expected in h.last_error
    assert "/" in h.last_error  # names the URL
    # keeps retrying, never raises; latest()/wait() just return None
    wait_until(lambda: cam.health().reconnects >= 2, timeout=5, what="retries")
    assert cam.latest() is None and cam.wait(timeout=0.1) is None
    assert cam.health().frames_decoded == 0


def test_missing_file_backs_off(tmp_path, camera):
    cam = camera("nofile", str(tmp_path / "absent.mp4"))
    wait_state(cam, BACKOFF, timeout=3)
    assert "StreamOpenError" in (cam.health().last_error or "")


def test_password_never_logged_nor_in_health(rtsp_factory, sample_clip, camera, caplog):
    password = "s3cr#t-Pa55"
    wrong = "wr0ng-Pa55word"
    server = rtsp_factory({"cam": sample_clip}, user="operator", password=password)
    good_url = server.url("cam")
    assert quote(password, safe="") in good_url
    bad_url = f"rtsp://operator:{quote(wrong, safe='')}@127.0.0.1:{server.port}/cam"
    anon_url = server.url("cam", credentials=False)

    with caplog.at_level(logging.DEBUG):
        good = camera("good", good_url, fps=5)
        bad = camera("bad", bad_url, fps=5)
        anon = camera("anon", anon_url, fps=5)
        assert good.wait(timeout=10) is not None, good.health()
        wait_state(bad, BACKOFF, timeout=5)
        wait_state(anon, BACKOFF, timeout=5)
        wait_until(lambda: bad.health().reconnects >= 1, timeout=5)

    assert "401" in (bad.health().last_error or "")
    assert "401" in (anon.health().last_error or "")
    secrets = {password, quote(password, safe=""), wrong, quote(wrong, safe="")}
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    for cam in (good, bad, anon):
        texts += [repr(cam), repr(cam.config), str(cam.health()), str(cam.health().as_dict())]
    leaks = [t for t in texts for s in secrets if s in t]
    assert not leaks, leaks[:3]
    # the URL itself was logged, redacted
    assert any("rtsp://***@127.0.0.1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["campus_pedestrians.mp4"])
def test_real_clip_over_rtsp(shared_media, rtsp_factory, camera, name):
    clip = shared_media / name
    if not clip.is_file():
        pytest.skip(f"{clip} absent")
    server = rtsp_factory({"real": clip})
    cam = camera("real", server.url("real"), fps=5)
    frame = cam.wait(timeout=10)
    assert frame is not None, cam.health()
    assert frame.image.shape == (576, 768, 3)
    assert frame.image.std() > 10  # a real scene, not a grey frame


def test_stop_on_hung_camera_reports_a_worker_that_will_not_exit(rtsp_factory, sample_clip, camera, caplog):
    server = rtsp_factory({"cam": sample_clip})
    cam = camera("frozen", server.url("cam"), fps=5)
    wait_state(cam, LIVE, timeout=10)
    server.pause()
    wait_state(cam, STALLED, timeout=5)  # no frame for 0.5 s: blocked in a read
    with caplog.at_level(logging.WARNING, logger="gridworker.streams.reader"):
        # the worker sits in a blocking read until its 2 s read timeout
        assert cam.stop(timeout=0.1) is False
    assert any("did not exit" in r.getMessage() for r in caplog.records)
    t = time.monotonic()
    assert cam.stop(timeout=5) is True
    assert time.monotonic() - t < 3.5
    assert cam.health().state is StreamState.STOPPED
