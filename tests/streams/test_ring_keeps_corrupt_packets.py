"""The evidence ring holds every demuxed video packet as the camera sent it, one that does
not decode included: a damaged keyframe left out made the P-frames after it join the GOP
before, and a clip of that moment lost its keyframe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from gridworker.streams import CameraStream, StreamState
from tests.streams.stream_helpers import wait_state

_GOP = 10
_DAMAGED = b"\x00\x00\x00\x01\x65" + b"\xff" * 200  # an IDR slice of nothing but 0xff: the decoder refuses it


def _video_packets(path: Path) -> list[av.Packet[av.VideoStream]]:
    with av.open(str(path)) as src:
        return [p for p in src.demux(src.streams.video[0]) if p.size]


@pytest.fixture(scope="module")
def damaged_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of H.264 in MPEG-TS, a keyframe a second, the second keyframe damaged."""
    folder = tmp_path_factory.mktemp("damaged-keyframe")
    clean, damaged = folder / "clean.ts", folder / "damaged.ts"
    with av.open(str(clean), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"g": str(_GOP), "bf": "0"}
        for i in range(4 * _GOP):
            picture = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    with av.open(str(clean)) as src, av.open(str(damaged), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(_video_packets(clean)):
            sent = packet if i != _GOP else av.Packet(_DAMAGED)
            sent.pts, sent.dts, sent.time_base, sent.is_keyframe = packet.pts, packet.dts, packet.time_base, packet.is_keyframe
            sent.stream = stream
            out.mux(sent)
    return damaged


def test_damaged_keyframe_stays_in_the_ring(camera: Callable[..., CameraStream], damaged_ts: Path) -> None:
    sent = _video_packets(damaged_ts)
    assert sent[_GOP].is_keyframe and bytes(sent[_GOP]).endswith(_DAMAGED)  # the muxer put an AUD before it
    with pytest.raises(av.error.InvalidDataError):  # the premise: it does not decode
        codec = av.CodecContext.create("h264", "r")
        codec.decode(sent[0])
        codec.decode(sent[_GOP])

    cam = camera("damaged", str(damaged_ts), clip_buffer_s=60.0, loop=False, realtime=False)
    wait_state(cam, StreamState.STOPPED, timeout=10)  # the whole file read
    ring = cam.packet_ring
    assert ring is not None
    clip = ring.cut(0.0, 2e9)
    assert clip is not None
    assert [p.data for p in clip.packets] == [bytes(p) for p in sent]
    assert [i for i, p in enumerate(clip.packets) if p.keyframe] == [0, _GOP, 2 * _GOP, 3 * _GOP]
    assert cam.health().frames_decoded < len(sent)  # the damaged GOP's pictures did not decode
