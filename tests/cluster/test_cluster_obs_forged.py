"""Forged observations on the real stream: a lease token no lease issued, a sender that is not the
lease holder, a patrol visit nobody queued, a clip reference that would delete another incident's
clip. Each is refused (or deferred, then refused), counted, and what was accepted stays."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.cluster.cluster_h5_support import Scripted, manager_on, obs_link  # noqa: F401 - obs_link is a fixture
from tests.factories import wait_until
from gridworker.cluster.applied import AppliedLog
from gridworker.cluster.clips import ClipAttacher, clip_relpath
from gridworker.cluster.leases import LeaseRecord, claim
from gridworker.cluster.link import NatsLink
from gridworker.cluster.observations import Decision, ObservationConsumer, obs_subject, read_leases
from gridworker.cluster.visits import QueueFeed, VisitLedger, VisitTask
from gridworker.cluster.wire import encode_clip, encode_frame


@pytest.fixture
def link(obs_link):
    yield obs_link
    try:
        obs_link.call(lambda: obs_link.js.delete_key_value(obs_link.name("leases")))
    except Exception:
        pass


def _leases(link: NatsLink):
    def read(cameras: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return link.call(lambda: read_leases(link.buckets.leases, cameras))

    return read


def _claim(link: NatsLink, camera_id: str, worker: str) -> int:
    got = link.call(lambda: claim(link.buckets.leases, camera_id, worker, f"{worker}-i"))
    assert got is not None
    return got[0]


def _publish(link: NatsLink, msg_id: str, data: bytes) -> None:
    link.call(lambda: link.js.publish(obs_subject(link), data, headers={"Nats-Msg-Id": msg_id}))


def _run_until(consumer: ObservationConsumer, link: NatsLink, done: Callable[[], bool]) -> None:
    """Consume the stream until ``done`` and every message is settled (none left to redeliver)."""
    consumer.start()
    try:
        wait_until(done, timeout=20)
        wait_until(lambda: link.call(lambda: link.js.stream_info(link.name("obs"))).state.messages == 0, timeout=10)
    finally:
        consumer.stop()


def test_a_token_no_lease_issued_neither_opens_an_incident_nor_raises_the_fence(link, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    manager, store = manager_on(url)
    token = _claim(link, "cam1", "w1")
    cam = Scripted("cam1")

    def frame(obs_id: str, worker: str, tok: int, person: bool) -> None:
        _publish(link, obs_id, encode_frame(cam.frame(person), obs_id=obs_id, worker=worker, token=tok, visit=None, sent_at=time.time()))

    frame("w1.a.1", "w1", token, False)
    frame("x.1", "nobody", 2**62, True)  # above every lease: deferred, then refused
    frame("x.2", "nobody", token, True)  # the lease's token from another sender
    frame("x.3", "w2", token + 1, True)  # one above the lease (a claim not made): deferred, then refused
    consumer = ObservationConsumer(link, manager, store.db, known_camera=lambda c: c == "cam1", leases=_leases(link), defer_s=0.2, defer_for_s=1.0)
    _run_until(consumer, link, lambda: consumer.stats.applied == 1 and sum(consumer.stats.rejected.values()) == 3)
    assert consumer.stats.rejected == {"lease token ahead of the lease": 2, "not the lease holder": 1}
    assert consumer.stats.deferred >= 2
    assert store.open_incidents() == [] and AppliedLog(store.db).fence("cam1") == token
    # the real owner is still heard, and so is the next owner, by a restarted case service too
    manager2, store2 = manager_on(url)
    again = ObservationConsumer(link, manager2, store2.db, leases=_leases(link))
    live = encode_frame(cam.frame(True), obs_id="w1.a.2", worker="w1", token=token, visit=None, sent_at=time.time())
    assert again.handle(live) == Decision.APPLIED and len(store2.open_incidents()) == 1
    link.call(lambda: link.buckets.leases.delete("cam1"))
    nxt = _claim(link, "cam1", "w2")
    handed = encode_frame(cam.frame(True), obs_id="w2.b.1", worker="w2", token=nxt, visit=None, sent_at=time.time())
    assert again.handle(handed) == Decision.APPLIED and AppliedLog(store2.db).fence("cam1") == nxt


def test_a_visit_nobody_queued_is_refused(link, tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    feed = QueueFeed(link, lambda: [], wait_s=0.2)
    feed.start()
    task = VisitTask(plan_id="p", cycle="r-1", camera_id="cam1")
    try:  # no worker: the visit times out here, and stays known for its late observations
        assert feed.visit(task, threading.Event(), 0.2).error_kind == "error"
    finally:
        feed.stop()
    ledger = feed.ledger
    assert ledger.issued(task.visit_id, "cam1") and not ledger.issued(task.visit_id, "cam2") and not ledger.issued("p:r-2:cam1", "cam1")
    cam, other = Scripted("cam1"), Scripted("cam2")

    def visit_frame(obs_id: str, visit: str, scripted: Scripted) -> None:
        _publish(link, obs_id, encode_frame(scripted.frame(True), obs_id=obs_id, worker="nobody", token=0, visit=visit, sent_at=time.time()))

    for i in range(3):
        visit_frame(f"made-up:{i}:cam1.1", f"made-up:{i}:cam1", cam)
    visit_frame("p:r-1:cam1.x", "p:r-1:cam1", other)  # a real visit's id for another camera
    visit_frame(f"{task.visit_id}.1", task.visit_id, cam)
    consumer = ObservationConsumer(
        link, manager, store.db, known_camera=lambda c: c in ("cam1", "cam2"), visit_issued=ledger.issued, defer_s=0.2, defer_for_s=1.0
    )
    _run_until(consumer, link, lambda: consumer.stats.applied == 1 and sum(consumer.stats.rejected.values()) == 4)
    assert consumer.stats.rejected == {"unknown visit": 4} and consumer.stats.deferred >= 3  # the made-up ids waited first
    assert [(i.camera_id, i.type) for i in store.open_incidents()] == [("cam1", "intrusion")]
    # a visit this service learns of later (another serve process queued it): waits, then is applied
    late = VisitTask(plan_id="p", cycle="r-2", camera_id="cam1")
    raw = encode_frame(cam.frame(False), obs_id=f"{late.visit_id}.1", worker="w1", token=0, visit=late.visit_id, sent_at=time.time())
    assert consumer.handle(raw) == Decision.DEFERRED
    ledger.issue(late)
    assert consumer.handle(raw) == Decision.APPLIED
    # a ledger forgets a finished visit after keep_s, and never knows one it did not queue
    clock = [0.0]
    short = VisitLedger(keep_s=10.0, clock=lambda: clock[0])
    short.issue(task)
    clock[0] = 100.0
    assert short.issued(task.visit_id, "cam1")  # still waiting: known
    short.finish(task.visit_id)
    clock[0] = 111.0
    assert not short.issued(task.visit_id, "cam1")


def test_a_forged_clip_reference_never_deletes_a_recorded_clip(link, tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    root = tmp_path / "clips"
    attacher = ClipAttacher(store, root)
    token = _claim(link, "cam1", "w1")
    consumer = ObservationConsumer(
        link, manager, store.db, known_camera=lambda c: c == "cam1", on_clip=attacher.attach, leases=_leases(link), defer_s=0.2, defer_for_s=1.0
    )
    cam = Scripted("cam1")
    first = cam.frame(True)
    assert consumer.handle(encode_frame(first, obs_id="w1.f1", worker="w1", token=token, visit=None, sent_at=time.time())) == Decision.APPLIED
    (inc,) = store.open_incidents()
    rel = clip_relpath("w1", "w1.f1")
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(b"\0" * 1234)

    def ref_to_file(msg_id: str, worker: str, tok: int, opened_at: float, frame_seq: int) -> bytes:
        return encode_clip("cam1", obs_id=msg_id, worker=worker, token=tok, sent_at=time.time(), of="w1.f1", opened_at=opened_at,
                           frame_seq=frame_seq, path=rel, size_bytes=1234, duration_s=3.0, offset_s=1.0)

    legit = ref_to_file("w1.f1.clip", "w1", token, first.frame.ts, first.frame.seq)
    assert consumer.handle(legit) == Decision.APPLIED
    recorded = store.clip(inc.id)
    assert recorded is not None and Path(recorded.path).exists()
    # forged references naming the recorded file, each claiming a time that matches no incident
    forged = {
        "evil.1": ("w1", 1),  # an old token of the file's worker (passes the fence as its frame's clip): unclaimed
        "evil.2": ("w1", 2**62),  # a token no lease issued: deferred, then refused
        "evil.3": ("w1", token + 1),
    }
    for msg_id, (worker, tok) in forged.items():
        _publish(link, msg_id, ref_to_file(msg_id, worker, tok, 1.0, 0))
    _run_until(consumer, link, lambda: attacher.unclaimed == 1 and sum(consumer.stats.rejected.values()) == 2)
    assert consumer.stats.rejected == {"lease token ahead of the lease": 2}
    assert attacher.kept == 1 and Path(recorded.path).exists() and store.clip(inc.id) == recorded
    # the lease's token from a sender that does not hold it: refused before the attacher sees it
    holder = encode_clip("cam1", obs_id="evil.4", worker="w2", token=token, sent_at=time.time(), opened_at=1.0, frame_seq=0,
                         of="w2.f1", path=clip_relpath("w2", "w2.f1"), size_bytes=1, duration_s=1.0, offset_s=0.0)
    assert consumer.handle(holder) == Decision.REJECTED and consumer.stats.rejected["not the lease holder"] == 1
    # an unclaimed clip no record points at is still cleaned up
    stray = cam.frame(True)
    assert consumer.handle(encode_frame(stray, obs_id="w1.f2", worker="w1", token=token, visit=None, sent_at=time.time())) == Decision.APPLIED
    (root / clip_relpath("w1", "w1.f2")).write_bytes(b"d" * 3)
    ref = encode_clip("cam1", obs_id="w1.f2.clip", worker="w1", token=token, sent_at=time.time(), opened_at=stray.frame.ts,
                      frame_seq=stray.frame.seq, of="w1.f2", path=clip_relpath("w1", "w1.f2"), size_bytes=3, duration_s=1.0, offset_s=0.0)
    assert consumer.handle(ref) == Decision.APPLIED and not (root / clip_relpath("w1", "w1.f2")).exists()
