"""Helpers of the cluster core's fault tests (H4): a cluster of real processes — one
``gridworker serve`` (PostgreSQL) and K ``gridworker worker`` — on the test's own nats-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.factories import free_port, wait_until

GRIDWORKER = [sys.executable, "-m", "gridworker.cli"]

#: short TTLs so that every fault shows within seconds (config, not code)
FAST = {  # short enough for a failover well within 15 s, long enough for a loaded 2-core machine
    "lease_ttl_s": 6.0,
    "renew_interval_s": 1.0,
    "heartbeat_ttl_s": 5.0,
    "leader_ttl_s": 5.0,
    "op_timeout_s": 2.0,
    "connect_timeout_s": 3.0,
    "max_cameras_per_worker": 10,
    "obs_stream_mb": 64,  # JetStream reserves it on the server's disk while the stream lives
}


def write_config(path: Path, *, nats_url: str, db_url: str, cameras: dict[str, str], fps: float = 2.0, **cluster: object) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": 0},
        "database": {"url": db_url},
        "evidence": {"clips": False},
        "cluster": {"nats_url": nats_url, "prefix": "gwt", **FAST, **cluster},
        "cameras": [{"id": cid, "url": url, "fps": fps} for cid, url in cameras.items()],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Proc:
    """One gridworker process, its output in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*GRIDWORKER, *args], stdout=self._out, stderr=subprocess.STDOUT, env=env)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Worker(Proc):
    def __init__(self, config: Path, worker_id: str, log_dir: Path) -> None:
        self.worker_id = worker_id
        self.port = free_port()
        super().__init__(["worker", "--config", str(config), "--worker-id", worker_id, "--port", str(self.port)], log_dir / f"{worker_id}.log")

    def health(self) -> dict | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=3.0).json()
        except (httpx.HTTPError, ValueError):
            return None

    def health_now(self, timeout: float = 20.0) -> dict:
        """The health document, waiting out a slow answer (a loaded machine)."""
        return wait_until(self.health, timeout=timeout, interval=0.2)

    def live_cameras(self) -> set[str]:
        """Continuous cameras this worker analyses now (stream live, frames analysed, lease held)."""
        h = self.health()
        if h is None:
            return set()
        return {c for c, s in h["cameras"].items() if not s["patrol_only"] and s["state"] == "live" and s["token"] is not None and s["frames_analysed"] > 0}


class Serve(Proc):
    def __init__(self, config: Path, log_dir: Path) -> None:
        self.port = free_port()
        env_port = ["--config", str(config)]
        os.environ["GRIDWORKER_SERVER__PORT"] = str(self.port)
        try:
            super().__init__(["serve", *env_port], log_dir / "serve.log")
        finally:
            del os.environ["GRIDWORKER_SERVER__PORT"]

    def cluster(self) -> dict | None:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/cluster", timeout=5.0)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def owners(workers: list[Worker]) -> dict[str, str]:
    """camera -> the worker analysing it live (a camera live on two workers at once fails the test)."""
    out: dict[str, str] = {}
    for w in workers:
        for cam in w.live_cameras():
            assert cam not in out, f"camera {cam} live on {out[cam]} and {w.worker_id} at once"
            out[cam] = w.worker_id
    return out


def wait_all_live(workers: list[Worker], cameras: set[str], timeout: float = 150.0) -> dict[str, str]:
    got: dict[str, str] = {}

    def all_live() -> bool:
        got.clear()
        got.update(owners(workers))
        return set(got) == cameras

    wait_until(all_live, timeout=timeout, interval=0.5)
    return dict(got)
