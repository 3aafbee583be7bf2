"""Handlers' photos of a case over HTTP (POST/GET /workorders/{id}/photos, GET /photos/{id}.jpg):
only whoever may see the case adds or reads them; bad files are 4xx; a retried upload is stored
once; the public report rate is per client and in total, with bounded memory; retention prunes
photos with the rest."""

from __future__ import annotations

import base64

from gridworker.api.ratelimit import ClientAndTotalLimit
from gridworker.incidents.retention import RetentionConfig, run_retention
from gridworker.cases.photos import PhotoRetention
from tests.reports.conftest import jpeg_with_exif


def _case(env) -> int:
    body = {"type": "exposed_garbage", "text": "bins", "photos_base64": [base64.b64encode(jpeg_with_exif((640, 480))).decode()]}
    inc = env.client.post("/reports", json=body, headers=env.h("operator")).json()["incident_id"]
    unit = env.client.get(f"/workorders/{inc}", headers=env.h("operator")).json()["unit"]
    assert unit == "community-grid"  # where the catalogue routes exposed garbage first
    return inc


def _upload(env, inc: int, role: str, *files: bytes):
    return env.client.post(f"/workorders/{inc}/photos", files=[("photo", (f"p{i}.jpg", f, "image/jpeg")) for i, f in enumerate(files)], headers=env.h(role))


def test_handler_photos_are_for_whoever_may_see_the_case(env):
    inc = _case(env)
    shot = jpeg_with_exif((1000, 800), color=(10, 10, 200))
    r = _upload(env, inc, "grid", shot, jpeg_with_exif((1000, 800), color=(200, 200, 10)))
    assert r.status_code == 201, r.text
    assert [p["kind"] for p in r.json()] == ["handling", "handling"]
    again = _upload(env, inc, "grid", shot)  # a retried upload: the same photo, not a copy
    assert again.status_code == 201 and again.json()[0]["id"] == r.json()[0]["id"]
    listed = env.client.get(f"/workorders/{inc}/photos", headers=env.h("grid")).json()
    assert [p["kind"] for p in listed] == ["report", "handling", "handling"]
    # another unit's handler neither sees nor adds; a viewer reads but may not add
    assert _upload(env, inc, "traffic", shot).status_code == 404
    assert env.client.get(f"/workorders/{inc}/photos", headers=env.h("traffic")).status_code == 404
    assert env.client.get(listed[0]["url"], headers=env.h("traffic")).status_code == 404
    assert env.client.get(listed[0]["url"], headers=env.h("viewer")).status_code == 200
    assert _upload(env, inc, "viewer", shot).status_code == 403
    assert env.client.post(f"/workorders/{inc}/photos", files=[("photo", ("p.jpg", shot, "image/jpeg"))]).status_code == 401
    assert _upload(env, 999_999, "operator", shot).status_code in (403, 404)
    assert env.client.get("/photos/999999.jpg", headers=env.h("viewer")).status_code == 404


def test_bad_handler_uploads_are_refused(env):
    inc = _case(env)
    assert _upload(env, inc, "grid", b"GIF89a" + b"\0" * 64).status_code == 415
    assert _upload(env, inc, "grid", b"\xff\xd8\xff" + b"\0" * 64).status_code == 422
    assert env.client.post(f"/workorders/{inc}/photos", files=[("note", (None, "x"))], headers=env.h("grid")).status_code == 422  # no file
    assert env.client.post(f"/workorders/{inc}/photos", json={"photo": "x"}, headers=env.h("grid")).status_code == 415
    other = env.client.post(f"/workorders/{inc}/photos", files=[("image", ("p.jpg", jpeg_with_exif((64, 64)), "image/jpeg"))], headers=env.h("grid"))
    assert other.status_code == 422
    five = [jpeg_with_exif((64, 64), color=(i * 40, 0, 0)) for i in range(5)]
    assert _upload(env, inc, "grid", *five).status_code == 400  # more files than a request may carry
    assert env.client.get(f"/workorders/{inc}/photos", headers=env.h("grid")).json()[1:] == []


def test_the_public_rate_is_per_client_and_in_total_with_bounded_memory():
    rate = ClientAndTotalLimit(per_client=2, total=3, window_s=3600.0, max_clients=2)
    assert rate.hit("a", 0.0) is None and rate.hit("a", 1.0) is None
    assert rate.hit("a", 2.0) == 3598.0  # a's third within the hour
    assert rate.hit("b", 3.0) is None
    assert rate.hit("c", 4.0) == 3596.0  # the total is spent
    assert rate.hit("c", 4.5) == 3595.5  # a refused hit spends nothing
    assert rate.hit("a", 3600.5) is None  # a's first has left the window, and the total's
    for i in range(100):
        rate.hit(f"flood-{i}", 9000.0)
    assert len(rate.per_client) == 2  # only the most recent addresses are remembered
    assert len(rate.total) == 1


def test_retention_prunes_photos_with_the_rest(env):
    inc = _case(env)
    assert _upload(env, inc, "grid", jpeg_with_exif((300, 300), color=(1, 2, 3))).status_code == 201
    photos = env.service.photos
    report = run_retention(env.service.store, RetentionConfig(), now=10**10, photos=PhotoRetention(photos, 86_400.0, None))
    assert report.photos == 2 and report.photo_bytes_freed > 0
    assert env.client.get(f"/workorders/{inc}/photos", headers=env.h("grid")).json() == []
    assert list(photos.photos_dir.iterdir()) == []


def test_photo_routes_have_their_own_body_cap(env):
    import io

    import numpy as np
    from PIL import Image

    inc = _case(env)
    noise = np.random.default_rng(7).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "JPEG", quality=95)
    big = out.getvalue()
    assert 2_000_000 < len(big) < 8_000_000  # over the default 1 MiB body cap, under a photo's
    assert _upload(env, inc, "grid", big).status_code == 201  # /workorders/*/photos: 36 MiB
    assert env.client.post(f"/workorders/{inc}/handle", content=b"x" * 2_000_000, headers=env.h("grid")).status_code == 413  # others keep 1 MiB
    huge = env.client.post(f"/workorders/{inc}/photos", content=b"x" * (37 * 1024 * 1024), headers={**env.h("grid"), "content-type": "multipart/form-data; boundary=x"})
    assert huge.status_code == 413
