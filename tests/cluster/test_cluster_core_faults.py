"""Cluster faults against real processes: ``gridworker serve`` (PostgreSQL) and ``gridworker
worker`` subprocesses on the test's own nats-server, cameras on the real RTSP server.

TTLs are short (cluster_core_support.FAST: lease 6 s, heartbeat 5 s, renewal 1 s)."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import httpx
import pytest

from tests.cluster.cluster_core_support import GRIDWORKER, Serve, Worker, owners, wait_all_live, write_config
from tests.cluster.cluster_h5_support import NatsServer
from tests.factories import pg_database, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]


@pytest.fixture
def cluster(tmp_path, rtsp_server):
    """``start(n_workers, n_cameras)`` -> (serve, workers, cameras, nats); everything stopped at teardown."""
    nats = NatsServer(tmp_path / "js")
    nats.start()
    procs = []
    made = {}

    def start(n_workers: int, n_cameras: int):
        db = pg_database("gw_cluster_core")
        cameras = {f"cam{i}": rtsp_server.url("cam" if i % 2 == 0 else "cam2") for i in range(n_cameras)}
        config = write_config(tmp_path / "cluster.yaml", nats_url=nats.url, db_url=db, cameras=cameras)
        serve = Serve(config, tmp_path)
        procs.append(serve)
        workers = [Worker(config, f"w{i}", tmp_path) for i in range(n_workers)]
        procs.extend(workers)
        made.update(config=config, serve=serve, workers=workers)
        return serve, workers, set(cameras), nats

    yield start
    for p in procs:
        p.stop()
    nats.stop()
    for p in procs:  # what each process said, for a failing test's report
        print(f"--- {p.log.name} (last lines)\n" + "\n".join(p.text().splitlines()[-15:]))


def test_kill9_worker_its_cameras_live_elsewhere_within_15s(cluster):
    serve, workers, cameras, _ = cluster(3, 5)
    before = wait_all_live(workers, cameras)
    victim = next(w for w in workers if any(o == w.worker_id for o in before.values()))
    lost = {c for c, o in before.items() if o == victim.worker_id}
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    survivors = [w for w in workers if w is not victim]
    after = wait_all_live(survivors, cameras, timeout=30)
    failover_s = time.monotonic() - killed_at
    print(f"failover of {sorted(lost)} after kill -9 of {victim.worker_id}: {failover_s:.1f} s")
    assert failover_s <= 15.0
    # minimal movement: the survivors' cameras stayed where they were
    assert {c: o for c, o in after.items() if c not in lost} == {c: o for c, o in before.items() if c not in lost}
    # the survivors' loads come from their heartbeats: wait for the ones that carry the moved cameras
    view = wait_until(
        lambda: (v := serve.cluster()) and victim.worker_id not in {w["worker"] for w in v["workers"]}
        and sum(w["load"] for w in v["workers"]) == len(cameras) and v,
        timeout=20,
    )
    assert {c["camera_id"]: c["owner"] for c in view["cameras"]} == after  # /cluster shows the owners
    assert sum(w["load"] for w in view["workers"]) == len(cameras)
    # /cameras shows the worker that runs each camera and that worker's load
    loads = {w["worker"]: w["load"] for w in view["workers"]}

    def cameras_listed():
        r = httpx.get(serve.url("/cameras"), timeout=10).json()
        # the workers' picture: which one runs each camera, live, analysed fps
        return r if all(c["worker"] and c["health"]["state"] == "live" and c["analysed_fps"] > 0 for c in r) else None

    listed = wait_until(cameras_listed, timeout=20)
    assert {c["id"]: c["worker"] for c in listed} == after
    assert {c["id"]: c["worker_load"] for c in listed} == {c: loads[o] for c, o in after.items()}


def test_sigstop_past_lease_ttl_then_sigcont_stops_stale_cameras(cluster):
    serve, workers, cameras, _ = cluster(2, 2)
    before = wait_all_live(workers, cameras)
    frozen, other = (workers[0], workers[1]) if "w0" in before.values() else (workers[1], workers[0])
    stale = {c for c, o in before.items() if o == frozen.worker_id}
    old_tokens = {c: s["token"] for c, s in frozen.health_now()["cameras"].items() if c in stale}
    frozen.signal(signal.SIGSTOP)
    # the other worker takes the frozen one's cameras once its leases lapse, with greater tokens
    wait_until(lambda: stale <= other.live_cameras(), timeout=30)
    new_tokens = {c: s["token"] for c, s in other.health_now()["cameras"].items() if c in stale}
    assert all(new_tokens[c] > old_tokens[c] for c in stale)
    frozen.signal(signal.SIGCONT)

    def fenced() -> bool:
        h = frozen.health()
        if h is None:
            return False
        # every stale camera is gone from the woken worker, or runs there under a newer lease
        return all(c not in h["cameras"] or (h["cameras"][c]["token"] or 0) > new_tokens[c] for c in stale)

    wait_until(fenced, timeout=20, interval=0.2)
    said = lambda: all(re.search(rf"camera {c} stopped: (lease lapsed|lease renewal refused)", frozen.text()) for c in stale)  # noqa: E731
    wait_until(said, timeout=15)  # it says why (the log line may trail the health answer)
    wait_all_live(workers, cameras, timeout=30)  # and the cluster settles with every camera live exactly once


def test_nats_restart_workers_reconnect_and_resume(cluster):
    serve, workers, cameras, nats = cluster(2, 3)
    wait_all_live(workers, cameras)
    nats.stop()
    # down longer than the lease TTL: every worker fences its cameras off (it cannot renew)
    wait_until(lambda: all(not w.live_cameras() for w in workers), timeout=25, interval=0.3)
    nats.start()  # same port, same store
    restarted = time.monotonic()
    wait_all_live(workers, cameras, timeout=45)
    print(f"all cameras live again {time.monotonic() - restarted:.1f} s after NATS came back")
    assert all(w.health_now()["nats_connected"] for w in workers)
    assert all(w.proc.poll() is None for w in workers)


def test_drain_by_api_and_cli_and_camera_added_through_api_is_placed(cluster):
    serve, workers, cameras, nats = cluster(2, 2)
    wait_all_live(workers, cameras)
    w0, w1 = workers
    r = httpx.post(serve.url("/cluster/workers/w0/drain"), timeout=10)
    assert r.status_code == 202
    wait_until(lambda: cameras <= w1.live_cameras() and not w0.live_cameras(), timeout=30)
    assert w0.proc.poll() is None  # drained, still running

    # a camera added through the API is placed (on the only non-drained worker) without a restart
    new = {"id": "cam-new", "url": serve_cam_url(cameras, w1), "fps": 2}
    r = httpx.post(serve.url("/cameras"), json=new, timeout=10)
    assert r.status_code == 201, r.text
    wait_until(lambda: "cam-new" in w1.live_cameras(), timeout=30)

    r = httpx.delete(serve.url("/cluster/workers/w0/drain"), timeout=10)
    assert r.status_code == 200
    wait_until(lambda: w0.live_cameras(), timeout=30)  # rebalanced onto the undrained worker

    # the CLI: gridworker worker --drain w1 waits until w1 runs nothing
    out = subprocess.run([*GRIDWORKER, "worker", "--config", str(w0_config(w0)), "--drain", "w1", "--wait", "40"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "w1: drained" in out.stdout
    assert not w1.live_cameras()
    all_on_w0 = {c: "w0" for c in cameras | {"cam-new"}}
    wait_until(lambda: owners(workers) == all_on_w0, timeout=30)  # the moved cameras come up on w0


def serve_cam_url(cameras, worker) -> str:
    """The RTSP URL an existing camera uses (the new camera reads the same mount)."""
    return worker_config_cameras(worker)[sorted(cameras)[0]]


def w0_config(worker):
    args = worker.proc.args
    return args[args.index("--config") + 1]


def worker_config_cameras(worker) -> dict[str, str]:
    import yaml

    data = yaml.safe_load(open(w0_config(worker)).read())
    return {c["id"]: c["url"] for c in data["cameras"]}
