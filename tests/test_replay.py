"""``gridworker replay``: a recorded clip through detector, tracker, zones, rules and incidents.

Most tests use the synthetic clip and a detector that finds its red square (deterministic,
no model); the ``model`` ones run the real default detector on the campus sample video.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import yaml

from gridworker.cli import main
from gridworker.incidents.store import IncidentQuery, IncidentStore
from gridworker.replay import load_replay_setup, replay_clip
from gridworker.settings import CameraConfig, ConfigError

RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]


class RedSquareDetector:
    """Finds the synthetic clip's red square and calls it a person; counts its batches."""

    class_names = ["person"]

    def __init__(self, max_batch: int = 4) -> None:
        self.max_batch = max_batch
        self.batches: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        self.batches.append(len(images))
        out = []
        for img in images:
            red = (img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80)
            ys, xs = np.nonzero(red)
            if len(xs) < 20:
                out.append(sv.Detections.empty())
                continue
            det = sv.Detections(
                xyxy=np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float32),
                confidence=np.array([0.9], dtype=np.float32),
                class_id=np.array([0]),
            )
            det.data["class_name"] = np.array(["person"])
            out.append(det)
        return out


def _camera(rules: list[dict], fps: float = 5, polygon: list[list[float]] = RIGHT_HALF) -> CameraConfig:
    return CameraConfig(id="clip", url="file:///clip.mp4", fps=fps, zones=[{"id": "right", "polygon": polygon, "rules": rules}])


def test_media_clock_sampling_and_batches(sample_clip: Path) -> None:
    detector = RedSquareDetector(max_batch=4)
    store = IncidentStore("sqlite://")
    result = replay_clip(sample_clip, _camera([{"type": "intrusion", "clear_after_s": 0.5}]), detector, fps=5, store=store)
    # 4 s at 10 fps sampled at 5 fps by presentation time: every other frame
    assert result.frames_decoded == 40
    assert result.frames_analysed == 20
    assert sum(detector.batches) == 20 and max(detector.batches) == 4
    assert (result.width, result.height) == (320, 240)
    # the square's ground point crosses the middle half-way through the clip
    [inc] = result.incidents
    assert inc.type == "intrusion" and inc.zone_id == "right"
    assert 1.6 <= inc.opened_s <= 2.4
    assert inc.closed_s is None  # still inside when the clip ends
    assert inc.subjects and inc.subjects[0].class_name == "person"
    assert inc.subjects[0].box[2] >= 0.5
    assert result.counts() == {"intrusion": 1}
    # the store saw the same incident, closed at the clip's end, with its evidence picture
    stored, total = store.list(IncidentQuery())
    assert total == 1 and stored[0].status == "closed" and stored[0].has_snapshot
    assert stored[0].closed_at == pytest.approx(result.media_s)


def test_fps_and_start_time(sample_clip: Path) -> None:
    detector = RedSquareDetector()
    result = replay_clip(sample_clip, _camera([{"type": "intrusion"}], fps=10), detector, start_ts=1_700_000_000.0)
    assert result.frames_analysed == 40  # the camera's fps when none is given
    [inc] = result.incidents
    assert 1.6 <= inc.opened_s <= 2.4  # reported in clip seconds whatever the start
    assert result.fps == 10


def test_replay_is_deterministic(sample_clip: Path) -> None:
    camera = _camera([{"type": "intrusion", "min_duration_s": 0.5, "clear_after_s": 0.2}])
    a = replay_clip(sample_clip, camera, RedSquareDetector(), fps=5)
    b = replay_clip(sample_clip, camera, RedSquareDetector(max_batch=1), fps=5)
    assert [(i.type, i.opened_s, i.closed_s, i.peak_count) for i in a.incidents] == [
        (i.type, i.opened_s, i.closed_s, i.peak_count) for i in b.incidents
    ]


def test_incident_closes_on_media_time(sample_clip: Path) -> None:
    # zone on the left half: the square leaves it half-way; closes clear_after_s later
    left = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
    result = replay_clip(sample_clip, _camera([{"type": "intrusion", "clear_after_s": 1.0}], polygon=left), RedSquareDetector(), fps=5)
    [inc] = result.incidents
    assert inc.opened_s < 0.5
    assert inc.closed_s is not None and 2.4 <= inc.closed_s <= 3.6


def test_snapshots_written(sample_clip: Path, tmp_path: Path) -> None:
    result = replay_clip(sample_clip, _camera([{"type": "intrusion"}]), RedSquareDetector(), fps=5, snapshot_dir=tmp_path / "snaps")
    [inc] = result.incidents
    assert inc.snapshot is not None and inc.snapshot.parent == tmp_path / "snaps"
    assert inc.snapshot.read_bytes()[:2] == b"\xff\xd8"


