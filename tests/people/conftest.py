import time

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.deps import CaseParts
from gridworker.cases.people import People, PeopleConfig, PersonIn
from gridworker.cases.places import Area, AreaMap
from gridworker.cases.workorders import WorkOrders
from gridworker.incidents import IncidentStore
from gridworker.keystore import KeyStore
from tests.factories import local_client, pg_database

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


PW = "a long enough password"


class Env:
    def __init__(self, app, store, orders, people, keys):
        self.app, self.store, self.orders, self.people, self.keys = app, store, orders, people, keys
        self.ids = {}

    def h(self, who):
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def client(self, **kw):
        return local_client(self.app, **kw)

    def login(self, client, username, password=PW):
        r = client.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return {"X-CSRF-Token": r.json()["csrf_token"]}

    def case(self, position=None, type="street_vending", at=None):
        inc = self.store.open(
            camera_id="cam-1", camera_name="Gate", site="market", zone_id="z", rule_id="r", type=type,
            at=time.time() if at is None else at, count=1, summary="s", details={} if position is None else {"position": position},
            snapshot=None,
        )
        return self.orders.on_incident_opened(inc).incident_id

    def dispatched(self, *positions):
        """Cases at ``positions``, dispatched by the operator's key (the routing picks the person)."""
        ids = [self.case(p) for p in positions]
        with self.client() as c:
            for i in ids:
                assert c.post(f"/workorders/{i}/dispatch", json={}, headers=self.h("operator")).status_code == 200
        return ids


def make_env(url, keyed=True, **config):
    """The case routes around real parts with people (east1, west1 of community-grid; squad1 of
    traffic-squad; boss, a supervisor) and keys (operator, grid, admin, viewer)."""
    store = IncidentStore(url)
    orders = WorkOrders(store.db, areas=AREAS)
    people = People(store.db, orders.catalogue, AREAS, people_config(**config))
    keys = {}
    if keyed:
        for name, role, unit in [("operator", "operator", None), ("grid", "unit_handler", "community-grid"), ("admin", "admin", None), ("viewer", "viewer", None)]:
            keys[name] = create_key(KeyStore(orders.db), name=name, role=role, unit=unit)[1]
    app = CaseParts.of(store, orders, people=people).serve(create_app())
    env = Env(app, store, orders, people, keys)
    for username, unit, area, role in [
        ("east1", "community-grid", "east", "unit_handler"),
        ("west1", "community-grid", "west", "unit_handler"),
        ("squad1", "traffic-squad", "", "unit_handler"),
        ("boss", "", "", "supervisor"),
    ]:
        [p] = people.add([PersonIn(username=username, name=username, unit=unit, area=area, role=role, password=PW)])
        env.ids[username] = p.id
    return env
