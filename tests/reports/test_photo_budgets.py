"""Residents' public-page photos have a budget and a retention of their own, apart from the
photos of people and systems with an account or a key (handlers, the intake API): an anonymous
flood never makes a handler's upload 507 nor gets a handler's photo deleted; a full public
budget refuses only residents' photos. A report refused for want of photo room opens no case
(and stores no report), so the reporter's retry does not make a second one.

Real Service behind the real app, SQLite in a temporary folder; photos that do not compress
(noise), so a few of them fill a budget of a few MB (each is ~1.27 MB once re-encoded)."""

from __future__ import annotations

import base64
import io
from functools import cache

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy import func, select

from gridworker.cases.photos import HANDLING, PUBLIC_ACTOR, REPORT, PhotoStorageFull, PhotoStore, normalise_photo, prune_photos
from gridworker.incidents.db import Database
from gridworker.incidents.reports import ReportRow
from gridworker.incidents.store import IncidentStore
from tests.factories import local_client
from tests.reports.conftest import jpeg_with_exif, make_env


@cache
def noisy(seed: int) -> bytes:
    """A 1600x1200 JPEG of noise: ~1.27 MB after normalisation, distinct per seed."""
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(out, "JPEG", quality=95)
    return out.getvalue()


def _public(env, address: str, *photos: bytes, text: str = "stall on the pavement"):
    """A resident's report on the public page from its own address (6 an hour per address)."""
    with local_client(env.client.app, client=(address, 4000)) as resident:
        fields = [("type", (None, "street_vending")), ("text", (None, text))]
        return resident.post("/report/submit", files=fields + [("photo", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)])


def _intake(env, *photos: bytes, external_id: str = ""):
    body = {"type": "exposed_garbage", "text": "bins overflowing at gate 3", "external_id": external_id,
            "photos_base64": [base64.b64encode(p).decode() for p in photos]}
    return env.client.post("/reports", json=body, headers=env.h("operator"))


