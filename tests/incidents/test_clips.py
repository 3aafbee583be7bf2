"""Evidence clips: the store's clips table, and ClipRecorder cutting real H.264 packets from a
PacketRing on its timer thread (real files, real SQLite/PostgreSQL, no fakes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import pytest
import sqlalchemy as sa

from gridworker.incidents import IncidentQuery, IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.db import Base
from gridworker.incidents.store import IncidentRow, SnapshotRow
from gridworker.streams.evidence import PacketRing
from tests.factories import h264_packets, wait_until

FPS = 10


@pytest.fixture
def store(store_url):
    s = IncidentStore(store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Codec parameters and packets of a real 8 s H.264 clip (10 fps, keyframe every second)."""
    return h264_packets(tmp_path_factory.mktemp("rec"), seconds=8, fps=FPS)


def _open(store: IncidentStore, at: float, camera_id: str = "cam1"):
    return store.open(
        camera_id=camera_id,
        camera_name="Gate",
        site="school",
        zone_id="z",
        rule_id="r",
        type="dwell",
        at=at,
        count=1,
        summary="car",
        details={},
        snapshot=b"\xff\xd8jpeg",
    )


def _ring(params, packets, t0: float, n: int | None = None) -> PacketRing:
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    for i, p in enumerate(packets[:n]):
        ring.append_packet(p, t0 + i / FPS)
    return ring


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---------------------------------------------------------------------------- store
def test_store_records_clips_and_reports_has_clip(store):
    a, b = _open(store, 100.0), _open(store, 200.0)
    assert not a.has_clip and store.clip(a.id) is None
    clip = store.add_clip(a.id, path="/clips/1.mp4", size_bytes=1234, duration_s=10.2, offset_s=5.3, created_at=111.0)
    assert store.clip(a.id) == clip and clip.size_bytes == 1234 and clip.offset_s == 5.3
    assert store.get(a.id).has_clip and not store.get(b.id).has_clip
    items, total = store.list(IncidentQuery())
    assert total == 2 and [(i.id, i.has_clip, i.has_snapshot) for i in items] == [(b.id, False, True), (a.id, True, True)]
    # recording again replaces (one clip per incident)
    store.add_clip(a.id, path="/clips/1b.mp4", size_bytes=99, duration_s=3.0, offset_s=1.0, created_at=112.0)
    assert store.clip(a.id).path == "/clips/1b.mp4" and store.list(IncidentQuery())[1] == 2


def test_database_from_before_clips_gets_the_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine, tables=[IncidentRow.__table__, SnapshotRow.__table__])
    assert "incident_clips" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    store = IncidentStore(url)
    try:
        inc = _open(store, 5.0)
        assert not store.get(inc.id).has_clip
        store.add_clip(inc.id, path="x.mp4", size_bytes=1, duration_s=1.0, offset_s=0.0, created_at=6.0)
        assert store.get(inc.id).has_clip
    finally:
        store.close()


# ---------------------------------------------------------------------------- recorder
def test_clip_waits_for_post_seconds_then_covers_the_window(tmp_path, source):
    """The reader keeps feeding the ring after the opening; the clip is cut once post_s has
    passed and reaches from a keyframe before opened_at - pre_s to opened_at + post_s."""
    params, packets = source
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    ring = _ring(params, packets, t0=now - 3.0, n=30)  # 3 s already buffered
    recorder = ClipRecorder(store, {"cam1": ring}.get, tmp_path / "clips", pre_s=2.0, post_s=1.5, grace_s=0.3)
    recorder.start()
    stop_feed = threading.Event()

    def feed() -> None:  # the camera keeps going in real time
        for i, p in enumerate(packets[30:], start=30):
            t = now - 3.0 + i / FPS
            if stop_feed.wait(max(0.0, t - time.time())):
                return
            ring.append_packet(p, t)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        inc = _open(store, now)
        recorder(inc)
        assert recorder.pending == 1
        time.sleep(1.0)
        assert store.clip(inc.id) is None, "cut before post_s had passed"
        clip = wait_until(lambda: store.clip(inc.id), timeout=5, interval=0.05)
        assert time.time() >= now + 1.5
    finally:
        stop_feed.set()
        feeder.join()
        recorder.stop()
        store.close()
    path = Path(clip.path)
    assert path == (tmp_path / "clips" / f"{inc.id}.mp4").resolve() and path.stat().st_size == clip.size_bytes
    # starts at the keyframe at or before opened_at - 2 (1 s GOP), ends at or after opened_at + 1.5 - 1 frame
    assert 2.0 <= clip.offset_s <= 3.0
    assert clip.duration_s - clip.offset_s >= 1.5 - 1 / FPS
    assert clip.duration_s <= 2.0 + 1.0 + 1.5 + 2 / FPS
    assert _frames(path) == round(clip.duration_s * FPS)
    assert recorder.written == 1 and recorder.pending == 0


