"""Builders for test inputs from plain lists."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from typing import Self

import numpy as np
import pytest
import sqlalchemy as sa
import supervision as sv


def make_detections(
    xyxy: Sequence[Sequence[float]] = (),
    class_name: Sequence[str] | None = None,
    confidence: Sequence[float] | None = None,
    tracker_id: Sequence[int] | None = None,
) -> sv.Detections:
    n = len(xyxy)
    if n == 0:
        dets = sv.Detections.empty()
        dets.data["class_name"] = np.zeros(0, dtype=str)
        if tracker_id is not None:
            dets.tracker_id = np.zeros(0, dtype=np.int64)
        return dets
    names = list(class_name) if class_name is not None else ["person"] * n
    return sv.Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32),
        confidence=np.asarray(confidence if confidence is not None else [0.9] * n, dtype=np.float32),
        class_id=np.zeros(n, dtype=np.int64),
        tracker_id=None if tracker_id is None else np.asarray(tracker_id, dtype=np.int64),
        data={"class_name": np.asarray(names)},
    )


class ParkedCarDetector:
    """A fake detector (beside the real-model end-to-end test): one car parked in the
    lower middle of every frame, so rule timing is exact and independent of the model."""

    class_names = ["car"]
    max_batch = 8

    def __init__(self) -> None:
        self.batches: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        self.batches.append(len(images))
        out = []
        for img in images:
            h, w = img.shape[:2]
            out.append(
                sv.Detections(
                    xyxy=np.array([[0.4 * w, 0.6 * h, 0.6 * w, 0.9 * h]], dtype=np.float32),
                    confidence=np.array([0.9], dtype=np.float32),
                    class_id=np.array([3]),
                    data={"class_name": np.array(["car"])},
                )
            )
        return out


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A local port nothing listens on right now (TCP by default; ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LOOPBACK_CLIENT = ("127.0.0.1", 50000)


def local_client(app, **kwargs):
    """A ``TestClient`` that looks like a caller on this machine: client address 127.0.0.1 and
    ``Host: 127.0.0.1`` (Starlette's defaults, "testclient"/"testserver", are refused by the API's
    loopback and trusted-host checks). Pass ``client=("10.1.2.3", 40000)`` to be a remote caller.
    Use it as ``with local_client(create_app(...)) as client:``."""
    from starlette.testclient import TestClient

    kwargs.setdefault("base_url", "http://127.0.0.1")
    kwargs.setdefault("client", LOOPBACK_CLIENT)
    return TestClient(app, **kwargs)


@contextlib.contextmanager
def live_server(app, host: str = "127.0.0.1", start_timeout_s: float = 30.0, **config):
    """Serve ``app`` with a real uvicorn bound to ``host`` (a thread of this process); yields the base
    URL ``http://127.0.0.1:PORT``. Extra keyword arguments go to ``uvicorn.Config``."""
    import threading
    import time

    import uvicorn

    port = free_port()
    config.setdefault("log_level", "warning")
    config.setdefault("timeout_graceful_shutdown", 2)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


PG_URL = os.environ.get("GRIDWORKER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_database(name: str) -> str:
    """A fresh (emptied) PostgreSQL database ``name``; skips when PostgreSQL is away."""
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if conn.scalar(sa.text("select 1 from pg_database where datname = :n"), {"n": name}) is None:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    url = sa.engine.make_url(PG_URL).set(database=name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url.render_as_string(hide_password=False)


def bus_photo() -> np.ndarray:
    """bus.jpg, a real street photo (a bus and four people), as (1080, 810, 3) uint8 RGB. Skips
    the test when the ultralytics wheel (which ships it) is not installed."""
    import cv2

    from gridworker.assets import ultralytics_asset

    bus = ultralytics_asset("bus.jpg")
    if bus is None:
        pytest.skip("bus.jpg ships in the ultralytics wheel: pip install --no-deps ultralytics")
    bgr = cv2.imread(str(bus))
    assert bgr is not None, f"cannot read {bus}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def bus_street_clips(out_dir, placements: dict[str, int | None]) -> dict:
    """Still H.264 clips of bus.jpg (a real photo, shrunk to 405x540) on a grey 960x540 street:
    one clip per name, the bus's left edge at ``x`` pixels, or an empty street for ``None``.
    Skips the test when the ultralytics wheel (which ships bus.jpg) is not installed."""
    import cv2

    from gridworker.streams.clips import encode_still

    photo = cv2.resize(bus_photo(), (405, 540))
    clips = {}
    for name, x in placements.items():
        canvas = np.full((540, 960, 3), 110, np.uint8)
        if x is not None:
            canvas[:, x : x + 405] = photo
        clips[name] = encode_still(canvas, out_dir / f"bus_{name}.mp4", seconds=4, fps=10)
    return clips



def h264_packets(out_dir, seconds: int, fps: int = 10):
    """Codec parameters and packets of a real H.264 clip (320x240, ``fps``, a keyframe every
    second) written to ``out_dir``: what a camera's evidence ring holds."""
    import av

    from gridworker.streams.clips import synthetic_clip
    from gridworker.streams.evidence import CodecParams

    path = synthetic_clip(out_dir / "src.mp4", seconds=seconds, size=(320, 240), fps=fps, gop=fps)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return CodecParams.from_stream(s), [p for p in c.demux(s) if p.size]


def h264_ring(out_dir, seconds: int, fps: int, start: float):
    """A camera's evidence ring (``PacketRing``, 60 s) holding a real H.264 clip of ``seconds``
    whose first packet arrived at ``start`` (wall clock) and the rest ``1/fps`` apart."""
    from gridworker.streams.evidence import PacketRing

    params, packets = h264_packets(out_dir, seconds=seconds, fps=fps)
    ring = PacketRing(seconds=60)
    ring.start_session(params)
    for i, p in enumerate(packets):
        ring.append_packet(p, start + i / fps)
    return ring


class BackgroundLoop:
    """A test helper's daemon thread for the length of a ``with`` block: ``loop()`` runs in it until
    ``self._stop`` is set at the block's end; then the thread is joined (``join_s``) and
    ``close()`` releases what the helper holds."""

    join_s: float | None = 5.0

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.loop, name=name, daemon=True)

    def loop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the helper holds, after its thread ended."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.join_s)
        self.close()