def _handler_upload(env, inc: int, *photos: bytes):
    files = [("photo", (f"h{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]
    return env.client.post(f"/workorders/{inc}/photos", files=files, headers=env.h("grid"))


def _cases(env) -> list[int]:
    return [o["incident_id"] for o in env.client.get("/workorders", headers=env.h("operator")).json()["items"]]


def _reports(env) -> int:
    with env.service.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(ReportRow)) or 0)


def test_anonymous_report_photos_never_push_out_a_handlers_photos(tmp_path):
    """The reviewer's flood: the main budget fits two photos; residents' photos used to share it."""
    for env in make_env(tmp_path, photos={"max_total_mb": 3.0}):
        inc = _intake(env).json()["incident_id"]
        first = _handler_upload(env, inc, noisy(0))
        assert first.status_code == 201, first.text
        # three anonymous residents, two photos each: they go to the public budget (1000 MB by default)
        codes = [_public(env, f"2001:db8:{i}::1", noisy(1), noisy(2)).status_code for i in range(3)]
        assert codes == [201, 201, 201]
        assert env.service.photos.total_bytes(public=True) == 3 * sum(len(normalise_photo(noisy(i)).jpeg) for i in (1, 2))
        assert env.service.photos.total_bytes(public=True) > 2 * env.service.photos.max_total_bytes  # more than ever fitted the shared one
        # the handler's next photo still fits the main budget, and retention keeps both
        again = _handler_upload(env, inc, noisy(3))
        assert again.status_code == 201, again.text
        env.service.retention.run_once()
        assert env.client.get(first.json()[0]["url"], headers=env.h("grid")).status_code == 200
        listed = env.client.get(f"/workorders/{inc}/photos", headers=env.h("grid")).json()
        assert [p["kind"] for p in listed] == ["handling", "handling"]


def test_a_full_public_budget_refuses_residents_photos_but_not_handlers(tmp_path):
    for env in make_env(tmp_path, photos={"max_total_mb": 3.0, "public_max_total_mb": 3.0}):
        assert _public(env, "10.0.0.1", noisy(1), noisy(2)).status_code == 201  # 2.54 MB of 3
        cases, reports = _cases(env), _reports(env)
        full = _public(env, "10.0.0.2", noisy(3))
        assert full.status_code == 507
        assert "residents' photos" in full.json()["detail"] and "MB" not in full.json()["detail"]
        assert _cases(env) == cases and _reports(env) == reports  # refused before anything was stored
        assert _public(env, "10.0.0.2").status_code == 201  # a report without photos still goes
        # handlers (and the intake API) have their own budget: untouched by the residents' photos
        inc = _intake(env).json()["incident_id"]
        r = _handler_upload(env, inc, noisy(4), noisy(5))
        assert r.status_code == 201, r.text
        assert env.service.photos.total_bytes(public=False) > env.service.photos.public_max_total_bytes * 0.8


def test_a_report_refused_for_photo_room_opens_no_case_and_a_retry_is_not_a_duplicate(tmp_path):
    """The intake API (main budget of 3 MB) and the public page (its own 3 MB): 4 photos of ~1.27 MB."""
    for env in make_env(tmp_path, photos={"max_total_mb": 3.0, "public_max_total_mb": 3.0}):
        four = [noisy(i) for i in range(4)]
        for _ in range(2):  # the platform retries its call
            r = _intake(env, *four, external_id="SH-2026-0042")
            assert r.status_code == 507, r.text
            assert _cases(env) == [] and _reports(env) == 0 and env.service.photos.total_bytes() == 0
        # with fewer photos the same platform id is a new report, not a "duplicate" of a refused one
        ok = _intake(env, *four[:2], external_id="SH-2026-0042")
        assert ok.status_code == 201 and ok.json()["duplicate"] is False
        assert len(env.client.get(f"/workorders/{ok.json()['incident_id']}/photos", headers=env.h("operator")).json()) == 2
        # the resident on the public page: two attempts, both refused, nothing opened
        for _ in range(2):
            assert _public(env, "10.0.0.9", *four).status_code == 507
        assert _cases(env) == [ok.json()["incident_id"]] and _reports(env) == 1


@pytest.fixture
def store(tmp_path):
    db = Database.open(f"sqlite:///{tmp_path / 'p.db'}")
    incidents = IncidentStore(db)
    cases = [
        incidents.open(camera_id="report:resident", camera_name="", site="", zone_id="resident", rule_id=f"r{i}", type="exposed_garbage",
                       at=1000.0, count=1, summary="", details={}, snapshot=None).id
        for i in range(3)
    ]
    yield PhotoStore(db, tmp_path / "photos", max_total_bytes=10_000_000, public_max_total_bytes=10_000_000, min_free_bytes=0), cases
    db.close()


def _photo(i: int):
    return normalise_photo(jpeg_with_exif((800, 600), color=(40 * i % 256, 90, 200 - 20 * i)))


def test_each_budget_is_counted_and_pruned_on_its_own(store):
    photos, (a, b, c) = store
    handling = photos.add(a, HANDLING, _photo(1), actor="grid-handler", at=1000.0)  # the oldest of all
    platform = photos.add(b, REPORT, _photo(2), actor="report:12345", at=1001.0)  # the intake API's: main budget
    public = [photos.add(c, REPORT, _photo(3 + i), actor=PUBLIC_ACTOR, at=2000.0 + i) for i in range(3)]
    main = handling.size_bytes + platform.size_bytes
    assert photos.total_bytes(public=False) == main
    assert photos.total_bytes(public=True) == sum(p.size_bytes for p in public)
    assert photos.total_bytes() == main + photos.total_bytes(public=True)
    # a row as a database from before this change holds it (same columns): counted as public
    with photos.db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO case_photos (incident_id, kind, name, sha256, size_bytes, width, height, lon, lat, actor, created_at)"
            " VALUES (:c, 'report', 'gone-before-this-test-0000.jpg', :h, 5000, 8, 8, NULL, NULL, 'report:resident', 1500.0)"
        ), {"c": c, "h": "0" * 64})
    assert photos.total_bytes(public=True) == sum(p.size_bytes for p in public) + 5000
    # the public budget over its bound: only public photos go, the oldest first, though the handler's is older
    deleted, _ = prune_photos(photos, now=3000.0, max_age_s=None, max_total_bytes=main, public_max_total_bytes=public[2].size_bytes)
    assert deleted == 3
    assert [p.id for p in photos.list(c)] == [public[2].id]
    assert photos.get(handling.id) is not None and photos.get(platform.id) is not None
    # the main budget over its bound: its oldest goes, no public photo
    deleted, _ = prune_photos(photos, now=3000.0, max_age_s=None, max_total_bytes=platform.size_bytes, public_max_total_bytes=None)
    assert deleted == 1 and photos.get(handling.id) is None and photos.get(platform.id) is not None
    assert [p.id for p in photos.list(c)] == [public[2].id]


def test_room_held_for_a_report_is_not_given_twice(store):
    photos, (a, b, c) = store
    two = [_photo(1), _photo(2)]
    photos.public_max_total_bytes = sum(len(p.jpeg) for p in two)
    with photos.reserve(REPORT, two, actor=PUBLIC_ACTOR) as hold:
        with pytest.raises(PhotoStorageFull) as full:  # another report meanwhile: the room is held
            with photos.reserve(REPORT, [_photo(3)], actor=PUBLIC_ACTOR):
                pass
        assert full.value.status == 507
        with pytest.raises(PhotoStorageFull):
            photos.add(b, REPORT, _photo(3), actor=PUBLIC_ACTOR)
        photos.add(a, HANDLING, _photo(3), actor="grid-handler")  # the main budget is another
        with photos.reserve(REPORT, [], actor=PUBLIC_ACTOR):  # a report without photos needs no room
            pass
        for p in two:
            photos.add(c, REPORT, p, actor=PUBLIC_ACTOR, hold=hold)
        assert hold.left == 0
    assert photos.total_bytes(public=True) == photos.public_max_total_bytes
    with pytest.raises(PhotoStorageFull) as many:
        with photos.reserve(REPORT, [_photo(i) for i in range(photos.max_per_case + 1)], actor="report:12345"):
            pass
    assert many.value.status == 409
    # nothing stays held once a block is left: the main budget's whole room is there again
    photos.max_total_bytes = photos.total_bytes(public=False) + len(two[0].jpeg)
    with photos.reserve(REPORT, [two[0]], actor="report:12345"):
        pass
