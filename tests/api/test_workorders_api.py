"""The work-order API: roles per endpoint, unit scoping, escalation, photos, stats, the
catalogue and key administration — on a real SQLite store behind the real app."""

import base64
import io
import time

import pytest
from PIL import ExifTags, Image

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.deps import CaseParts
from gridworker.incidents import IncidentStore
from gridworker.cases.workorders import WorkOrders
from gridworker.keystore import KeyStore
from tests.factories import local_client
from tests.reports.conftest import jpeg_with_exif

#: a phone's JPEG (maker, model, time, GPS in its EXIF) with bytes hidden after its end
JPEG = jpeg_with_exif((640, 480)) + b"TRAILING-SECRET" * 8
NOT_A_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\xff\xd9"  # a JPEG's first bytes, no picture


@pytest.fixture
def env(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'api.db'}")
    orders = WorkOrders(store.db)
    keys = {}
    for name, role, unit in [
        ("viewer", "viewer", None),
        ("operator", "operator", None),
        ("squad", "unit_handler", "traffic-squad"),
        ("grid", "unit_handler", "community-grid"),
        ("supervisor", "supervisor", None),
        ("admin", "admin", None),
    ]:
        keys[name] = create_key(KeyStore(orders.db), name=name, role=role, unit=unit)[1]
    # the case routes around real parts (no cameras, no detector)
    with local_client(CaseParts.of(store, orders).serve(create_app())) as client:
        yield client, orders, keys
    store.close()


def _open(orders, type="illegal_parking", site="market"):
    inc = IncidentStore(orders.db).open(
        camera_id="cam-1", camera_name="Gate", site=site, zone_id="kerb", rule_id="r1", type=type,
        at=time.time(), count=1, summary="parked", details={}, snapshot=None,
    )
    return orders.on_incident_opened(inc).incident_id


def _h(keys, who):
    return {"Authorization": f"Bearer {keys[who]}"}


def test_every_endpoint_needs_a_key(env):
    client, orders, keys = env
    i = _open(orders)
    for method, path in [
        ("GET", "/workorders"), ("GET", f"/workorders/{i}"), ("GET", f"/workorders/{i}/photo.jpg"),
        ("POST", f"/workorders/{i}/dispatch"), ("POST", f"/workorders/{i}/escalate"),
        ("GET", "/stats/workorders"), ("GET", "/catalogue"), ("GET", "/keys"), ("POST", "/keys"), ("DELETE", "/keys/1"),
    ]:
        r = client.request(method, path, json={})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, path)
        r = client.request(method, path, json={}, headers={"Authorization": "Bearer gwk_000000000000_" + "x" * 43})
        assert r.status_code == 401, (method, path)
    # X-API-Key works as well as a bearer token
    assert client.get("/workorders", headers={"X-API-Key": keys["viewer"]}).status_code == 200


