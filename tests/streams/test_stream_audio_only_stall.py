"""A source whose video stops while its audio goes on: an MPEG-TS of 2 s of video and 16 s
of audio, fed through a FIFO (its first 6 s at once, the rest at its own pace).

Demuxing the video stream alone, PyAV read the audio packets and dropped them inside one
``next()``, restarting its read timeout at each: the reader never got back to its stall
check or its stop event, and a glance never to its keyframe deadline, until the audio ended.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from gridworker.streams import CameraStream, StreamState
from gridworker.streams.glance import glance
from tests.factories import BackgroundLoop

from tests.streams.stream_helpers import wait_state, wait_until

VIDEO_S = 2  # 10 fps, a keyframe every second
AUDIO_S = 16
BURST_S = 6  # written at once (the open probes up to 5 s of it), the rest over AUDIO_S - BURST_S seconds
_CHUNK = 2048


def _muxed(path: Path) -> bytes:
    """MPEG-TS bytes: video for the first VIDEO_S seconds, audio for AUDIO_S seconds."""
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"g": "10", "bf": "0"}
        audio = out.add_stream("mp2", rate=48000)
        audio.layout = "mono"
        for i in range(AUDIO_S * 10):  # 0.1 s steps
            if i < VIDEO_S * 10:
                picture = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 10, np.uint8), format="rgb24")
                picture.pts = i
                out.mux(video.encode(picture))
            elif i == VIDEO_S * 10:
                out.mux(video.encode(None))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), format="s16", layout="mono")
            sound.sample_rate, sound.pts = 48000, i * 4800
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return path.read_bytes()


@pytest.fixture(scope="module")
def ts_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _muxed(tmp_path_factory.mktemp("audio-outlives-video") / "av.ts")


class _PacedFeed(BackgroundLoop):
    """Writes ``data`` into the FIFO ``path``, its first BURST_S seconds at once and the rest
    spread evenly over AUDIO_S - BURST_S seconds, to whichever reader has it open; a reader
    that closes and reopens gets the rest from where it left."""

    def __init__(self, path: Path, data: bytes) -> None:
        os.mkfifo(path)
        self.path, self.data = path, data
        super().__init__(f"feed-{path.name}")

    def _reader(self) -> int | None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: nobody reads yet
                    raise
                self._stop.wait(0.005)
                continue
            os.set_blocking(fd, True)
            return fd
        return None

    def loop(self) -> None:
        burst = len(self.data) * BURST_S // AUDIO_S
        pause = (AUDIO_S - BURST_S) * _CHUNK / (len(self.data) - burst)
        offset = 0
        fd = self._reader()
        while fd is not None and offset < len(self.data):
            try:
                os.write(fd, self.data[offset : offset + _CHUNK])
            except BrokenPipeError:  # the reader closed: wait for the next one
                os.close(fd)
                fd = self._reader()
                continue
            offset += _CHUNK
            if self._stop.wait(pause if offset >= burst else 0):
                break
        if fd is not None:
            os.close(fd)


@pytest.fixture
def feed(tmp_path: Path, ts_bytes: bytes) -> Iterator[Path]:
    with _PacedFeed(tmp_path / "cam.fifo", ts_bytes) as fifo:
        yield fifo.path


def test_reader_reports_the_stall_and_reconnects(camera: Callable[..., CameraStream], feed: Path) -> None:
    cam = camera("av", str(feed), read_timeout_s=1.0, stall_after_s=0.5, loop=False, realtime=False)
    wait_state(cam, StreamState.LIVE, timeout=5)
    wait_until(
        lambda: cam.health().reconnects >= 1 and cam.health().last_error_kind == "timeout",
        timeout=5,  # 0.5 s to stall, then 1 s more; the audio goes on for 10 s
        what=f"a stall timeout and a reconnect while the audio goes on: {cam.health()}",
    )
    assert "no decodable frame" in (cam.health().last_error or "")
    assert 0 < cam.health().frames_decoded <= VIDEO_S * 10
    assert cam.stop(timeout=6), "the worker exits while the feed still runs"


def test_stop_returns_while_only_audio_comes(camera: Callable[..., CameraStream], feed: Path) -> None:
    # a long read timeout: only the stop event can end this session before the audio does
    cam = camera("av", str(feed), read_timeout_s=30.0, stall_after_s=0.5, loop=False, realtime=False)
    wait_state(cam, StreamState.LIVE, timeout=5)
    wait_state(cam, StreamState.STALLED, timeout=3)
    t0 = time.monotonic()
    assert cam.stop(timeout=2.0), "stop() came back while the audio went on"
    assert time.monotonic() - t0 < 1.0


def test_glance_gives_up_at_its_keyframe_timeout(feed: Path) -> None:
    t0 = time.monotonic()
    result = glance("av", str(feed), keyframes=VIDEO_S + 2, open_timeout_s=5, keyframe_timeout_s=2, read_timeout_s=1)
    took = time.monotonic() - t0
    assert result.error_kind == "keyframe_timeout", result.reason
    assert result.connect_s is not None
    assert took < result.connect_s + 2 + 1.0, f"{took:.1f} s: the keyframe deadline held while audio came"
    assert result.packets_decoded <= VIDEO_S  # keyframes only: no audio packet reached a decoder
