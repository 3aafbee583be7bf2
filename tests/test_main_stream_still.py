"""``GET /cameras/{id}/frame.jpg?stream=main``: the newest keyframe of the camera's evidence ring
is decoded and JPEG-encoded once per keyframe, however many viewers ask (a burst of them on one
camera waits for the one decode), and at most ``MAIN_STREAM_DECODES`` pictures of all cameras
are decoded at once: a request that gets no slot within ``MAIN_STREAM_WAIT_S`` is answered 503
with ``Retry-After``. Real H.264 packets in a real ring; no camera is connected."""

from __future__ import annotations

import math
import threading
import time

import av
import cv2
import numpy as np
import pytest

import gridworker.cameras as cameras
from gridworker.api import create_app
from gridworker.cameras import MainStreamBusy, MainStreamStill
from gridworker.service import Service
from gridworker.settings import CameraConfig, Settings
from gridworker.streams.config import StreamConfig
from gridworker.streams.evidence import ClipSource, CodecParams, PacketRing, RingPacket
from gridworker.streams.reader import CameraStream
from tests.factories import ParkedCarDetector, free_port, h264_packets, local_client

FPS = 10  # a keyframe every FPS packets (h264_packets: one a second)


@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> tuple[CodecParams, list[av.Packet]]:
    return h264_packets(tmp_path_factory.mktemp("still"), seconds=3, fps=FPS)


class _CountedRing(PacketRing):
    """A ring that counts its keyframe decodes; ``gate``, when set, holds each decode until it opens."""

    def __init__(self) -> None:
        super().__init__(seconds=60.0)
        self.decodes = 0
        self.gate: threading.Event | None = None
        self.decoding = threading.Event()

    def latest_keyframe(self, held: tuple[CodecParams, RingPacket] | None = None) -> av.VideoFrame | None:
        self.decodes += 1
        self.decoding.set()
        if self.gate is not None:
            assert self.gate.wait(10.0)
        return super().latest_keyframe(held)


def _fill(ring: PacketRing, h264: tuple[CodecParams, list[av.Packet]], upto: int) -> None:
    params, packets = h264
    ring.start_session(params)
    for i, packet in enumerate(packets[:upto]):
        ring.append_packet(packet, ts=1000.0 + i / FPS)


def _append(ring: PacketRing, h264: tuple[CodecParams, list[av.Packet]], start: int, stop: int) -> None:
    for i, packet in enumerate(h264[1][start:stop], start):
        ring.append_packet(packet, ts=1000.0 + i / FPS)


def _size(jpeg: bytes) -> tuple[int, int]:
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    return picture.shape[1], picture.shape[0]


def test_one_decode_per_keyframe(h264):
    ring, still, slots = _CountedRing(), MainStreamStill(), threading.BoundedSemaphore(2)
    _fill(ring, h264, FPS + 3)  # the second keyframe and three packets after it
    first = still.jpeg(ring, 90, slots, 1.0)
    assert first is not None and _size(first) == (320, 240)
    assert still.jpeg(ring, 90, slots, 1.0) == first
    _append(ring, h264, FPS + 3, FPS + 8)  # more packets of the same GOP: the same keyframe
    assert still.jpeg(ring, 90, slots, 1.0) == first
    assert ring.decodes == 1
    _append(ring, h264, FPS + 8, 2 * FPS + 1)  # the next keyframe
    assert still.jpeg(ring, 90, slots, 1.0) is not None
    assert ring.decodes == 2
    assert still.jpeg(ring, 50, slots, 1.0) is not None  # another quality is another picture
    assert ring.decodes == 3


