"""Glance visits against the real RTSP server: keyframes only, and fast, clear failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridworker.bench.patrol import phase_copy
from gridworker.streams.glance import glance
from gridworker.streams.rtsp_serve import RtspServerProcess
from tests.factories import free_port

GOP_FRAMES = 10  # sample_clip: 10 fps, a keyframe every second


@pytest.fixture(scope="module")
def midgop_clip(tmp_path_factory: pytest.TempPathFactory, sample_clip: Path) -> Path:
    """The sample clip starting 0.5 s into a GOP: a new session sees ~5 non-key frames first,
    as when joining a live camera between two keyframes."""
    return phase_copy(sample_clip, tmp_path_factory.mktemp("glance") / "midgop.mp4", 0.5, 4.0)


@pytest.mark.parametrize("keyframes", [1, 3])
def test_glance_decodes_only_keyframes(rtsp_factory: Callable[..., RtspServerProcess], midgop_clip: Path, keyframes: int) -> None:
    server = rtsp_factory({"cam": midgop_clip})
    result = glance("cam", server.url("cam"), keyframes=keyframes, open_timeout_s=5, keyframe_timeout_s=8, first_seq=7)
    assert result.ok, result.reason
    assert len(result.frames) == keyframes
    # every packet handed to the decoder was a keyframe, one per frame taken
    assert result.packets_decoded == keyframes
    # the non-key packets before/between them were read and dropped undecoded
    assert result.packets_skipped >= 3 + (keyframes - 1) * (GOP_FRAMES - 2)
    assert [f.seq for f in result.frames] == list(range(7, 7 + keyframes))
    assert all(f.image.shape == (240, 320, 3) and f.camera_id == "cam" for f in result.frames)
    assert result.frames[0].image[-5:, :, 2].mean() > 200  # RGB: the blue band is channel 2
    assert result.connect_s is not None and result.first_keyframe_s is not None
    assert result.connect_s <= result.first_keyframe_s <= result.total_s
    # joined mid-GOP: the first keyframe comes ~0.5 s after the session starts playing
    assert result.first_keyframe_s - result.connect_s >= 0.2


def test_dead_camera_fails_fast() -> None:
    t0 = time.monotonic()
    result = glance("dead", f"rtsp://admin:hunter22@127.0.0.1:{free_port()}/live", open_timeout_s=3)
    assert not result.ok and result.error_kind == "open_failed"
    assert time.monotonic() - t0 < 2.0
    assert "hunter22" not in (result.error or "") and "***@127.0.0.1" in result.url
    assert result.frames == () and result.packets_decoded == 0


def test_unknown_mount_and_bad_password(rtsp_factory: Callable[..., RtspServerProcess], sample_clip: Path) -> None:
    server = rtsp_factory({"cam": sample_clip}, user="op", password="s3cr3t-pw")
    missing = glance("x", server.url("cam").replace("/cam", "/nope"))
    assert missing.error_kind == "open_failed" and "404" in (missing.error or "")
    wrong = glance("x", server.url("cam").replace("s3cr3t-pw", "wrong-pw"))
    assert wrong.error_kind == "open_failed" and "401" in (wrong.error or "")
    assert "wrong-pw" not in (wrong.error or "") and "wrong-pw" not in wrong.url


def test_hung_camera_open_timeout(rtsp_factory: Callable[..., RtspServerProcess], sample_clip: Path) -> None:
    server = rtsp_factory({"cam": sample_clip})
    server.pause()  # the kernel still accepts the TCP connection; RTSP never answers
    t0 = time.monotonic()
    result = glance("hung", server.url("cam"), open_timeout_s=1.5, keyframe_timeout_s=3)
    elapsed = time.monotonic() - t0
    assert result.error_kind == "open_timeout", result.reason
    assert 1.2 <= elapsed < 4.0


def test_camera_hanging_mid_visit_hits_keyframe_timeout(rtsp_factory: Callable[..., RtspServerProcess], sample_clip: Path) -> None:
    server = rtsp_factory({"cam": sample_clip})
    threading.Timer(1.2, server.pause).start()  # freezes after the first keyframe(s)
    t0 = time.monotonic()
    result = glance("hang", server.url("cam"), keyframes=8, open_timeout_s=3, keyframe_timeout_s=3, read_timeout_s=0.5)
    elapsed = time.monotonic() - t0
    assert result.error_kind == "keyframe_timeout", result.reason
    assert result.frames == ()  # a failed visit hands nothing on
    assert result.packets_decoded >= 1  # it did get going before the camera froze
    assert elapsed < 3 + 3 + 1.5


def test_stop_event_abandons_visit(rtsp_server: RtspServerProcess) -> None:
    stop = threading.Event()
    stop.set()
    result = glance("cam", rtsp_server.url("cam"), stop=stop)
    assert result.error_kind == "stopped"


def test_many_glances_in_threads(rtsp_factory: Callable[..., RtspServerProcess], midgop_clip: Path) -> None:
    server = rtsp_factory({f"c{i}": midgop_clip for i in range(8)})
    results: list = []
    threads = [threading.Thread(target=lambda i=i: results.append(glance(f"c{i}", server.url(f"c{i}")))) for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    elapsed = time.monotonic() - t0
    assert len(results) == 8 and all(r.ok for r in results), [r.reason for r in results]
    # overlapped, not one after the other
    assert elapsed < sum(r.total_s for r in results)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        glance("c", "rtsp://127.0.0.1/x", keyframes=0)
    with pytest.raises(ValueError):
        glance("c", "rtsp://127.0.0.1/x", open_timeout_s=0)
