"""When the clip disk is full or unusable, incidents still open and their record says the clip is
missing and why (issue 10, item 3). Real file-system conditions, no root needed: a write that the
kernel answers ENOSPC (``/dev/full``), a clip folder that is a file, a disk with less free space
than ``min_free_bytes``; and the whole service with a real RTSP camera."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from gridworker.api import create_app
from gridworker.incidents import IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.evidence import PacketRing
from tests.factories import h264_packets, ParkedCarDetector, local_client, wait_until

FPS = 10


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Codec parameters and packets of a real 4 s H.264 clip (10 fps, keyframe every second)."""
    return h264_packets(tmp_path_factory.mktemp("full"), seconds=4, fps=FPS)


@pytest.fixture
def store(tmp_path):
    s = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    yield s
    s.close()


def _ring(params, packets, t0: float) -> PacketRing:
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    for i, p in enumerate(packets):
        ring.append_packet(p, t0 + i / FPS)
    return ring


def _open(store: IncidentStore, at: float):
    return store.open(
        camera_id="cam1", camera_name="Gate", site="school", zone_id="z", rule_id="r", type="dwell",
        at=at, count=1, summary="car", details={}, snapshot=b"\xff\xd8jpeg",
    )


def _recorder(store, ring, clips_dir, **kw) -> ClipRecorder:
    return ClipRecorder(store, {"cam1": ring}.get, clips_dir, pre_s=1.0, post_s=1.0, grace_s=0.0, **kw)


def test_enospc_from_the_kernel_leaves_the_incident_saying_why(store, tmp_path, source):
    """The clip's temporary file is a link to ``/dev/full``, whose every write fails with ENOSPC
    (what a full disk answers). A recorder that was never started cuts its clips in ``stop()`` on
    the calling thread, so the temporary name (``.<id>.mp4.<pid>.<thread id>.part``) is known."""
    params, packets = source
    now = time.time()
    ring = _ring(params, packets, now - 3.0)
    clips = tmp_path / "clips"
    clips.mkdir()
    recorder = _recorder(store, ring, clips)
    inc = _open(store, now - 1.5)
    recorder(inc)
    (clips / f".{inc.id}.mp4.{os.getpid()}.{threading.get_ident()}.part").symlink_to("/dev/full")
    recorder.stop()
    got = store.get(inc.id)
    assert got is not None and got.status == "open", "the incident stays"
    assert not got.has_clip and got.clip_missing == "the clip could not be written (no space left on the clip disk)"
    assert list(clips.iterdir()) == [], "no partial file (and the link) left"
    assert recorder.written == 0 and recorder.skipped == 1
    # space again: the next incident gets its clip, and its record names no problem
    later = _open(store, now - 1.2)
    recorder(later)
    recorder.stop()
    assert store.get(later.id).has_clip and store.get(later.id).clip_missing is None
    assert store.get(inc.id).clip_missing is not None


def test_a_clip_folder_that_is_a_file(store, tmp_path, source):
    params, packets = source
    now = time.time()
    blocker = tmp_path / "clips"
    blocker.write_text("not a folder")
    recorder = _recorder(store, _ring(params, packets, now - 3.0), blocker)
    recorder.start()
    inc = _open(store, now - 1.5)
    recorder(inc)
    wait_until(lambda: store.get(inc.id).clip_missing, timeout=5, interval=0.05)
    recorder.stop()
    got = store.get(inc.id)
    assert not got.has_clip and got.clip_missing == "the clip folder is not usable (File exists)"
    assert str(tmp_path) not in got.clip_missing, "no server path in what viewers read"
    assert blocker.read_text() == "not a folder"


def test_below_the_free_space_kept_free_no_clip_is_written(store, tmp_path, source):
    params, packets = source
    now = time.time()
    clips = tmp_path / "clips"
    free = shutil.disk_usage(tmp_path).free
    recorder = _recorder(store, _ring(params, packets, now - 3.0), clips, min_free_bytes=free + 10**12)
    inc = _open(store, now - 1.5)
    recorder(inc)
    recorder.stop()
    got = store.get(inc.id)
    assert not got.has_clip and got.clip_missing.startswith("the clip disk is full (")
    assert "MB must stay free" in got.clip_missing
    assert list(clips.iterdir()) == []
    # with the threshold met, the same recorder writes clips again
    recorder.min_free_bytes = 1
    again = _open(store, now - 1.2)
    recorder(again)
    recorder.stop()
    assert store.get(again.id).has_clip


@pytest.mark.rtsp
def test_service_with_an_unusable_clip_disk_still_opens_incidents(tmp_path, rtsp_factory, sample_clip):
    """The whole service: a real RTSP camera, a dwell rule that opens an incident, a clip folder
    that cannot be created. The incident opens, its work order too, and the API says the clip is
    missing and why; the clip URL is a 404 with the reason."""
    server = rtsp_factory({"gate": sample_clip})
    blocker = tmp_path / "clips"
    blocker.write_text("not a folder")
    zones = [{"id": "kerb", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], "rules": [{"type": "dwell", "min_duration_s": 1.0, "clear_after_s": 30.0}]}]
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'svc.db'}"},
        evidence={"clip_pre_s": 1.0, "clip_post_s": 1.0, "clips_dir": str(blocker)},
        cameras=[{"id": "gate", "url": server.url("gate"), "fps": 5, "zones": zones}],
    )
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector()))) as client:
        inc = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p["items"][0], timeout=20, interval=0.1)
        got = wait_until(lambda: (i := client.get(f"/incidents/{inc['id']}").json())["clip_missing"] and i, timeout=10, interval=0.1)
        assert got["status"] == "open" and got["has_clip"] is False
        assert got["clip_missing"] == "the clip folder is not usable (File exists)"
        r = client.get(f"/incidents/{inc['id']}/clip.mp4")
        assert r.status_code == 404 and "the clip folder is not usable" in r.json()["detail"]
        assert client.get(f"/workorders/{inc['id']}").status_code == 200
    assert Path(blocker).read_text() == "not a folder"