def test_a_keyframe_arriving_during_the_decode_is_decoded_by_the_next_request(h264):
    """The picture is of the keyframe its cache key names: one that arrives while the decode runs
    is the next request's (before: the decode took the newest keyframe then, the key named the
    older one, and the next request decoded the same picture again)."""
    alone = PacketRing(seconds=60.0)
    _fill(alone, h264, FPS + 3)
    expected_first = MainStreamStill().jpeg(alone, 90, threading.BoundedSemaphore(1), 1.0)
    ring, still, slots = _CountedRing(), MainStreamStill(), threading.BoundedSemaphore(2)
    _fill(ring, h264, FPS + 3)
    ring.gate = threading.Event()
    got: list[bytes | None] = []
    viewer = threading.Thread(target=lambda: got.append(still.jpeg(ring, 90, slots, 5.0)))
    viewer.start()
    try:
        assert ring.decoding.wait(10.0)
        _append(ring, h264, FPS + 3, 2 * FPS + 1)  # the next keyframe, while the first is being decoded
    finally:
        ring.gate.set()
        viewer.join(10.0)
    assert got == [expected_first]
    second = still.jpeg(ring, 90, slots, 1.0)
    assert second is not None and second != expected_first and ring.decodes == 2
    assert still.jpeg(ring, 90, slots, 1.0) == second and ring.decodes == 2


def test_a_request_that_waited_for_a_decode_gets_the_newest_keyframe(h264):
    """A request waiting for this camera's decode reads the newest keyframe once its turn comes:
    it neither answers the older picture it would have seen on arrival nor decodes (and caches)
    that older keyframe over a newer one another request already decoded."""
    ring, still, slots = _CountedRing(), MainStreamStill(), threading.BoundedSemaphore(2)
    _fill(ring, h264, FPS + 3)
    ring.gate = threading.Event()
    got: dict[str, bytes | None] = {}

    def ask(name: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: got.__setitem__(name, still.jpeg(ring, 90, slots, 10.0)))
        thread.start()
        return thread

    threads = [ask("first")]
    try:
        assert ring.decoding.wait(10.0)  # the first request decodes the first keyframe
        threads.append(ask("waited"))  # arrives while the first keyframe is the newest, waits for the decode
        time.sleep(0.1)
        _append(ring, h264, FPS + 3, 2 * FPS + 1)  # the next keyframe
        threads.append(ask("later"))
        time.sleep(0.1)
    finally:
        ring.gate.set()
        for thread in threads:
            thread.join(10.0)
    newest = still.jpeg(ring, 90, slots, 1.0)
    assert newest is not None and got["first"] not in (None, newest)
    assert got["waited"] == newest and got["later"] == newest
    assert ring.decodes == 2  # one per keyframe: the second request's keyframe is never decoded again


class _NoCopyRing(PacketRing):
    """A ring that refuses to copy out its packets (``cut``): what a main-stream picture needs is
    one packet, not all of them."""

    def cut(self, start_ts: float, end_ts: float) -> ClipSource | None:
        raise AssertionError("the main-stream picture copied every packet of the ring")


def test_the_picture_reads_one_packet_not_a_copy_of_the_ring(h264):
    ring, still = _NoCopyRing(seconds=60.0), MainStreamStill()
    _fill(ring, h264, 2 * FPS + 3)
    jpeg = still.jpeg(ring, 90, threading.BoundedSemaphore(1), 1.0)
    assert jpeg is not None and _size(jpeg) == (320, 240)


def test_a_ring_joined_mid_gop_holds_no_keyframe_until_one_arrives(h264):
    """A reader that connects mid-GOP: the packets before its first keyframe are not kept, so
    there is no picture until that keyframe; then the newest keyframe is the newest GOP's first
    packet, the one a search of every packet held finds."""
    params, packets = h264
    ring, still, slots = PacketRing(seconds=60.0), MainStreamStill(), threading.BoundedSemaphore(1)
    ring.start_session(params)
    _append(ring, h264, 3, FPS)  # the rest of the first GOP, its keyframe missed
    assert len(ring) == 0
    assert ring.newest_keyframe() is None and ring.latest_keyframe() is None
    assert still.jpeg(ring, 90, slots, 1.0) is None
    _append(ring, h264, FPS, 3 * FPS + 4)  # two keyframes and four packets after the second
    held = ring.newest_keyframe()
    assert held is not None and held[0] is params
    newest = held[1]
    assert newest.keyframe and newest.data == bytes(packets[2 * FPS])
    clip = ring.cut(-math.inf, math.inf)
    assert clip is not None and newest is next(p for p in reversed(clip.packets) if p.keyframe)
    picture = ring.latest_keyframe()
    assert picture is not None and (picture.width, picture.height) == (320, 240)
    jpeg = still.jpeg(ring, 90, slots, 1.0)
    assert jpeg is not None and _size(jpeg) == (320, 240)


