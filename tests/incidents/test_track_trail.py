"""The tracked boxes an evidence clip carries: TrackTrail keeps each camera's recent boxes
(bounded in time, frames and cameras) and the clip recorder stores the triggering objects'
boxes over a real H.264 clip cut from a PacketRing."""

from __future__ import annotations

import time

import numpy as np
import supervision as sv

from gridworker.incidents import IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.trail import TrackTrail
from gridworker.streams.evidence import PacketRing
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import FrameAnalysis
from tests.factories import h264_packets, h264_ring

FPS = 10


def _analysis(camera_id: str, ts: float, ids: list[int], boxes: list[list[float]], size=(200, 100)) -> FrameAnalysis:
    w, h = size
    det = sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(ids), 0.9, dtype=np.float32),
        class_id=np.zeros(len(ids), dtype=np.int64),
        tracker_id=np.array(ids, dtype=np.int64),
    )
    frame = Frame(camera_id, 1, ts, np.zeros((h, w, 3), dtype=np.uint8))
    return FrameAnalysis(frame=frame, detections=det, verdicts=(), zones=())


def test_records_normalised_boxes_of_the_asked_tracks_only():
    trail = TrackTrail(keep_s=10.0)
    trail.record(_analysis("cam", 100.0, [3, 4], [[20, 10, 60, 50], [100, 0, 200, 100]]))
    trail.record(_analysis("cam", 100.5, [4], [[110, 0, 200, 100]]))
    trail.record(_analysis("cam", 101.0, [], []))
    trail.record(_analysis("other", 100.2, [3], [[0, 0, 10, 10]]))
    got = trail.path("cam", 99.0, 102.0, [3], start_ts=99.0)
    assert [(p.t, p.boxes) for p in got] == [(1.0, ((3, 0.1, 0.1, 0.3, 0.5),))]
    both = trail.path("cam", 100.4, 102.0, [3, 4], start_ts=100.0)
    assert [(p.t, [b[0] for b in p.boxes]) for p in both] == [(0.5, [4])]
    assert trail.path("cam", 99.0, 102.0, [], start_ts=99.0) == []
    assert trail.path("nobody", 99.0, 102.0, [3], start_ts=99.0) == []


def test_memory_is_bounded_in_time_frames_boxes_and_cameras():
    trail = TrackTrail(keep_s=5.0, max_frames=20, max_boxes=3)
    for i in range(100):
        trail.add("cam", 1000.0 + i * 0.1, np.arange(10), np.tile([0.1, 0.1, 0.2, 0.2], (10, 1)))
    kept = trail.path("cam", 0.0, 2000.0, range(10), start_ts=0.0)
    assert len(kept) == 20 and all(len(p.boxes) == 3 for p in kept)
    trail.add("gone", 1010.0, np.arange(1), np.zeros((1, 4)))
    for i in range(3):  # the cameras still sending keep their trail; a silent one is dropped whole
        trail.add("cam", 1020.0 + i * 6, np.arange(1), np.zeros((1, 4)))
    assert trail.path("gone", 0.0, 2000.0, [0], start_ts=0.0) == []
    assert len(trail._frames) == 1
    for i in range(30):  # time bound
        trail.add("cam", 2000.0 + i, np.arange(1), np.zeros((1, 4)))
    assert len(trail.path("cam", 0.0, 3000.0, [0], start_ts=0.0)) == 6  # 2024..2029 (keep_s = 5)


def test_clip_carries_the_triggering_boxes(tmp_path):
    params, packets = h264_packets(tmp_path, seconds=6, fps=FPS)
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    t0 = now - 6.0
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    trail = TrackTrail(keep_s=60.0)
    for i, p in enumerate(packets):
        ring.append_packet(p, t0 + i / FPS)
        if i % 2 == 0:  # analysed at 5 fps: the trigger (track 7) moves right, a bystander (8) stays
            x = 10 + i
            trail.record(_analysis("cam1", t0 + i / FPS, [7, 8], [[x, 10, x + 40, 60], [150, 50, 190, 90]]))
    recorder = ClipRecorder(store, {"cam1": ring}.get, tmp_path / "clips", pre_s=2.0, post_s=0.0, grace_s=0.0, trail=trail)
    inc = store.open(
        camera_id="cam1", camera_name="Gate", site="s", zone_id="z", rule_id="r", type="dwell", at=now - 1.0,
        count=1, summary="car", details={"track_ids": [7]}, snapshot=b"\xff\xd8jpeg",
    )
    recorder(inc)
    recorder.stop()
    clip = store.clip(inc.id)
    tracks = store.clip_tracks(inc.id)
    store.close()
    assert clip is not None and tracks
    assert {b[0] for p in tracks for b in p["boxes"]} == {7}, "only the trigger, never the bystander"
    assert all(0.0 <= p["t"] <= clip.duration_s + 0.01 for p in tracks)
    # each point sits where the object was at that moment of the clip
    start_ts = inc.opened_at - clip.offset_s  # the wall time of the clip's first frame
    for p in tracks:
        i = round((start_ts + p["t"] - t0) * FPS)  # the packet shown at that moment
        assert p["boxes"][0][1] == round((10 + i) / 200, 4)
    assert len(tracks) >= round(clip.duration_s * FPS / 2) - 1


def test_an_incident_without_track_ids_stores_no_tracks(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    now = time.time()
    ring = h264_ring(tmp_path, seconds=3, fps=FPS, start=now - 3.0)
    trail = TrackTrail(keep_s=60.0)
    trail.record(_analysis("cam1", now - 1.0, [1], [[0, 0, 10, 10]]))
    recorder = ClipRecorder(store, {"cam1": ring}.get, tmp_path / "clips", pre_s=1.0, post_s=0.0, grace_s=0.0, trail=trail)
    inc = store.open(
        camera_id="cam1", camera_name="Gate", site="s", zone_id="z", rule_id="r", type="crowd", at=now - 0.5,
        count=1, summary="", details={}, snapshot=None,
    )
    recorder(inc)
    recorder.stop()
    assert store.clip(inc.id) is not None and store.clip_tracks(inc.id) is None
    store.close()
