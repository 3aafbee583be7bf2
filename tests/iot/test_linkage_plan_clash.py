"""The IoT linkage never takes over a plan it did not add: when a plan ``iot-<device id>``
exists already (a config-file plan, one saved before the prefix was reserved), an alarm gets
no watch and that plan, its live run and its saved row stay as they were. ``adopt`` never
replaces a plan. Without a clash the watch plan is added, runs once and is deleted."""

from __future__ import annotations

import logging
import time

from gridworker.incidents.store import Incident
from gridworker.iot.config import DeviceConfig
from gridworker.iot.linkage import Linkage
from gridworker.patrol.config import PatrolPlan, PatrolTarget
from gridworker.patrol.engine import PatrolRun, PatrolState
from gridworker.patrol.manager import PatrolManager
from gridworker.streams.glance import GlanceResult

CAMS = [PatrolTarget("gate-cam", "rtsp://10.0.0.1/a"), PatrolTarget("other", "rtsp://10.0.0.2/b")]
DEVICE = DeviceConfig(id="gate", type="smart_breaker", cameras=["gate-cam"])
JPEG = b"\xff\xd8jpeg\xff\xd9"


def _visit(target, plan, stop, seq, deliver):
    stop.wait(0.05)
    return GlanceResult(target.camera_id, target.url, time.time())


class Store:
    def __init__(self) -> None:
        self.attached: list[tuple[int, dict[str, object]]] = []

    def attach_snapshot(self, incident_id: int, jpeg: bytes, *, at: float, details: dict[str, object]) -> bool:
        self.attached.append((incident_id, details))
        return True


class Saved:
    """The service's patrol_plans table, as the manager's save/forget see it."""

    def __init__(self) -> None:
        self.rows: dict[str, PatrolPlan] = {}
        self.forgotten: list[str] = []

    def save(self, plan: PatrolPlan) -> None:
        self.rows[plan.id] = plan

    def forget(self, plan_id: str) -> None:
        self.forgotten.append(plan_id)
        self.rows.pop(plan_id, None)


def _manager(saved: Saved, initial: tuple[PatrolPlan, ...] = ()) -> PatrolManager:
    return PatrolManager(lambda plan: PatrolRun(plan, lambda: CAMS, lambda t, f: None, visitor=_visit), initial, save=saved.save, forget=saved.forget)


def _incident(incident_id: int = 7) -> Incident:
    now = time.time()
    return Incident(incident_id, "iot:gate", "Gate", "", "", "overcurrent", "alarm", "open", now, now, None, 1, 1, "")


def _linkage(manager: PatrolManager, store: Store) -> Linkage:
    return Linkage(manager, lambda cam: cam == "gate-cam", lambda cam: JPEG, store, watch_s=0.1)


def _join(link: Linkage) -> None:
    with link._lock:
        threads = list(link._threads.values())
    for th in threads:
        th.join(10)
        assert not th.is_alive()


def test_adopt_never_replaces_a_plan():
    saved = Saved()
    manager = _manager(saved)
    mine = PatrolPlan(id="iot-gate", name="the supervisor's", select={"site_types": ["other"]}, cycles=0, min_cycle_s=1)
    assert manager.put_plan(mine) is True
    manager.start("iot-gate")
    run = manager.run("iot-gate")
    try:
        assert manager.adopt(PatrolPlan(id="iot-gate", name="another", cycles=1)) is False
        assert manager.plan("iot-gate") == mine and manager.run("iot-gate") is run
        assert manager.status("iot-gate").state is PatrolState.RUNNING
        assert manager.adopt(PatrolPlan(id="fresh")) is True and manager.plan("fresh").id == "fresh"
        assert "fresh" not in saved.rows  # adopted plans are not saved
    finally:
        manager.stop_all(5)


def test_alarm_leaves_an_existing_plan_of_its_id_alone(caplog):
    saved = Saved()
    manager = _manager(saved)
    mine = PatrolPlan(id="iot-gate", select={"site_types": ["other"]}, cycles=0, min_cycle_s=1)
    manager.put_plan(mine)  # made before the prefix was reserved, running all day
    manager.start("iot-gate")
    run = manager.run("iot-gate")
    store = Store()
    link = _linkage(manager, store)
    try:
        with caplog.at_level(logging.WARNING, logger="gridworker.iot.linkage"):
            assert link.on_case(_incident(), DEVICE) is True
            _join(link)
        assert manager.plan("iot-gate") == mine and manager.run("iot-gate") is run
        assert manager.status("iot-gate").state is PatrolState.RUNNING
        assert list(saved.rows) == ["iot-gate"] and saved.forgotten == []
        assert store.attached == []
        assert any("no linkage watch" in r.getMessage() and "iot-gate" in r.getMessage() for r in caplog.records)
        assert link._slots.acquire(blocking=False)  # the slot was given back
        link._slots.release()
    finally:
        manager.stop_all(5)


