"""``POST /reports`` reads its body only after the key check (security review): its 48 MiB body
cap (``limits.body_bytes_by_path``) is for callers with an operator's or supervisor's key. A
caller with no key, a wrong key or the wrong role is refused having had no more than the default
cap (1 MiB) of its body read; a keyed caller still sends large reports with base64 photos.

The app runs behind a real uvicorn, wrapped in an ASGI layer that counts the body bytes the app
(its middleware included) pulls from the server."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import MIB, Settings
from tests.factories import ParkedCarDetector, live_server

BIG = 40 * MIB  # under the route's 48 MiB cap, far over the default 1 MiB


class BodyBytesRead:
    """ASGI wrapper: ``read`` is how many body bytes the wrapped app has received so far."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


@dataclass(frozen=True)
class Live:
    base: str
    counter: BodyBytesRead
    keys: dict[str, str]

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    db = tmp_path_factory.mktemp("reports-preauth") / "r.db"
    service = Service(Settings(database={"url": f"sqlite:///{db}"}, evidence={"clips": False}), ParkedCarDetector())
    keys = {role: create_key(service.keys, name=role, role=role)[1] for role in ("operator", "viewer")}
    counter = BodyBytesRead(create_app(lambda: service))
    with live_server(counter) as base:
        yield Live(base, counter, keys)


def _json_of(total: int) -> bytes:
    """A well-formed report of ``total`` bytes whose photos (10 MB each at most) are not base64."""
    head, sep, tail = b'{"type":"exposed_garbage","photos_base64":["', b'","', b'"]}'
    room = total - len(head) - len(tail)
    n = -(-room // (10_000_000 + len(sep)))
    size, extra = divmod(room - (n - 1) * len(sep), n)
    return head + sep.join(b"!" * (size + (i < extra)) for i in range(n)) + tail


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _post(live: Live, headers: dict[str, str], content: bytes | Iterator[bytes]) -> tuple[httpx.Response, int]:
    live.counter.read = 0
    with httpx.Client(timeout=60) as c:
        r = c.post(f"{live.base}/reports", content=content, headers=headers)
    return r, live.counter.read


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("who", "status"), [("no key", 401), ("wrong key", 401), ("viewer", 403)])
def test_a_caller_without_an_intake_key_is_refused_before_its_big_body_is_read(live, who, status, chunked):
    headers = {"Content-Type": "application/json"}
    if who == "wrong key":
        headers["X-API-Key"] = "gwk_000000000000_" + "A" * 43
    elif who == "viewer":
        headers = live.h("viewer")
    body = _json_of(BIG)
    r, read = _post(live, headers, _chunks(body) if chunked else body)
    assert r.status_code == status, r.text[:200]
    assert len(body) == BIG
    assert read <= MIB, f"{read} body bytes read before the {status}"


def test_an_operator_still_sends_a_report_over_the_default_cap(live):
    noise = Image.frombytes("RGB", (1000, 800), os.urandom(1000 * 800 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    photo = base64.b64encode(out.getvalue()).decode()
    body = {"type": "exposed_garbage", "text": "bins overflowing", "external_id": "preauth-1", "photos_base64": [photo]}
    with httpx.Client(timeout=60) as c:
        r = c.post(f"{live.base}/reports", json=body, headers=live.h("operator"))
    assert len(photo) > MIB
    assert r.status_code == 201, r.text[:300]
    assert r.json()["incident_id"] is not None


def test_an_operators_big_body_is_read_under_the_route_cap_and_validated(live):
    r, read = _post(live, live.h("operator"), _chunks(_json_of(BIG)))
    assert r.status_code == 422, r.text[:200]  # read whole and parsed: its photo is not base64
    assert "photos_base64[0] is not valid base64" in r.json()["detail"]
    assert read == BIG
    r, _ = _post(live, live.h("operator"), _chunks(_json_of(49 * MIB)))
    assert r.status_code == 413, r.text[:200]


def test_a_bad_body_is_a_422_naming_the_field_as_before(live):
    with httpx.Client(timeout=30) as c:
        post = lambda content, ct="application/json": c.post(  # noqa: E731
            f"{live.base}/reports", content=content, headers={**live.h("operator"), "Content-Type": ct}
        )
        r = post(b'{"type": "exposed_garbage", "unknown": 1}')
        assert r.status_code == 422
        assert ["body", "unknown"] in [e["loc"] for e in r.json()["detail"]]
        assert "input" not in r.json()["detail"][0]  # the scrubbing handler wrote it (api/errors.py)
        assert post(b'{"type": ').status_code == 422  # not JSON
        assert post(b"type=x", "application/x-www-form-urlencoded").status_code == 422
        r = c.post(f"{live.base}/reports", content=b'{"type": "exposed_garbage", "unknown": 1}', headers={"X-API-Key": live.keys["operator"]})
        assert r.status_code == 422  # no Content-Type: not taken as JSON (FastAPI's strict default, as before)
