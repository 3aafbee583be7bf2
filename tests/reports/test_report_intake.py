"""Reports from the 12345 platform and from residents open graded, routed cases through the one
incident writer; the reporter's contact is in no viewer's response, forwarded message or log line;
the receipt shows the report's own progress and nothing else."""

from __future__ import annotations

import base64
import io
import logging
import sqlite3
import time

import pytest
from PIL import Image
from sqlalchemy import select

from gridworker.delivery.outbox import OutboxRow
from gridworker.incidents.reports import ReportRow
from tests.factories import local_client
from tests.reports.conftest import jpeg_with_exif, make_env

CONTACT_NAME = "Wang Xiaoming"
CONTACT_PHONE = "13912345678"


def _intake(env, **over):
    body = {
        "type": "exposed_garbage", "text": "垃圾桶满溢 bins overflowing at gate 3", "channel": "12345", "external_id": "SH-2026-0001",
        "position": {"lon": 121.4737, "lat": 31.2304}, "contact": {"name": CONTACT_NAME, "phone": CONTACT_PHONE},
        "photos_base64": [base64.b64encode(jpeg_with_exif()).decode()],
    }
    body.update(over)
    return env.client.post("/reports", json=body, headers=env.h("operator"))


def test_a_12345_report_opens_a_graded_routed_case_with_its_photo(env):
    r = _intake(env)
    assert r.status_code == 201, r.text
    out = r.json()
    inc_id = out["incident_id"]
    order = env.client.get(f"/workorders/{inc_id}", headers=env.h("operator")).json()
    assert order["type"] == "exposed_garbage" and order["state"] == "detected"
    assert order["unit"] == env.service.workorders.catalogue.route("exposed_garbage", camera="report:12345").code
    inc = env.client.get(f"/incidents/{inc_id}", headers=env.h("operator")).json()
    assert inc["camera_id"] == "report:12345" and inc["details"]["position"] == {"lon": 121.4737, "lat": 31.2304}
    assert inc["details"]["source"] == "report" and inc["summary"].startswith("垃圾桶满溢")
    photos = env.client.get(f"/workorders/{inc_id}/photos", headers=env.h("operator")).json()
    assert [p["kind"] for p in photos] == ["report"]
    jpeg = env.client.get(photos[0]["url"], headers=env.h("operator"))
    assert jpeg.status_code == 200 and jpeg.content[:3] == b"\xff\xd8\xff"
    img = Image.open(io.BytesIO(jpeg.content))
    assert max(img.size) == 1600  # scaled down from 2400
    exif = img.getexif()
    assert set(exif) == {0x8825}  # the GPS IFD only: maker, model, time gone
    assert photos[0]["lon"] == pytest.approx(121.4737, abs=1e-4)
    # the case is on the queue and a message is in the outbox, as for a camera's case
    listed = env.client.get("/workorders", headers=env.h("operator")).json()
    assert inc_id in [o["incident_id"] for o in listed["items"]]


def test_the_contact_is_stored_but_never_shown_forwarded_or_logged(env, caplog):
    caplog.set_level(logging.DEBUG)
    r = _intake(env)
    inc_id = r.json()["incident_id"]
    assert CONTACT_PHONE not in r.text and CONTACT_NAME not in r.text
    with env.service.db.transaction() as s:  # stored, for a call back
        row = s.scalars(select(ReportRow).where(ReportRow.incident_id == inc_id)).one()
        assert (row.contact_name, row.contact_phone) == (CONTACT_NAME, CONTACT_PHONE)
        outbox = [o.payload if hasattr(o, "payload") else str(o.__dict__) for o in s.scalars(select(OutboxRow)).all()]
    assert outbox, "the case left a forwarded message"
    assert not any(CONTACT_PHONE in str(p) or CONTACT_NAME in str(p) for p in outbox)
    for role in ("admin", "operator", "viewer", "supervisor"):
        for path in (f"/incidents/{inc_id}", f"/workorders/{inc_id}", "/workorders", "/incidents", f"/workorders/{inc_id}/photos", "/stats"):
            got = env.client.get(path, headers=env.h(role))
            assert CONTACT_PHONE not in got.text and CONTACT_NAME not in got.text, (role, path)
    status = env.client.get(r.json()["status_url"].replace("/report/status/", "/report/receipts/"))
    assert status.status_code == 200 and CONTACT_PHONE not in status.text
    assert not any(CONTACT_PHONE in m or CONTACT_NAME in m for m in caplog.messages)


