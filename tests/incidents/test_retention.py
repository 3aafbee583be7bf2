"""Retention (issue 10, item 3): clips by age and by total size (real files), settled outbox
messages and old audit rows, on SQLite and PostgreSQL; the API after a clip is pruned; the
service's retention thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gridworker.api import create_app
from gridworker.api.deps import CaseParts
from gridworker.incidents import IncidentStore
from gridworker.delivery.outbox import DEAD, DELIVERED, PENDING, Outbox, Route
from gridworker.incidents.retention import (
    DAY_S,
    MissingClips,
    RetentionConfig,
    RetentionWorker,
    prune_audit,
    prune_clips,
    prune_outbox,
    run_retention,
)
from gridworker.cases.workflow import ADMIN, Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client, wait_until

NOW = 1_900_000_000.0
MB = 1_000_000


# ``store``: an IncidentStore on SQLite and on PostgreSQL (tests/incidents/conftest.py)


def _open(store: IncidentStore, at: float):
    return store.open(
        camera_id="cam-1", camera_name="Gate", site="market", zone_id="kerb", rule_id="r1", type="illegal_parking",
        at=at, count=1, summary="parked", details={}, snapshot=None,
    )


def _clip(store: IncidentStore, clips_dir: Path, age_days: float, size: int) -> int:
    """An incident with a clip file of ``size`` bytes recorded ``age_days`` before NOW."""
    at = NOW - age_days * DAY_S
    inc = _open(store, at)
    clips_dir.mkdir(exist_ok=True)
    path = clips_dir / f"{inc.id}.mp4"
    path.write_bytes(os.urandom(size))
    store.add_clip(inc.id, path=str(path), size_bytes=size, duration_s=10.0, offset_s=5.0, created_at=at + 10)
    return inc.id


# ---------------------------------------------------------------------------------- clips
def test_clips_older_than_the_age_go_and_their_incidents_say_so(store, tmp_path):
    clips = tmp_path / "clips"
    old, mid, new = _clip(store, clips, 40, 1000), _clip(store, clips, 29, 1000), _clip(store, clips, 0.1, 1000)
    expired, over, freed, stray = prune_clips(store, now=NOW, max_age_s=30 * DAY_S, max_total_bytes=None)
    assert (expired, over, freed, stray) == (1, 0, 1000, 0)
    assert not (clips / f"{old}.mp4").exists() and store.clip(old) is None
    inc = store.get(old)
    assert inc is not None and not inc.has_clip and inc.clip_missing == "deleted by retention: older than 30 days"
    for kept in (mid, new):
        assert (clips / f"{kept}.mp4").exists() and store.get(kept).has_clip and store.get(kept).clip_missing is None
    # listing says the same
    from gridworker.incidents import IncidentQuery

    listed = {i.id: i for i in store.list(IncidentQuery())[0]}
    assert listed[old].clip_missing.startswith("deleted by retention") and listed[new].clip_missing is None
    # a second pass finds nothing more
    assert prune_clips(store, now=NOW, max_age_s=30 * DAY_S, max_total_bytes=None) == (0, 0, 0, 0)


def test_clips_over_the_total_size_go_oldest_first(store, tmp_path):
    clips = tmp_path / "clips"
    ids = [_clip(store, clips, age, MB) for age in (5, 4, 3, 2, 1)]
    assert store.clip_bytes() == 5 * MB
    expired, over, freed, _ = prune_clips(store, now=NOW, max_age_s=30 * DAY_S, max_total_bytes=int(2.5 * MB))
    assert (expired, over, freed) == (0, 3, 3 * MB)
    assert store.clip_bytes() == 2 * MB
    assert [store.clip(i) is not None for i in ids] == [False, False, False, True, True]
    assert sorted(p.name for p in clips.iterdir()) == sorted(f"{i}.mp4" for i in ids[3:])
    assert "over 2.5 MB in total" in store.get(ids[0]).clip_missing


def test_a_clip_whose_file_is_already_gone_is_still_pruned(store, tmp_path):
    clips = tmp_path / "clips"
    gone = _clip(store, clips, 40, 10)
    (clips / f"{gone}.mp4").unlink()
    assert prune_clips(store, now=NOW, max_age_s=30 * DAY_S, max_total_bytes=None)[0] == 1
    assert store.clip(gone) is None and store.get(gone).clip_missing


def test_a_clip_file_deleted_outside_the_service_does_not_cost_a_real_clip(store, tmp_path):
    """Rows whose file someone deleted by hand no longer count against the size cap: the disk
    holds 2 MB under a 2 MB cap, so no real clip goes; the ghost row is removed with its reason
    once its file was missing on two passes."""
    clips = tmp_path / "clips"
    oldest, mid, newest = (_clip(store, clips, age, MB) for age in (3, 2, 1))
    (clips / f"{newest}.mp4").unlink()
    missing = MissingClips()
    for first in (True, False):
        expired, over, freed, _ = prune_clips(store, now=NOW, max_age_s=None, max_total_bytes=2 * MB, clips_dir=clips, missing=missing)
        assert (expired, over, freed) == (0, 0, 0)
        assert (clips / f"{oldest}.mp4").exists() and store.clip(oldest) is not None and store.clip(mid) is not None
        assert (store.clip(newest) is not None) is first
    assert "deleted outside the service" in store.get(newest).clip_missing
    assert store.clip_bytes() == 2 * MB


def test_stray_files_in_the_clip_folder(store, tmp_path):
    """Clip files no row names and leftovers of interrupted writes go once an hour old; a
    named clip, young files and anything not named like a clip stay."""
    clips = tmp_path / "clips"
    named = _clip(store, clips, 1, 10)
    now = time.time()
    files = {
        "999999.mp4": (now - 7200, False),  # stray clip, old: goes
        "999998.mp4": (now - 60, True),  # stray clip, young (being recorded): stays
        ".5.mp4.123.456.part": (now - 7200, False),  # an interrupted write: goes
        "notes.txt": (now - 7200, True),  # not ours
        "camera.mp4": (now - 7200, True),  # not named like a clip
        f"{named}.mp4": (now - 7200, True),  # a named clip
    }
    for name, (mtime, _) in files.items():
        path = clips / name
        if not path.exists():
            path.write_bytes(b"x")
        os.utime(path, (mtime, mtime))
    (clips / "sub").mkdir()
    (clips / "sub" / "999997.mp4").write_bytes(b"x")
    os.utime(clips / "sub" / "999997.mp4", (now - 7200, now - 7200))
    expired, over, _, stray = prune_clips(store, now=now, max_age_s=None, max_total_bytes=None, clips_dir=clips)
    assert (expired, over, stray) == (0, 0, 2)
    for name, (_, stays) in files.items():
        assert (clips / name).exists() == stays, name
    assert (clips / "sub" / "999997.mp4").exists()  # nothing below the folder is touched


def test_pruned_clip_through_the_api(tmp_path):
    """After retention the incident says its clip is gone and why; the clip URL is a 404 with
    the reason, never a 500."""
    store = IncidentStore(f"sqlite:///{tmp_path / 'api.db'}")
    orders = WorkOrders(store.db)
    clips = tmp_path / "clips"
    old, new = _clip(store, clips, 40, 100), _clip(store, clips, 1, 100)

    with local_client(CaseParts.of(store, orders).serve(create_app())) as client:
        assert client.get(f"/incidents/{old}/clip.mp4").status_code == 200
        run_retention(store, RetentionConfig(), now=NOW, clips_dir=clips)
        got = client.get(f"/incidents/{old}").json()
        assert got["has_clip"] is False and got["clip_url"] is None
        assert got["clip_missing"] == "deleted by retention: older than 30 days"
        r = client.get(f"/incidents/{old}/clip.mp4")
        assert r.status_code == 404 and "deleted by retention: older than 30 days" in r.json()["detail"]
        assert client.get(f"/incidents/{new}").json()["clip_missing"] is None
        assert client.get(f"/incidents/{new}/clip.mp4").status_code == 200
    store.close()


# ---------------------------------------------------------------------------------- outbox
@pytest.fixture
def outbox_env(store):
    orders = WorkOrders(store.db)
    outbox = Outbox(orders.db, routes=[Route("a"), Route("b")]).attach(orders)
    return orders, outbox


def _message(orders: WorkOrders, outbox: Outbox, age_days: float, **states: tuple[str, float]) -> int:
    """A work order detected ``age_days`` ago (one message to a and b); ``states`` settles its
    deliveries: destination → (state, days ago)."""
    inc = _open(IncidentStore(orders.db), NOW - age_days * DAY_S)
    orders.on_incident_opened(inc)
    (event,) = [e for e in outbox.events_after(0, limit=10_000) if e.incident_id == inc.id]
    for d in outbox.deliveries(incident_id=inc.id)[0]:
        if d.destination in states:
            state, ago = states[d.destination]
            at = NOW - ago * DAY_S
            if state == DELIVERED:
                outbox.mark_delivered(d.id, at)
            elif state == DEAD:
                outbox.mark_dead(d.id, at, "refused")
    return event.id


def _left(outbox: Outbox) -> set[int]:
    return {e.id for e in outbox.events_after(0, limit=10_000)}


def test_only_settled_outbox_messages_older_than_the_age_go(outbox_env):
    orders, outbox = outbox_env
    gone_delivered = _message(orders, outbox, 10, a=(DELIVERED, 9.9), b=(DELIVERED, 8))
    pending = _message(orders, outbox, 10, a=(DELIVERED, 9.9))  # b still pending: kept however old
    fresh_dead = _message(orders, outbox, 10, a=(DELIVERED, 9.9), b=(DEAD, 9))  # a dead letter younger than 30 days
    gone_dead = _message(orders, outbox, 40, a=(DELIVERED, 40), b=(DEAD, 35))
    young = _message(orders, outbox, 1, a=(DELIVERED, 1), b=(DELIVERED, 1))
    late = _message(orders, outbox, 10, a=(DELIVERED, 1), b=(DELIVERED, 9))  # delivered only yesterday (an outage)
    rows, deliveries = prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=30 * DAY_S)
    assert (rows, deliveries) == (2, 4)
    assert _left(outbox) == {pending, fresh_dead, young, late}
    assert gone_delivered not in _left(outbox) and gone_dead not in _left(outbox)
    left = outbox.deliveries(limit=100)[0]
    assert {d.outbox_id for d in left} == {pending, fresh_dead, young, late}
    assert outbox.counters()["b"][PENDING] == 1 and outbox.counters()["b"][DEAD] == 1


def test_dead_letters_kept_for_ever_keep_their_message(outbox_env):
    orders, outbox = outbox_env
    dead = _message(orders, outbox, 400, a=(DELIVERED, 400), b=(DEAD, 399))
    done = _message(orders, outbox, 400, a=(DELIVERED, 400), b=(DELIVERED, 399))
    young = _message(orders, outbox, 1)  # the newest message always stays
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=None) == (1, 2)
    assert _left(outbox) == {dead, young}
    assert done not in _left(outbox)


def test_a_replayed_dead_letter_keeps_its_message(outbox_env):
    orders, outbox = outbox_env
    msg = _message(orders, outbox, 60, a=(DELIVERED, 60), b=(DEAD, 50))
    (dead,) = outbox.deliveries(state=DEAD)[0]
    outbox.replay(dead.id, now=NOW)  # an operator queued it again: pending
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=30 * DAY_S) == (0, 0)
    assert _left(outbox) == {msg}


def test_outbox_retention_off_keeps_everything(outbox_env):
    orders, outbox = outbox_env
    msg = _message(orders, outbox, 400, a=(DELIVERED, 400), b=(DELIVERED, 400))
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=None, dead_max_age_s=None) == (0, 0)
    assert _left(outbox) == {msg}


def test_outbox_pruned_in_batches(outbox_env):
    orders, outbox = outbox_env
    ids = [_message(orders, outbox, 20, a=(DELIVERED, 20), b=(DELIVERED, 20)) for _ in range(7)]
    keep = _message(orders, outbox, 20, a=(DELIVERED, 20))
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=None, batch=3) == (7, 14)
    assert _left(outbox) == {keep} and not set(ids) & _left(outbox)


def test_the_newest_message_stays_so_its_id_is_never_given_again(outbox_env):
    """On SQLite a table emptied gives its next row id 1 again: an event-stream client
    resuming after the last id it saw would get nothing, GB/T 28181 SNs and the
    X-Gridworker-Delivery header would repeat."""
    orders, outbox = outbox_env
    ids = [_message(orders, outbox, 20, a=(DELIVERED, 20), b=(DELIVERED, 20)) for _ in range(3)]
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=None) == (2, 4)
    assert _left(outbox) == {ids[-1]}
    assert prune_outbox(orders.db, now=NOW, delivered_max_age_s=7 * DAY_S, dead_max_age_s=None) == (0, 0)
    after = _message(orders, outbox, 0)
    assert after > ids[-1] and [e.id for e in outbox.events_after(ids[-1])] == [after]


# ---------------------------------------------------------------------------------- audit
def test_old_audit_rows_of_finished_work_orders_go(store):
    orders = WorkOrders(store.db)
    flow = Workflow(orders)
    admin = Actor("key:0123456789ab:ops", ADMIN)
    done, running, recent = (_open(store, NOW - age * DAY_S).id for age in (400, 400, 400))
    for i in (done, running, recent):
        orders.on_incident_opened(store.get(i))
    flow.dispatch(done, admin, at=NOW - 399 * DAY_S)
    flow.reject(done, admin, note="not ours", at=NOW - 398 * DAY_S)  # finished, all of it a year old
    flow.dispatch(running, admin, at=NOW - 399 * DAY_S)  # still running: keeps its history
    flow.reject(recent, admin, note="duplicate", at=NOW - 10 * DAY_S)  # finished; detect row old, reject row recent
    assert [len(orders.audit(i)) for i in (done, running, recent)] == [3, 2, 2]
    assert prune_audit(orders.db, now=NOW, max_age_s=365 * DAY_S) == 4
    assert orders.audit(done) == []
    assert [a.action for a in orders.audit(running)] == ["detect", "dispatch"]
    assert [a.action for a in orders.audit(recent)] == ["reject"]
    assert orders.get(done).state == "rejected"  # the work order itself stays
    assert prune_audit(orders.db, now=NOW, max_age_s=None) == 0


def test_run_retention_on_a_database_without_work_orders(tmp_path):
    """Clip retention alone (no work orders, no outbox messages): nothing fails."""
    store = IncidentStore(f"sqlite:///{tmp_path / 'bare.db'}")
    old = _clip(store, tmp_path / "clips", 40, 10)
    report = run_retention(store, RetentionConfig(), now=NOW)
    assert report.clips_expired == 1 and report.outbox_rows == 0 and report.audit_rows == 0
    assert store.clip(old) is None
    store.close()


# ---------------------------------------------------------------------------------- the thread
def test_worker_runs_passes_on_its_thread_and_stops(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'w.db'}")
    clips = tmp_path / "clips"
    worker = RetentionWorker(store, RetentionConfig(interval_s=0.05), clips_dir=clips, clock=lambda: NOW, first_delay_s=0.0)
    worker.start()
    try:
        wait_until(lambda: worker.passes >= 2, timeout=10, interval=0.02)
        old = _clip(store, clips, 40, 10)  # appears between passes: the next pass takes it
        wait_until(lambda: store.clip(old) is None, timeout=10, interval=0.02)
        assert store.get(old).clip_missing
    finally:
        worker.stop()
    assert not any(t.name == "gw-retention" for t in threading.enumerate())
    passes = worker.passes
    time.sleep(0.2)
    assert worker.passes == passes
    store.close()


def test_service_runs_retention_with_its_settings(tmp_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'svc.db'}"},
        retention={"interval_s": 0.05, "clips_max_age_days": 1, "outbox_delivered_max_age_days": None},
    )
    service = Service(settings, ParkedCarDetector())
    clips = settings.evidence.resolve_clips_dir(settings.database.url)
    assert service.retention.clips_dir == clips.resolve()
    old = _clip(service.store, clips, (NOW - time.time()) / DAY_S + 2, 10)  # two days old by the real clock
    service.start()
    try:
        assert any(t.name == "gw-retention" for t in threading.enumerate())
        wait_until(lambda: service.store.clip(old) is None, timeout=10, interval=0.05)
        assert service.store.get(old).clip_missing == "deleted by retention: older than 1 day"
    finally:
        service.stop()
        service.store.close()
    assert not any(t.name == "gw-retention" for t in threading.enumerate())
