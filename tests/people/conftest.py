import pytest

from gridworker.cases.people import PeopleConfig
from gridworker.cases.places import Area, AreaMap
from tests.factories import pg_database

#: cheap Argon2id for tests (the floor the config allows); the product default is 64 MiB, 3 passes
FAST_HASH = {"password_memory_kib": 19_456, "password_time_cost": 1}

#: two grid areas side by side (WGS84)
AREAS = AreaMap(
    [
        Area(id="east", name="East grid", polygon=[(121.50, 31.20), (121.60, 31.20), (121.60, 31.30), (121.50, 31.30)]),
        Area(id="west", name="West grid", polygon=[(121.40, 31.20), (121.50, 31.20), (121.50, 31.30), (121.40, 31.30)]),
    ]
)
EAST = {"lon": 121.55, "lat": 31.25}
WEST = {"lon": 121.45, "lat": 31.25}


def people_config(**kw):
    return PeopleConfig(**{**FAST_HASH, **kw})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'people.db'}"
    return pg_database("gw_people")
