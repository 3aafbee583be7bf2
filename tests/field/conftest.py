"""Field fixtures: real clips from ``../shared/media`` replayed through their scene files.

Every replay is cached for the session (one replay per clip and scene), so several tests
can assert on one run. The time-reversed overpass clip is built once per session.

Every field test runs twice: with every sampled frame inferred, and with motion gating on
(``vision/motion.py``: frames without motion in a rule zone are analysed with the last
detections, a refresh every 2 s): the rules must fire on the real clips alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gridworker.models.base import Detector
from gridworker.models.config import DetectorConfig
from gridworker.models.loader import load_detector
from gridworker.replay import ReplayResult, load_replay_setup, replay_clip
from gridworker.vision.motion import MotionConfig
from tests.field.helpers import SCENES, reverse_clip


@pytest.fixture(scope="session")
def detectors() -> Callable[[DetectorConfig], Detector]:
    loaded: dict[str, Detector] = {}

    def get(config: DetectorConfig) -> Detector:
        key = config.model_dump_json()
        if key not in loaded:
            loaded[key] = load_detector(config)
        return loaded[key]

    return get


@pytest.fixture(scope="session")
def overpass_reversed(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reverse_clip(shared_media / "oneway_overpass.mp4", tmp_path_factory.mktemp("field") / "oneway_overpass_reversed.mp4")


@pytest.fixture(scope="session", params=[False, True], ids=["every-frame", "motion-gated"])
def field_replay(request: pytest.FixtureRequest, shared_media: Path, detectors: Callable[[DetectorConfig], Detector]) -> Callable[..., ReplayResult]:
    """``field_replay(scene_name, clip=None) -> ReplayResult``; ``clip`` defaults to the media
    clip of the same name. Results are cached for the session."""
    gated = bool(request.param)
    done: dict[tuple[str, str], ReplayResult] = {}

    def run(scene: str, clip: Path | None = None) -> ReplayResult:
        clip = clip if clip is not None else shared_media / f"{scene}.mp4"
        key = (scene, str(clip))
        if key not in done:
            setup = load_replay_setup(SCENES / f"{scene}.yaml", clip)
            motion = MotionConfig(enabled=True, refresh_s=2.0) if gated else None
            done[key] = replay_clip(clip, setup.camera, detectors(setup.detector), tracker=setup.tracker, motion=motion)
        return done[key]

    return run
