import os

import pytest
import sqlalchemy as sa

from gridworker.incidents import IncidentStore

from tests.factories import PG_URL


def _pg_available() -> bool:
    try:
        with sa.create_engine(PG_URL).connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.db'}"
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} in CI")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS incident_clips_missing, incident_clips, line_flows, incident_snapshots, incidents, cameras CASCADE"))
    engine.dispose()
    return PG_URL


@pytest.fixture
def store(store_url):
    s = IncidentStore(store_url)
    yield s
    s.close()
