"""A handler's photo sent with ``POST /workorders/{id}/handle`` is bounded by the deployment's
``reports.photos.max_side`` and ``max_input_megapixels``, as report photos and the phone page's
photos are (the service hands the workflow those limits, gridworker/service.py), not by
normalise_photo's defaults."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.reports.conftest import Env, jpeg_with_exif, make_env

MAX_SIDE = 400  # well under the default 1600


@pytest.fixture
def small(tmp_path) -> Iterator[Env]:
    yield from make_env(tmp_path, photos={"max_side": MAX_SIDE, "max_input_megapixels": 1.0})


def _accepted_case(env: Env) -> int:
    body = {"type": "exposed_garbage", "text": "bins", "photos_base64": [base64.b64encode(jpeg_with_exif((800, 600))).decode()]}
    r = env.client.post("/reports", json=body, headers=env.h("operator"))
    assert r.status_code in (200, 201), r.text
    inc = r.json()["incident_id"]
    assert env.client.post(f"/workorders/{inc}/dispatch", json={}, headers=env.h("operator")).status_code == 200
    assert env.client.post(f"/workorders/{inc}/accept", headers=env.h("grid")).status_code == 200
    return inc


def _handle(env: Env, inc: int, jpeg: bytes):
    body = {"note": "bins emptied", "photo_base64": base64.b64encode(jpeg).decode()}
    return env.client.post(f"/workorders/{inc}/handle", json=body, headers=env.h("grid"))


def test_the_handling_photo_is_stored_within_the_configured_max_side(small):
    inc = _accepted_case(small)
    r = _handle(small, inc, jpeg_with_exif((1000, 750)))  # 0.75 MP: under the configured input cap
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "handled" and r.json()["photo_url"] == f"/workorders/{inc}/photo.jpg"
    got = small.client.get(f"/workorders/{inc}/photo.jpg", headers=small.h("viewer"))
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(got.content)) as stored:
        assert stored.size == (MAX_SIDE, 300)  # scaled to the configured side, not normalise_photo's 1600
    # the report's photo of the same case (800 x 600) went through the same limits
    [report] = small.client.get(f"/workorders/{inc}/photos", headers=small.h("viewer")).json()
    assert (report["kind"], report["width"], report["height"]) == ("report", MAX_SIDE, 300)


def test_a_handling_photo_over_the_configured_megapixels_is_refused(small):
    inc = _accepted_case(small)
    r = _handle(small, inc, jpeg_with_exif((1400, 1000)))  # 1.4 MP: over the configured 1 MP, under the default 50
    assert r.status_code == 422, r.text
    assert "megapixels" in r.json()["detail"]
    assert small.client.get(f"/workorders/{inc}", headers=small.h("viewer")).json()["state"] == "accepted"
