"""Hostile observation payloads are refused (terminated, counted), and the consumer carries on (issue 12)."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.cluster.cluster_h5_support import Scripted, manager_on, obs_link  # noqa: F401 - obs_link is a fixture
from tests.factories import wait_until
from gridworker.cluster.observations import Decision, ObservationConsumer, ensure_obs_stream, obs_subject
from gridworker.cluster.wire import MAX_MESSAGE_BYTES, encode_frame


def _valid(cam: Scripted, obs_id: str, **kw) -> dict:
    return json.loads(encode_frame(cam.frame(True), obs_id=obs_id, worker="w1", token=5, visit=None, sent_at=time.time(), **kw))


def _jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, "JPEG")
    return buf.getvalue()


def _hostile(cam: Scripted) -> dict[str, bytes]:
    wrong_version = {**_valid(cam, "h.1"), "v": 2}
    bad_index = _valid(cam, "h.2")
    bad_index["frame"]["verdicts"][0]["result"]["subjects"] = [99]
    wrong_size = _valid(cam, "h.3")
    wrong_size["frame"]["jpeg"] = base64.b64encode(_jpeg(4000, 4000)).decode()  # declares another size than the frame's
    not_jpeg = _valid(cam, "h.4")
    not_jpeg["frame"]["jpeg"] = base64.b64encode(b"GIF89a" + b"\0" * 50).decode()
    nan = json.dumps(_valid(cam, "h.5")).replace('"ts":', '"ts":NaN,"x":').encode()
    no_token = {**_valid(cam, "h.6"), "token": 0}
    extra = {**_valid(cam, "h.7"), "admin": True}
    bad_id = {**_valid(cam, "h.8"), "camera_id": "../../etc/passwd"}
    return {
        "oversized": b"{" + b" " * (MAX_MESSAGE_BYTES + 10) + b"}",
        "not json": b"\xff\xfe garbage",
        "deep": b"[" * 5000 + b"]" * 5000,
        "wrong version": json.dumps(wrong_version).encode(),
        "bad index": json.dumps(bad_index).encode(),
        "wrong image size": json.dumps(wrong_size).encode(),
        "not a jpeg": json.dumps(not_jpeg).encode(),
        "nan": nan,
        "no token": json.dumps(no_token).encode(),
        "extra field": json.dumps(extra).encode(),
        "bad camera id": json.dumps(bad_id).encode(),
        "unknown camera": json.dumps({**_valid(cam, "h.9"), "camera_id": "nobody"}).encode(),
    }


def test_hostile_payloads_are_refused_one_by_one(tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    consumer = ObservationConsumer(None, manager, store.db, known_camera=lambda cam: cam == "cam1")  # type: ignore[arg-type]
    cam = Scripted("cam1")
    for name, raw in _hostile(cam).items():
        assert consumer.handle(raw) == Decision.REJECTED, name
    assert store.open_incidents() == []
    assert "unsupported wire version" in consumer.stats.rejected and "unknown camera" in consumer.stats.rejected
    assert consumer.handle(json.dumps(_valid(cam, "ok.1")).encode()) == Decision.APPLIED


@pytest.fixture
def link(obs_link):
    return obs_link


def test_consumer_terminates_hostile_messages_and_keeps_going(link, tmp_path: Path) -> None:
    manager, store = manager_on(f"sqlite:///{tmp_path / 'c.db'}")
    cam = Scripted("cam1")
    hostile = {k: v for k, v in _hostile(cam).items() if len(v) < 900_000}  # the broker itself refuses the oversized one
    for i, raw in enumerate(hostile.values()):
        link.call(lambda raw=raw, i=i: link.js.publish(obs_subject(link), raw, headers={"Nats-Msg-Id": f"hostile-{i}"}))
    link.call(lambda: link.js.publish(obs_subject(link), json.dumps(_valid(cam, "ok.1")).encode(), headers={"Nats-Msg-Id": "ok.1"}))
    consumer = ObservationConsumer(link, manager, store.db, known_camera=lambda c: c == "cam1")
    consumer.start()
    try:
        wait_until(lambda: consumer.stats.applied == 1 and sum(consumer.stats.rejected.values()) == len(hostile), timeout=20)
        # terminated, not redelivered: the stream is empty once they are settled
        wait_until(lambda: link.call(lambda: link.js.stream_info(link.name("obs"))).state.messages == 0, timeout=10)
    finally:
        consumer.stop()
    assert len(store.open_incidents()) == 1
