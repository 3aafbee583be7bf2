"""API keys: stored hashed, checked in constant time, never logged; when auth is on."""

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from gridworker.api import create_app
from gridworker.api.auth import KeyError_, create_key, verify_key
from gridworker.api.deps import CaseParts
from gridworker.incidents import IncidentStore
from gridworker.cases.workorders import WorkOrders
from gridworker.keystore import KeyStore, LastAdminKey
from tests.factories import local_client


@pytest.fixture
def keys(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'keys.db'}")
    yield KeyStore(store.db)
    store.close()


def _db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("keys.db*"))


def test_raw_key_is_not_stored_or_logged(keys, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    stored, raw = create_key(keys, name="ops lead", role="admin")
    secret = raw[17:]  # after "gwk_" + 12 hex + "_" (the secret may contain "_")
    assert raw == f"gwk_{stored.key_id}_{secret}" and len(secret) == 43
    # used through the API too, so request handling is in the captured logs
    with local_client(CaseParts.of(IncidentStore(keys.db), WorkOrders(keys.db), keys=keys).serve(create_app())) as client:
        assert client.get("/workorders", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
        assert client.get("/keys", headers={"X-API-Key": raw}).status_code == 200
        wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")  # one character off (never the key itself)
        assert client.get("/workorders", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    keys.db.close()  # flush the WAL into the file as well
    data = _db_bytes(tmp_path)
    assert data, "the database file is there"
    assert stored.key_id.encode() in data  # the public part is
    assert secret.encode() not in data and raw.encode() not in data
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert secret not in logged and raw not in logged


def test_verify(keys):
    stored, raw = create_key(keys, name="grid 3", role="unit_handler", unit="community-grid")
    found = verify_key(keys, raw, now=1000.0)
    assert found is not None and (found.role, found.unit, found.name) == ("unit_handler", "community-grid", "grid 3")
    assert keys.keys()[0].last_used_at == 1000.0
    key_id, secret = raw[4:16], raw[17:]
    other_stored, other_raw = create_key(keys, name="other", role="viewer")
    assert verify_key(keys, f"gwk_{key_id}_{other_raw[17:]}") is None  # another key's secret
    assert verify_key(keys, f"gwk_{other_stored.key_id}_{secret}") is None
    assert verify_key(keys, raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert verify_key(keys, "") is None and verify_key(keys, "Bearer x") is None
    assert verify_key(keys, f" {raw} ") is not None
    assert keys.revoke_key(stored.id, time.time())
    assert verify_key(keys, raw) is None
    assert [k.name for k in keys.keys()] == ["other"] and len(keys.keys(include_revoked=True)) == 2
    # two keys made the same way never share salt or secret
    a, b = create_key(keys, name="a", role="viewer")[1], create_key(keys, name="b", role="viewer")[1]
    assert a[17:] != b[17:]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"role": "root"}, "unknown role"),
        ({"role": "unit_handler"}, "needs --unit"),
        ({"role": "unit_handler", "unit": "ministry"}, "unknown unit 'ministry'"),
        ({"role": "operator", "unit": "community-grid"}, "only unit_handler keys"),
        ({"role": "admin", "name": " "}, "needs a name"),
    ],
)
def test_create_refuses(keys, kwargs, message):
    with pytest.raises(KeyError_, match=message):
        create_key(keys, **{"name": "n", **kwargs})
    assert keys.keys() == []


@pytest.mark.parametrize(
    "enabled, with_key, status",
    [
        (None, False, 200),  # default: open (to loopback callers) until the first key exists
        (None, True, 401),  # ... and closed from then on
        (True, False, 401),  # forced on: nothing gets in before `gridworker keys create`
        (True, True, 401),
        (False, True, 200),  # forced off
    ],
)
def test_when_auth_applies(tmp_path, enabled, with_key, status):
    store = IncidentStore(f"sqlite:///{tmp_path / 'mode.db'}")
    keys = KeyStore(store.db, auth_enabled=enabled)
    if with_key:
        create_key(keys, name="k", role="viewer")
    with local_client(CaseParts.of(store, WorkOrders(store.db), keys=keys).serve(create_app())) as client:
        assert client.get("/workorders").status_code == status
        if status == 200:  # open: loopback callers are an anonymous admin
            assert client.get("/keys").status_code == 200
    store.close()


def test_revocation_never_reopens(keys):
    """The last admin key cannot be revoked, and keys revoked anyway (in the database) keep
    the API closed: once a key has existed, keys stay required."""
    stored, raw = create_key(keys, name="only", role="admin")
    viewer, _ = create_key(keys, name="viewer", role="viewer")
    assert keys.auth_required()
    assert keys.revoke_key(viewer.id, time.time())
    with pytest.raises(LastAdminKey, match="last admin key"):
        keys.revoke_key(stored.id, time.time())
    assert verify_key(keys, raw) is not None
    with keys.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE api_keys SET revoked_at = 1"))
    assert not keys.any_key()
    assert keys.auth_required() and KeyStore(keys.db).auth_required()
    assert not KeyStore(keys.db, auth_enabled=False).auth_required()