def test_no_keyframe_yet_decodes_nothing():
    ring, still = _CountedRing(), MainStreamStill()
    assert still.jpeg(ring, 90, threading.BoundedSemaphore(1), 1.0) is None
    assert ring.decodes == 0


def test_a_burst_on_one_camera_waits_for_the_one_decode(h264):
    ring, still, slots = _CountedRing(), MainStreamStill(), threading.BoundedSemaphore(2)
    _fill(ring, h264, FPS)
    ring.gate = threading.Event()
    got: list[bytes | None] = []
    viewers = [threading.Thread(target=lambda: got.append(still.jpeg(ring, 90, slots, 10.0))) for _ in range(8)]
    for viewer in viewers:
        viewer.start()
    assert ring.decoding.wait(10.0)
    time.sleep(0.1)  # the others are queued behind it
    ring.gate.set()
    for viewer in viewers:
        viewer.join(10.0)
    assert len(got) == 8 and got[0] is not None and len(set(got)) == 1
    assert ring.decodes == 1


def test_no_free_slot_within_the_wait_is_refused(h264):
    ring, still, slots = _CountedRing(), MainStreamStill(), threading.BoundedSemaphore(1)
    _fill(ring, h264, FPS)
    assert slots.acquire(timeout=1.0)  # another camera's picture is being decoded
    started = time.monotonic()
    with pytest.raises(MainStreamBusy):
        still.jpeg(ring, 90, slots, 0.2)
    assert time.monotonic() - started < 2.0
    assert ring.decodes == 0
    slots.release()
    assert still.jpeg(ring, 90, slots, 0.2) is not None


class _Idle(CameraStream):
    """A reader that never connects: its ring holds what the test puts there."""

    def start(self) -> None:
        return None


def test_the_api_answers_503_with_retry_after_beyond_the_decode_bound(tmp_path, h264, monkeypatch):
    monkeypatch.setattr(cameras, "MAIN_STREAM_DECODES", 1)
    monkeypatch.setattr(cameras, "MAIN_STREAM_WAIT_S", 0.2)

    def reader(camera_id: str, config: StreamConfig) -> CameraStream:
        return _Idle(camera_id, config)

    url = f"rtsp://127.0.0.1:{free_port()}/s1"
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'still.db'}"},
        cameras=[CameraConfig(id="a", url=url), CameraConfig(id="b", url=url)],
    )
    service = Service(settings, ParkedCarDetector(), reader=reader)
    rings: dict[str, PacketRing] = {}
    with local_client(create_app(lambda: service)) as client:
        for cam_id in ("a", "b"):
            ring = service.registry.packet_ring(cam_id)
            assert ring is not None
            _fill(ring, h264, FPS)
            rings[cam_id] = ring
        gate, decoding = threading.Event(), threading.Event()
        decode_a = rings["a"].latest_keyframe

        def held(keyframe: tuple[CodecParams, RingPacket] | None = None) -> av.VideoFrame | None:
            decoding.set()
            assert gate.wait(10.0)
            return decode_a(keyframe)

        monkeypatch.setattr(rings["a"], "latest_keyframe", held)
        answers: list[int] = []
        viewer = threading.Thread(target=lambda: answers.append(client.get("/cameras/a/frame.jpg", params={"stream": "main"}).status_code))
        viewer.start()
        try:
            assert decoding.wait(10.0)
            busy = client.get("/cameras/b/frame.jpg", params={"stream": "main"})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        finally:
            gate.set()
            viewer.join(10.0)
        assert answers == [200]
        ok = client.get("/cameras/b/frame.jpg", params={"stream": "main"})
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg" and _size(ok.content) == (320, 240)
