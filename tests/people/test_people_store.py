"""People's records, passwords, CSV import and the routing rule, on SQLite and PostgreSQL."""

import time

import pytest
from pydantic import SecretStr, ValidationError

from gridworker.cases.people import People, PeopleError, PeopleLimitReached, PersonExists, PersonIn, PersonPatch
from gridworker.cases.workflow import Actor, Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.incidents import IncidentStore
from tests.people.conftest import AREAS, EAST, WEST, people_config

PW = "correct horse battery"


@pytest.fixture
def env(db_url):
    store = IncidentStore(db_url)
    orders = WorkOrders(store.db, areas=AREAS)
    people = People(store.db, orders.catalogue, AREAS, people_config(max_people=6))
    yield store, orders, people
    store.close()


def _person(username, role="unit_handler", unit="community-grid", area="", password=PW):
    return PersonIn(username=username, name=username.title(), unit=unit, area=area, role=role, password=None if password is None else SecretStr(password))


def test_add_read_and_authenticate(env):
    _store, _orders, people = env
    [li] = people.add([_person("Li.Wei", area="east")])
    assert li.username == "li.wei" and li.area == "east" and li.has_password and not li.disabled
    assert people.get(li.id) == li
    assert people.authenticate("LI.WEI ", PW) == li
    assert people.authenticate("li.wei", PW + "x") is None
    assert people.authenticate("nobody", PW) is None
    assert people.authenticate("li.wei", "x" * 10_000) is None  # long input: refused, not hashed
    people.update(li.id, PersonPatch(disabled=True))
    assert people.authenticate("li.wei", PW) is None
    [nopw] = people.add([_person("zhang", password=None)])
    assert not nopw.has_password and people.authenticate("zhang", "") is None
    assert li.actor() == Actor(name=f"person:{li.id}:li.wei", role="unit_handler", unit="community-grid", person=li.id)


def test_password_hash_is_argon2id_and_never_the_password(env):
    store, _orders, people = env
    [p] = people.add([_person("wang")])
    with store.db.engine.connect() as conn:
        digest = conn.exec_driver_sql(f"select password_hash from people where id = {p.id}").scalar_one()
    assert digest.startswith("$argon2id$") and PW not in digest
    assert "m=19456" in digest  # the configured memory cost


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"unit": "ministry"}, "unknown unit"),
        ({"unit": ""}, "needs a unit"),
        ({"area": "north"}, "unknown area"),
        ({"password": "short"}, "10-200"),
    ],
)
def test_bad_people_are_refused(env, kwargs, error):
    _store, _orders, people = env
    with pytest.raises(PeopleError, match=error):
        people.add([_person("chen", **kwargs)])
    assert people.list()[1] == 0


def test_usernames_are_unique_and_people_capped(env):
    _store, _orders, people = env
    people.add([_person("a1")])
    with pytest.raises(PersonExists):
        people.add([_person("A1")])
    with pytest.raises(PersonExists):
        people.add([_person("b1"), _person("b1")])
    people.add([_person(f"p{i}") for i in range(5)])  # 6 in all: the cap
    with pytest.raises(PeopleLimitReached):
        people.add([_person("one-more")])
    with pytest.raises(ValidationError):
        PersonIn(username="bad name!", name="x", role="viewer")


def test_csv_import_all_or_none_and_never_echoes_values(env):
    _store, _orders, people = env
    good = "username,name,unit,area,phone,role,password\nli,Li,community-grid,east,+86 138,unit_handler,secret-pass-1\nops,Ops,,,,operator,\n"
    added = people.import_csv(good)
    assert [p.username for p in added] == ["li", "ops"] and people.authenticate("li", "secret-pass-1") is not None
    bad = "username,name,role,password\nzz,Zz,unit_handler,leaky-secret-99\nyy,Yy,wizard,other-secret-77\n"
    with pytest.raises(PeopleError) as err:
        people.import_csv(bad)
    text = str(err.value)
    assert "line 2" in text and "line 3" in text and "leaky-secret-99" not in text and "other-secret-77" not in text
    assert people.list()[1] == 2  # nothing of the bad file
    with pytest.raises(PeopleError, match="header"):
        people.import_csv("login,name\nx,y\n")
    with pytest.raises(PeopleError, match="more than 3 rows"):
        people.import_csv("username,name,role\n" + "".join(f"u{i},U,viewer\n" for i in range(4)), max_rows=3)


def _case(store, orders, position=None, type="street_vending"):
    inc = store.open(
        camera_id="cam-1", camera_name="Gate", site="market", zone_id="z", rule_id="r", type=type,
        at=time.time(), count=1, summary="s", details={} if position is None else {"position": position}, snapshot=None,
    )
    return orders.on_incident_opened(inc)


def test_a_case_gets_its_reported_position_and_area(env):
    store, orders, _people = env
    east = _case(store, orders, EAST)
    assert (east.lon, east.lat, east.area) == (121.55, 31.25, "east")
    outside = _case(store, orders, {"lon": 100.0, "lat": 20.0})
    assert outside.area == "" and outside.lon == 100.0
    nowhere = _case(store, orders)
    assert (nowhere.lon, nowhere.lat, nowhere.area) == (None, None, "")


def test_routing_by_area_then_load(env):
    store, orders, people = env
    east1, east2, west1 = people.add([_person("east1", area="east"), _person("east2", area="east"), _person("west1", area="west")])
    people.add([_person("squad", unit="traffic-squad", area="east")])  # another unit: never picked for community-grid
    wf = Workflow(orders, assigner=people)
    op = Actor("key:op", "operator")
    got = []
    for position in (EAST, EAST, EAST, WEST, None):
        case = _case(store, orders, position)
        got.append(wf.dispatch(case.incident_id, op).assignee)
    # east cases go to the east people, the least loaded first (ties: lowest id); the west case to
    # west1; a case with no area to the least loaded of the whole unit (east1 has 2, east2 and
    # west1 1 each: the lower id of those two)
    assert got == [east1.id, east2.id, east1.id, west1.id, east2.id]
    # nobody of the unit: no assignee
    people.update(west1.id, PersonPatch(disabled=True))
    for p in (east1, east2):
        people.update(p.id, PersonPatch(role="viewer", unit=""))
    case = _case(store, orders, WEST)
    assert wf.dispatch(case.incident_id, op).assignee is None


def test_an_import_is_refused_before_any_password_is_hashed(env, monkeypatch):
    """A taken username, the people cap or too many passwords are refused before the Argon2 work
    (a 5000-row import used to hash every password, ~13 CPU-minutes, then answer 409)."""
    _store, _orders, people = env
    people.add([_person("taken")])
    hashed = []
    real = people.passwords.hash
    monkeypatch.setattr(people.passwords, "hash", lambda pw: hashed.append(1) or real(pw))
    with pytest.raises(PersonExists, match="'taken'"):
        people.add([_person("n1"), _person("n2"), _person("taken")])
    with pytest.raises(PeopleLimitReached):
        people.add([_person(f"c{i}") for i in range(6)])  # 7 with the one there: over the cap of 6
    many = "username,name,role,password\n" + "".join(f"m{i},M,viewer,password-{i:04d}\n" for i in range(101))
    with pytest.raises(PeopleError, match="at most 100"):
        people.import_csv(many)
    assert hashed == []
    people.add([_person("ok1")])  # a good one still hashes its password
    assert hashed == [1] and people.authenticate("ok1", PW) is not None
