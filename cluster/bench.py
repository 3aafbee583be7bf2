"""``gridworker bench cluster``: patrol visits per minute of K worker processes sharing N cameras
through NATS JetStream, against one process, and what a ``kill -9`` of a worker costs.

One invocation, all on this machine:

1. phase-shifted clips (``bench/patrol.py: prepare_clips``) served as N patrol-only cameras
   plus ``--continuous`` continuously watched ones by real gst-rtsp-server processes;
2. the single-process figure: ``bench patrol`` (the embedded service's own path, fixed
   concurrency) on the same N cameras, run before and after the cluster runs (a shared
   machine's load drifts): ``single_process_visits_per_min`` is their mean;
3. a nats-server of its own (free port, store in a temporary folder), a case service in this
   process (``Service`` + ``ClusterService`` on PostgreSQL, the observation consumer and the
   queue feed: what ``gridworker serve`` runs) and K ``gridworker worker`` processes;
4. a clean run of ``--cycles`` cycles: ``visits_per_min``, each worker's share of the visits
   (``share_min``, ``share_max``: 1/K when even), CPU seconds per good visit of the case service
   and the workers together and per process (``cpu_s_per_visit_by_process``: also nats-server
   and the RTSP servers); each worker runs ``slots`` visits at once (``cluster.visit_slots``);
5. a second run in which one worker is killed (SIGKILL) once a third of the visits are done
   (the one holding the first continuous camera, so its handover is timed; w1 when none is held):
   ``failover_s`` (kill → the last visit it held done by another worker),
   ``continuous_reassigned_s`` (kill → its continuous cameras analysed live by other workers,
   as the fault test counts it: stream live, lease held, frames analysed; timed while the run
   goes on) and ``continuous_handover_s``, the steps in between (:class:`_FailoverWatch`),
   ``lost_visits`` (visits of both runs never finished by any worker) and
   ``duplicate_incidents`` (incidents of one camera + zone + rule + object open at the same time).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
import yaml

from gridworker.bench.patrol import PhasedClips
from gridworker.models.config import DEFAULT_MODEL
from gridworker.periodic import Periodic

__all__ = ["ClusterBenchConfig", "run_cluster_bench"]

TARGET_OVER_SINGLE = 0.9
TARGET_FAILOVER_S = 15.0
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gw_bench_cluster"


@dataclass
class ClusterBenchConfig(PhasedClips):
    """What ``bench cluster`` runs (see the module docstring); the clips: :class:`PhasedClips`.

    Attributes:
        workers: K worker processes.
        cameras: N patrol-only cameras.
        continuous: continuously watched cameras (placed on the workers; fps ``continuous_fps``).
        cycles: cycles per run.
        slots: visits in flight per worker (the plan's concurrency is K × slots).
        worker_slots: each worker's ``cluster.visit_slots`` if not ``slots`` (to compare).
        single_concurrency: the single-process run's concurrency.
        database: the case service's PostgreSQL (its schema is emptied).
        kill: run the failover part.
    """

    workers: int = 3
    cameras: int = 120
    continuous: int = 3
    continuous_fps: float = 2.0
    cycles: int = 3
    slots: int = 16
    worker_slots: int | None = None
    single_concurrency: int = 48
    model: str = DEFAULT_MODEL
    worker_threads: int = 1
    open_timeout_s: float = 5.0
    keyframe_timeout_s: float = 8.0
    database: str = DEFAULT_PG
    kill: bool = True
    single: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _nats_server(store: Path) -> Iterator[tuple[str, int]]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _empty_database(url: str) -> None:
    """Create the bench's database if missing and empty its schema."""
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.scalar(sa.text("select 1 from pg_database where datname = :n"), {"n": parsed.database}) is None:
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    engine = sa.create_engine(parsed)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _start_worker(config_path: Path, worker_id: str, log_path: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("gridworker")
    cmd = [str(exe), "worker", "--config", str(config_path), "--worker-id", worker_id, "--port", "0"]
    with open(log_path, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def _end_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _duplicates(db_url: str) -> int:
    """Incidents of one camera + zone + rule + object open at the same time as another of the same key."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select camera_id, zone_id, rule_id, details, opened_at, closed_at from incidents")).all()
    engine.dispose()
    by_key: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    for cam, zone, rule, details, opened, closed in rows:
        obj = str(details.get("object", "")) if isinstance(details, dict) else ""
        by_key.setdefault((cam, zone, rule, obj), []).append((float(opened), float(closed) if closed is not None else math.inf))
    dup = 0
    for spans in by_key.values():
        spans.sort()
        end = -math.inf
        for start, stop in spans:
            if start < end:
                dup += 1
            end = max(end, stop)
    return dup



class _FailoverWatch:
    """After a ``kill -9``: when each step of handing the victim's continuous cameras over happened.

    A :class:`~gridworker.periodic.Periodic` polls every ``interval_s`` (seconds after the kill, epoch ``t_kill``): the victim's
    heartbeat key gone (``heartbeat_gone``), the camera's lease no longer the victim's
    (``lease_gone``: it aged out), the placement naming another worker (``placed``), the lease
    claimed by another worker (``leased``), and that worker's ``/health`` showing the camera's
    stream live (``live``) with frames analysed under the lease (``analysing``). The first
    observation of the new owner applied by the case service (``applied``) is read from the
    database afterwards (:meth:`applied_from`).
    """

    def __init__(self, link: Any, victim: str, cameras: list[str], t_kill: float, *, interval_s: float = 0.2, timeout_s: float = 90.0) -> None:
        self._link = link
        self._victim = victim
        self._cameras = cameras
        self._t_kill = t_kill
        self._timeout = timeout_s
        self.heartbeat_gone: float | None = None
        self.steps: dict[str, dict[str, float]] = {c: {} for c in cameras}
        self.new_owner: dict[str, str] = {}
        self._end = math.inf
        self._poller = Periodic("bench-failover-watch", self._poll, interval_s, first_s=0.0)

    def start(self) -> _FailoverWatch:
        self._end = time.monotonic() + self._timeout
        self._poller.start()
        return self

    def stop(self) -> None:
        self._poller.stop(10)

    def done(self) -> bool:
        return all("analysing" in s for s in self.steps.values())

    def _mark(self, camera: str, step: str) -> None:
        self.steps[camera].setdefault(step, round(time.time() - self._t_kill, 2))

    def _get(self, kv: Any, key: str) -> bytes | None:
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        async def read() -> bytes | None:
            try:
                entry = await kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                return None
            return entry.value or None

        value: bytes | None = self._link.call(read)
        return value

    def _health(self, url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as r:
                doc = json.loads(r.read())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _poll(self) -> None:
        """One look at every step (nothing more once all are seen or the timeout has passed)."""
        from .leases import read_lease
        from .membership import WorkerInfo

        buckets = self._link.buckets
        if time.monotonic() < self._end and not self.done():
            try:
                if self.heartbeat_gone is None and self._get(buckets.workers, self._victim) is None:
                    self.heartbeat_gone = round(time.time() - self._t_kill, 2)
                for cam in self._cameras:
                    rec = self._link.call(lambda c=cam: read_lease(buckets.leases, c))
                    if rec is None or rec.worker != self._victim:
                        self._mark(cam, "lease_gone")
                    if rec is not None and rec.worker != self._victim:
                        self._mark(cam, "leased")
                        self.new_owner[cam] = rec.worker
                    placed = self._get(buckets.assign, cam)
                    if placed is not None and placed.decode(errors="replace") != self._victim:
                        self._mark(cam, "placed")
                for owner in set(self.new_owner.values()):
                    info = WorkerInfo.parse(self._get(buckets.workers, owner))
                    doc = self._health(info.health_url) if info is not None and info.health_url else None
                    cams = doc.get("cameras", {}) if doc is not None else {}
                    for cam, state in cams.items():
                        if self.new_owner.get(cam) != owner or not isinstance(state, dict):
                            continue
                        if state.get("state") == "live":
                            self._mark(cam, "live")
                            if state.get("token") is not None and int(state.get("frames_analysed") or 0) > 0:
                                self._mark(cam, "analysing")
            except Exception as exc:  # a slow answer on a loaded machine: poll again
                print(f"failover watch: {type(exc).__name__}: {exc}", file=sys.stderr)

    def applied_from(self, db_url: str) -> None:
        """``applied``: the first observation of each camera's new owner the case service applied."""
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            for cam, owner in self.new_owner.items():
                first = conn.scalar(
                    sa.text("select min(applied_at) from cluster_applied where camera_id = :c and msg_id like :p and applied_at >= :t"),
                    {"c": cam, "p": f"{owner}.%", "t": self._t_kill},
                )
                if first is not None:
                    self.steps[cam]["applied"] = round(float(first) - self._t_kill, 2)
        engine.dispose()

    def summary(self) -> dict[str, Any]:
        """Per step, the slowest camera's seconds after the kill (None: never seen)."""
        names = ("lease_gone", "placed", "leased", "live", "analysing", "applied")
        out: dict[str, Any] = {"heartbeat_gone": self.heartbeat_gone}
        for name in names:
            seen = [s.get(name) for s in self.steps.values()]
            out[name] = max(v for v in seen if v is not None) if seen and all(v is not None for v in seen) else None
        out["cameras"] = self.steps
        return out


def run_cluster_bench(config: ClusterBenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result (see the module docstring).

    Raises:
        RtspServerUnavailable: gst-rtsp-server is not installed.
        ValueError: bad arguments.
    """
    from gridworker.bench.patrol import ZONES, PatrolBenchConfig, prepare_clips, run_patrol_bench
    from gridworker.models.config import DetectorConfig
    from gridworker.models.loader import load_detector
    from gridworker.service import Service
    from gridworker.settings import Settings
    from gridworker.streams.rtsp_serve import RtspServerProcess

    from .leases import LeaseRecord, read_lease
    from .membership import list_workers
    from .observations import start_observation_consumer
    from .serve import ClusterService, RemoteStream
    from .visits import QueueFeed, start_visit_publisher

    say = progress or (lambda message: None)
    if config.workers < 1 or config.cameras < 1 or config.cycles < 1 or config.slots < 1:
        raise ValueError("workers, cameras, cycles and slots must be at least 1")
    k, n = config.workers, config.cameras
    cluster_done = False
    result: dict[str, Any] = {"workers": k, "cameras": n, "continuous": config.continuous, "cycles": config.cycles}
    singles: list[float] = []
    single_cpu: list[float] = []  # the service process's CPU seconds per visit (RTSP servers not counted)

    def single_run() -> None:
        say(f"single process: bench patrol on {n} cameras, fixed concurrency {config.single_concurrency}")
        single = run_patrol_bench(
            PatrolBenchConfig(
                cameras=n, concurrency=config.single_concurrency, naive_cameras=0, model=config.model, mode="fixed", cycles=config.cycles,
                continuous=config.continuous, continuous_fps=config.continuous_fps, open_timeout_s=config.open_timeout_s,
                keyframe_timeout_s=config.keyframe_timeout_s, **config.clip_settings(),
            ),
            progress=say,
        )
        singles.append(float(single["visits_per_min"]))
        cpu = single.get("cpu_s_per_visit")
        if isinstance(cpu, (int, float)):
            single_cpu.append(float(cpu))
        say(f"  single process: {singles[-1]} visits/min")

    if config.single:  # before and after the cluster runs: a shared machine's load drifts
        single_run()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        clips, origin = prepare_clips(config, work)
        result["clips"] = origin
        ids = [f"cam{i:04d}" for i in range(n)]
        live = [f"live{i}" for i in range(config.continuous)]
        n_servers = max(1, min(4, math.ceil(n / 100)))
        mounts: list[dict[str, Path]] = [{} for _ in range(n_servers)]
        for i, cid in enumerate(ids):
            mounts[i % n_servers][cid] = clips[(i * 7) % len(clips)]
        if live:
            mounts.append({cid: clips[(i * 5) % len(clips)] for i, cid in enumerate(live)})
        servers = []
        for m in mounts:
            server = RtspServerProcess(m, ready_timeout_s=60).start()
            stack.callback(server.close)
            servers.append(server)
        urls = {cid: servers[i % n_servers].url(cid) for i, cid in enumerate(ids)}
        urls.update({cid: servers[-1].url(cid) for cid in live})
        nats_url, nats_pid = stack.enter_context(_nats_server(work / "js"))
        _empty_database(config.database)
        plan = {
            "select": {"camera_ids": ids}, "order": "listed", "cycles": config.cycles, "concurrency": k * config.slots,
            "keyframes": 1, "open_timeout_s": config.open_timeout_s, "keyframe_timeout_s": config.keyframe_timeout_s,
        }
        cluster = {"nats_url": nats_url, "prefix": "bench", "lease_ttl_s": 6.0, "renew_interval_s": 1.0, "heartbeat_ttl_s": 4.0, "leader_ttl_s": 4.0,
                   "visit_slots": config.worker_slots or config.slots}
        cameras: list[dict[str, Any]] = [{"id": c, "url": urls[c], "watch": "patrol", "zones": ZONES} for c in ids]
        cameras += [{"id": c, "url": urls[c], "watch": "continuous", "fps": config.continuous_fps, "zones": ZONES} for c in live]
        detector_cfg = {"model": config.model, "threads": config.worker_threads, "max_batch": 8}
        limits = {"max_cameras": len(cameras) + 1, "max_patrol_concurrency": max(128, k * config.slots)}
        worker_cfg = {
            "cluster": cluster, "detector": detector_cfg, "evidence": {"clips": False}, "limits": limits, "cameras": cameras,
            "database": {"url": f"sqlite:///{work / 'worker.db'}"},
        }
        cfg_path = work / "worker.yaml"
        cfg_path.write_text(yaml.safe_dump(worker_cfg))
        settings = Settings(
            database={"url": config.database}, cameras=cameras, cluster=cluster, evidence={"clips": False}, limits=limits,
            detector=detector_cfg, patrol_plans=[{**plan, "id": "cluster-clean"}, {**plan, "id": "cluster-kill"}],
        )
        service = Service(settings, load_detector(DetectorConfig(model=config.model, threads=1, max_batch=8)), reader=RemoteStream)
        service.start()
        stack.callback(service.stop)
        cs = ClusterService(service, plugins=())
        cs.start()
        stack.callback(cs.stop)
        consumer = start_observation_consumer(cs.context)
        stack.callback(consumer.stop)
        feed: QueueFeed = start_visit_publisher(cs.context)
        stack.callback(feed.stop)
        link = cs.link
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(k):
            wid = f"w{i + 1}"
            procs[wid] = _start_worker(cfg_path, wid, work / f"{wid}.log")
            stack.callback(_end_process, procs[wid])
        say(f"{k} workers starting; NATS {nats_url}; case service on {sa.engine.make_url(config.database).database}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            alive = {w.worker for w in link.call(lambda: list_workers(link.buckets.workers))}
            if alive >= set(procs):
                break
            dead = [w for w, p in procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"worker {dead[0]} exited: {(work / f'{dead[0]}.log').read_text()[-1500:]}")
            time.sleep(0.5)
        else:
            raise RuntimeError("workers did not all come up within 120 s")
        time.sleep(3.0)  # placement settles; patrol-only slots built from the catalogue

        def lease_of(camera_id: str) -> LeaseRecord | None:
            return link.call(lambda: read_lease(link.buckets.leases, camera_id))

        def cpu_now() -> float:
            """CPU seconds so far of the case service (this process) and the live workers."""
            total = 0.0
            for proc in [psutil.Process(), *(psutil.Process(p.pid) for p in procs.values() if p.poll() is None)]:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system
            return total

        def cpu_by_process() -> dict[str, float]:
            """CPU seconds so far of every process taking part: the case service, each worker, nats-server, the RTSP servers."""
            pids: dict[str, int] = {"case_service": os.getpid(), "nats_server": nats_pid}
            pids.update({wid: p.pid for wid, p in procs.items() if p.poll() is None})
            pids.update({f"rtsp{i}": s.pid for i, s in enumerate(servers) if s.pid is not None})
            out: dict[str, float] = {}
            for name, pid in pids.items():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    # the bench process's children are the other entries: only an RTSP server's own count
                    children = proc.children(recursive=True) if name.startswith("rtsp") else []
                    out[name] = sum(t.user + t.system for t in [proc.cpu_times(), *(c.cpu_times() for c in children)])
            return out

        def run_plan(plan_id: str, on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
            start_mark = len(feed.finished)
            by_process0 = cpu_by_process()
            cpu0 = cpu_now()
            t0 = time.time()
            service.patrol.start(plan_id)
            run = service.patrol.run(plan_id)
            assert run is not None
            budget = n * config.cycles * (config.open_timeout_s + config.keyframe_timeout_s) + 120
            end = time.monotonic() + budget
            while not run.wait(0.5) and time.monotonic() < end:
                if on_progress is not None:
                    on_progress(sum(1 for o in run.outcomes() if o.ok))
            outcomes = run.outcomes()
            ok = [o for o in outcomes if o.ok]
            span = max((o.started_at + o.duration_s - t0 for o in ok), default=time.time() - t0)
            finished = list(feed.finished)[start_mark:]
            lost = [o for o in outcomes if o.error_kind == "error" and "no worker" in (o.reason or "")]
            by_process1 = cpu_by_process()
            return {
                "finished": run.status().state.value,
                "visits": len(outcomes),
                "ok": len(ok),
                "failed": len(outcomes) - len(ok),
                "failed_by_kind": dict(Counter(o.error_kind or "error" for o in outcomes if not o.ok)),
                "visits_per_min": _r(len(ok) / span * 60.0 if span > 0 else 0.0, 1),
                "cpu_s_per_visit": _r((cpu_now() - cpu0) / len(ok) if ok else None, 4),
                # per process (children included; a worker killed mid-run drops out): CPU seconds per good visit
                "cpu_s_per_visit_by_process": {
                    name: _r((by_process1[name] - by_process0.get(name, 0.0)) / len(ok) if ok else None, 4) for name in by_process1
                },
                # a visit as the plan saw it (queued -> done signal) and as its worker did (open -> judged)
                "p50_visit_s": _r(_median([o.duration_s for o in ok]), 3),
                "p50_worker_visit_s": _r(_median([d.total_s for _, d in finished if d.ok]), 3),
                "by_worker": dict(Counter(d.worker for _, d in finished if d.ok)),
                "signals": finished,
                "lost": len(lost) + max(0, n * config.cycles - len(outcomes)),
                "t0": t0,
                "span_s": time.time() - t0,
            }

        say(f"clean run: {config.cycles} cycle(s) over {n} cameras, {k} workers x {config.slots} slots")
        clean = run_plan("cluster-clean")
        total_ok = sum(clean["by_worker"].values()) or 1
        shares = [clean["by_worker"].get(w, 0) / total_ok for w in procs]
        say(f"  {clean['visits_per_min']} visits/min, shares {[round(s, 3) for s in shares]}")
        result.update(
            visits_per_min=clean["visits_per_min"],
            single_process_visits_per_min=None,
            over_single=None,
            share_min=_r(min(shares), 3),
            share_max=_r(max(shares), 3),
        )
        failover: float | None = None
        reassigned: float | None = None
        lost = clean["lost"]
        kill_run: dict[str, Any] = {}
        if config.kill and k > 1:
            killed_at: list[float] = []
            victims: list[str] = []  # the worker killed: the one holding the first continuous camera (w1 when none is)
            victim_cams: list[str] = []
            watches: list[_FailoverWatch] = []

            def maybe_kill(done: int) -> None:
                if killed_at or done < n * config.cycles // 3:
                    return
                holders: dict[str, str] = {}
                settle_by = time.monotonic() + 10.0  # a camera between owners (placement moving it) gets one
                while True:
                    records = {cam: lease_of(cam) for cam in live}
                    holders = {cam: rec.worker for cam, rec in records.items() if rec is not None and rec.worker in procs}
                    if len(holders) == len(live) or time.monotonic() > settle_by:
                        break
                    time.sleep(0.2)
                victim = holders.get(live[0], "w1") if live else "w1"
                victims.append(victim)
                victim_cams.extend(cam for cam in live if holders.get(cam) == victim)
                os.kill(procs[victim].pid, signal.SIGKILL)
                killed_at.append(time.time())
                # watched while the run goes on: the handover happens under the run's load
                watches.append(_FailoverWatch(link, victim, victim_cams, killed_at[0]).start())
                say(f"  killed {victim} (SIGKILL) after {done} visits; it held continuous {victim_cams}")

            say("failover run: one worker killed once a third of the visits are done")
            kill_run = run_plan("cluster-kill", maybe_kill)
            lost += kill_run["lost"]
            if killed_at:
                t_kill = killed_at[0]
                redone = [t for t, d in kill_run["signals"] if d.deliveries > 1 and d.worker != victims[0] and t > t_kill]
                failover = _r(max(redone) - t_kill, 2) if redone else None
                # the victim's continuous cameras: analysed live by another worker again (timed
                # by the watch started at the kill, not after the run: the run outlasts the handover)
                watch = watches[0]
                deadline = time.monotonic() + 60
                while not watch.done() and time.monotonic() < deadline:
                    time.sleep(0.2)
                watch.stop()
                time.sleep(2.0)  # the new owners' first observations reach the case service
                watch.applied_from(config.database)
                handover = watch.summary()
                # where the bench used to start looking (the end of the run): what it used to report
                handover["run_end"] = _r(float(kill_run["t0"]) + float(kill_run["span_s"]) - t_kill, 2)
                reassigned = handover["analysing"] if victim_cams else None
                result["continuous_handover_s"] = handover
                say(f"  {kill_run['visits_per_min']} visits/min; failover {failover} s; continuous reassigned {reassigned} s; {handover}")
                result["redelivered_visits"] = len(redone)
        time.sleep(2.0)  # the last observations reach the case service
        cluster_done = True
        result.update(
            failover_s=failover,
            lost_visits=lost,
            duplicate_incidents=_duplicates(config.database),
            continuous_reassigned_s=reassigned,
            incidents=sum(service.store.count_by().values()),
            observations_applied=consumer.stats.applied,
            observations_rejected=dict(consumer.stats.rejected),
            clean_run={k2: v for k2, v in clean.items() if k2 not in ("signals", "t0", "span_s")},
            kill_run={k2: v for k2, v in kill_run.items() if k2 not in ("signals", "t0", "span_s")},
            machine_cores=os.cpu_count(),
            targets={"over_single": TARGET_OVER_SINGLE, "failover_s": TARGET_FAILOVER_S, "lost_visits": 0, "duplicate_incidents": 0},
            config={k2: (str(v) if isinstance(v, Path) else v) for k2, v in asdict(config).items() if k2 != "database"},
        )
    if config.single and cluster_done:
        single_run()
        single_rate = sum(singles) / len(singles)
        result.update(
            single_process_visits_per_min=_r(single_rate, 1),
            single_process_runs=singles,
            single_cpu_s_per_visit=_r(sum(single_cpu) / len(single_cpu) if single_cpu else None, 4),
            cluster_cpu_s_per_visit=result["clean_run"].get("cpu_s_per_visit"),
            over_single=_r(float(result["visits_per_min"]) / single_rate if single_rate else None, 3),
        )
    return result
