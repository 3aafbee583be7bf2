"""Video linkage (视频联动): an alarm's case opened without a frame starts a short patrol
watch of the cameras that see the device, and the case gets their snapshot.

When a case opens, the ingest already attaches the latest analysed frame of a continuously
watched camera of the device, if there is one. Otherwise (the device's cameras are
patrol-only, the hundreds of key-site cameras nobody streams) :class:`Linkage` runs a
one-cycle watch plan ``iot-<device id>`` over them through the service's patrol (the same
batcher and rules as every visit), then attaches the first of their frames as the case's
snapshot (``IncidentStore.attach_snapshot``, like a clip added after the opening) and
records which camera it came from. The plan is not saved and is deleted when done; at most
``max_in_flight`` watches run at once (an alarm beyond that gets no watch, logged).

Ids starting with :data:`PLAN_PREFIX` are reserved for these watches (the API refuses them
with 422, the settings refuse them in the config file). Should a plan of that id exist anyway
(one saved before the prefix was reserved), the alarm gets no watch (logged) and that plan, its run and its saved
row are left alone: the linkage only ever stops and deletes a plan it added itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import KW_ONLY, dataclass, field
from collections.abc import Callable
from typing import Protocol

from gridworker.incidents.store import Incident
from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import PatrolRun, PatrolStatus
from gridworker.patrol.manager import PatrolConflict

from .config import DeviceConfig

log = logging.getLogger(__name__)

PLAN_PREFIX = "iot-"
"""The id prefix of the linkage's watch plans (``iot-<device id>``), reserved: no plan made
through the API may use it."""


class Patrols(Protocol):
    """What linkage needs of the service's ``PatrolManager``."""

    def adopt(self, plan: PatrolPlan) -> bool: ...

    def start(self, plan_id: str) -> tuple[PatrolStatus, bool]: ...

    def run(self, plan_id: str) -> PatrolRun | None: ...

    def stop(self, plan_id: str, timeout: float | None = None) -> PatrolStatus: ...

    def delete_plan(self, plan_id: str) -> None: ...


class SnapshotStore(Protocol):
    """Where a linkage snapshot goes (``IncidentStore``)."""

    def attach_snapshot(self, incident_id: int, jpeg: bytes, *, at: float, details: dict[str, object]) -> bool: ...


