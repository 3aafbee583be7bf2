"""A clip still pending when the process dies (kill -9, power loss) can never be cut: its ring
is gone. The next start records why (``clip_missing``) instead of leaving the incident saying
"not saved yet" forever; incidents that never had a clip queued are left alone."""

from __future__ import annotations

import subprocess
import sys
import time

from gridworker.incidents import IncidentStore
from gridworker.incidents.clips import LEFT_BEHIND, ClipRecorder
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import synthetic_clip
from gridworker.streams.evidence import PacketRing
from tests.factories import ParkedCarDetector, h264_packets

# the run that crashes: a real recorder queues the incident's clip, then the process dies
CRASHING_RUN = r"""
import os, sys, time
from gridworker.incidents import IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.streams.evidence import PacketRing
store = IncidentStore(sys.argv[1])
ring = PacketRing(30)
rec = ClipRecorder(store, lambda cam: ring, sys.argv[2], pre_s=5, post_s=5)
rec.start()
inc = store.open(camera_id="gate", camera_name="Gate", site="s", zone_id="z", rule_id="r", type="intrusion",
                 at=time.time(), count=1, summary="x", details={}, snapshot=None)
rec(inc)
assert rec.pending == 1
print(inc.id, flush=True)
os._exit(137)  # no stop(), no drain
"""


def _open(store: IncidentStore, camera_id: str, at: float) -> int:
    return store.open(
        camera_id=camera_id, camera_name=camera_id, site="s", zone_id="z", rule_id="r", type="intrusion",
        at=at, count=1, summary="x", details={}, snapshot=None,
    ).id


def test_the_next_start_says_why_a_pending_clip_never_came(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    clips_dir = tmp_path / "clips"
    out = subprocess.run([sys.executable, "-c", CRASHING_RUN, url, str(clips_dir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 137, out.stderr
    crashed = int(out.stdout.split()[0])
    store = IncidentStore(url)
    now = time.time()
    iot = _open(store, "iot:brk-1", now)  # no packet ring: never had a clip queued
    disk_full = _open(store, "gate", now)
    store.clip_missing(disk_full, "the clip disk is full", at=now)
    has_clip = _open(store, "gate", now)
    store.add_clip(has_clip, path=str(clips_dir / "x.mp4"), size_bytes=1, duration_s=1.0, offset_s=0.5, created_at=now)
    assert store.get(crashed).clip_missing is None and not store.get(crashed).has_clip
    store.close()

    source = synthetic_clip(tmp_path / "gate.mp4", seconds=2, size=(160, 120), fps=10, gop=10)
    settings = Settings(
        database={"url": url},
        media_dir=tmp_path,
        evidence={"clips_dir": str(clips_dir)},
        cameras=[{"id": "gate", "url": str(source), "fps": 5}],
    )
    for _run in range(2):  # and a clean restart changes nothing more
        service = Service(settings, ParkedCarDetector())
        service.start()
        try:
            assert service.store.get(crashed).clip_missing == LEFT_BEHIND
            assert service.store.get(iot).clip_missing is None
            assert service.store.get(disk_full).clip_missing == "the clip disk is full"
            got = service.store.get(has_clip)
            assert got.has_clip and got.clip_missing is None
        finally:
            service.stop()
            service.store.close()


def test_clips_still_pending_in_this_recorder_are_not_left_behind(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'pending.db'}")
    params, packets = h264_packets(tmp_path, seconds=2)
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    for i, p in enumerate(packets):
        ring.append_packet(p, time.time() + i / 10)
    recorder = ClipRecorder(store, lambda cam: ring if cam == "gate" else None, tmp_path / "clips", pre_s=1, post_s=60)
    pending = store.get(_open(store, "gate", time.time()))
    recorder(pending)
    left = store.get(_open(store, "gate", time.time() - 100))
    ringless = store.get(_open(store, "other", time.time() - 100))
    assert recorder.left_behind([pending, left, ringless]) == 1
    assert store.get(left.id).clip_missing == LEFT_BEHIND
    assert store.get(pending.id).clip_missing is None and store.get(ringless.id).clip_missing is None
    assert sorted(i.id for i in store.open_without_clip(opened_before=time.time() + 1)) == [pending.id, ringless.id]
    recorder.stop()  # the pending one is cut now, with what the ring holds
    assert store.get(pending.id).has_clip
    store.close()
