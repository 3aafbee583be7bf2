"""Valid-looking input that used to answer 500 (issue 10, item 5) now gets a 4xx naming the
problem: time zones that make ``zoneinfo`` touch the file system in odd ways, a key name that
overflowed ``incident_audit.actor`` on PostgreSQL, and event ids too large for the database.
Real Service, real SQLite and PostgreSQL, the real app."""

from __future__ import annotations

import time

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, free_port, local_client, pg_database

BAD_ZONES = [
    ("A" * 300, "timezone"),  # OSError: file name too long
    ("America", "unknown time zone"),  # IsADirectoryError: a folder of the zone database
    ("zone.tab", "timezone"),  # a file of the zone database that is not a zone
    ("../../etc/passwd", "timezone"),
    ("Asia/Nowhere", "unknown time zone"),
]


def _schedule(tz: str) -> dict:
    return {"windows": [{"start": "07:00", "end": "17:00"}], "timezone": tz}


def _zone(tz: str) -> dict:
    return {
        "id": "yard",
        "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
        "rules": [{"type": "intrusion", "schedule": _schedule(tz)}],
    }


@pytest.fixture
def sqlite_client(tmp_path):
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'input.db'}"}, evidence={"clips": False})
    holder: dict[str, Service] = {}

    def factory() -> Service:
        holder["service"] = Service(settings, ParkedCarDetector())
        return holder["service"]

    with local_client(create_app(factory)) as client:  # no key yet: a loopback caller is admin
        yield client, holder["service"]


def _detail(r) -> str:
    return str(r.json()["detail"])


@pytest.mark.parametrize(("tz", "says"), BAD_ZONES)
def test_bad_schedule_time_zones_are_422_in_scenes_and_patrol_plans(sqlite_client, tz, says):
    client, service = sqlite_client
    url = f"rtsp://127.0.0.1:{free_port()}/x"
    r = client.post("/cameras", json={"id": "c1", "url": url, "watch": "patrol", "zones": [_zone(tz)]})
    assert r.status_code == 422 and says in _detail(r), r.text
    assert client.get("/cameras").json() == []

    assert client.post("/cameras", json={"id": "c1", "url": url, "watch": "patrol"}).status_code == 201
    r = client.put("/cameras/c1/scene", json={"zones": [_zone(tz)]})
    assert r.status_code == 422 and says in _detail(r), r.text
    assert client.get("/cameras/c1").json()["zones"] == []

    plan = {"id": "p1", "select": {"camera_ids": ["c1"]}, "schedule": _schedule(tz)}
    r = client.put("/patrol/plans/p1", json=plan)
    assert r.status_code == 422 and says in _detail(r), r.text
    assert client.get("/patrol/plans/p1").status_code == 404


def test_good_time_zones_still_work(sqlite_client):
    client, _ = sqlite_client
    url = f"rtsp://127.0.0.1:{free_port()}/x"
    for i, tz in enumerate(["Asia/Shanghai", "America/Argentina/Buenos_Aires", "Etc/GMT+8", "UTC"]):
        r = client.post("/cameras", json={"id": f"c{i}", "url": url, "watch": "patrol", "zones": [_zone(tz)]})
        assert r.status_code == 201, (tz, r.text)
    r = client.put("/patrol/plans/p1", json={"id": "p1", "select": {"camera_ids": ["c0"]}, "schedule": _schedule("Asia/Shanghai")})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("tz", ["America", "A" * 64, "../etc"])
def test_flow_time_zone_is_422(sqlite_client, tz):
    client, _ = sqlite_client
    r = client.get("/flows", params={"tz": tz})
    assert r.status_code == 422 and "time zone" in _detail(r), r.text


@pytest.mark.parametrize("path", ["/events", "/console/events"])
@pytest.mark.parametrize("last", ["9" * 30, "-1"])
def test_last_event_id_out_of_range_is_422(sqlite_client, path, last):
    client, _ = sqlite_client
    r = client.get(path, params={"max_s": 1}, headers={"Last-Event-ID": last})
    assert r.status_code == 422 and "Last-Event-ID" in _detail(r), r.text


def test_dispatch_by_a_key_with_a_200_character_name_on_postgresql(tmp_path):
    """``key:<id>:<name>`` is longer than ``incident_audit.actor`` (VARCHAR(200)) when the name
    takes its 200 characters: the actor is cut in the name, the key id stays whole, and the
    dispatch, its audit row and its outbox message all commit."""
    url = pg_database("gw_input_422")
    settings = Settings(database={"url": url}, evidence={"clips": False})
    holder: dict[str, object] = {}
    name = "n" * 199 + "Z"

    def factory() -> Service:
        service = Service(settings, ParkedCarDetector())
        holder["service"] = service
        holder["stored"], holder["key"] = create_key(service.keys, name=name, role="admin")
        return service

    with local_client(create_app(factory)) as client:
        service = holder["service"]
        inc = service.store.open(
            camera_id="cam-1", camera_name="Gate", site="market", zone_id="kerb", rule_id="r1", type="illegal_parking",
            at=time.time(), count=1, summary="parked", details={}, snapshot=None,
        )
        service.workorders.on_incident_opened(inc)
        headers = {"Authorization": f"Bearer {holder['key']}"}
        r = client.post(f"/workorders/{inc.id}/dispatch", json={"note": "tow it"}, headers=headers)
        assert r.status_code == 200, r.text
        audit = client.get(f"/workorders/{inc.id}", headers=headers).json()["audit"]
        actor = audit[-1]["actor"]
        assert len(actor) == 200 and actor.startswith(f"key:{holder['stored'].key_id}:nnn") and not actor.endswith("Z")
        last = service.forwarding.outbox.events_after(0)[-1]
        assert last.event == "workorder.dispatch" and last.payload["change"]["actor"] == actor