def test_photo_urls_are_refused_and_bad_photos_are_4xx(env):
    assert _intake(env, photos_base64=[], photo_urls=["http://127.0.0.1:9/x.jpg"]).status_code == 422
    assert _intake(env, photos_base64=["not base64!"]).status_code == 422
    gif = base64.b64encode(b"GIF89a" + b"\0" * 100).decode()
    r = _intake(env, photos_base64=[gif])
    assert r.status_code == 415 and "JPEG" in r.json()["detail"]
    broken = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 200).decode()
    assert _intake(env, photos_base64=[broken]).status_code == 422
    assert _intake(env, type="no_such_type").status_code == 422
    assert _intake(env, channel="resident").status_code == 422
    assert env.service.store.list.__self__ is not None  # (the store is there)
    assert env.client.get("/workorders", headers=env.h("operator")).json()["total"] == 0  # nothing opened


def test_a_repeated_platform_id_opens_nothing_new_and_roles_are_checked(env):
    first = _intake(env).json()
    again = _intake(env).json()
    assert again["duplicate"] is True and again["incident_id"] == first["incident_id"]
    assert env.client.get("/workorders", headers=env.h("operator")).json()["total"] == 1
    assert _intake(env, external_id="x").status_code == 201
    for role in ("viewer", "grid"):
        assert env.client.post("/reports", json={"type": "exposed_garbage", "text": "x"}, headers=env.h(role)).status_code == 403
    assert env.client.post("/reports", json={"type": "exposed_garbage", "text": "x"}).status_code == 401


def _submit(env, *, photo: bytes | None = None, client=None, **fields):
    data = {"type": "exposed_garbage", "text": "bins overflowing", "lon": "121.47", "lat": "31.23",
            "contact_name": CONTACT_NAME, "contact_phone": CONTACT_PHONE, **fields}
    files = [("photo", ("p.jpg", photo if photo is not None else jpeg_with_exif((800, 600)), "image/jpeg"))]
    return (client or env.client).post("/report/submit", data=data, files=files)