@dataclass(eq=False)
class Linkage:
    """Watches a device's patrol-only cameras when its case opened without a frame.

    Args:
        patrols: the service's patrol manager.
        cameras: camera id → whether it exists and is patrol-only (None: no such camera).
        latest_jpeg: camera id → its latest analysed frame (KeyError: no such camera).
        store: where the snapshot goes.
        watch_s: seconds of video per camera.
        max_in_flight: most watches at once.
        open_timeout_s, keyframe_timeout_s: the watch plan's (:class:`PatrolPlan`).
        stop_grace_s: past its expected end, a watch is stopped; a run still stopping is
            waited for (up to ``drop_wait_s`` more) before its plan is deleted.
    """

    patrols: Patrols
    cameras: Callable[[str], bool | None]
    latest_jpeg: Callable[[str], bytes | None]
    store: SnapshotStore
    _: KW_ONLY
    watch_s: float = 5.0
    max_in_flight: int = 4
    open_timeout_s: float = PatrolPlan.model_fields["open_timeout_s"].default
    keyframe_timeout_s: float = PatrolPlan.model_fields["keyframe_timeout_s"].default
    stop_grace_s: float = 5.0
    drop_wait_s: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _threads: dict[str, threading.Thread] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _left: set[str] = field(default_factory=set, init=False)  # this linkage's plans whose run outlived drop_wait_s

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_in_flight)

    def on_case(self, incident: Incident, device: DeviceConfig) -> bool:
        """The ingest opened ``incident`` for ``device``: watch its patrol-only cameras if the
        case has no frame yet. True when a watch started."""
        if incident.has_snapshot or self._stop.is_set():
            return False
        cams = [c for c in device.cameras if self.cameras(c)]
        if not cams:
            return False
        plan_id = f"{PLAN_PREFIX}{device.id}"[:64]
        with self._lock:
            if plan_id in self._threads or not self._slots.acquire(blocking=False):
                log.info("incident %s: no linkage watch (one runs for %s, or too many run)", incident.id, device.id)
                return False
            thread = threading.Thread(target=self._watch, args=(plan_id, incident.id, cams), name=f"iot-linkage-{device.id}")
            self._threads[plan_id] = thread
        thread.start()
        return True

    def _watch(self, plan_id: str, incident_id: int, cams: list[str]) -> None:
        adopted = False
        try:
            plan = PatrolPlan(
                id=plan_id, name=f"IoT linkage {plan_id[len(PLAN_PREFIX):]}", select={"camera_ids": cams}, order="listed",
                mode="watch", watch_s=self.watch_s, cycles=1, concurrency=len(cams), stagger_s=0.0,
                open_timeout_s=self.open_timeout_s, keyframe_timeout_s=self.keyframe_timeout_s,
            )
            if plan_id in self._sweep_left():  # this device's plan of an earlier watch whose run would not stop
                log.warning("incident %s: no linkage watch: the earlier watch of %s is still stopping", incident_id, plan_id)
                return
            try:
                adopted = self.patrols.adopt(plan)
                if not adopted:
                    log.warning("incident %s: no linkage watch: a patrol plan %r exists that is not the linkage's", incident_id, plan_id)
                    return
                self.patrols.start(plan_id)
            except PatrolConflict as exc:  # the limit on plans, or the service is stopping
                log.warning("incident %s: no linkage watch: %s", incident_id, exc)
                return
            run = self.patrols.run(plan_id)
            deadline = self.watch_s + plan.open_timeout_s + plan.keyframe_timeout_s + self.stop_grace_s
            if run is not None and not self._finished(run, deadline):
                self.patrols.stop(plan_id, timeout=self.stop_grace_s)
            self._attach(incident_id, cams)
        except Exception:  # a failed watch costs the case its snapshot, nothing else
            log.exception("incident %s: linkage watch failed", incident_id)
        finally:
            if adopted:  # only the plan this watch added: never someone else's
                self._drop_plan(plan_id)
            with self._lock:
                self._threads.pop(plan_id, None)
            self._slots.release()

    def _sweep_left(self) -> set[str]:
        """Delete the plans of earlier watches whose runs outlived ``drop_wait_s`` (any device's:
        they count against the plan limit); returns those still stopping."""
        with self._lock:
            left = set(self._left)
        for plan_id in left:
            try:
                self.patrols.delete_plan(plan_id)
            except KeyError:
                pass
            except PatrolConflict:
                continue
            with self._lock:
                self._left.discard(plan_id)
        with self._lock:
            return set(self._left)

    def _drop_plan(self, plan_id: str) -> None:
        """Delete the watch's plan. A run still stopping (a visit stuck in an RTSP handshake
        that does not heed the stop) is waited for, at most ``drop_wait_s``: a plan left behind
        would count against the plan limit and refuse every later watch of the device (one left
        all the same, the service stopping or the run stuck, is deleted by the next watch)."""
        end = time.monotonic() + self.drop_wait_s
        while True:
            try:
                self.patrols.delete_plan(plan_id)
                return
            except KeyError:  # deleted already (PlanNotFound)
                return
            except PatrolConflict:
                run, left = self.patrols.run(plan_id), end - time.monotonic()
                if run is None or left <= 0 or self._stop.is_set():  # stopping: the service's stop ends the run
                    log.warning("linkage plan %s is still stopping; the next linkage watch deletes it", plan_id)
                    with self._lock:
                        self._left.add(plan_id)
                    return
                run.wait(min(0.5, left))

    def _finished(self, run: PatrolRun, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self._stop.is_set():
            if run.wait(min(0.5, max(0.0, end - time.monotonic()))):
                return True
            if time.monotonic() >= end:
                return False
        return False

    def _attach(self, incident_id: int, cams: list[str]) -> None:
        for cam in cams:
            try:
                jpeg = self.latest_jpeg(cam)
            except KeyError:
                continue
            if jpeg is not None:
                if self.store.attach_snapshot(incident_id, jpeg, at=time.time(), details={"linked_camera": cam, "linked_by": "patrol watch"}):
                    log.info("incident %s: snapshot of camera %s attached (linkage watch)", incident_id, cam)
                return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop waiting for watches (the service stops the patrols) and join the threads."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for th in threads:
            th.join(timeout)

    def reopen(self) -> None:
        self._stop.clear()
