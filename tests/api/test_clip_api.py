"""Evidence clips end to end: a real RTSP camera (gst-rtsp-server) → the reader's packet ring →
an incident (scripted parked-car detector, real dwell rule) → the clip recorder → MP4 on disk →
``GET /incidents/{id}/clip.mp4``."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from gridworker.api import create_app
from gridworker.incidents import IncidentQuery
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client, wait_until

PRE_S, POST_S, GOP_S, FPS = 2.0, 2.0, 1.0, 10  # sample_clip: 10 fps, a keyframe every second

ZONES = [
    {
        "id": "no-parking",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        # opens once the ring already holds more than pre_s + one GOP
        "rules": [{"type": "dwell", "min_duration_s": 3.5, "clear_after_s": 30.0}],
    }
]


def _decode(data: bytes, tmp_path: Path) -> tuple[int, float, tuple[int, int], str]:
    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.duration is not None and s.time_base is not None
        duration = float(s.duration * s.time_base)
        frames = list(c.decode(s))
    return len(frames), duration, (frames[0].width, frames[0].height), s.codec_context.name


def test_rtsp_incident_gets_a_clip_served_by_the_api(tmp_path, rtsp_factory, sample_clip):
    server = rtsp_factory({"gate": sample_clip})
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'clips.db'}"},
        evidence={"clip_pre_s": PRE_S, "clip_post_s": POST_S},
        cameras=[{"id": "gate", "url": server.url("gate"), "fps": 5, "zones": ZONES}],
    )
    holder: dict[str, Service] = {}

    def factory() -> Service:
        holder["service"] = Service(settings, ParkedCarDetector())
        return holder["service"]

    with local_client(create_app(factory)) as client:
        service = holder["service"]
        ring = service._packet_ring("gate")
        assert ring is not None and ring.seconds == PRE_S + POST_S + 5.0
        page = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p, timeout=20, interval=0.1)
        inc = page["items"][0]
        opened_at = service.store.get(inc["id"]).opened_at
        assert ring.oldest_ts <= opened_at - PRE_S - GOP_S + 0.3
        if time.time() < opened_at + POST_S:  # not cut yet: a clear 404, and has_clip false
            early = client.get(f"/incidents/{inc['id']}/clip.mp4")
            if time.time() < opened_at + POST_S:
                assert early.status_code == 404 and "not saved yet" in early.json()["detail"]
                assert inc["has_clip"] is False and inc["clip_url"] is None
        got = wait_until(lambda: (i := client.get(f"/incidents/{inc['id']}").json())["has_clip"] and i, timeout=POST_S + 5)
        assert time.time() >= opened_at + POST_S, "the clip waited for post_s"
        assert got["clip_url"] == f"/incidents/{inc['id']}/clip.mp4"
        assert client.get("/incidents").json()["items"][0]["has_clip"] is True

        r = client.get(got["clip_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        assert r.headers["cache-control"].startswith("private")  # evidence: never in a shared cache
        n_frames, duration, size, codec = _decode(r.content, tmp_path)
        assert codec == "h264" and size == (320, 240)
        clip = service.store.clip(inc["id"])
        assert clip.size_bytes == len(r.content)
        # starts at the keyframe at or before opened_at - pre_s (so <= opened_at - (pre_s - 1 GOP))
        # and ends at or after opened_at + post_s - 1 s
        assert PRE_S - 0.1 <= clip.offset_s <= PRE_S + GOP_S + 0.2
        assert clip.duration_s - clip.offset_s >= POST_S - 1.0
        assert duration == pytest.approx(clip.duration_s, abs=0.05)
        assert n_frames == pytest.approx(duration * FPS, abs=2), "every packet decodes: starts at a keyframe"
        print(f"\nclip: {len(r.content)} B, {duration:.2f} s from -{clip.offset_s:.2f} s, {len(r.content) * 8 / duration / 1000:.0f} kbit/s")

        # the parked car that triggered the dwell rule, boxed over the clip (drawn by the console)
        tracks = client.get(f"/incidents/{inc['id']}/clip/tracks").json()
        assert tracks["track_ids"] and tracks["frames"], tracks
        assert all(0.0 <= f["t"] <= clip.duration_s + 1.0 for f in tracks["frames"])
        assert {b[0] for f in tracks["frames"] for b in f["boxes"]} <= set(tracks["track_ids"])
        assert all(b[1:] == pytest.approx([0.4, 0.6, 0.6, 0.9], abs=0.01) for f in tracks["frames"] for b in f["boxes"])
        around_open = [f for f in tracks["frames"] if abs(f["t"] - clip.offset_s) < 1.0]
        assert around_open, "the trigger is boxed where the incident opened"
        assert client.get("/incidents/999999/clip/tracks").status_code == 404

        # browsers seek with range requests
        part = client.get(got["clip_url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100 and part.content == r.content[:100]
        # errors say what is missing
        missing = client.get("/incidents/999999/clip.mp4")
        assert missing.status_code == 404 and "no incident" in missing.json()["detail"]
        Path(clip.path).unlink()
        gone = client.get(got["clip_url"])
        assert gone.status_code == 404 and "missing" in gone.json()["detail"]
    assert Path(clip.path).parent == (tmp_path / "clips").resolve(), "clips live beside the SQLite database"


def test_clips_off_globally_or_per_camera(tmp_path, sample_clip):
    cameras = [
        {"id": "on", "url": str(sample_clip), "fps": 5, "zones": ZONES},
        {"id": "off", "url": str(sample_clip), "fps": 5, "zones": ZONES, "stream": {"clip_buffer_s": 0}},
        {"id": "long", "url": str(sample_clip), "fps": 5, "stream": {"clip_buffer_s": 30, "clip_buffer_mb": 4}},
    ]
    media = sample_clip.parent
    on = Service(Settings(database={"url": f"sqlite:///{tmp_path / 'a.db'}"}, media_dir=media, cameras=cameras), ParkedCarDetector())
    off = Service(
        Settings(database={"url": f"sqlite:///{tmp_path / 'b.db'}"}, media_dir=media, evidence={"clips": False}, cameras=cameras[:2]),
        ParkedCarDetector(),
    )
    for service in (on, off):
        service.start()
    try:
        assert on._packet_ring("on").seconds == 15.0 and on._packet_ring("off") is None
        long = on._packet_ring("long")
        assert long.seconds == 30.0 and long.max_bytes == 4_000_000
        assert off.clips is None and off._packet_ring("on") is None
        assert on.clips in on.incidents.on_open and off.clips not in off.incidents.on_open
        # the camera with a ring gets a clip for its incident; the one without does not
        # the clip job is queued by the opening's listener, just after the incident counts as open
        wait_until(lambda: on.incidents.open_count() >= 2 and on.clips.pending >= 1, timeout=15)
        assert on.clips.pending == 1  # due 5 s after the opening; "off" queued nothing
    finally:
        for service in (on, off):
            service.stop()
    # stopping cut the pending clip with what the ring held; the camera without a ring has none
    incidents = {i.camera_id: i for i in on.store.list(IncidentQuery())[0]}
    assert incidents["on"].has_clip and not incidents["off"].has_clip
    assert on.clips.pending == 0 and on.clips.written == 1
