"""The case service applies a fetched batch of observations with one applied-id query and one
record transaction (issue 12, cluster bench): the guarantees of one-at-a-time still hold."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cluster.cluster_h5_support import Scripted, manager_on, obs_link  # noqa: F401 - obs_link is a fixture
from gridworker.cluster.observations import Decision, ObservationConsumer
from gridworker.cluster.wire import encode_frame


def _frame(cam: Scripted, obs_id: str, token: int, person: bool = True) -> bytes:
    return encode_frame(cam.frame(person), obs_id=obs_id, worker=obs_id.split(".")[0], token=token, visit=None, sent_at=time.time())


def test_a_batch_fences_dedups_and_records_like_single_messages(obs_link, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    manager, store = manager_on(url)
    consumer = ObservationConsumer(obs_link, manager, store.db)
    cam = Scripted("cam1")
    new_owner = _frame(cam, "w2.a.1", 20)
    batch = [new_owner, _frame(cam, "w1.a.9", 12, person=False), new_owner, b"{not json", _frame(cam, "w2.a.2", 20)]
    # the stale token is refused by the fence the same batch raised; the repeated id is applied once
    assert consumer.handle_all(batch) == [Decision.APPLIED, Decision.REJECTED, Decision.DUPLICATE, Decision.REJECTED, Decision.APPLIED]
    assert consumer.stats.applied == 2 and consumer.stats.duplicates == 1
    assert consumer.stats.rejected.get("stale lease") == 1
    assert len(store.open_incidents()) == 1
    # what the batch recorded is in the database: a restarted case service skips the ids and keeps the fence
    manager2, store2 = manager_on(url)
    again = ObservationConsumer(obs_link, manager2, store2.db)
    assert again.handle_all([new_owner, _frame(cam, "w1.a.10", 12)]) == [Decision.DUPLICATE, Decision.REJECTED]


def test_a_batch_whose_record_fails_counts_as_not_applied(obs_link, tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    consumer = ObservationConsumer(obs_link, manager, store.db)
    cam, other = Scripted("cam1"), Scripted("cam2")
    batch = [_frame(cam, "w2.a.1", 20), _frame(other, "w2.a.2", 20)]
    with store.db.engine.begin() as conn:  # the database refuses the applied-id rows (a full disk, say)
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON cluster_applied BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    outcomes = consumer.handle_all(batch)
    assert all(isinstance(o, Exception) for o in outcomes)  # nak'ed: redelivered
    with pytest.raises(sa.exc.IntegrityError):
        consumer.handle(batch[0])
    with store.db.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse"))
    # redelivered: applied (not skipped as seen), the incidents found open under their keys, and
    # no fence was raised by the failed batch in memory or in the database
    assert consumer.handle_all(batch) == [Decision.APPLIED, Decision.APPLIED]
    assert sorted(i.camera_id for i in store.open_incidents()) == ["cam1", "cam2"]
    assert consumer.handle_all([_frame(cam, "w3.a.1", 20, person=False)]) == [Decision.APPLIED]