def test_openapi_declares_the_key_and_session_schemes_on_every_protected_operation():
    doc = create_app().openapi()  # no service needed
    schemes = doc["components"]["securitySchemes"]
    assert (schemes["ApiKey"]["type"], schemes["ApiKey"]["in"], schemes["ApiKey"]["name"]) == ("apiKey", "header", "X-API-Key")
    assert (schemes["Bearer"]["type"], schemes["Bearer"]["scheme"]) == ("http", "bearer")
    assert (schemes["Session"]["type"], schemes["Session"]["in"], schemes["Session"]["name"]) == ("apiKey", "cookie", "gw_session")
    open_to_all = {("get", "/health"), ("get", "/metrics")}  # probes and Prometheus scrape without a key
    open_to_all |= {("post", "/auth/login")}  # people log in with a password (issue 15, api/sessions.py)
    # residents report without a key: the catalogue's types, the report (rate-limited, capped) and its receipt
    open_to_all |= {("get", "/report/types"), ("post", "/report/submit"), ("get", "/report/receipts/{code}")}
    operations = {(method, path): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert open_to_all <= set(operations) and len(operations) > 40
    for (method, path), op in operations.items():
        if (method, path) in open_to_all:
            assert "security" not in op, (method, path)
        else:
            assert op.get("security") == [{"ApiKey": []}, {"Bearer": []}, {"Session": []}], (method, path)
        # the key is a security scheme, not a documented header parameter
        assert not {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"} & {"authorization", "x-api-key"}


def test_how_a_key_is_read(keys):
    """X-API-Key first, then ``Authorization: Bearer``; another scheme is no key; 401s say Bearer."""
    _, raw = create_key(keys, name="ops", role="viewer")
    with local_client(CaseParts.of(IncidentStore(keys.db), WorkOrders(keys.db), keys=keys).serve(create_app())) as client:
        for headers, status in [
            ({"X-API-Key": raw}, 200),
            ({"Authorization": f"Bearer {raw}"}, 200),
            ({"Authorization": f"bearer {raw}"}, 200),  # the scheme is case-insensitive
            ({"X-API-Key": raw, "Authorization": "Bearer gwk_000000000000_" + "x" * 43}, 200),  # X-API-Key wins
            ({"X-API-Key": "gwk_000000000000_" + "x" * 43, "Authorization": f"Bearer {raw}"}, 401),
            ({"Authorization": f"Basic {raw}"}, 401),  # not a bearer token: no key at all
            ({}, 401),
        ]:
            r = client.get("/workorders", headers=headers)
            assert r.status_code == status, (headers.keys(), r.text)
            if status == 401:
                assert r.headers["www-authenticate"] == "Bearer"


def test_a_key_without_the_bearer_scheme_is_told_how_to_send_it(keys):
    _, raw = create_key(keys, name="ops lead", role="admin")
    with local_client(CaseParts.of(IncidentStore(keys.db), WorkOrders(keys.db), keys=keys).serve(create_app())) as client:
        bare = client.get("/workorders", headers={"Authorization": raw})  # the key alone, no "Bearer "
        assert bare.status_code == 401
        detail = bare.json()["detail"]
        assert "an API key is required" in detail and "Authorization: Bearer <key>" in detail and "no Bearer scheme" in detail
        assert raw not in bare.text
        none = client.get("/workorders")
        assert none.status_code == 401 and "X-API-Key" in none.json()["detail"] and "no Bearer scheme" not in none.json()["detail"]
        assert client.get("/workorders", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


@pytest.mark.parametrize("name", ["ops\n2026-12-04 15:00:00,000 INFO gridworker: forged", "a\x1b[31m", "tab\there", "nul\x00"])
def test_a_key_name_with_control_characters_is_refused(keys, name):
    """The name is part of the actor written to logs and the audit: no line breaks or escapes."""
    with pytest.raises(KeyError_, match="control characters"):
        create_key(keys, name=name, role="operator")
    _, raw = create_key(keys, name="ops lead", role="admin")
    with local_client(CaseParts.of(IncidentStore(keys.db), WorkOrders(keys.db), keys=keys).serve(create_app())) as client:
        r = client.post("/keys", json={"name": name, "role": "viewer"}, headers={"X-API-Key": raw})
        assert r.status_code == 422 and name not in r.text
        assert client.post("/keys", json={"name": "night desk 夜班", "role": "viewer"}, headers={"X-API-Key": raw}).status_code == 201
