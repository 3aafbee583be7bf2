"""A camera DELETE while the database fails (issue 10's fail-closed rule: nothing already
accepted is lost, and nothing keeps running for a camera that is gone): the reader stops
whatever fails, the saved row left behind is listed and removed by a DELETE again, and the
open incidents left behind close at the next start. Real SQLite, a real reader thread."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from gridworker.incidents import IncidentStore
from gridworker.incidents.store import CameraRow, SavedConfigs
from gridworker.service import CameraNotFound, Service
from gridworker.settings import CameraConfig, Settings
from tests.factories import ParkedCarDetector, free_port, wait_until


class FlakyDeletes(SavedConfigs[CameraRow]):
    """Camera rows whose next ``failures`` deletes fail as a locked database does."""

    failures = 0

    def delete(self, key: str) -> bool:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().delete(key)


class FlakyStore(IncidentStore):
    def __init__(self, db: str) -> None:
        super().__init__(db)
        self.cameras = FlakyDeletes(self.db, CameraRow)


def _reader_alive(cam_id: str) -> bool:
    return any(t.name == f"camera-{cam_id}" and t.is_alive() for t in threading.enumerate())


def test_a_delete_that_fails_in_the_database_still_stops_the_camera_and_can_be_repeated(tmp_path, monkeypatch):
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'faults.db'}"}, evidence={"clips": False})
    store = FlakyStore(settings.database.url)
    service = Service(settings, ParkedCarDetector(), store=store)
    service.start()
    try:
        service.add_camera(CameraConfig(id="gate", url=f"rtsp://127.0.0.1:{free_port()}/x"))  # nobody there: it retries
        wait_until(lambda: _reader_alive("gate"), timeout=10)

        def closing_fails(camera_id: str, now: float) -> None:
            raise sqlite3.OperationalError("database is locked")

        # both writes of the removal fail: the incidents' close (a stand-in for the store's,
        # whose real failure the manager test covers) and the row's delete
        monkeypatch.setattr(service.incidents, "close_camera", closing_fails)
        store.cameras.failures = 1
        with pytest.raises(sqlite3.OperationalError):
            service.remove_camera("gate")
        wait_until(lambda: not _reader_alive("gate"), timeout=10)  # the reader stopped all the same
        assert [v.config.id for v in service.cameras()] == []
        assert "DELETE it again" in service.registry.not_started()["gate"]
        assert [k for k, _ in store.cameras.all()] == ["gate"]  # the row is still there...

        service.remove_camera("gate")  # ...and a DELETE again removes it
        assert store.cameras.all() == [] and service.registry.not_started() == {}
        with pytest.raises(CameraNotFound):
            service.remove_camera("gate")
    finally:
        service.stop()
        store.close()


def test_one_incident_failing_to_close_does_not_keep_the_cameras_others_open(tmp_path):
    """``close_camera`` tries every open incident of the camera and raises the first error;
    the one that failed stays open in memory and in the database (the next start closes it)."""
    from gridworker.incidents.manager import CameraInfo, IncidentManager  # noqa: PLC0415

    class OneCloseFails(IncidentStore):
        fail_id: int | None = None

        def close_incident(self, incident_id: int, *, at: float) -> None:
            if incident_id == self.fail_id:
                raise sqlite3.OperationalError("disk I/O error")
            super().close_incident(incident_id, at=at)

    store = OneCloseFails(f"sqlite:///{tmp_path / 'close.db'}")
    try:
        manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0)
        ids = [manager.device_report(_alarm(alarm)).id for alarm in ("smoke", "heat")]
        assert manager.open_count("iot:brk-1") == 2
        store.fail_id = ids[0]
        with pytest.raises(sqlite3.OperationalError):
            manager.close_camera("iot:brk-1", time.time())
        status = {i: store.get(i).status for i in ids}
        assert status == {ids[0]: "open", ids[1]: "closed"}
        assert manager.open_count("iot:brk-1") == 1
    finally:
        store.close()


def _alarm(alarm: str):  # noqa: ANN202
    from gridworker.incidents.devices import DeviceReport  # noqa: PLC0415
    from gridworker.vision.rules.base import IncidentKind  # noqa: PLC0415

    kind = IncidentKind(f"iot_breaker_{alarm}", alarm, f"breaker {alarm}", "public_safety")
    return DeviceReport("iot:brk-1", "Block 3 breaker", "estate-7", "smart_breaker", alarm, True, kind=kind, at=time.time())
