"""``CommitSignal``: listeners hear of a commit once, after it; never of a rollback."""

from __future__ import annotations

import logging

import pytest

from gridworker.incidents.db import CommitSignal, Database
from gridworker.cases.workorders import WorkOrders
from tests.forwarding.helpers import open_incident


def test_once_per_commit_never_on_rollback_and_a_failing_listener_costs_nobody(tmp_path, caplog):
    db = Database.open(f"sqlite:///{tmp_path / 'signal.db'}")
    signal, heard = CommitSignal("test"), []

    def broken() -> None:
        raise RuntimeError("boom")

    signal.listen(broken)
    signal.listen(lambda: heard.append("after"))
    try:
        with caplog.at_level(logging.ERROR), db.transaction() as s:
            signal.arm(s)
            signal.arm(s)
            assert heard == []  # not before the commit
        assert heard == ["after"] and "a commit listener failed" in caplog.text
        with pytest.raises(ValueError), db.transaction() as s:
            signal.arm(s)
            raise ValueError("rolled back")
        assert heard == ["after"]
        signal.unlisten(broken)
        with db.transaction() as s:
            signal.arm(s)
        assert heard == ["after", "after"]
    finally:
        db.close()


def test_work_orders_signal_each_committed_change(tmp_path):
    db = Database.open(f"sqlite:///{tmp_path / 'orders.db'}")
    orders, heard = WorkOrders(db), []
    orders.committed.listen(lambda: heard.append(1))
    try:
        open_incident(orders, camera="cam-1")
        open_incident(orders, camera="cam-2")
        assert len(heard) == 2
    finally:
        db.close()
