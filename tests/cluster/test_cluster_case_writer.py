"""The case service's one incident writer and its upkeep (docs/cluster.md): the case-writer lease
between two serve processes on the real nats-server, watch plans refused in cluster mode, the
applied-id table pruned while the stream never goes quiet, unclaimed clips checked by one query."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gridworker.cluster.applied import AppliedLog
from gridworker.cluster.clips import ClipAttacher
from gridworker.cluster.observations import ObservationConsumer
from gridworker.cluster.serve import CaseWriterTaken, ClusterService, RemoteStream, require_postgres
from gridworker.incidents import IncidentStore
from gridworker.incidents.db import Database
from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.manager import PatrolConflict
from gridworker.service import Service
from gridworker.settings import Settings
from tests.cluster.cluster_core_support import FAST
from tests.cluster.cluster_h5_support import SHARED_URL
from tests.factories import ParkedCarDetector, pg_database, wait_until

DAY_S = 86_400.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'case.db'}"
    return pg_database("gw_case_writer")


# ---------------------------------------------------------------------------- pruning
def test_prune_deletes_every_old_id_in_chunks(db_url: str) -> None:
    applied = AppliedLog(Database.open(db_url))
    applied.record_all([(f"old.{i}", "cam1", 0) for i in range(25)], at=1.0)
    applied.record_all([(f"new.{i}", "cam1", 0) for i in range(3)], at=100.0)
    assert applied.prune(50.0, chunk=10, max_chunks=2) == 20  # bounded work per call; the rest next call
    assert applied.prune(50.0, chunk=10) == 5
    every = [f"old.{i}" for i in range(25)] + [f"new.{i}" for i in range(3)]
    assert applied.seen_among(every) == {f"new.{i}" for i in range(3)}
    assert applied.prune(50.0, chunk=10) == 0


class _Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...

    async def term(self) -> None: ...


class _BusyStream:
    """A pull subscription that always has a message (a camera that never goes quiet)."""

    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self, batch: int, timeout: float) -> list[_Msg]:
        self.fetches += 1
        await asyncio.sleep(0.001)
        return [_Msg(b"{}")]


class _Link:
    config = SimpleNamespace(op_timeout_s=1.0)

    def call(self, fn, timeout=None):
        return asyncio.run(fn())


def test_a_stream_that_never_goes_quiet_is_pruned(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'busy.db'}")
    now = 30 * DAY_S
    AppliedLog(db).record_all([(f"old.{i}", "cam1", 0) for i in range(50)], at=now - 10 * DAY_S)
    consumer = ObservationConsumer(_Link(), SimpleNamespace(), db, clock=lambda: now)  # type: ignore[arg-type]
    stream = _BusyStream()
    thread = threading.Thread(target=consumer._run, args=(stream,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: not AppliedLog(db).seen_among([f"old.{i}" for i in range(50)]), timeout=10, interval=0.05)
    finally:
        consumer.stop(5.0)
        consumer._stop.set()
        thread.join(5.0)
    assert stream.fetches > 0 and consumer.stats.rejected  # every fetch brought a (refused) message: no timeout ever


def test_the_consumer_fetches_nothing_while_it_is_not_the_case_writer(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'gate.db'}")
    writing = threading.Event()
    consumer = ObservationConsumer(_Link(), SimpleNamespace(), db, may_write=writing.is_set)  # type: ignore[arg-type]
    stream = _BusyStream()
    thread = threading.Thread(target=consumer._run, args=(stream,), daemon=True)
    thread.start()
    try:
        time.sleep(0.8)
        assert stream.fetches == 0
        writing.set()
        wait_until(lambda: stream.fetches > 0, timeout=5, interval=0.05)
    finally:
        consumer._stop.set()
        thread.join(5.0)


# ---------------------------------------------------------------------------- clips
def test_an_unclaimed_reference_to_a_recorded_clip_keeps_it(tmp_path: Path) -> None:
    store = IncidentStore(f"sqlite:///{tmp_path / 'clips.db'}")
    root = tmp_path / "clips"
    (root / "cluster" / "w1").mkdir(parents=True)
    recorded = root / "cluster" / "w1" / "w1.ab.3.mp4"
    recorded.write_bytes(b"x" * 10)
    stray = root / "cluster" / "w1" / "w1.ab.4.mp4"
    stray.write_bytes(b"y" * 10)
    inc = store.open(camera_id="cam1", camera_name="", site="", zone_id="gate", rule_id="r", type="intrusion", at=1.0, count=1,
                     summary="", details={}, snapshot=None)
    store.add_clip(inc.id, path=str(recorded.resolve()), size_bytes=10, duration_s=1.0, offset_s=0.0, created_at=1.0)
    attacher = ClipAttacher(store, root)

    def every_clip() -> set[str]:
        raise AssertionError("every clip's path loaded for one reference")

    store.clip_paths = every_clip  # type: ignore[method-assign]  # one query for the path, not all of them
    assert attacher._recorded(recorded.resolve()) and not attacher._recorded(stray.resolve())
    attacher._discard("cluster/w1/w1.ab.3.mp4", 10)
    attacher._discard("cluster/w1/w1.ab.4.mp4", 10)
    assert recorded.exists() and not stray.exists() and attacher.kept == 1


# ---------------------------------------------------------------------------- watch plans
WATCH = {"id": "night-watch", "select": {"camera_ids": ["gate"]}, "mode": "watch"}
GLANCE = {"id": "day-glance", "select": {"camera_ids": ["gate"]}}
GATE = {"id": "gate", "url": "rtsp://127.0.0.1:9/gate", "watch": "patrol"}


def _settings(db: str, prefix: str, plans: list[dict] | None = None) -> Settings:
    return Settings(
        database={"url": db}, cameras=[GATE], cluster={"nats_url": SHARED_URL, "prefix": prefix, **FAST},
        evidence={"clips": False}, patrol_plans=plans or [],
    )


def test_serve_refuses_a_watch_plan_in_its_config() -> None:
    settings = _settings("postgresql+psycopg://u@h/db", "tw", [WATCH])
    refusal = require_postgres(settings)
    assert refusal is not None and "night-watch" in refusal and "mode: watch" in refusal
    assert require_postgres(_settings("postgresql+psycopg://u@h/db", "tw", [GLANCE])) is None


# ---------------------------------------------------------------------------- two serves
def _serve(settings: Settings) -> tuple[Service, ClusterService]:
    service = Service(settings, ParkedCarDetector(), reader=RemoteStream)
    service.start()
    return service, ClusterService(service)


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_second_serve_does_not_become_a_second_incident_writer() -> None:
    settings = _settings(pg_database("gw_case_writer_two"), f"ztc{secrets.token_hex(3)}")
    first_service, first = _serve(settings)
    second_service, second = _serve(settings)
    stopped: list[ClusterService] = []
    try:
        first.start()
        stopped.append(first)
        assert first.writer is not None and first.writer.holding()
        began = time.monotonic()
        with pytest.raises(CaseWriterTaken, match=first.writer.holder):
            second.start()
        assert time.monotonic() - began >= FAST["leader_ttl_s"]  # it waited for a lapsed holder first
        first.writer.keep()  # renewed: still the writer
        assert first.writer.holding()
        first.stop()  # gives the lease up: the next serve takes it at once
        stopped.remove(first)
        third = ClusterService(second_service)
        third.start()
        stopped.append(third)
        assert third.writer is not None and third.writer.holding()
    finally:
        for cluster in stopped:
            cluster.stop()
        first_service.stop()
        second_service.stop()


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_watch_plan_is_refused_when_stored_or_started_in_cluster_mode() -> None:
    settings = _settings(pg_database("gw_case_writer_watch"), f"ztc{secrets.token_hex(3)}", [GLANCE])
    service, cluster = _serve(settings)
    with pytest.raises(ValueError, match="mode: watch"):  # in the config: refused at start
        ClusterService(Service(_settings(settings.database.url, "ztx", [WATCH]), ParkedCarDetector())).start()
    try:
        cluster.start()
        with pytest.raises(ValueError, match="mode: watch"):
            service.patrol.put_plan(PatrolPlan.model_validate(WATCH))
        assert service.patrol.put_plan(PatrolPlan.model_validate({**GLANCE, "id": "another"}))
        service.patrol._plans["night-watch"] = PatrolPlan.model_validate(WATCH)  # as if saved by an earlier `gridworker run`
        with pytest.raises(PatrolConflict, match="mode: watch"):
            service.patrol.start("night-watch")
    finally:
        cluster.stop()
        service.stop()
