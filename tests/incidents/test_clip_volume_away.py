"""Retention when the clip volume is away for a while (a late network mount, a dropped disk):
nothing is forgotten or swept; a clip file really deleted by hand is forgotten on the second
pass that misses it; a forgotten clip's file that comes back is never swept as a stray."""

from __future__ import annotations

import os
from pathlib import Path

from gridworker.incidents import IncidentStore
from gridworker.incidents.retention import DAY_S, FORGOTTEN, MissingClips, RetentionConfig, RetentionWorker, prune_clips

NOW = 1_900_000_000.0
HOUR = 3600.0
NO_LIMITS = {"max_age_s": 30 * DAY_S, "max_total_bytes": 20_000_000_000}


def _clip(store: IncidentStore, clips: Path, n: int) -> int:
    inc = store.open(
        camera_id="cam", camera_name="", site="", zone_id="z", rule_id=f"r{n}", type="crowd",
        at=NOW, count=1, summary="", details={}, snapshot=None,
    )
    path = clips / f"{inc.id}.mp4"
    path.write_bytes(b"x" * 1000)
    os.utime(path, (NOW, NOW))
    store.add_clip(inc.id, path=str(path), size_bytes=1000, duration_s=10.0, offset_s=5.0, created_at=NOW)
    return inc.id


def _unmount(clips: Path, *, mount_point: bool) -> Path:
    """The volume goes away: its files are elsewhere, an empty mount point (or nothing) is left."""
    away = clips.with_name("unmounted")
    os.rename(clips, away)
    if mount_point:
        clips.mkdir()
    return away


def _mount(clips: Path, away: Path) -> None:
    if clips.exists():
        clips.rmdir()
    os.rename(away, clips)


def test_a_volume_away_for_passes_loses_no_evidence(store, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    ids = [_clip(store, clips, n) for n in range(3)]
    worker = RetentionWorker(store, RetentionConfig(), clips_dir=clips)
    for mount_point in (True, False):  # an empty mount point, then no folder at all
        away = _unmount(clips, mount_point=mount_point)
        for later in (60.0, HOUR + 60):  # two passes while it is away
            worker.clock = lambda later=later: NOW + later
            assert worker.run_once().clip_volume_away == 1
        _mount(clips, away)
        worker.clock = lambda: NOW + 2 * HOUR  # back: the files are over an hour old
        report = worker.run_once()
        assert report.clip_volume_away == 0 and report.stray_files == 0 and report.clips_expired == 0
        for i in ids:
            assert store.clip(i) is not None and store.get(i).clip_missing is None
            assert (clips / f"{i}.mp4").exists()
    assert worker.missing.away_passes == 4


def test_a_clip_deleted_by_hand_is_forgotten_on_the_second_pass(store, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    kept, gone = _clip(store, clips, 0), _clip(store, clips, 1)
    (clips / f"{gone}.mp4").unlink()
    missing = MissingClips()
    prune_clips(store, now=NOW + 60, clips_dir=clips, missing=missing, **NO_LIMITS)
    assert store.clip(gone) is not None  # once could be a blink
    prune_clips(store, now=NOW + HOUR, clips_dir=clips, missing=missing, **NO_LIMITS)
    assert store.clip(gone) is None and store.get(gone).clip_missing == FORGOTTEN
    assert store.clip(kept) is not None and not missing.away


def test_a_file_that_came_back_between_two_passes_is_not_forgotten(store, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(store, clips, 0)
    blinked = _clip(store, clips, 1)
    hidden = clips / f"{blinked}.mp4"
    os.rename(hidden, tmp_path / "hidden.mp4")
    missing = MissingClips()
    prune_clips(store, now=NOW + 60, clips_dir=clips, missing=missing, **NO_LIMITS)
    os.rename(tmp_path / "hidden.mp4", hidden)
    prune_clips(store, now=NOW + HOUR, clips_dir=clips, missing=missing, **NO_LIMITS)
    prune_clips(store, now=NOW + 2 * HOUR, clips_dir=clips, missing=missing, **NO_LIMITS)
    assert store.clip(blinked) is not None and hidden.exists()


def test_a_forgotten_clip_whose_file_comes_back_is_not_swept(store, tmp_path):
    """Missing on two passes (some of the volume was away longer): forgotten. Its file back,
    over an hour old and named by no row, is still its incident's evidence: it stays."""
    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(store, clips, 0)
    lost = _clip(store, clips, 1)
    os.rename(clips / f"{lost}.mp4", tmp_path / "elsewhere.mp4")
    missing = MissingClips()
    for later in (60.0, HOUR):
        prune_clips(store, now=NOW + later, clips_dir=clips, missing=missing, **NO_LIMITS)
    assert store.get(lost).clip_missing == FORGOTTEN
    os.rename(tmp_path / "elsewhere.mp4", clips / f"{lost}.mp4")
    assert prune_clips(store, now=NOW + 3 * HOUR, clips_dir=clips, missing=missing, **NO_LIMITS)[3] == 0
    assert (clips / f"{lost}.mp4").exists()


def test_a_clip_file_of_an_incident_with_a_clip_row_elsewhere_is_not_swept(store, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    moved = _clip(store, clips, 0)
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{moved}.mp4").write_bytes(b"y")
    store.add_clip(moved, path=str(other / f"{moved}.mp4"), size_bytes=1, duration_s=1.0, offset_s=0.0, created_at=NOW)
    stray = clips / "999999.mp4"
    stray.write_bytes(b"z")
    os.utime(stray, (NOW, NOW))
    assert prune_clips(store, now=NOW + 2 * HOUR, clips_dir=clips, **NO_LIMITS)[3] == 1
    assert (clips / f"{moved}.mp4").exists() and not stray.exists()


def test_no_clip_folder_and_no_clip_yet_is_not_a_volume_away(store, tmp_path):
    missing = MissingClips()
    prune_clips(store, now=NOW, clips_dir=tmp_path / "not-yet", missing=missing, **NO_LIMITS)
    assert not missing.away and missing.away_passes == 0
