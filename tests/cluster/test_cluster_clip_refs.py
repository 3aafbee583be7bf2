"""Evidence clips of cluster incidents: cut on the worker into the shared clips folder, referenced
on the observations stream, recorded by the case service (issue 12, docs/cluster.md)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import av
import pytest

from tests.cluster.cluster_h5_support import Scripted, manager_on, obs_link  # noqa: F401 - obs_link is a fixture
from tests.factories import h264_packets, pg_database, wait_until
from gridworker.cluster.clips import ClipAttacher, ClipCutter, clip_relpath, resolve_clip
from gridworker.cluster.observations import Decision, ObservationConsumer, ObservationPublisher
from gridworker.cluster.wire import MAX_CLIP_BYTES, WireError, encode_clip, encode_frame, parse_observation
from gridworker.streams.evidence import PacketRing

FPS = 10


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def case_url(request, tmp_path):
    """The case service's database: PostgreSQL as in cluster mode (opened_at compared exactly), and SQLite."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'case.db'}"
    return pg_database("gw_clip_refs")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return h264_packets(tmp_path_factory.mktemp("src"), seconds=8, fps=FPS)


def _ref(**over) -> dict:
    body = {"of": "w1.ab.3", "opened_at": 1000.5, "frame_seq": 3, "path": "cluster/w1/w1.ab.3.mp4", "size_bytes": 10,
            "duration_s": 3.0, "offset_s": 2.0, "missing": None}
    body.update(over)
    return {"v": 1, "id": "w1.ab.3.clip", "worker": "w1", "camera_id": "cam1", "token": 11, "visit": None, "sent_at": 1001.0, "clip": body}


# ---------------------------------------------------------------------------- the wire type
def test_clip_reference_round_trips() -> None:
    raw = encode_clip("cam1", obs_id="w1.ab.3.clip", worker="w1", token=11, sent_at=1001.0, of="w1.ab.3", opened_at=1000.5,
                      frame_seq=3, path=clip_relpath("w1", "w1.ab.3"), size_bytes=10, duration_s=3.0, offset_s=2.0)
    obs = parse_observation(raw)
    assert obs.clip is not None and obs.frame is None and obs.clip.path == "cluster/w1/w1.ab.3.mp4" and obs.clip.opened_at == 1000.5
    missing = parse_observation(encode_clip("cam1", obs_id="x.clip", worker="w1", token=11, sent_at=1.0, of="x", opened_at=1.0,
                                            frame_seq=0, missing="nothing buffered"))
    assert missing.clip is not None and missing.clip.path is None and missing.clip.missing == "nothing buffered"


@pytest.mark.parametrize(
    "over",
    [
        pytest.param({"path": "../etc/passwd"}, id="dotdot"),
        pytest.param({"path": "cluster/../../x.mp4"}, id="dotdot-inside"),
        pytest.param({"path": "/etc/passwd"}, id="absolute"),
        pytest.param({"path": "cluster/./w1/a.mp4"}, id="dot"),
        pytest.param({"path": "cluster//a.mp4"}, id="empty-part"),
        pytest.param({"path": "cluster/a b.mp4"}, id="space"),
        pytest.param({"path": "cluster/a\\b.mp4"}, id="backslash"),
        pytest.param({"path": "a/" * 9 + "x.mp4"}, id="too-deep"),
        pytest.param({"path": "x" * 401}, id="too-long"),
        pytest.param({"size_bytes": 0}, id="no-size"),
        pytest.param({"size_bytes": MAX_CLIP_BYTES + 1}, id="too-large"),
        pytest.param({"missing": "why"}, id="path-and-missing"),
        pytest.param({"path": None}, id="neither"),
        pytest.param({"opened_at": float("nan")}, id="nan"),
        pytest.param({"of": "w1/../x"}, id="bad-of"),
        pytest.param({"extra": 1}, id="unknown-field"),
    ],
)
def test_hostile_clip_references_are_refused(over) -> None:
    with pytest.raises(WireError):
        parse_observation(json.dumps(_ref(**over)).encode())


