"""Retention sweeps the cluster workers' clip folders (``clips_dir/cluster/<worker>/``, written
by cluster/clips.py) as it sweeps ``clips_dir``: a worker's clip no incident names goes once
an hour old; a named clip, a young one, other names, links and deeper folders stay."""

from __future__ import annotations

import os
import time

from gridworker.incidents import IncidentStore
from gridworker.incidents.retention import prune_clips


def test_stray_cluster_clips_go_named_and_young_ones_stay(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        clips = tmp_path / "clips"
        worker = clips / "cluster" / "host-a-12"
        worker.mkdir(parents=True)
        now = time.time()
        inc = store.open(
            camera_id="cam-1", camera_name="Gate", site="market", zone_id="kerb", rule_id="r1", type="illegal_parking",
            at=now - 7200, count=1, summary="parked", details={}, snapshot=None,
        )
        attached = worker / "host-a-12.1a2b.7.mp4"
        attached.write_bytes(b"x")
        store.add_clip(inc.id, path=str(attached), size_bytes=1, duration_s=10.0, offset_s=5.0, created_at=now - 7200)
        files = {
            "host-a-12.1a2b.8.mp4": (now - 7200, False),  # its reference never arrived: goes
            "host-a-12.1a2b.9.mp4": (now - 60, True),  # being recorded or on its way: stays
            ".host-a-12.1a2b.10.mp4.321.654.part": (now - 7200, False),  # an interrupted write: goes
            "notes.txt": (now - 7200, True),  # not ours
            attached.name: (now - 7200, True),  # an incident's clip
        }
        for name, (mtime, _) in files.items():
            path = worker / name
            if not path.exists():
                path.write_bytes(b"x")
            os.utime(path, (mtime, mtime))
        outside = tmp_path / "elsewhere.mp4"
        outside.write_bytes(b"x")
        os.utime(outside, (now - 7200, now - 7200))
        (worker / "link.mp4").symlink_to(outside)  # a link is never followed nor removed
        deeper = worker / "deeper"
        deeper.mkdir()
        (deeper / "x.mp4").write_bytes(b"x")
        os.utime(deeper / "x.mp4", (now - 7200, now - 7200))
        expired, over, _, stray = prune_clips(store, now=now, max_age_s=None, max_total_bytes=None, clips_dir=clips)
        assert (expired, over, stray) == (0, 0, 2)
        for name, (_, stays) in files.items():
            assert (worker / name).exists() == stays, name
        assert (worker / "link.mp4").is_symlink() and outside.exists()
        assert (deeper / "x.mp4").exists()
    finally:
        store.close()