# -- non-finite numbers: Python's JSON parser reads NaN, Infinity and 1e400 -----------------------
QUAD = "[[0.4,0.55],[0.55,0.55],[0.7,0.95],[0.3,0.95]]"
NON_FINITE = [
    ("scene", '{"calibration": {"image": ' + QUAD + ', "ground": [[0,0],[Infinity,0],[3.5,30],[0,30]]}}', "finite number"),
    ("scene", '{"calibration": {"image": ' + QUAD + ', "ground": [[0,0],[1e308,0],[1e308,1e308],[0,1e308]]}}', "within 100000 m"),
    ("scene", '{"zones": [{"id": "z", "polygon": [[0,0],[1,0],[1,NaN]], "rules": []}]}', "finite number"),
    ("scene", '{"zones": [{"id": "z", "polygon": [[0,0],[1,0],[1,1]], "rules": [{"type": "intrusion", "min_duration_s": NaN}]}]}', "finite number"),
    ("scene", '{"zones": [{"id": "z", "polygon": [[0,0],[1,0],[1,1]], "rules": [{"type": "crowd", "max_count": 1e400}]}]}', "not permitted"),
    ("plan", '{"id": "p", "cycles": 1e400}', "finite number"),
    ("plan", '{"id": "p", "watch_s": -Infinity}', "finite number"),
]


@pytest.mark.parametrize(("target", "body", "says"), NON_FINITE)
def test_non_finite_numbers_are_422_naming_the_field(sqlite_client, target, body, says):
    """The 422 used to fail while being written (its echo of the input held a NaN): a 500."""
    client, _ = sqlite_client
    assert client.post("/cameras", json={"id": "c1", "url": f"rtsp://127.0.0.1:{free_port()}/x", "watch": "patrol"}).status_code == 201
    path = "/cameras/c1/scene" if target == "scene" else "/patrol/plans/p"
    r = client.put(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert says in r.text and r.json()["detail"][0]["loc"][0] == "body"
    assert client.get("/cameras/c1").json()["calibration"] is None
    assert client.get("/patrol/plans/p").status_code == 404


def test_non_finite_incident_details_are_served_as_null(sqlite_client):
    client, service = sqlite_client
    inc = service.store.open(
        camera_id="cam-1", camera_name="Gate", site="", zone_id="z", rule_id="r", type="speeding",
        at=time.time(), count=1, summary="fast", details={"speed_kmh": float("inf"), "samples": [float("nan"), 31.5]}, snapshot=None,
    )
    r = client.get(f"/incidents/{inc.id}")
    assert r.status_code == 200 and r.json()["details"] == {"speed_kmh": None, "samples": [None, 31.5]}
    assert client.get("/incidents").status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+00:00", "until": "0001-01-01T01:00:00+00:00", "tz": "America/New_York"},
        {"since": "9999-12-31T22:00:00+00:00", "until": "9999-12-31T23:00:00+00:00", "tz": "Asia/Tokyo"},
        {"since": "9999-12-31T00:00:00", "until": "9999-12-31T23:00:00", "tz": "Pacific/Kiritimati", "bucket": "day"},
    ],
)
def test_flow_times_that_cannot_be_shown_in_the_zone_are_422(sqlite_client, params):
    client, _ = sqlite_client
    r = client.get("/flows", params=params)
    assert r.status_code == 422 and "out of range" in _detail(r), r.text


def test_a_422_never_echoes_the_request(sqlite_client):
    """FastAPI's default 422 repeats each invalid ``input``: here the whole camera, password
    and query token included. Ours names the field and the problem only."""
    client, _ = sqlite_client
    url = f"rtsp://admin:Pa55-word-x@127.0.0.1:{free_port()}/cam?token=T0ken-Value-9"
    cases = [
        {"id": "c1", "url": url, "fps": -1},  # a bad field beside the URL
        {"id": "c1", "url": url, "zones": "not-a-list"},
        {"id": "c1", "url": url, "unknown_key": url},  # an extra key whose value is the URL
        {"id": "bad id!", "url": url},
    ]
    for body in cases:
        r = client.post("/cameras", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"], r.text  # still names the problem
        for secret in ("Pa55-word-x", "T0ken-Value-9"):
            assert secret not in r.text, (body, r.text)
    # a body that is one big string is not copied back either
    r = client.post("/cameras", content=b'"' + b"x" * 500_000 + b'"', headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 2_000


@pytest.mark.parametrize("path", ["/incidents/{}", "/incidents/{}/snapshot.jpg", "/incidents/{}/clip.mp4", "/incidents/{}/clip/tracks"])
def test_an_incident_id_out_of_range_is_422_for_a_unit_handler_too(sqlite_client, path):
    """The unit handler's access check looks the incident up: the id's bounds come first
    (an id past SQLite's integers answered 500, a negative one a lookup and 404)."""
    client, service = sqlite_client
    _, raw = create_key(service.keys, name="grid", role="unit_handler", unit="community-grid")
    for bad in (2**63, 10**23, 0, -5):
        r = client.get(path.format(bad), headers={"X-API-Key": raw})
        assert r.status_code == 422, (path, bad, r.status_code, r.text)
    assert client.get(path.format(1), headers={"X-API-Key": raw}).status_code == 404  # a real lookup: not theirs