def test_stop_cuts_pending_clips_with_what_is_there(tmp_path, source):
    params, packets = source
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    ring = _ring(params, packets, t0=now - 4.0, n=41)  # up to "now"
    recorder = ClipRecorder(store, {"cam1": ring}.get, tmp_path / "clips", pre_s=2.0, post_s=30.0)
    recorder.start()
    incs = [_open(store, now - 0.5), _open(store, now)]
    for inc in incs:
        recorder(inc)
    assert recorder.pending == 2
    t0 = time.time()
    recorder.stop()
    assert time.time() - t0 < 5, "stop does not wait for post_s"
    for inc in incs:
        clip = store.clip(inc.id)
        assert clip is not None and Path(clip.path).is_file()
        assert clip.duration_s - clip.offset_s < 1.0, "ends where the ring ended"
        assert _frames(Path(clip.path)) >= 20
    assert recorder.pending == 0
    store.close()


def test_no_ring_no_packets_or_camera_gone_leave_the_incident_alone(tmp_path, source):
    params, packets = source
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    rings = {"full": _ring(params, packets, t0=now - 8.0), "empty": PacketRing(seconds=10), "gone": _ring(params, packets, now - 8.0)}
    recorder = ClipRecorder(store, rings.get, tmp_path / "clips", pre_s=1.0, post_s=0.0, grace_s=0.0)
    recorder.start()
    try:
        no_ring = _open(store, now - 2.0, camera_id="no-ring-camera")
        recorder(no_ring)
        assert recorder.pending == 0, "a camera without a ring queues nothing"
        empty, ok = _open(store, now - 2.0, "empty"), _open(store, now - 2.0, "full")
        old = _open(store, now - 60.0, "full")  # long before anything the ring holds
        gone = _open(store, time.time() + 1.0, "gone")  # due in a second
        for inc in (empty, gone, old, ok):
            recorder(inc)
        del rings["gone"]  # the camera is removed before its clip is due
        wait_until(lambda: recorder.pending == 0 and recorder.written + recorder.skipped >= 4, timeout=5)
    finally:
        recorder.stop()
    assert recorder.written == 1 and recorder.skipped == 3
    assert store.clip(ok.id) is not None
    for inc in (no_ring, empty, gone, old):
        assert store.clip(inc.id) is None and store.get(inc.id) is not None
    # the incident's record says why (a camera that keeps no ring never expected a clip)
    assert store.get(no_ring.id).clip_missing is None and store.get(ok.id).clip_missing is None
    assert store.get(empty.id).clip_missing == store.get(old.id).clip_missing == "the camera had no video buffered around the opening"
    assert store.get(gone.id).clip_missing == "the camera was removed before its clip was cut"
    assert [p.name for p in (tmp_path / "clips").iterdir()] == [f"{ok.id}.mp4"]
    store.close()


def test_recorder_restarts_and_drains_without_a_thread(tmp_path, source):
    params, packets = source
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    ring = _ring(params, packets, t0=now - 8.0)
    recorder = ClipRecorder(store, {"cam1": ring}.get, tmp_path / "clips", pre_s=1.0, post_s=60.0)
    first = _open(store, now - 1.0)
    recorder(first)  # never started: stop() still cuts it
    recorder.stop()
    assert store.clip(first.id) is not None
    recorder.start()
    second = _open(store, now - 1.0)
    recorder(second)
    recorder.stop()
    assert store.clip(second.id) is not None and recorder.written == 2
    store.close()
