"""The manager's cooldown table holds only cooldowns still running, and never more than
``MAX_COOLING`` (incidents/manager.py). Red-light crossings on a live camera through the real
analyser and manager: every crossing is its own incident (per-object key), each closing into
its rule's cooldown. Before: expired entries were dropped only when the same key came back,
which a crossing's key never does, so a busy junction's table grew all day."""

from __future__ import annotations

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.incidents import manager as manager_module
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig, SignalConfig, ZoneConfig
from gridworker.vision.signals import SignalBoard
from tests.factories import make_detections


IMAGE = np.zeros((360, 640, 3), np.uint8)


def _junction(tmp_path, cooldown_s: float):
    store = IncidentStore(f"sqlite:///{tmp_path / 'sweep.db'}")
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=5.0)
    board = SignalBoard()
    rule = {"type": "red_light", "stop_line": [(0.1, 0.5), (0.9, 0.5)], "signal": "s1", "cooldown_s": cooldown_s}
    scene = SceneConfig(
        zones=[ZoneConfig(id="app", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], rules=[rule])],
        signals=[SignalConfig(id="s1", source="api", stale_after_s=3600)],
    )
    analyzer = CameraAnalyzer("A", fps=5, scene=scene, track=False, signals=board)
    return store, manager, board, analyzer


def _crossings(manager, board, analyzer, cars: int, t: float = 1000.0) -> tuple[float, int]:
    seq = 0
    for car in range(cars):
        board.push("A", "s1", "red", t)
        for y in (100.0, 150.0, 200.0, 250.0):  # one car crossing the stop line (track id = car)
            seq += 1
            t += 0.2
            manager.observe(analyzer.analyze(Frame("A", seq, t, IMAGE), make_detections([[300, y, 360, y + 40]], class_name=["car"], tracker_id=[car])))
        for _ in range(30):  # 6 s of empty road: the crossing's incident closes (clear_after_s 5 s)
            seq += 1
            t += 0.2
            manager.observe(analyzer.analyze(Frame("A", seq, t, IMAGE), make_detections([], tracker_id=[])))
    return t, seq


def test_expired_cooldowns_are_forgotten(tmp_path):
    store, manager, board, analyzer = _junction(tmp_path, cooldown_s=10.0)
    t, seq = _crossings(manager, board, analyzer, cars=300)
    assert manager.open_count() == 0
    # while crossings go on (one every 6.8 s), only the cooldowns of the last 10 s + one sweep
    # interval (30 s) are kept: at most 6
    assert len(manager._cooling) <= 6, len(manager._cooling)
    t += 3600.0  # an hour later, one more frame
    manager.observe(analyzer.analyze(Frame("A", seq + 1, t, IMAGE), make_detections([], tracker_id=[])))
    assert len(manager._cooling) == 0  # before: 300 entries, all expired
    store.close()


def test_the_cooldown_table_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_module, "MAX_COOLING", 40, raising=False)
    store, manager, board, analyzer = _junction(tmp_path, cooldown_s=3600.0)  # every cooldown still runs at the end
    _crossings(manager, board, analyzer, cars=100)
    assert len(manager._cooling) == 40  # before: 100
    ends = sorted(c.until for c in manager._cooling.values())
    assert ends[0] > 1000.0 + 60 * 6.8 + 3600.0 - 1.0  # the 60 ending soonest went; the latest 40 stayed
    store.close()


@pytest.mark.parametrize(("back_at", "continued"), [(50.0, True), (100.0, False)])
def test_a_sweep_keeps_the_cooldowns_still_running(tmp_path, back_at, continued):
    """Sweeps (every 30 s of frames) keep a cooldown still running: a person back at the gate
    within its 60 s continues the closed incident; after it, a new one opens."""
    store = IncidentStore(f"sqlite:///{tmp_path / 'gate.db'}")
    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0)
    reopened: list[int] = []
    manager.on_reopen.append(lambda i, _at: reopened.append(i))
    gate = ZoneConfig(
        id="gate", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], rules=[{"type": "intrusion", "clear_after_s": 1.0, "cooldown_s": 60.0}]
    )
    analyzer = CameraAnalyzer("G", fps=2, scene=[gate], track=False)
    person = make_detections([[40, 40, 60, 90]], tracker_id=[1])
    nobody = make_detections([], tracker_id=[])
    opened = []
    for seq, t in enumerate(np.arange(0.0, back_at + 5.0, 0.5)):
        here = t < 2.0 or t >= back_at  # closes at 3 s; cooldown until 63 s
        opened += manager.observe(analyzer.analyze(Frame("G", seq, 1000.0 + float(t), IMAGE), person if here else nobody))
    if continued:
        assert len(opened) == 1 and reopened == [opened[0].id]
    else:
        assert len(opened) == 2 and reopened == []
    store.close()