def test_config_plan_of_the_id_is_left_alone():
    saved = Saved()
    config = PatrolPlan(id="iot-gate", name="from the file", select={"camera_ids": ["other"]})
    manager = _manager(saved, (config,))
    link = _linkage(manager, Store())
    assert link.on_case(_incident(), DEVICE) is True
    _join(link)
    assert manager.plan("iot-gate") == config and manager.source("iot-gate") == "config"
    assert manager.run("iot-gate") is None and saved.forgotten == []


def test_without_a_clash_the_watch_runs_and_its_plan_goes():
    saved = Saved()
    manager = _manager(saved)
    store = Store()
    link = _linkage(manager, store)
    try:
        assert link.on_case(_incident(9), DEVICE) is True
        _join(link)
        assert manager.plans() == [] and saved.rows == {}
        assert store.attached and store.attached[0][0] == 9 and store.attached[0][1]["linked_camera"] == "gate-cam"
    finally:
        manager.stop_all(5)


def test_a_watch_whose_run_is_slow_to_stop_still_deletes_its_plan():
    """A visit stuck in its RTSP handshake ignores the stop: ``stop`` returns with the run still
    stopping, and its plan used to stay for good (counting against the plan limit, and every
    later alarm of the device refused as "a plan exists that is not the linkage's"). The watch
    now waits for the run to end and deletes its plan; the device's next alarm gets a watch."""

    def stuck(target, plan, stop, seq, deliver):
        time.sleep(2.0)  # heeds no stop
        return GlanceResult(target.camera_id, target.url, time.time())

    saved = Saved()
    manager = PatrolManager(lambda plan: PatrolRun(plan, lambda: CAMS, lambda t, f: None, visitor=stuck), (), save=saved.save, forget=saved.forget)
    store = Store()
    link = Linkage(manager, lambda cam: cam == "gate-cam", lambda cam: JPEG, store, watch_s=0.1,
                   open_timeout_s=0.1, keyframe_timeout_s=0.1, stop_grace_s=0.2)
    try:
        assert link.on_case(_incident(11), DEVICE) is True
        _join(link)
        assert manager.plans() == [], "the watch's plan outlived it"
        assert link.on_case(_incident(12), DEVICE) is True  # the device's next alarm is watched
        _join(link)
        assert manager.plans() == [] and [i for i, _ in store.attached] == [11, 12]
    finally:
        manager.stop_all(5)


def test_a_plan_left_by_a_run_that_would_not_stop_is_deleted_by_the_next_watch_of_any_device():
    """A run that outlives even the wait for it (``drop_wait_s``) leaves its plan; the next
    linkage watch, whichever device it is for, deletes it once the run has ended (it counted
    against the plan limit for everyone)."""

    def stuck(target, plan, stop, seq, deliver):
        if target.camera_id == "gate-cam" and plan.id == "iot-gate":
            time.sleep(1.0)  # heeds no stop
        return GlanceResult(target.camera_id, target.url, time.time())

    saved = Saved()
    manager = PatrolManager(lambda plan: PatrolRun(plan, lambda: CAMS, lambda t, f: None, visitor=stuck), (), save=saved.save, forget=saved.forget)
    link = Linkage(manager, lambda cam: cam in ("gate-cam", "other"), lambda cam: JPEG, Store(), watch_s=0.1,
                   open_timeout_s=0.1, keyframe_timeout_s=0.1, stop_grace_s=0.1, drop_wait_s=0.1)
    try:
        assert link.on_case(_incident(21), DEVICE) is True
        _join(link)
        assert [p.id for p in manager.plans()] == ["iot-gate"]  # left: its run still stopping
        time.sleep(1.2)  # the stuck visit ends
        other = DeviceConfig(id="pump", type="water_level", cameras=["other"])
        assert link.on_case(_incident(22), other) is True
        _join(link)
        assert manager.plans() == [] and link._left == set()
    finally:
        manager.stop_all(5)
