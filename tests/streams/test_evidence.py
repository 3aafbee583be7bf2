"""PacketRing and remuxed evidence clips, on packets of real H.264 clips (no fakes).

The synthetic clips here have 10 fps and a keyframe every 10 frames (1 s GOP), so "one GOP"
in the assertions is 1 s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import pytest
from tests.streams.stream_helpers import wait_until

from gridworker.streams import StreamState
from gridworker.streams.clips import synthetic_clip
from gridworker.streams.evidence import ClipSource, CodecParams, PacketRing, has_picture, write_mp4

T0 = 1_700_000_000.0  # synthetic wall clock of the first packet
FPS, GOP_S = 10, 1.0


@pytest.fixture(scope="module")
def clip6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s, 320x240, 10 fps, keyframe every second."""
    return synthetic_clip(tmp_path_factory.mktemp("ev") / "six.mp4", seconds=6, size=(320, 240), fps=FPS, gop=10)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another size: different SPS."""
    return synthetic_clip(tmp_path_factory.mktemp("ev") / "small.mp4", seconds=2, size=(160, 120), fps=FPS, gop=10)


def read_packets(path: Path) -> tuple[CodecParams, list[av.Packet]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        params = CodecParams.from_stream(stream)
        packets = [p for p in container.demux(stream) if p.size]
    return params, packets


def fill(ring: PacketRing, packets: list[av.Packet], t0: float = T0, fps: float = FPS) -> list[float]:
    """Append packets with arrival times ``t0 + i / fps``; returns those times."""
    times = []
    for i, p in enumerate(packets):
        ts = t0 + i / fps
        ring.append_packet(p, ts)
        times.append(ts)
    return times


def ring_packets(ring: PacketRing):
    clip = ring.cut(-1e18, 1e18)
    return [] if clip is None else list(clip.packets)


def decode_all(path: Path) -> tuple[list[bytes], list[av.VideoFrame], tuple[str, int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        payloads = [bytes(p) for p in c.demux(s) if p.size]
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        s = c.streams.video[0]
        info = (s.codec_context.name, s.codec_context.width, s.codec_context.height)
    return payloads, frames, info


# ---------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.5, 3.0, 4.2])
def test_ring_keeps_seconds_from_a_keyframe(clip6: Path, seconds: float) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=seconds)
    ring.start_session(params)
    times = fill(ring, packets)
    held = ring_packets(ring)
    newest, horizon = times[-1], times[-1] - seconds
    assert held[-1].ts == newest
    assert held[0].keyframe, "a clip must be able to start at a keyframe"
    assert held[0].ts <= horizon + 1e-9, "the ring reaches back at least `seconds`"
    assert ring.span_s < seconds + GOP_S, "and no more than one GOP further"
    # no later keyframe is at or before the horizon (otherwise the first GOP was not needed)
    assert all(p.ts > horizon for p in held[1:] if p.keyframe)
    assert len(ring) == len(held) and ring.nbytes == sum(len(p.data) for p in held)


def test_ring_byte_cap(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    gop_bytes = sum(len(bytes(p)) for p in packets[:10])
    cap = int(gop_bytes * 2.5)
    ring = PacketRing(seconds=60, max_bytes=cap)
    ring.start_session(params)
    for i, p in enumerate(packets):
        ring.append_packet(p, T0 + i / FPS)
        assert ring.nbytes <= cap
    held = ring_packets(ring)
    assert held[0].keyframe and 10 < len(held) < 30
    assert held[-1].ts == T0 + (len(packets) - 1) / FPS


def test_gop_larger_than_cap_empties_ring_until_next_keyframe(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=60, max_bytes=len(bytes(packets[0])) + 10)  # a keyframe and a bit
    ring.start_session(params)
    for i, p in enumerate(packets[:25]):
        ring.append_packet(p, T0 + i / FPS)
        assert ring.nbytes <= ring.max_bytes
    assert ring.overflows >= 2
    held = ring_packets(ring)
    assert not held or held[0].keyframe


def test_session_starts_at_keyframe_and_reanchors(clip6: Path, small_clip: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    # joining mid-GOP: packets before the first keyframe are useless, dropped
    assert not ring.append_packet(packets[3], T0)
    assert len(ring) == 0
    fill(ring, packets[10:30])
    assert len(ring) == 20
    # a reconnect with the same SPS keeps the buffered seconds; pts restart at 0
    ring.start_session(read_packets(clip6)[0])
    fill(ring, packets[:20], t0=T0 + 5)
    held = ring_packets(ring)
    assert len(held) == 40
    ts = [p.t for p in held]
    assert all(b > a for a, b in zip(ts, ts[1:])), "the media timeline only moves forward"
    # the gap (arrival 2.9 s -> 5.0 s) shows up on the timeline, not a pts jump to 0
    assert held[20].t - held[19].t == pytest.approx(5.0 - 1.9, abs=1e-6)
    # another SPS (another size): one MP4 track cannot hold both, old packets go
    small, small_packets = read_packets(small_clip)
    ring.start_session(small)
    assert len(ring) == 0 and ring.params is small
    fill(ring, small_packets, t0=T0 + 10)
    assert len(ring) == len(small_packets)


def test_packets_without_timestamps_join_the_next(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    key = packets[0]
    # like RTSP's first SPS/PPS packet: no pts/dts of its own
    assert not ring.append(b"\x00\x00\x00\x01prefix", pts=None, dts=None, time_base=key.time_base, keyframe=True, ts=T0)
    assert ring.append_packet(key, T0)
    (held,) = ring_packets(ring)
    assert held.data == b"\x00\x00\x00\x01prefix" + bytes(key) and held.keyframe


def test_a_picture_without_timestamps_is_not_joined_to_the_next(clip6: Path) -> None:
    """FFmpeg's RTSP demuxer hands the first access unit over once without timestamps, then
    again with them: joined, one packet would hold the picture twice (Chromium refuses to
    play such a clip past its first frame). Parameter sets alone are still joined."""
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    key = packets[0]
    assert has_picture(bytes(key), params.codec_name)
    sps_pps = bytes.fromhex("00000001 6764001f 00000001 68ee3cb0")
    assert not has_picture(sps_pps, "h264")
    assert not ring.append(sps_pps, pts=None, dts=None, time_base=key.time_base, keyframe=True, ts=T0)
    assert not ring.append(bytes(key), pts=None, dts=None, time_base=key.time_base, keyframe=True, ts=T0)
    assert ring.append_packet(key, T0)
    (held,) = ring_packets(ring)
    assert held.data == sps_pps + bytes(key), "the parameter sets joined, the untimed picture dropped"


def test_media_clock_jump_falls_back_to_arrival_clock(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    tb = packets[0].time_base
    step = int(1 / (FPS * tb))
    for i in range(5):  # pts go 0..4 frames, then jump an hour ahead
        pts = i * step if i < 3 else i * step + int(3600 / tb)
        ring.append(bytes(packets[i]), pts=pts, dts=pts, time_base=tb, keyframe=packets[i].is_keyframe, ts=T0 + i / FPS)
    t = [p.t - T0 for p in ring_packets(ring)]
    assert t == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-6)


def test_ring_is_safe_with_concurrent_cutters(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    cap = sum(len(bytes(p)) for p in packets[:25])
    ring = PacketRing(seconds=2.0, max_bytes=cap)
    ring.start_session(params)
    errors: list[BaseException] = []
    done = threading.Event()
    cuts = [0]

    def writer() -> None:
        try:
            # at least 40 passes of the clip (the clock keeps going), and on until the cutters
            # have had their turns: the writer alone can finish before a cutter thread runs
            n, deadline = 0, time.monotonic() + 30
            while n < 40 or (cuts[0] <= 10 and time.monotonic() < deadline):
                if n % 7 == 0:
                    ring.start_session(params)
                fill(ring, packets, t0=T0 + n * len(packets) / FPS)
                assert ring.nbytes <= cap
                n += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    def cutter() -> None:
        try:
            while not done.is_set():
                newest = ring.cut(-1e18, 1e18)
                if newest is None:
                    continue
                end = newest.end_ts
                clip = ring.cut(end - 1.5, end)
                if clip is None:
                    continue
                cuts[0] += 1
                assert clip.packets[0].keyframe
                t = [p.t for p in clip.packets]
                assert all(b > a for a, b in zip(t, t[1:]))
                assert clip.nbytes <= cap
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=cutter) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors[0]
    assert cuts[0] > 10


# ---------------------------------------------------------------------------- remux
def test_cut_and_remux_copies_packets_unchanged(clip6: Path, tmp_path: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    fill(ring, packets)
    start, end = T0 + 2.35, T0 + 4.45
    clip = ring.cut(start, end)
    assert clip is not None
    # starts at the newest keyframe at or before the window: the one at 2.0 s
    assert clip.start_ts == pytest.approx(T0 + 2.0) and clip.packets[0].keyframe
    assert clip.end_ts == pytest.approx(T0 + 4.4)
    out = write_mp4(clip, tmp_path / "clips" / "7.mp4")
    assert out.is_file() and not list(out.parent.glob(".*part")), "no temporary file left"

    payloads, frames, (codec, w, h) = decode_all(out)
    source = [bytes(p) for p in packets[20:45]]
    assert payloads == source, "the MP4 carries the source packets byte for byte (no re-encode)"
    assert len(frames) == len(source) and (codec, w, h) == ("h264", 320, 240)
    assert frames[0].key_frame
    assert frames[0].time == pytest.approx(0.0)
    pts = [f.time for f in frames]
    assert pts == pytest.approx([i / FPS for i in range(len(frames))], abs=1e-3)
    # duration: the requested window, plus at most one GOP at the start (and one frame)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        duration = float(stream.duration * stream.time_base)
    assert clip.duration_s == pytest.approx(duration, abs=0.02)
    assert end - start <= duration + 0.11 <= end - start + GOP_S + 0.11
    # faststart: the index (moov) precedes the media data (mdat)
    head = out.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")


def test_remuxed_frames_match_the_source_pixels(clip6: Path, tmp_path: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    fill(ring, packets)
    clip = ring.cut(T0 + 1.0, T0 + 1.9)
    assert clip is not None
    out = write_mp4(clip, tmp_path / "a.mp4")
    with av.open(str(clip6)) as c:
        source = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][10:20]
    _, frames, _ = decode_all(out)
    assert len(frames) == 10
    for a, f in zip(source, frames):
        assert (a == f.to_ndarray(format="rgb24")).all()


def test_cut_edges(clip6: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    assert ring.cut(T0, T0 + 1) is None  # nothing yet
    ring.start_session(params)
    fill(ring, packets[:30])
    assert ring.cut(T0 + 10, T0 + 12) is None  # after the newest packet
    assert ring.cut(T0 - 10, T0 - 5) is None  # before the oldest
    early = ring.cut(T0 - 5, T0 + 0.5)  # the ring does not reach back that far: starts at its oldest
    assert early is not None and early.start_ts == T0 and len(early.packets) == 6
    with pytest.raises(ValueError):
        ring.cut(T0 + 2, T0 + 1)
    with pytest.raises(ValueError):
        write_mp4(ClipSource(params, (), (0, 1)), "/nonexistent/x.mp4")


def test_write_failure_leaves_no_file(clip6: Path, tmp_path: Path) -> None:
    params, packets = read_packets(clip6)
    ring = PacketRing(seconds=30)
    ring.start_session(params)
    fill(ring, packets[:20])
    clip = ring.cut(T0, T0 + 1.9)
    assert clip is not None
    target = tmp_path / "x.mp4"
    target.mkdir()  # rename onto a directory fails
    with pytest.raises(OSError):
        write_mp4(clip, target)
    assert [p.name for p in tmp_path.iterdir()] == ["x.mp4"]


# ---------------------------------------------------------------------------- the reader feeds it
def test_reader_fills_ring_from_a_file(camera, clip6: Path, tmp_path: Path) -> None:
    assert camera("off", str(clip6)).packet_ring is None, "off by default"
    cam = camera("file", str(clip6), clip_buffer_s=2.0)
    ring = cam.packet_ring
    assert ring is not None
    wait_until(lambda: ring.span_s >= 2.0, timeout=10, what="two seconds buffered")
    params = ring.params
    assert params is not None and (params.codec_name, params.width, params.height) == ("h264", 320, 240)
    now = time.time()
    clip = ring.cut(now - 1.5, now)
    assert clip is not None and clip.packets[0].keyframe
    # paced in real time: arrival times follow the media clock
    assert clip.end_ts - clip.start_ts == pytest.approx(clip.packets[-1].t - clip.packets[0].t, abs=0.15)
    _, frames, _ = decode_all(write_mp4(clip, tmp_path / "file.mp4"))
    assert len(frames) == len(clip.packets) >= 15


def test_reader_fills_ring_from_rtsp_across_a_reconnect(camera, rtsp_factory, clip6: Path, tmp_path: Path) -> None:
    server = rtsp_factory({"cam": clip6})
    cam = camera("rtsp", server.url("cam"), clip_buffer_s=20.0)
    ring = cam.packet_ring
    wait_until(lambda: ring.span_s >= 1.5, timeout=15, what="RTSP packets buffered")
    assert ring.params is not None and ring.params.codec_name == "h264"
    before_kill = time.time()
    server.kill()
    wait_until(lambda: cam.health().state is not StreamState.LIVE, timeout=10, what="disconnect noticed")
    server.restart()
    wait_until(lambda: cam.health().reconnects >= 1 and cam.health().state is StreamState.LIVE, timeout=30)
    wait_until(lambda: ring.cut(before_kill + 0.5, time.time() + 1) is not None, timeout=10, what="new session's packets")
    time.sleep(1.5)
    clip = ring.cut(before_kill - 1.5, time.time())
    assert clip is not None and clip.start_ts <= before_kill - 1.5 + GOP_S
    assert clip.end_ts > before_kill + 1.0, "the clip spans the reconnect"
    payloads, frames, (codec, w, h) = decode_all(write_mp4(clip, tmp_path / "rtsp.mp4"))
    assert (codec, w, h) == ("h264", 320, 240)
    assert len(frames) == len(payloads) == len(clip.packets)
    assert all(f.width == 320 for f in frames)