def test_a_resident_report_gives_a_receipt_that_shows_only_its_progress(env):
    types = env.client.get("/report/types").json()
    assert "exposed_garbage" in [t["code"] for t in types] and all(not t["code"].startswith("iot_") for t in types)
    r = _submit(env)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["incident_id"] is None and out["report_id"] is None and len(out["receipt"]) >= 22
    st = env.client.get(f"/report/receipts/{out['receipt']}").json()
    assert st["state"] == "detected" and st["type"] == "exposed_garbage"
    assert set(st) == {"type", "type_name_zh", "type_name_en", "state", "received_at", "updated_at", "handled_at", "closed_at"}
    page = env.client.get(out["status_url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert env.client.get("/report/receipts/" + "A" * 22).status_code == 404
    assert env.client.get("/report/receipts/short").status_code == 422
    orders = env.client.get("/workorders", headers=env.h("operator")).json()["items"]
    assert len(orders) == 1 and orders[0]["camera_id"] == "report:resident"
    # the case moves on: the receipt follows it
    inc_id = orders[0]["incident_id"]
    env.client.post(f"/workorders/{inc_id}/dispatch", json={}, headers=env.h("operator"))
    assert env.client.get(f"/report/receipts/{out['receipt']}").json()["state"] == "dispatched"


def test_public_reports_are_checked_capped_and_rate_limited(env):
    assert _submit(env, type="iot_smoke_alarm").status_code == 422  # not offered to residents
    assert _submit(env, photo=b"%PDF-1.4 not a photo").status_code == 415
    assert env.client.post("/report/submit", json={"type": "exposed_garbage"}).status_code == 415
    big = b"\xff\xd8\xff" + b"\0" * (9 * 1_000_000)
    assert _submit(env, photo=big).status_code == 413
    huge_body = env.client.post("/report/submit", content=b"x" * (37 * 1024 * 1024), headers={"content-type": "multipart/form-data; boundary=x"})
    assert huge_body.status_code == 413
    assert _submit(env, lon="200").status_code == 422
    assert _submit(env, evil="1").status_code == 422
    # 6 per client per hour (every attempt counts): this client has used them
    r = _submit(env)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    from tests.factories import local_client

    with local_client(env.client.app, client=("10.9.8.7", 4000)) as other:  # another address still may
        assert _submit(env, client=other).status_code == 201


def test_reports_switched_off(tmp_path):
    for env in make_env(tmp_path, public=False):
        assert env.client.get("/report/types").status_code == 404
        assert _submit(env).status_code == 404
        assert _intake(env).status_code == 201  # the platform's API stays


def test_a_retry_after_the_case_failed_to_open_opens_it_once(tmp_path, monkeypatch):
    """The report's row is stored, then opening its case fails (the database away): the API
    answers 500. The platform's retry with the same ``external_id`` opens the case for that
    report (it was answered "duplicate" with no case before); a third call is a duplicate."""
    for env in make_env(tmp_path):
        manager = env.service.incidents
        real = manager.resident_report
        calls = {"n": 0}

        def fails_once(observation):  # noqa: ANN001, ANN202
            calls["n"] += 1
            if calls["n"] == 1:
                raise sqlite3.OperationalError("database is locked")
            return real(observation)

        monkeypatch.setattr(manager, "resident_report", fails_once)
        body = {"type": "exposed_garbage", "text": "bins overflowing at gate 3", "external_id": "SH-2026-0077"}
        with local_client(env.client.app, raise_server_exceptions=False) as client:
            assert client.post("/reports", json=body, headers=env.h("operator")).status_code == 500
        retry = env.client.post("/reports", json=body, headers=env.h("operator"))
        assert retry.status_code == 201, retry.text
        first = retry.json()
        assert first["duplicate"] is False and first["incident_id"] is not None
        again = env.client.post("/reports", json=body, headers=env.h("operator")).json()
        assert again["duplicate"] is True and (again["report_id"], again["incident_id"]) == (first["report_id"], first["incident_id"])
        cases = [o["incident_id"] for o in env.client.get("/workorders", headers=env.h("operator")).json()["items"]]
        assert cases == [first["incident_id"]]
        status = env.client.get(first["status_url"].replace("/report/status/", "/report/receipts/"))
        assert status.status_code == 200, status.text  # the retry's receipt code is the one stored


def test_a_case_opened_but_not_linked_is_found_by_the_retry_and_two_retries_at_once_open_one(tmp_path, monkeypatch):
    """Two ways the resumed report could get two cases (review): the case opened but linking
    the report to it failed (the retry must find that case), and two retries arriving together
    (the second must wait for the first and find its case)."""
    import threading  # noqa: PLC0415

    for env in make_env(tmp_path):
        book = env.service.reports.book
        real_link, link_fails = book.link, {"on": True}

        def link(report_id, incident_id):  # noqa: ANN001, ANN202
            if link_fails["on"]:
                raise sqlite3.OperationalError("database is locked")
            return real_link(report_id, incident_id)

        monkeypatch.setattr(book, "link", link)
        body = {"type": "exposed_garbage", "text": "bins overflowing at gate 3", "external_id": "SH-2026-0078"}
        with local_client(env.client.app, raise_server_exceptions=False) as client:
            assert client.post("/reports", json=body, headers=env.h("operator")).status_code == 500
        link_fails["on"] = False
        again = env.client.post("/reports", json=body, headers=env.h("operator")).json()
        cases = [o["incident_id"] for o in env.client.get("/workorders", headers=env.h("operator")).json()["items"]]
        assert again["duplicate"] is True and cases == [again["incident_id"]]

        # two retries at once of a report whose case never opened: one case
        manager = env.service.incidents
        real, gate = manager.resident_report, threading.Event()

        def slow_once(observation):  # noqa: ANN001, ANN202
            if not gate.is_set():
                gate.set()
                raise sqlite3.OperationalError("database is locked")
            time.sleep(0.3)  # the first retry is still opening the case when the second arrives
            return real(observation)

        monkeypatch.setattr(manager, "resident_report", slow_once)
        body = {**body, "external_id": "SH-2026-0079"}
        with local_client(env.client.app, raise_server_exceptions=False) as client:
            assert client.post("/reports", json=body, headers=env.h("operator")).status_code == 500
        answers: list[dict] = []
        threads = [threading.Thread(target=lambda: answers.append(env.client.post("/reports", json=body, headers=env.h("operator")).json()))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(a["duplicate"] for a in answers) == [False, True]
        assert len({a["incident_id"] for a in answers}) == 1
        assert len(env.client.get("/workorders", headers=env.h("operator")).json()["items"]) == 2
