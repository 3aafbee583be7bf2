"""Observations worker -> case service over the real nats-server (issue 12)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.cluster_h5_support import NatsServer, Scripted, close_link, link_to, manager_on, obs_link  # noqa: F401 - obs_link is a fixture
from tests.factories import wait_until
from gridworker.cluster.observations import Decision, ObservationConsumer, ObservationPublisher, ensure_obs_stream, obs_subject
from gridworker.cluster.wire import encode_frame


@pytest.fixture
def link(obs_link):
    return obs_link


def _consumer(link, manager, store, **kw):
    consumer = ObservationConsumer(link, manager, store.db, **kw)
    consumer.start()
    return consumer


def test_observations_open_one_incident_and_duplicates_are_suppressed(link, tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    sink = ObservationPublisher(link, "w1", lambda cam: 11)
    cam = Scripted("cam1")
    for _ in range(5):
        sink.observe(cam.frame(True))
    sink.close(10)
    assert sink.stats.published == 5 and sink.stats.images == 1  # the picture only with the newly active key
    # the same observation sent again (a worker retrying after a lost publish ack): the broker keeps one
    data = encode_frame(cam.frame(True), obs_id="w1.retry.1", worker="w1", token=11, visit=None, sent_at=time.time())
    for _ in range(3):
        link.call(lambda: link.js.publish(obs_subject(link), data, headers={"Nats-Msg-Id": "w1.retry.1"}))
    consumer = _consumer(link, manager, store)
    try:
        wait_until(lambda: consumer.stats.applied == 6, timeout=20)
    finally:
        consumer.stop()
    incidents = store.open_incidents()
    assert len(incidents) == 1 and incidents[0].camera_id == "cam1"
    snapshot = store.snapshot(incidents[0].id)
    assert snapshot is not None and snapshot[:2] == b"\xff\xd8"  # the worker's frame, drawn on by the case service
    # applied again (redelivered after the case service died before its ack): skipped
    assert consumer.handle(data) == Decision.DUPLICATE
    assert len(store.open_incidents()) == 1


def test_stale_lease_token_is_refused_across_a_consumer_restart(link, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    manager, store = manager_on(url)
    consumer = ObservationConsumer(link, manager, store.db)
    cam = Scripted("cam1")
    new_owner = encode_frame(cam.frame(True), obs_id="w2.a.1", worker="w2", token=20, visit=None, sent_at=time.time())
    assert consumer.handle(new_owner) == Decision.APPLIED
    stale = encode_frame(cam.frame(False), obs_id="w1.a.9", worker="w1", token=12, visit=None, sent_at=time.time())
    assert consumer.handle(stale) == Decision.REJECTED
    assert consumer.stats.rejected == {"stale lease": 1}
    # a restarted case service still knows the fence (stored with the applied ids)
    manager2, store2 = manager_on(url)
    again = ObservationConsumer(link, manager2, store2.db)
    assert again.handle(encode_frame(cam.frame(False), obs_id="w1.a.10", worker="w1", token=12, visit=None, sent_at=time.time())) == Decision.REJECTED
    # the current lease's token (read from the leases bucket) fences too, before any observation of the new owner
    fenced = ObservationConsumer(link, manager2, store2.db, lease_token=lambda cam_id: 30)
    assert fenced.handle(encode_frame(cam.frame(True), obs_id="w2.a.2", worker="w2", token=20, visit=None, sent_at=time.time())) == Decision.REJECTED
    assert len(store.open_incidents()) == 1


def test_case_service_restart_loses_nothing_and_applies_once(link, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    manager, store = manager_on(url)
    link.call(lambda: ensure_obs_stream(link))
    sink = ObservationPublisher(link, "w1", lambda cam: 3)
    cams = [Scripted(f"cam{i}") for i in range(4)]
    for _ in range(3):
        for cam in cams:
            sink.observe(cam.frame(True))
    sink.close(10)
    # the case service takes one message, commits it, and dies before acking it
    from nats.js.api import AckPolicy, ConsumerConfig

    async def take():
        sub = await link.js.pull_subscribe(
            obs_subject(link), durable="cases", stream=link.name("obs"), config=ConsumerConfig(durable_name="cases", ack_policy=AckPolicy.EXPLICIT, ack_wait=2.0)
        )
        return (await sub.fetch(1, timeout=2))[0]

    first = link.call(take, timeout=5)
    assert ObservationConsumer(link, manager, store.db).handle(first.data) == Decision.APPLIED
    time.sleep(2.5)  # its ack_wait passes: the broker redelivers it
    manager2, store2 = manager_on(url)  # a new case service on the same database
    manager2.adopt_open([(c.camera_id, "gate", "intrusion") for c in cams], time.time())
    consumer = _consumer(link, manager2, store2)
    try:
        wait_until(lambda: consumer.stats.applied + consumer.stats.duplicates == 12, timeout=20)
    finally:
        consumer.stop()
    assert consumer.stats.duplicates == 1 and consumer.stats.applied == 11
    open_ = store2.open_incidents()
    assert sorted(i.camera_id for i in open_) == [c.camera_id for c in cams]  # one each, none twice


def test_nats_restart_loses_no_observation(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js")
    server.start()
    lk = link_to(server.url)
    lk.call(lambda: ensure_obs_stream(lk))
    try:
        manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
        consumer = _consumer(lk, manager, store)
        sink = ObservationPublisher(lk, "w1", lambda cam: 4)
        cam = Scripted("cam1")
        sent = 0
        for _ in range(10):
            sink.observe(cam.frame(True))
            sent += 1
        wait_until(lambda: consumer.stats.applied == 10, timeout=20)
        server.stop()
        for _ in range(20):  # observations made while NATS is down wait in the publisher's queue
            sink.observe(cam.frame(sent % 7 != 0))
            sent += 1
            time.sleep(0.02)
        assert sink.pending > 0
        server.start()  # same port, same store: the stream and the durable consumer come back
        wait_until(lambda: consumer.stats.applied >= sent, timeout=40)  # (a duplicate counts apart, never as one applied)
        sink.close(10)
        consumer.stop()
        assert consumer.stats.applied == sent and sink.stats.dropped_full == 0
        assert consumer.stats.rejected == {}
    finally:
        close_link(lk)
        server.stop()


def test_a_camera_back_on_the_worker_sends_its_picture_again(link) -> None:
    """The camera left this worker while its rule held (moved to another, ``forget``) and comes
    back with the rule holding again: the case side opens a new incident, which needs the
    picture. Before, the publisher still remembered the old active keys and sent none."""
    sink = ObservationPublisher(link, "w1", lambda cam: 11)
    cam = Scripted("cam1")
    try:
        sink.observe(cam.frame(True))
        sink.observe(cam.frame(True))
        sink.forget("cam1")
        sink.forget("never-here")  # nothing known of it: nothing happens
        sink.observe(cam.frame(True))
    finally:
        sink.close(10)
    assert sink.stats.published == 3 and sink.stats.images == 2
