"""Helpers of the observation and visit tests (H5): their own nats-server, a connected link,
a real analyser that raises an intrusion on a scripted person."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.factories import free_port, make_detections, wait_until
from gridworker.cluster.bridge import AsyncBridge
from gridworker.cluster.config import ClusterConfig
from gridworker.cluster.link import NatsLink
from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.incidents.db import Database
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.vision.config import SceneConfig, ZoneConfig

NATS_BIN = shutil.which("nats-server") or "/usr/sbin/nats-server"
#: the nats-server every machine of the project runs (tests that need their own start NatsServer)
SHARED_URL = os.environ.get("GRIDWORKER_TEST_NATS_URL", "nats://127.0.0.1:4222")


class NatsServer:
    """A nats-server of the test's own (JetStream, file store in ``store``), restartable on one port."""

    def __init__(self, store: Path, *, max_file_store: str | None = None) -> None:
        self.store = store
        self.max_file_store = max_file_store  # e.g. "64MB": JetStream's disk budget (default: 75 % of the free disk)
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [NATS_BIN, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        if self.max_file_store is not None:
            self.store.mkdir(parents=True, exist_ok=True)
            conf = self.store.parent / f"{self.store.name}.conf"
            conf.write_text(f'jetstream {{\n  store_dir: "{self.store}"\n  max_file_store: {self.max_file_store}\n}}\n')
            args = [NATS_BIN, "-a", "127.0.0.1", "-p", str(self.port), "-c", str(conf)]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import socket

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, timeout=10, interval=0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def link_to(url: str, prefix: str | None = None, *, obs_stream_mb: int = 64) -> NatsLink:
    bridge = AsyncBridge()
    bridge.start()
    config = ClusterConfig(nats_url=url, prefix=prefix or f"zt{secrets.token_hex(4)}", op_timeout_s=2.0, obs_stream_mb=obs_stream_mb)
    link = NatsLink(config, bridge)
    link.connect()
    return link


def close_link(link: NatsLink) -> None:
    link.close()
    link.bridge.stop()


def drop_streams(link: NatsLink, *suffixes: str) -> None:
    for suffix in suffixes:
        try:
            link.call(lambda s=suffix: link.js.delete_stream(link.name(s)))  # type: ignore[misc]
        except Exception:
            pass


@pytest.fixture
def obs_link() -> Iterator[NatsLink]:
    """A link to the shared nats-server under a prefix of its own, the observations stream made; dropped after."""
    from gridworker.cluster.observations import ensure_obs_stream, obs_subject

    lk = link_to(SHARED_URL)
    lk.call(lambda: ensure_obs_stream(lk))
    yield lk
    drop_streams(lk, "obs", "visits")
    close_link(lk)


def manager_on(db_url: str) -> tuple[IncidentManager, IncidentStore]:
    store = IncidentStore(Database.open(db_url))
    return IncidentManager(store=store, camera_info=lambda cam: CameraInfo(cam, "site")), store


GATE = ZoneConfig(id="gate", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], rules=[{"type": "intrusion", "classes": ["person"], "min_duration_s": 0}])


class Scripted:
    """Frames of one camera; a person stands in the gate zone in frames where ``person`` is true."""

    def __init__(self, camera_id: str, t0: float | None = None) -> None:
        self.camera_id = camera_id
        self.analyzer = CameraAnalyzer(camera_id, fps=5, scene=SceneConfig(zones=[GATE]), track=False)
        self.seq = itertools.count(1)
        self.t = t0 if t0 is not None else time.time() - 100

    def frame(self, person: bool) -> FrameAnalysis:
        self.t += 0.2
        image = np.full((72, 128, 3), 40, dtype=np.uint8)
        dets = make_detections([[40, 20, 60, 70]], tracker_id=[7]) if person else make_detections([], tracker_id=[])
        return self.analyzer.analyze(Frame(self.camera_id, next(self.seq), self.t, image), dets)
