"""A scene update that drops a signal forgets that signal's states (pushed by a controller
or read from the image); the signals the scene keeps keep theirs. Without this the board
kept an entry for every signal a camera ever had until the camera itself was removed."""

from __future__ import annotations

import time

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.deps import running_service
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.vision.config import SignalConfig
from gridworker.vision.signals import SignalBoard
from tests.factories import ParkedCarDetector, local_client

SIGNALS = [{"id": "main", "source": "api", "stale_after_s": 30}, {"id": "side", "source": "api", "stale_after_s": 30}]


def _scene(**parts):
    return {"zones": [], "masks": [], "lines": [], "signals": [], "calibration": None, **parts}


def test_keep_drops_only_the_other_signals_of_that_camera():
    board = SignalBoard()
    for cam in ("a", "b"):
        for sig in ("main", "side"):
            board.push(cam, sig, "red", at=100.0)
            board.record(cam, sig, "green", at=100.0)
    board.keep("a", {"main"})
    assert board.get("a", "main", now=101.0, stale_after_s=30) == "red"
    assert board.get("a", "side", now=101.0, stale_after_s=30) == "unknown"
    image_side = SignalConfig.model_validate({"id": "side", "source": "image", "region": [[0, 0], [1, 0], [1, 1]]})
    assert board.status("a", image_side, now=101.0).updated_at is None  # the image reading went too
    assert board.status("b", image_side, now=101.0).state == "green"  # another camera's stay
    assert board.get("b", "side", now=101.0, stale_after_s=30) == "red"
    board.forget("b")
    assert board.get("b", "main", now=101.0, stale_after_s=30) == "unknown"


def test_scene_update_forgets_the_signals_it_drops(tmp_path, clip_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'prune.db'}"},
        media_dir=clip_path.parent,
        cameras=[{"id": "cam1", "url": str(clip_path), "fps": 5, "signals": SIGNALS}],
        evidence={"clips": False},
    )
    keys: dict[str, str] = {}

    def factory():
        service = Service(settings, ParkedCarDetector())
        keys["sup"] = create_key(service.keys, name="sup", role="supervisor")[1]
        return service

    with local_client(create_app(factory)) as client:
        sup = {"Authorization": f"Bearer {keys['sup']}"}
        for sig in ("main", "side"):
            assert client.put(f"/cameras/cam1/signals/{sig}", json={"state": "red"}, headers=sup).status_code == 200
        service = running_service(client.app)
        assert service is not None
        assert service.signals.get("cam1", "side", now=time.time(), stale_after_s=30) == "red"

        r = client.put("/cameras/cam1/scene", json=_scene(signals=SIGNALS[:1]), headers=sup)
        assert r.status_code == 200, r.text
        assert service.signals.get("cam1", "side", now=time.time(), stale_after_s=30) == "unknown"
        assert service.signals.get("cam1", "main", now=time.time(), stale_after_s=30) == "red"

        # the signal added back starts from nothing, not from the state it had before
        assert client.put("/cameras/cam1/scene", json=_scene(signals=SIGNALS), headers=sup).status_code == 200
        states = {s["id"]: s for s in client.get("/cameras/cam1/signals", headers=sup).json()}
        assert states["side"]["state"] == "unknown" and states["side"]["updated_at"] is None
        assert states["main"]["state"] == "red"
