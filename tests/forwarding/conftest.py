"""Fixtures for forwarding tests: a work-order store on SQLite and on a PostgreSQL database
of its own, and a real HTTP receiver in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gridworker.incidents import IncidentStore
from gridworker.cases.workorders import WorkOrders

from tests.factories import pg_database
from tests.forwarding.helpers import Receiver


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def orders(request, tmp_path) -> Iterator[WorkOrders]:
    url = f"sqlite:///{tmp_path / 'fw.db'}" if request.param == "sqlite" else pg_database("gw_forwarding")
    store = IncidentStore(url)
    yield WorkOrders(store.db)
    store.close()


@pytest.fixture
def sqlite_orders(tmp_path) -> Iterator[WorkOrders]:
    store = IncidentStore(f"sqlite:///{tmp_path / 'fw1.db'}")
    yield WorkOrders(store.db)
    store.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