def test_max_seconds(sample_clip: Path) -> None:
    result = replay_clip(sample_clip, _camera([{"type": "intrusion"}]), RedSquareDetector(), fps=5, max_seconds=1.5)
    assert result.media_s <= 1.6 and result.frames_analysed <= 8
    assert result.incidents == []


# --- scene files -------------------------------------------------------------------------


def test_scene_file_bare_camera(tmp_path: Path) -> None:
    scene = tmp_path / "kerb.yaml"
    scene.write_text(
        yaml.safe_dump(
            {
                "fps": 4,
                "detector": {"confidence": 0.2},
                "tracker": {"activation_threshold": 0.3},
                "zones": [{"id": "kerb", "rules": [{"type": "illegal_parking", "min_duration_s": 20}]}],
            }
        )
    )
    setup = load_replay_setup(scene, clip=tmp_path / "site cam #1.mp4")
    assert setup.camera.id == "site_cam__1"
    assert setup.camera.url.endswith("site cam #1.mp4")
    assert setup.camera.fps == 4
    assert setup.detector.confidence == 0.2
    assert setup.tracker.activation_threshold == 0.3


def test_scene_file_service_config(tmp_path: Path) -> None:
    config = tmp_path / "gridworker.yaml"
    cams = [{"id": "a", "url": "rtsp://cam-a/1"}, {"id": "b", "url": "rtsp://cam-b/1", "zones": [{"id": "z"}]}]
    config.write_text(yaml.safe_dump({"detector": {"confidence": 0.33}, "cameras": cams}))
    with pytest.raises(ConfigError, match="--camera"):
        load_replay_setup(config)
    setup = load_replay_setup(config, camera_id="b")
    assert setup.camera.id == "b" and setup.camera.zones[0].id == "z"
    assert setup.detector.confidence == 0.33
    with pytest.raises(ConfigError, match="no camera 'c'"):
        load_replay_setup(config, camera_id="c")


def test_scene_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones: [{id: z, polygon: [[0, 0], [2, 0], [1, 1]]}]\n")
    with pytest.raises(ConfigError, match="outside 0..1"):
        load_replay_setup(bad, clip=tmp_path / "c.mp4")
    with pytest.raises(ConfigError, match="cannot read"):
        load_replay_setup(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_replay_setup(listing)


def test_cli_rejects_missing_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = tmp_path / "s.yaml"
    scene.write_text("zones: []\n")
    assert main(["replay", str(tmp_path / "nope.mp4"), "--camera-config", str(scene)]) == 2
    assert "no such clip" in capsys.readouterr().err


# --- the real detector on real pedestrians ----------------------------------------------------

CAMPUS_SCENE = {
    "fps": 5,
    "zones": [
        {
            "id": "road",
            "polygon": [[0.0, 0.30], [0.62, 0.25], [0.93, 0.18], [1.0, 0.50], [1.0, 0.86], [0.59, 0.67], [0.0, 0.44]],
            "rules": [{"type": "crowd", "min_count": 3, "min_duration_s": 2, "min_confidence": 0.4}],
        }
    ],
}


@pytest.mark.model
def test_cli_replay_vtest(vtest_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = tmp_path / "campus.yaml"
    scene.write_text(yaml.safe_dump(CAMPUS_SCENE))
    db = tmp_path / "replay.db"
    snaps = tmp_path / "snaps"
    args = ["replay", str(vtest_clip), "-c", str(scene), "--db", f"sqlite:///{db}", "--snapshots", str(snaps)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames_analysed"] == 50  # 10 s at 5 fps
    assert out["counts"].get("crowd", 0) >= 1
    crowd = [i for i in out["incidents"] if i["type"] == "crowd"]
    assert all(i["peak_count"] >= 3 and i["zone_id"] == "road" for i in crowd)
    assert all(s["class_name"] == "person" for i in crowd for s in i["subjects"])
    assert len(list(snaps.glob("*.jpg"))) == len(out["incidents"])
    # the incidents went into the database named by --db
    stored, total = IncidentStore(f"sqlite:///{db}").list(IncidentQuery())
    assert total == len(out["incidents"])
    # the readable report
    assert main([*args[:4], "--fps", "2"]) == 0
    text = capsys.readouterr().out
    assert " of 100 frames analysed at 2 fps" in text
    assert "per type:" in text
