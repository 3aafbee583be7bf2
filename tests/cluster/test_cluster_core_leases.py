"""Leases on the real nats-server (the test's own): claim, renew, lapse, fencing tokens; the
worker-local fence, the bridge and the config, without NATS."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pydantic import ValidationError

from tests.cluster.cluster_h5_support import NatsServer
from gridworker.cluster.bridge import AsyncBridge, BridgeClosed, BridgeTimeout
from gridworker.cluster.config import ClusterConfig
from gridworker.cluster.leases import LeaseLost, LeaseRecord, LeaseTable, claim, read_lease, release, renew
from gridworker.cluster.link import NatsLink
from gridworker.cluster.membership import KvMirror, LeaderElection, WorkerInfo, list_workers, read_workers


@pytest.fixture
def link(tmp_path):
    nats = NatsServer(tmp_path / "js")
    nats.start()
    bridge = AsyncBridge()
    bridge.start()
    cfg = ClusterConfig(nats_url=nats.url, lease_ttl_s=2.0, renew_interval_s=0.5, heartbeat_ttl_s=2.0, leader_ttl_s=2.0, op_timeout_s=1.5)
    link = NatsLink(cfg, bridge)
    link.connect()
    yield link
    link.close()
    bridge.stop()
    nats.stop()


def test_claim_renew_lapse_and_tokens_only_grow(link):
    kv = link.buckets.leases
    a = link.call(lambda: claim(kv, "gate", "w1", "i1"))
    assert a is not None
    token_a, rev_a = a
    assert link.call(lambda: claim(kv, "gate", "w2", "i2")) is None  # held: a second claim fails
    table = LeaseTable(2.0)
    table.hold("gate", token=token_a, revision=rev_a, sent_at=time.monotonic())
    rev = link.call(lambda: renew(kv, table.get("gate"), "w1", "i1"))
    assert rev > rev_a
    record = link.call(lambda: read_lease(kv, "gate"))
    assert (record.worker, record.token, record.revision) == ("w1", token_a, rev)  # the token survives renewals
    stale = table.get("gate")  # the revision before the renewal: a renewal with it is refused
    with pytest.raises(LeaseLost):
        link.call(lambda: renew(kv, stale, "w1", "i1"))
    table.hold("gate", token=token_a, revision=rev, sent_at=time.monotonic())
    time.sleep(3.2)  # no renewal for longer than the bucket's max_age: the lease is gone
    assert link.call(lambda: read_lease(kv, "gate")) is None
    b = link.call(lambda: claim(kv, "gate", "w2", "i2"))
    assert b is not None and b[0] > token_a  # the fencing token of the new owner is greater
    with pytest.raises(LeaseLost):  # the old owner, waking up, is refused
        link.call(lambda: renew(kv, table.get("gate"), "w1", "i1"))
    assert table.token("gate") is None  # and its own fence already said so


def test_release_lets_another_claim_at_once_and_restarted_worker_takes_over(link):
    kv = link.buckets.leases
    token, rev = link.call(lambda: claim(kv, "cam", "w1", "i1"))
    table = LeaseTable(2.0)
    table.hold("cam", token=token, revision=rev, sent_at=time.monotonic())
    # the same worker id, restarted (a new instance), takes its own lease over with a new token
    again = link.call(lambda: claim(kv, "cam", "w1", "i2"))
    assert again is not None and again[0] > token
    link.call(lambda: release(kv, table.get("cam")))  # a stale release changes nothing
    assert link.call(lambda: read_lease(kv, "cam")).instance == "i2"
    table.hold("cam", token=again[0], revision=again[1], sent_at=time.monotonic())
    link.call(lambda: release(kv, table.get("cam")))
    got = link.call(lambda: claim(kv, "cam", "w2", "i3"))
    assert got is not None and got[0] > again[0]


def test_one_leader_and_heartbeats_age_out(link):
    a = LeaderElection(link, "serve-a", 2.0)
    b = LeaderElection(link, "serve-b", 2.0)
    assert a.tick() is True and b.tick() is False
    assert a.tick() is True and a.leading
    a.resign()
    assert b.tick() is True  # resigned: the other leads at once
    info = WorkerInfo(worker="w1", instance="x", started_at=1.0, at=2.0, capacity=5, cameras=["c1"])
    link.call(lambda: link.buckets.workers.put("w1", info.model_dump_json().encode()))
    link.call(lambda: link.buckets.workers.put("w2", b"not json"))  # a hostile heartbeat is ignored
    assert [w.worker for w in link.call(lambda: list_workers(link.buckets.workers))] == ["w1"]
    time.sleep(3.2)
    assert link.call(lambda: list_workers(link.buckets.workers)) == []


def test_a_worker_read_directly_is_there_until_its_heartbeat_ages_out(link):
    kv = link.buckets.workers
    for wid in ("w1", "w2"):
        info = WorkerInfo(worker=wid, instance="x", started_at=1.0, at=2.0, capacity=5)
        link.call(lambda: kv.put(wid, info.model_dump_json().encode()))
    link.call(lambda: kv.put("w3", b"not json"))
    # what the placement leader asks about the workers a listing missed: only those that stand
    assert [w.worker for w in link.call(lambda: read_workers(kv, ["w2", "w3", "w9"]))] == ["w2"]
    keep = WorkerInfo(worker="w1", instance="x", started_at=1.0, at=3.0, capacity=5).model_dump_json().encode()
    deadline = time.monotonic() + 3.2
    while time.monotonic() < deadline:  # w1 keeps its heartbeat up, w2 stops
        link.call(lambda: kv.put("w1", keep))
        time.sleep(0.4)
    assert [w.worker for w in link.call(lambda: read_workers(kv, ["w1", "w2"]))] == ["w1"]


def test_mirror_reports_each_change_of_the_placement(link):
    changes = threading.Semaphore(0)
    mirror = KvMirror(link, lambda b: b.assign, on_change=changes.release)
    task = link.bridge.spawn(mirror.run)
    try:
        assert mirror.wait_ready(5.0)
        assert changes.acquire(timeout=5.0)  # the initial copy
        link.call(lambda: link.buckets.assign.put("cam1", b"w2"))
        assert changes.acquire(timeout=5.0)  # a worker learns of its new camera without waiting for a tick
        assert mirror.snapshot() == {"cam1": b"w2"}
        link.call(lambda: link.buckets.assign.delete("cam1"))
        assert changes.acquire(timeout=5.0)
        assert mirror.snapshot() == {}
    finally:
        task.cancel()


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 2000, b"[1]", b'{"worker": 1, "instance": "i"}', b'{"worker": "w", "instance": "i", "token": -1}', b"\xff\xfe"],
)
def test_hostile_lease_values_are_not_leases(value):
    assert LeaseRecord.parse("cam", value, 5) is None


def test_lease_table_fences_at_the_deadline():
    now = [100.0]
    table = LeaseTable(4.0, margin_s=0.5, clock=lambda: now[0])
    table.hold("c", token=9, revision=10, sent_at=100.0)
    now[0] = 103.4
    assert table.token("c") == 9 and table.lapsed() == []
    now[0] = 103.5  # sent + TTL - margin: it may have lapsed on the server
    assert table.token("c") is None and table.lapsed() == ["c"]
    assert table.drop("c").token == 9 and table.token("c") is None


def test_bridge_calls_time_out_and_refuse_when_stopped():
    bridge = AsyncBridge()
    with pytest.raises(BridgeClosed):
        bridge.call(lambda: asyncio.sleep(0), timeout=1)
    others = {t for t in threading.enumerate() if t.name == "nats-bridge"}  # an earlier test's, not this bridge's
    bridge.start()
    assert len({t for t in threading.enumerate() if t.name == "nats-bridge"} - others) == 1
    assert bridge.call(lambda: asyncio.sleep(0, result=7), timeout=1) == 7
    started = time.monotonic()
    with pytest.raises(BridgeTimeout):
        bridge.call(lambda: asyncio.sleep(30), timeout=0.2)
    assert time.monotonic() - started < 5
    with pytest.raises(ZeroDivisionError):
        bridge.call(lambda: _boom(), timeout=1)
    long = bridge.spawn(lambda: asyncio.sleep(60))
    bridge.stop(timeout=5)
    assert long.cancelled() or long.done()
    assert not {t for t in threading.enumerate() if t.name == "nats-bridge"} - others
    with pytest.raises(BridgeClosed):
        bridge.call(lambda: asyncio.sleep(0), timeout=1)


async def _boom() -> None:
    raise ZeroDivisionError


@pytest.mark.parametrize(
    "fields",
    [
        {"nats_url": "http://x:4222"},
        {"nats_url": "nats://"},
        {"lease_ttl_s": 3.0, "renew_interval_s": 2.0},
        {"worker_id": "bad id!"},
        {"prefix": "a.b"},
        {"op_timeout_s": 12.0},
        {"unknown": 1},
    ],
)
def test_bad_cluster_config_is_refused(fields):
    with pytest.raises(ValidationError):
        ClusterConfig(**fields)


def test_public_url_hides_credentials():
    assert ClusterConfig(nats_url="nats://user:secret@10.0.0.2:4333").public_url() == "nats://10.0.0.2:4333"
