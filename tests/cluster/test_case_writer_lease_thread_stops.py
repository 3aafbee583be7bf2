"""No thread of the case service's cluster side outlives it (docs/cluster.md): the control thread
that renews the case-writer lease ends when the service stops, and a start that fails part-way
(after the lease is taken) leaves neither a thread nor the lease behind. On the shared real
nats-server (127.0.0.1:4222), each test under its own prefix."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridworker.cluster.serve import PLUGINS, CaseWriterLease, ClusterService, RemoteStream, ServeContext
from gridworker.cluster.worker import Stoppable
from gridworker.service import Service
from gridworker.settings import Settings
from tests.cluster.cluster_core_support import FAST
from tests.cluster.cluster_h5_support import SHARED_URL, close_link, link_to
from tests.factories import ParkedCarDetector, wait_until

STOP_S = 5.0
GATE = {"id": "gate", "url": "rtsp://127.0.0.1:9/gate", "watch": "patrol"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'case.db'}"}, cameras=[GATE], evidence={"clips": False},
        cluster={"nats_url": SHARED_URL, "prefix": f"ztl{secrets.token_hex(3)}", **FAST},
    )
    service = Service(settings, ParkedCarDetector(), reader=RemoteStream)
    service.start()
    yield service
    service.stop()


def _refuse(ctx: ServeContext) -> Stoppable:
    raise RuntimeError("this plug-in does not start")


def _lease_holder(service: Service) -> str | None:
    """Who holds the case-writer lease now, read through a link of the test's own."""
    assert service.settings.cluster is not None
    link = link_to(SHARED_URL, service.settings.cluster.prefix)
    try:
        record = CaseWriterLease(link, "reader", "reader", FAST["leader_ttl_s"]).current()
    finally:
        close_link(link)
    return record.worker if record is not None else None


def _left(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def _assert_all_ended(before: set[threading.Thread]) -> None:
    """Every thread started since ``before`` has ended within the stop timeout."""
    deadline = time.monotonic() + STOP_S
    while _left(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _left(before), f"still alive after stop: {_left(before)}"


@pytest.mark.timeout(60)
def test_stop_ends_the_thread_that_renews_the_case_writer_lease(service: Service) -> None:
    before = set(threading.enumerate())
    cluster = ClusterService(service)
    try:
        cluster.start()
        assert cluster.writer is not None and cluster.writer.holding()
        assert "cluster-placement" in _left(before)  # the control thread renews the lease every tick
        wait_until(lambda: cluster.writer is not None and cluster.writer.keep(), timeout=10, interval=0.2)
    finally:
        cluster.stop(STOP_S)
    _assert_all_ended(before)
    assert _lease_holder(service) is None  # given up at once, not left to lapse


@pytest.mark.timeout(60)
def test_a_start_that_fails_after_taking_the_lease_leaves_no_thread_and_no_lease(service: Service) -> None:
    before = set(threading.enumerate())
    cluster = ClusterService(service, plugins=(*PLUGINS, (__name__, "_refuse")))
    with pytest.raises(RuntimeError, match="does not start"):
        cluster.start()
    _assert_all_ended(before)
    assert _lease_holder(service) is None