def test_full_case_through_the_api(env):
    client, orders, keys = env
    i = _open(orders)
    r = client.post(f"/workorders/{i}/dispatch", json={"note": "tow it"}, headers=_h(keys, "operator"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "dispatched" and r.json()["unit"] == "traffic-squad"
    assert client.post(f"/workorders/{i}/accept", headers=_h(keys, "squad")).json()["state"] == "accepted"
    photo = base64.b64encode(JPEG).decode()
    r = client.post(f"/workorders/{i}/handle", json={"note": "towed", "photo_base64": photo}, headers=_h(keys, "squad"))
    assert r.status_code == 200 and r.json()["photo_url"] == f"/workorders/{i}/photo.jpg" and r.json()["on_time"] is True
    got = client.get(f"/workorders/{i}/photo.jpg", headers=_h(keys, "viewer"))
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.headers["cache-control"].startswith("private")  # evidence: never in a shared cache
    # stored re-encoded (cases/photos.py): the same picture, nothing trailing, of the EXIF only the location
    assert got.content != JPEG and got.content.endswith(b"\xff\xd9") and b"TRAILING" not in got.content
    assert b"PhoneMaker" not in got.content and b"SecretModel" not in got.content and b"2026:12:03" not in got.content
    with Image.open(io.BytesIO(got.content)) as img:
        assert img.format == "JPEG" and img.size == (640, 480)
        exif = img.getexif()
        assert set(exif) == {ExifTags.IFD.GPSInfo}
        assert set(exif.get_ifd(ExifTags.IFD.GPSInfo)) == {ExifTags.GPS.GPSLatitudeRef, ExifTags.GPS.GPSLatitude, ExifTags.GPS.GPSLongitudeRef, ExifTags.GPS.GPSLongitude}
    assert client.post(f"/workorders/{i}/close", json={"note": "seen on camera"}, headers=_h(keys, "operator")).json()["state"] == "closed"
    detail = client.get(f"/workorders/{i}", headers=_h(keys, "viewer")).json()
    assert detail["type_name_zh"] == "机动车违停" and detail["category"] == "traffic" and detail["grade"] == 3
    trail = [(a["action"], a["from_state"], a["to_state"], a["role"]) for a in detail["audit"]]
    assert trail == [
        ("detect", None, "detected", "system"),
        ("dispatch", "detected", "dispatched", "operator"),
        ("accept", "dispatched", "accepted", "unit_handler"),
        ("handle", "accepted", "handled", "unit_handler"),
        ("close", "handled", "closed", "operator"),
    ]
    # the actor names the key by its public id and name, never by the key itself
    assert detail["audit"][1]["actor"].startswith("key:") and detail["audit"][1]["actor"].endswith(":operator")
    assert keys["operator"] not in str(detail)


def test_bad_photo_and_bad_unit(env):
    client, orders, keys = env
    i = _open(orders)
    assert client.post(f"/workorders/{i}/dispatch", json={"unit": "ministry"}, headers=_h(keys, "operator")).status_code == 422
    client.post(f"/workorders/{i}/dispatch", json={}, headers=_h(keys, "operator"))
    client.post(f"/workorders/{i}/accept", headers=_h(keys, "squad"))
    r = client.post(f"/workorders/{i}/handle", json={"note": "x", "photo_base64": "%%%"}, headers=_h(keys, "squad"))
    assert r.status_code == 422 and "base64" in r.json()["detail"]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 10).decode()
    r = client.post(f"/workorders/{i}/handle", json={"note": "x", "photo_base64": png}, headers=_h(keys, "squad"))
    assert r.status_code == 422 and "JPEG" in r.json()["detail"]
    # a JPEG's magic bytes are not enough: the picture must decode
    r = client.post(f"/workorders/{i}/handle", json={"note": "x", "photo_base64": base64.b64encode(NOT_A_JPEG).decode()}, headers=_h(keys, "squad"))
    assert r.status_code == 422 and "does not decode" in r.json()["detail"]
    assert client.get(f"/workorders/{i}/photo.jpg", headers=_h(keys, "viewer")).status_code == 404


def test_unit_handler_sees_and_touches_only_their_unit(env):
    client, orders, keys = env
    mine = _open(orders, type="street_vending")  # community-grid
    theirs = _open(orders)  # traffic-squad
    for i in (mine, theirs):
        client.post(f"/workorders/{i}/dispatch", json={}, headers=_h(keys, "operator"))
    page = client.get("/workorders", headers=_h(keys, "grid")).json()
    assert [o["incident_id"] for o in page["items"]] == [mine] and page["total"] == 1
    assert client.get("/workorders", params={"unit": "traffic-squad"}, headers=_h(keys, "grid")).status_code == 403
    assert client.get(f"/workorders/{theirs}", headers=_h(keys, "grid")).status_code == 404
    assert client.get(f"/workorders/{theirs}/photo.jpg", headers=_h(keys, "grid")).status_code == 404
    for action, body in (("accept", {}), ("handle", {"note": "done"})):
        r = client.post(f"/workorders/{theirs}/{action}", json=body, headers=_h(keys, "grid"))
        assert r.status_code == 404, action
    assert orders.get(theirs).state == "dispatched"
    # actions a handler never has: 403 whatever the unit
    for action, body in (("dispatch", {}), ("close", {}), ("reject", {"note": "no"}), ("escalate", {})):
        for i in (mine, theirs):
            assert client.post(f"/workorders/{i}/{action}", json=body, headers=_h(keys, "grid")).status_code == 403, action
    # their own case: fine
    assert client.get(f"/workorders/{mine}", headers=_h(keys, "grid")).status_code == 200
    assert client.post(f"/workorders/{mine}/accept", headers=_h(keys, "grid")).json()["state"] == "accepted"
    stats = client.get("/stats/workorders", headers=_h(keys, "grid")).json()
    assert [g["key"] for g in stats["by_unit"]] == ["community-grid"]
    # once escalated away, the community handler loses sight of it
    client.post(f"/workorders/{mine}/escalate", json={"note": "needs enforcement"}, headers=_h(keys, "supervisor"))
    assert client.get(f"/workorders/{mine}", headers=_h(keys, "grid")).status_code == 404


def test_viewer_cannot_act(env):
    client, orders, keys = env
    i = _open(orders)
    for action, body in (("dispatch", {}), ("accept", {}), ("handle", {"note": "x"}), ("close", {}), ("reject", {"note": "x"}), ("escalate", {})):
        r = client.post(f"/workorders/{i}/{action}", json=body, headers=_h(keys, "viewer"))
        assert r.status_code == 403, action
    assert orders.get(i).state == "detected" and len(orders.audit(i)) == 1
    assert client.get("/workorders", headers=_h(keys, "viewer")).json()["total"] == 1
    assert client.get("/catalogue", headers=_h(keys, "viewer")).json()["levels"] == ["community", "street", "district", "city"]


def test_supervisor_escalates_and_nobody_sends_it_back_down(env):
    client, orders, keys = env
    i = _open(orders, type="street_vending")
    client.post(f"/workorders/{i}/dispatch", json={}, headers=_h(keys, "operator"))
    assert client.post(f"/workorders/{i}/escalate", json={}, headers=_h(keys, "operator")).status_code == 403
    r = client.post(f"/workorders/{i}/escalate", json={"note": "stall keeps coming back"}, headers=_h(keys, "supervisor"))
    assert r.status_code == 200 and r.json()["state"] == "escalated" and r.json()["unit"] == "street-enforcement"
    assert r.json()["floor_level"] == "street"
    for who in ("operator", "supervisor", "admin"):
        r = client.post(f"/workorders/{i}/dispatch", json={"unit": "community-grid"}, headers=_h(keys, who))
        assert r.status_code == 409 and "cannot be sent back down" in r.json()["detail"], who
    assert orders.get(i).unit == "street-enforcement"
    assert client.get("/workorders", params={"state": "escalated"}, headers=_h(keys, "viewer")).json()["total"] == 1


def test_filters_and_stats(env):
    client, orders, keys = env
    a = _open(orders, site="school")
    b = _open(orders, type="crowd")
    client.post(f"/workorders/{b}/reject", json={"note": "a queue at the bus stop"}, headers=_h(keys, "operator"))
    h = _h(keys, "viewer")
    assert [o["incident_id"] for o in client.get("/workorders", params={"site": "school"}, headers=h).json()["items"]] == [a]
    assert client.get("/workorders", params={"state": "rejected", "type": "crowd"}, headers=h).json()["total"] == 1
    assert client.get("/workorders", params={"overdue": True}, headers=h).json()["total"] == 0
    assert client.get("/workorders", params={"state": "bogus"}, headers=h).status_code == 422
    stats = client.get("/stats/workorders", headers=h).json()
    assert stats["by_state"]["detected"] == 1 and stats["by_state"]["rejected"] == 1
    assert {g["key"] for g in stats["by_site"]} == {"school", "market"}
    empty = {"since": "2099-12-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}  # a period without cases (at most 367 days)
    assert client.get("/stats/workorders", params=empty, headers=h).json()["by_type"] == []


def test_key_administration(env):
    client, orders, keys = env
    body = {"name": "night shift", "role": "operator"}
    for who in ("viewer", "operator", "squad", "supervisor"):
        assert client.post("/keys", json=body, headers=_h(keys, who)).status_code == 403
        assert client.get("/keys", headers=_h(keys, who)).status_code == 403
        assert client.delete("/keys/1", headers=_h(keys, who)).status_code == 403
    r = client.post("/keys", json=body, headers=_h(keys, "admin"))
    assert r.status_code == 201
    new = r.json()
    assert new["key"].startswith("gwk_") and new["role"] == "operator" and new["unit"] is None
    assert client.get("/workorders", headers={"Authorization": f"Bearer {new['key']}"}).status_code == 200
    listed = client.get("/keys", headers=_h(keys, "admin"))
    assert new["key"] not in listed.text and all(k not in listed.text for k in keys.values())
    assert "night shift" in listed.text
    assert client.post("/keys", json={"name": "x", "role": "unit_handler"}, headers=_h(keys, "admin")).status_code == 422
    assert client.post("/keys", json={"name": "x", "role": "unit_handler", "unit": "nope"}, headers=_h(keys, "admin")).status_code == 422
    assert client.post("/keys", json={"name": "x", "role": "root"}, headers=_h(keys, "admin")).status_code == 422
    assert client.delete(f"/keys/{new['id']}", headers=_h(keys, "admin")).status_code == 204
    assert client.get("/workorders", headers={"Authorization": f"Bearer {new['key']}"}).status_code == 401
    assert client.delete(f"/keys/{new['id']}", headers=_h(keys, "admin")).status_code == 404


def test_real_service_opens_work_orders(tmp_path, clip_path):
    """The wiring: an incident opened by the running pipeline has its work order."""
    from gridworker.service import Service
    from gridworker.settings import Settings
    from tests.factories import ParkedCarDetector, wait_until

    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'svc.db'}"},
        media_dir=clip_path.parent,
        cameras=[{
            "id": "cam1", "name": "Gate", "site": "school", "url": str(clip_path), "fps": 5,
            "zones": [{"id": "kerb", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
                       "rules": [{"type": "dwell", "min_duration_s": 1.0, "clear_after_s": 2.0}]}],
        }],
    )
    with local_client(create_app(lambda: Service(settings, ParkedCarDetector()))) as client:
        page = wait_until(lambda: (p := client.get("/workorders").json())["total"] and p)  # no keys yet: open
        o = page["items"][0]
        assert (o["type"], o["state"], o["site"], o["grade"], o["unit"]) == ("dwell", "detected", "school", 4, "community-grid")
        inc = client.get(f"/incidents/{o['incident_id']}").json()
        assert inc["type"] == "dwell"
