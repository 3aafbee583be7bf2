import pytest

from gridworker.incidents import IncidentStore

from tests.factories import pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.db'}"
    return pg_database("gw_incidents")  # emptied: the migrations build it from nothing


@pytest.fixture
def store(store_url):
    s = IncidentStore(store_url)
    yield s
    s.close()
