"""A stream whose picture size changes mid-way (a new SPS in-band: 320x240, then 640x480 in
one MPEG-TS) starts a new ring session at the change, so an evidence clip never mixes two sets
of parameters: a clip asked for across the change is the part after it, with its own header."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from gridworker.streams.clips import h264_encoder_name
from gridworker.streams.evidence import write_mp4
from gridworker.streams.health import StreamState
from tests.factories import wait_until


def _segment(path: Path, size: tuple[int, int], frames: int) -> bytes:
    w, h = size
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream(h264_encoder_name(), rate=10)
        assert isinstance(s, VideoStream)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": "10", "bf": "0"}
        for i in range(frames):
            img = np.full((h, w, 3), 90, np.uint8)
            img[:, (i * 7) % w : (i * 7) % w + 8] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def _sizes(path: Path) -> tuple[tuple[int, int], dict[tuple[int, int], int]]:
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        header = (st.codec_context.width, st.codec_context.height)
        got: dict[tuple[int, int], int] = {}
        for f in c.decode(st):
            got[(f.width, f.height)] = got.get((f.width, f.height), 0) + 1
    return header, got


@pytest.mark.parametrize("decode", [True, False], ids=["analysed", "record-only"])
def test_a_clip_across_a_size_change_is_the_part_after_it(tmp_path, camera, decode):
    """Also for a `record_url` reader (decode off), which decodes only the keyframe whose
    parameter sets changed."""
    source = tmp_path / "change.ts"
    source.write_bytes(_segment(tmp_path / "a.ts", (320, 240), 30) + _segment(tmp_path / "b.ts", (640, 480), 30))
    cam = camera("cam", str(source), fps=10, loop=False, realtime=False, clip_buffer_s=60, decode=decode)
    wait_until(lambda: cam.health().state is StreamState.STOPPED, timeout=30)
    ring = cam.packet_ring
    assert ring is not None and ring.params is not None
    assert (ring.params.width, ring.params.height) == (640, 480)
    clip = ring.cut(0.0, time.time() + 1)
    assert clip is not None and len(clip.packets) == 30 and clip.packets[0].keyframe
    header, decoded = _sizes(write_mp4(clip, tmp_path / "clip.mp4"))
    assert header == (640, 480) and decoded == {(640, 480): 30}


def test_a_stream_of_one_size_keeps_its_session(tmp_path, camera):
    source = tmp_path / "one.ts"
    _segment(source, (320, 240), 30)
    cam = camera("cam", str(source), fps=10, loop=False, realtime=False, clip_buffer_s=60)
    wait_until(lambda: cam.health().state is StreamState.STOPPED, timeout=30)
    ring = cam.packet_ring
    assert ring is not None and ring.params is not None and ring.params.extradata  # not the in-band kind
    clip = ring.cut(0.0, time.time() + 1)
    assert clip is not None and len(clip.packets) == 30
    header, decoded = _sizes(write_mp4(clip, tmp_path / "clip.mp4"))
    assert header == (320, 240) and decoded == {(320, 240): 30}