# ---------------------------------------------------------------------------- the file system
@pytest.fixture
def clips(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    (root / "cluster" / "w1").mkdir(parents=True)
    (root / "cluster" / "w1" / "good.mp4").write_bytes(b"x" * 10)
    (tmp_path / "secret").write_bytes(b"y" * 10)
    os.symlink(tmp_path / "secret", root / "cluster" / "w1" / "out.mp4")
    os.symlink(root / "cluster" / "w1" / "good.mp4", root / "cluster" / "w1" / "in.mp4")
    os.symlink(tmp_path, root / "cluster" / "up")
    (root / "cluster" / "w1" / "dir.mp4").mkdir()
    os.mkfifo(root / "cluster" / "w1" / "fifo.mp4")
    return root


@pytest.mark.parametrize(
    ("rel", "kwargs", "reason"),
    [
        ("cluster/w1/good.mp4", {"size_bytes": 10}, None),
        ("../secret", {}, "clip path escapes the clips folder"),
        ("cluster/w1/../../../secret", {}, "clip path escapes the clips folder"),
        ("/etc/passwd", {}, "clip path not relative"),
        ("", {}, "clip path not relative"),
        ("cluster/w1/out.mp4", {}, "clip path outside the clips folder"),  # a link out
        ("cluster/up/secret", {}, "clip path outside the clips folder"),  # a folder link out
        ("cluster/w1/in.mp4", {}, "clip is not a regular file"),  # a link, even one pointing inside
        ("cluster/w1/dir.mp4", {}, "clip is not a regular file"),
        ("cluster/w1/fifo.mp4", {}, "clip is not a regular file"),
        ("cluster/w1/none.mp4", {}, "clip file missing"),
        ("cluster/w1/good.mp4", {"max_bytes": 9}, "clip file too large"),
        ("cluster/w1/good.mp4", {"size_bytes": 11}, "clip size differs from its reference"),
        ("cluster/w1/g\u00f6od.mp4", {}, "clip path has characters outside the allowed set"),
    ],
)
def test_resolve_clip_refuses_hostile_paths(clips: Path, rel: str, kwargs: dict, reason: str | None) -> None:
    if reason is None:
        path = resolve_clip(clips, rel, **kwargs)
        assert path == (clips / rel).resolve() and path.is_file()
        return
    with pytest.raises(WireError) as caught:
        resolve_clip(clips, rel, **kwargs)
    assert caught.value.reason == reason and str(clips) not in str(caught.value)


# ---------------------------------------------------------------------------- the case side
def _open_incident(manager, cam: Scripted):
    analysis = cam.frame(True)
    opened = manager.observe(analysis)
    assert len(opened) == 1
    return analysis, opened[0]


def test_attacher_records_refuses_and_discards(tmp_path: Path, case_url: str) -> None:
    manager, store = manager_on(case_url)
    root = tmp_path / "clips"
    attacher = ClipAttacher(store, root)
    cam = Scripted("cam1")
    analysis, inc = _open_incident(manager, cam)
    frame = analysis.frame

    def ref(of: str, **body) -> bytes:
        return encode_clip("cam1", obs_id=f"{of}.clip", worker="w1", token=11, sent_at=time.time(), of=of, opened_at=frame.ts,
                           frame_seq=frame.seq, **body)

    # a path not derived from its observation (another worker's file, another observation's): refused
    (root / "cluster" / "w1").mkdir(parents=True)
    (root / "cluster" / "w1" / "w1.a.2.mp4").write_bytes(b"z" * 5)
    with pytest.raises(WireError, match="not named after"):
        attacher.attach(parse_observation(ref("w1.a.1", path="cluster/w1/w1.a.2.mp4", size_bytes=5)))
    # the declared file missing on this machine (the folder not shared): the incident says why
    with pytest.raises(WireError, match="clip file missing"):
        attacher.attach(parse_observation(ref("w1.a.1", path=clip_relpath("w1", "w1.a.1"), size_bytes=5)))
    refused = store.get(inc.id)
    assert store.clip(inc.id) is None and refused is not None and "clip file missing" in (refused.clip_missing or "")
    # the right file: recorded
    (root / "cluster" / "w1" / "w1.a.1.mp4").write_bytes(b"c" * 7)
    assert attacher.attach(parse_observation(ref("w1.a.1", path=clip_relpath("w1", "w1.a.1"), size_bytes=7, duration_s=3.0))) == [inc.id]
    clip = store.clip(inc.id)
    got = store.get(inc.id)
    assert clip is not None and Path(clip.path) == (root / "cluster/w1/w1.a.1.mp4").resolve() and got is not None and got.has_clip
    # a frame that opened nothing: its clip is not kept
    later = cam.frame(True)
    assert manager.observe(later) == []
    (root / "cluster" / "w1" / "w1.a.9.mp4").write_bytes(b"d" * 3)
    stray = encode_clip("cam1", obs_id="w1.a.9.clip", worker="w1", token=11, sent_at=time.time(), of="w1.a.9", opened_at=later.frame.ts,
                        frame_seq=later.frame.seq, path=clip_relpath("w1", "w1.a.9"), size_bytes=3)
    assert attacher.attach(parse_observation(stray)) == [] and not (root / "cluster/w1/w1.a.9.mp4").exists()
    assert attacher.unclaimed == 1 and (root / "cluster/w1/w1.a.2.mp4").exists()


def test_clip_reference_is_not_fenced_by_a_newer_lease(tmp_path: Path) -> None:
    """The old owner's clip of a frame applied before the handover still reaches its incident."""
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    root = tmp_path / "clips"
    consumer = ObservationConsumer(None, manager, store.db, on_clip=ClipAttacher(store, root).attach)  # type: ignore[arg-type]
    cam = Scripted("cam1")
    first = cam.frame(True)
    assert consumer.handle(encode_frame(first, obs_id="w1.a.1", worker="w1", token=11, visit=None, sent_at=time.time())) == Decision.APPLIED
    assert consumer.handle(encode_frame(cam.frame(True), obs_id="w2.b.1", worker="w2", token=20, visit=None, sent_at=time.time())) == Decision.APPLIED
    (root / "cluster" / "w1").mkdir(parents=True)
    (root / "cluster" / "w1" / "w1.a.1.mp4").write_bytes(b"c" * 4)
    ref = encode_clip("cam1", obs_id="w1.a.1.clip", worker="w1", token=11, sent_at=time.time(), of="w1.a.1", opened_at=first.frame.ts,
                      frame_seq=first.frame.seq, path=clip_relpath("w1", "w1.a.1"), size_bytes=4)
    assert consumer.handle(ref) == Decision.APPLIED and consumer.stats.clips == 1
    assert consumer.handle(ref) == Decision.DUPLICATE
    (inc,) = store.open_incidents()
    assert store.clip(inc.id) is not None
    # a stale frame is still refused
    stale = encode_frame(cam.frame(True), obs_id="w1.a.2", worker="w1", token=11, visit=None, sent_at=time.time())
    assert consumer.handle(stale) == Decision.REJECTED


# ---------------------------------------------------------------------------- end to end, real NATS
def test_worker_clip_reaches_the_incident_and_plays(obs_link, tmp_path: Path, source, case_url: str) -> None:  # noqa: F811 - the fixture
    params, packets = source
    link = obs_link
    shared = tmp_path / "shared"  # the folder both machines mount
    now = time.time()
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    for i, p in enumerate(packets):  # what the camera's reader appended: 3 s before now to 5 s after
        ring.append_packet(p, now - 3.0 + i / FPS)
    sink = ObservationPublisher(link, "w1", lambda cam: 11)
    sink.clips = ClipCutter(shared, "w1", {"cam1": ring}.get, sink.send_later, pre_s=2.0, post_s=1.0, grace_s=0.2)
    sink.clips.start()
    cam = Scripted("cam1", t0=now)
    for person in (False, True, True, True):  # the second frame opens the incident
        sink.observe(cam.frame(person))
    ring_less = Scripted("cam2", t0=now)
    sink.observe(ring_less.frame(True))  # no ring for cam2: no clip asked
    wait_until(lambda: sink.clips.sent == 1, timeout=20)
    sink.close(10)
    assert sink.clips.missing == 0 and sink.stats.published == 6  # 5 frames + 1 clip reference
    written = shared / "cluster" / "w1"
    (mp4,) = written.glob("*.mp4")
    assert not list(written.glob(".*.part"))

    manager, store = manager_on(case_url)
    attacher = ClipAttacher(store, shared)
    consumer = ObservationConsumer(link, manager, store.db, on_clip=attacher.attach)
    consumer.start()
    try:
        wait_until(lambda: consumer.stats.applied == 6, timeout=20)
    finally:
        consumer.stop()
    assert consumer.stats.clips == 1 and consumer.stats.rejected == {}
    incidents = {i.camera_id: i for i in store.open_incidents()}
    inc = incidents["cam1"]
    clip = store.clip(inc.id)
    got = store.get(inc.id)
    assert clip is not None and Path(clip.path) == mp4.resolve() and got is not None and got.has_clip
    assert store.clip(incidents["cam2"].id) is None
    assert 2.5 <= clip.duration_s <= 5.0 and 1.5 <= clip.offset_s <= 3.1  # pre 2 s (from the keyframe before) + post 1 s
    with av.open(clip.path) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 25


def test_worker_sink_cuts_clips_only_into_an_explicit_folder(obs_link, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """``gridworker worker``'s sink: clips need evidence.clips_dir set (the shared mount); none without it."""
    from types import SimpleNamespace

    from gridworker.cluster.observations import build_worker_sink
    from gridworker.settings import Settings

    for clips_dir in (None, tmp_path / "shared"):
        settings = Settings(evidence={"clips_dir": clips_dir, "clip_pre_s": 2.0, "clip_post_s": 1.0})
        ctx = SimpleNamespace(link=obs_link, worker_id="w1", leases=SimpleNamespace(token=lambda cam: 11), settings=settings,
                              packet_ring=lambda cam: None)
        sink = build_worker_sink(ctx)  # type: ignore[arg-type]
        try:
            if clips_dir is None:
                assert sink.clips is None
            else:
                assert sink.clips is not None and sink.clips.recorder.post_s == 1.0 and sink.clips.recorder.pre_s == 2.0
                assert sink.clips.recorder.clips_dir == (clips_dir / "cluster" / "w1").resolve()
        finally:
            sink.close(2)
