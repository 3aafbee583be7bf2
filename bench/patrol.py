"""``gridworker bench patrol``: how many camera visits per minute a glance patrol makes.

One invocation:

1. prepares the clips: every source clip (``../shared/media`` or ``--media``; generated
   clips otherwise) is remuxed (stream copy, no re-encode) into ``phases`` copies that start
   at different points of its keyframe interval. The test server starts a clip afresh for
   each RTSP session, so without this every glance would find a keyframe at once; with it a
   glance waits 0 .. one GOP for its first keyframe, as when joining a live camera;
2. serves N distinct camera URLs (mount points) from 1-4 gst-rtsp-server processes
   (``--servers``; several mounts share a clip);
3. builds a real :class:`~gridworker.service.Service` from ``Settings`` (SQLite in a
   temporary folder): the N cameras as patrol-only cameras (an intrusion and a crowd rule on
   a full-frame zone), ``--continuous`` continuously watched cameras on a server of their
   own, and one glance plan per concurrency mode. Visits go the production way: admission,
   the shared batcher (live frames first), the detector, the visit judge, the incident
   manager, work orders and the outbox;
4. measures the continuous cameras' analysed fps alone, then runs each plan for
   ``--cycles`` cycles (``--mode both``: fixed, then adaptive, in the same service) and
   measures their fps during each run;
5. with ``--dead``/``--hung`` shares: one more plan of the same N cameras of which that share
   is dead (connection refused) or hung (a port that accepts and never sends), spread
   through the order; the live cameras' rate is compared with the healthy run's;
6. runs the naive patrol on the first ``--naive-cameras`` cameras, one after the other:
   ``cv2.VideoCapture`` open, first frame, batch-1 inference, rules, release, next camera,
   and extrapolates its visits per minute.

Reports, per mode, visits/min (good visits over the run's wall time, ramp and tails
included), visit latency p50/p95, failed visits (by reason), the concurrency the controller
ended at, CPU use (this process, the RTSP servers, the whole machine) and the continuous
cameras' fps; the last mode's figures are also the top-level keys. Definitions:
docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import psutil

from gridworker.bench.throughput import BenchDetector, default_media_dir, video_files
from gridworker.models.base import Detector
from gridworker.patrol.concurrency import cpu_busy_share
from gridworker.periodic import Periodic

if TYPE_CHECKING:  # imported lazily at run time (the bench's start-up stays light)
    from gridworker.patrol.config import PatrolPlan
    from gridworker.patrol.engine import PatrolRun
    from gridworker.service import Service
    from gridworker.streams.rtsp_serve import RtspServerProcess
    from gridworker.vision.analyzer import CameraAnalyzer
    from gridworker.vision.config import ZoneConfig

__all__ = ["TARGET_CAMERAS", "TARGET_VISITS_PER_MIN", "PatrolBenchConfig", "PhasedClips", "format_summary", "run_patrol_bench"]

TARGET_VISITS_PER_MIN = 2000.0
TARGET_CAMERAS = 400
TARGET_CONTINUOUS_RATIO = 0.9
#: What ``--mode`` runs, in order: ``drained`` is fixed concurrency with each cycle drained
#: before the next (``overlap_cycles: false``, the engine before issue 18).
MODES: dict[str, tuple[str, ...]] = {
    "fixed": ("fixed",),
    "adaptive": ("adaptive",),
    "drained": ("drained",),
    "both": ("fixed", "adaptive"),
    "all": ("drained", "fixed", "adaptive"),
}
SYNTHETIC_SIZE = (640, 360)
SYNTHETIC_FPS = 25


@dataclass
class PhasedClips:
    """The clips a patrol bench serves (:func:`prepare_clips`), alike in ``bench patrol`` and
    ``bench cluster`` (which runs ``bench patrol`` on the same clips as its single-process figure).

    Attributes:
        media: folder of H.264 clips; None: ``../shared/media`` if present, else generated.
        synthetic: use generated clips even when media exists.
        phases: phase-shifted copies made of each clip.
        clip_seconds: length of each phase copy (the server loops it).
    """

    media: Path | None = None
    synthetic: bool = False
    phases: int = 8
    clip_seconds: float = 30.0

    def clip_settings(self) -> dict[str, Any]:
        """These four settings by name, to hand them on to another bench's config."""
        return {f.name: getattr(self, f.name) for f in fields(PhasedClips)}


@dataclass
class PatrolBenchConfig(BenchDetector, PhasedClips):
    """What ``bench patrol`` runs (the clips: :class:`PhasedClips`; the detector: :class:`BenchDetector`).

    Attributes:
        cameras: N, distinct camera URLs visited once each.
        concurrency: visits in flight at once.
        servers: RTSP server processes the mounts are spread over (0: 1 per 100 cameras, 1..4).
        keyframes: keyframes per glance.
        naive_cameras: how many cameras the naive sequential patrol visits (0: skip it).
        open_timeout_s / keyframe_timeout_s: per-visit timeouts of the plan.
        stagger_s: least gap between two visit starts.
        patrol_batch_slots: most patrol frames per inference batch while a continuous camera is
            live (``pipeline.patrol_batch_slots``; None: the product's default, half the batch).
        mode: a key of :data:`MODES`: ``fixed``, ``adaptive``, ``drained``, ``both`` (fixed, then
            adaptive, one service) or ``all`` (drained, fixed, adaptive).
        min_concurrency: the adaptive controller's floor.
        cycles: cycles per plan.
        continuous / continuous_fps: continuously watched cameras beside the patrol, and their fps.
        measure_s: seconds the continuous cameras are measured alone.
        dead_share / hung_share: share of the N cameras made dead / hung in the faults run (0: none).
    """

    cameras: int = 200
    concurrency: int = 64
    servers: int = 0
    keyframes: int = 1
    naive_cameras: int = 12
    open_timeout_s: float = 10.0
    keyframe_timeout_s: float = 12.0
    stagger_s: float = 0.01
    patrol_batch_slots: int | None = None
    mode: str = "both"
    min_concurrency: int = 8
    cycles: int = 2
    continuous: int = 2
    continuous_fps: float = 5.0
    measure_s: float = 8.0
    dead_share: float = 0.0
    hung_share: float = 0.0


# --------------------------------------------------------------------------- clips


def keyframe_interval(path: Path, probe_s: float = 15.0) -> float:
    """Seconds between the first keyframes of a clip (its GOP), from the packet flags."""
    times: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.is_keyframe:
                times.append(t)
            if len(times) >= 4 or t > probe_s:
                break
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    return min(gaps) if gaps else 2.0


def phase_copy(src: Path, dst: Path, offset_s: float, seconds: float) -> Path:
    """Stream-copy ``src`` from ``offset_s`` (any packet, key or not) for ``seconds`` into ``dst``.

    The copy starts mid-GOP: a client sees non-key frames first and decodes from the next
    keyframe, ``GOP - offset`` seconds in.
    """
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        t0: int | None = None
        for packet in inp.demux(stream):
            if packet.dts is None or packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            if t < offset_s:
                continue
            if t0 is None:
                t0 = packet.dts
            if t - offset_s > seconds:
                break
            packet.dts -= t0
            packet.pts -= t0
            packet.stream = ostream
            out.mux(packet)
    return dst


def prepare_clips(config: PhasedClips, workdir: Path) -> tuple[list[Path], str]:
    """Phase-shifted copies of every source clip, and a description of the sources."""
    media = None if config.synthetic else (config.media or default_media_dir())
    if media is not None:
        sources = video_files(Path(media))
        origin = str(media)
    else:
        from gridworker.streams.clips import synthetic_clip

        sources = [
            synthetic_clip(workdir / "synthetic.mp4", seconds=12, size=SYNTHETIC_SIZE, fps=SYNTHETIC_FPS, gop=2 * SYNTHETIC_FPS)
        ]
        origin = f"synthetic {SYNTHETIC_SIZE[0]}x{SYNTHETIC_SIZE[1]} @ {SYNTHETIC_FPS} fps, GOP 2 s"
    out: list[Path] = []
    for src in sources:
        gop = keyframe_interval(src)
        for k in range(config.phases):
            offset = gop * k / config.phases
            out.append(phase_copy(src, workdir / f"{src.stem}_p{k}.mp4", offset, config.clip_seconds))
    return out, origin


# --------------------------------------------------------------------------- scene


#: Every camera's scene: an intrusion and a crowd rule on a full-frame zone.
ZONES: list[dict[str, Any]] = [
    {
        "id": "area",
        "rules": [
            {"type": "intrusion", "classes": ["person"]},
            {"type": "crowd", "classes": ["person"], "min_count": 3, "min_duration_s": 0},
        ],
    }
]


def _scene() -> list[ZoneConfig]:
    from gridworker.vision.config import ZoneConfig

    return [ZoneConfig.model_validate(zone) for zone in ZONES]


def _analyzers(camera_ids: Sequence[str]) -> dict[str, CameraAnalyzer]:
    from gridworker.vision.analyzer import CameraAnalyzer

    zones = _scene()
    return {cid: CameraAnalyzer(cid, fps=1.0, scene=zones) for cid in camera_ids}


# --------------------------------------------------------------------------- helpers


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


@contextlib.contextmanager
def _servers(mount_sets: Sequence[dict[str, Path]]) -> Iterator[list[RtspServerProcess]]:
    from gridworker.streams.rtsp_serve import RtspServerProcess

    servers: list[RtspServerProcess] = []
    try:
        for mounts in mount_sets:
            servers.append(RtspServerProcess(mounts, ready_timeout_s=60).start())
        yield servers
    finally:
        for server in servers:
            server.close()


# --------------------------------------------------------------------------- the naive patrol


def run_naive_patrol(
    urls: Sequence[tuple[str, str]], detector: Detector, analyzers: dict[str, CameraAnalyzer], open_timeout_s: float = 15.0
) -> dict[str, Any]:
    """One camera after another: cv2.VideoCapture, first frame, batch-1 detect, rules, release."""
    import cv2

    from gridworker.streams.frame import Frame

    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    previous = os.environ.get(key)
    os.environ[key] = "rtsp_transport;tcp"
    # OpenCV's FFmpeg complains about every P-frame before the first keyframe; keep stderr readable
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    latencies: list[float] = []
    failed = 0
    t_start = time.monotonic()
    try:
        for camera_id, url in urls:
            t0 = time.monotonic()
            cap = cv2.VideoCapture(
                url,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
            )
            try:
                ok, bgr = cap.read() if cap.isOpened() else (False, None)
            finally:
                cap.release()
            if not ok or bgr is None:
                failed += 1
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frame = Frame(camera_id, 1, time.time(), rgb)
            dets = detector.detect([rgb])[0]
            analyzers[camera_id].analyze(frame, dets)
            latencies.append(time.monotonic() - t0)
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous
    total = time.monotonic() - t_start
    done = len(latencies)
    return {
        "naive_cameras": len(urls),
        "naive_s": _r(total),
        "naive_failed": failed,
        "naive_p50_visit_s": _r(_pct(latencies, 50)),
        "naive_visits_per_min": _r(done / total * 60.0 if total > 0 else 0.0, 1),
    }


# --------------------------------------------------------------------------- bad cameras


class HungServer:
    """A TCP port that accepts connections and never sends a byte (a hung camera).

    Holds at most ``max_connections`` accepted sockets (the oldest is closed beyond that);
    everything is closed by :meth:`close`.
    """

    def __init__(self, max_connections: int = 1024) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._held: deque[socket.socket] = deque(maxlen=max_connections)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="bench-hung-camera", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:  # the 0.2 s timeout, or closed
                continue
            if len(self._held) == self._held.maxlen:
                self._held[0].close()
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        for conn in self._held:
            conn.close()


def _refusing_port() -> int:
    """A local port nothing listens on (a dead camera: connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- one plan's run


@dataclass
class _Sampler:
    """A run's visits in flight and its concurrency limit, one sample a :meth:`sample` call."""

    run: PatrolRun
    in_flight: list[int] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)

    def sample(self) -> None:
        st = self.run.status()
        self.in_flight.append(len(st.in_flight))
        self.limits.append(st.concurrency_limit)


def _analysed(service: Service, camera_ids: Sequence[str]) -> int:
    return sum(service.camera(cid).frames_analysed for cid in camera_ids)


def _fps(service: Service, camera_ids: Sequence[str], seconds: float) -> float | None:
    """Analysed frames per second per continuous camera over ``seconds``."""
    if not camera_ids:
        return None
    before, t0 = _analysed(service, camera_ids), time.monotonic()
    time.sleep(seconds)
    return (_analysed(service, camera_ids) - before) / (time.monotonic() - t0) / len(camera_ids)


def _metric(service: Service, name: str) -> float:
    return float(service.metrics.registry.get_sample_value(name) or 0.0)


def _run_plan(
    service: Service, plan: PatrolPlan, continuous: Sequence[str], server_procs: Sequence[psutil.Process], budget_s: float
) -> dict[str, Any]:
    """Start ``plan`` on the running service, wait for its cycles; the figures of that run."""
    me = psutil.Process()
    cpu0, srv0, machine0 = _cpu_s(me), [_cpu_s(p) for p in server_procs], psutil.cpu_times()
    frames0 = _analysed(service, continuous)
    batches0, batch_frames0 = _metric(service, "gridworker_batch_size_count"), _metric(service, "gridworker_batch_size_sum")
    infer0 = _metric(service, "gridworker_inference_seconds_sum")
    patrol_frames0 = service.batcher.submitted_done
    t0, t0_wall = time.monotonic(), time.time()
    service.patrol.start(plan.id)
    run = service.patrol.run(plan.id)
    assert run is not None
    sampler = _Sampler(run)
    follower = Periodic("bench-sampler", sampler.sample, 0.25)
    follower.start()
    finished = run.wait(timeout=budget_s)
    wall = time.monotonic() - t0
    follower.stop(2)
    cpu = _cpu_s(me) - cpu0
    srv_cpu = sum(_cpu_s(p) - c for p, c in zip(server_procs, srv0, strict=True))
    machine_busy = cpu_busy_share(machine0, psutil.cpu_times())
    frames = _analysed(service, continuous) - frames0
    if not finished:
        service.patrol.stop(plan.id, timeout=10)
    status, stats = run.status(), run.controller_stats()
    outcomes = run.outcomes()
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    latencies = [o.duration_s for o in ok]
    first_key = [o.first_keyframe_s for o in ok if o.first_keyframe_s is not None]
    connect = [o.connect_s for o in ok if o.connect_s is not None]
    decoded = sum(o.packets_decoded for o in outcomes)
    skipped = sum(o.packets_skipped for o in outcomes)
    # the rate runs to the end of the last good visit: a failing visit still waiting for its
    # timeout when the plan's last cycle ends (a hung camera) is not part of the good visits'
    # time (a repeating patrol has no last cycle)
    span = max((o.started_at + o.duration_s - t0_wall for o in ok), default=wall)
    batches = _metric(service, "gridworker_batch_size_count") - batches0
    batch_frames = _metric(service, "gridworker_batch_size_sum") - batch_frames0
    return {
        "plan": plan.id,
        "concurrency_mode": plan.concurrency_mode,
        "overlap_cycles": plan.overlap_cycles,
        "finished": finished,
        "cycles": status.completed_cycles,
        "wall_s": _r(wall, 2),
        "last_cycle_s": _r(status.last_cycle_s, 2),
        "visits": len(outcomes),
        "ok": len(ok),
        "failed": len(failed),
        "failed_by_kind": dict(Counter(o.error_kind or "error" for o in failed)),
        "failed_examples": [f"{o.camera_id}: {o.reason}" for o in failed[:5]],
        "good_span_s": _r(span, 2),
        "visits_per_min": _r(len(ok) / span * 60.0 if span > 0 else 0.0, 1),
        "p50_visit_s": _r(_pct(latencies, 50)),
        "p95_visit_s": _r(_pct(latencies, 95)),
        "p50_first_keyframe_s": _r(_pct(first_key, 50)),
        "p50_connect_s": _r(_pct(connect, 50)),
        "p95_connect_s": _r(_pct(connect, 95)),
        "packets_decoded": decoded,
        "packets_skipped": skipped,
        "decoded_fraction": _r(decoded / (decoded + skipped) if decoded + skipped else None, 4),
        "continuous_fps_during": _r(frames / wall / len(continuous) if continuous and wall > 0 else None, 2),
        "concurrency_final": stats.limit if stats is not None else plan.concurrency,
        "concurrency_peak": stats.peak if stats is not None else plan.concurrency,
        "concurrency_decreases": stats.decreases if stats is not None else 0,
        "mean_in_flight": _r(sum(sampler.in_flight) / len(sampler.in_flight) if sampler.in_flight else None, 1),
        "mean_limit": _r(sum(sampler.limits) / len(sampler.limits) if sampler.limits else None, 1),
        "cpu_s": _r(cpu, 2),
        "cpu_cores": _r(cpu / wall if wall > 0 else None, 3),
        "cpu_servers_cores": _r(srv_cpu / wall if wall > 0 else None, 3),
        "machine_busy": _r(machine_busy, 3),
        "cpu_s_per_visit": _r(cpu / len(ok) if ok else None, 4),
        "patrol_frames": service.batcher.submitted_done - patrol_frames0,
        "batches": int(batches),
        "mean_batch": _r(batch_frames / batches if batches else None, 2),
        "inference_s": _r(_metric(service, "gridworker_inference_seconds_sum") - infer0, 2),
    }


# --------------------------------------------------------------------------- the run


def _camera(cid: str, url: str, watch: str, fps: float | None = None) -> dict[str, Any]:
    camera: dict[str, Any] = {"id": cid, "url": url, "watch": watch, "zones": ZONES}
    if fps is not None:
        camera["fps"] = fps
    return camera


def _plan(config: PatrolBenchConfig, plan_id: str, mode: str, camera_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "id": plan_id,
        "select": {"camera_ids": list(camera_ids)},
        "order": "listed",
        "cycles": config.cycles,
        "concurrency": config.concurrency,
        "concurrency_mode": "adaptive" if mode == "adaptive" else "fixed",
        "overlap_cycles": mode != "drained",
        "min_concurrency": min(config.min_concurrency, config.concurrency),
        "keyframes": config.keyframes,
        "open_timeout_s": config.open_timeout_s,
        "keyframe_timeout_s": config.keyframe_timeout_s,
        "stagger_s": config.stagger_s,
    }


def run_patrol_bench(config: PatrolBenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result (see the module docstring).

    Raises:
        RtspServerUnavailable: gst-rtsp-server is not installed.
        ValueError: bad arguments or an empty media folder.
    """
    from gridworker.models.loader import load_detector
    from gridworker.service import Service
    from gridworker.settings import Settings

    say = progress or (lambda message: None)
    if config.cameras < 1 or config.concurrency < 1 or config.cycles < 1:
        raise ValueError("cameras, concurrency and cycles must be at least 1")
    if config.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not 0 <= config.dead_share + config.hung_share < 1 or min(config.dead_share, config.hung_share) < 0:
        raise ValueError("dead and hung shares must be >= 0 and add up to less than 1")
    n = config.cameras
    n_servers = config.servers or max(1, min(4, math.ceil(n / 100)))
    modes = list(MODES[config.mode])
    n_dead, n_hung = round(n * config.dead_share), round(n * config.hung_share)
    with tempfile.TemporaryDirectory(prefix="bench-patrol-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        clips, origin = prepare_clips(config, workdir)
        say(f"{len(clips)} phase-shifted clips from {origin}")
        camera_ids = [f"cam{i:04d}" for i in range(n)]
        mount_sets: list[dict[str, Path]] = [{} for _ in range(n_servers)]
        for i, cid in enumerate(camera_ids):
            # consecutive cameras use different clips and different servers
            mount_sets[i % n_servers][cid] = clips[(i * 7) % len(clips)]
        live_ids = [f"live{i}" for i in range(config.continuous)]
        if live_ids:  # the continuous cameras have a server of their own: a busy patrol server does not starve them
            mount_sets.append({cid: clips[(i * 5) % len(clips)] for i, cid in enumerate(live_ids)})
        detector = load_detector(config.detector_config(), workers=config.workers)
        servers = stack.enter_context(_servers(mount_sets))
        urls = {cid: servers[i % n_servers].url(cid) for i, cid in enumerate(camera_ids)}
        cameras = [_camera(cid, urls[cid], "patrol") for cid in camera_ids]
        cameras += [_camera(cid, servers[-1].url(cid), "continuous", config.continuous_fps) for cid in live_ids]
        bad_ids: list[str] = []
        if n_dead or n_hung:
            hung = HungServer()
            stack.callback(hung.close)
            for i in range(n_dead):
                bad_ids.append(f"dead{i:03d}")
                cameras.append(_camera(bad_ids[-1], f"rtsp://127.0.0.1:{_refusing_port()}/dead{i}", "patrol"))
            for i in range(n_hung):
                bad_ids.append(f"hung{i:03d}")
                cameras.append(_camera(bad_ids[-1], f"rtsp://127.0.0.1:{hung.port}/hung{i}", "patrol"))
        plans = [_plan(config, f"bench-{mode}", mode, camera_ids) for mode in modes]
        faulty_ids = camera_ids[: n - len(bad_ids)] + bad_ids
        if bad_ids:  # the same number of cameras, n_dead + n_hung of them bad, spread through the order
            step = max(1, len(faulty_ids) // max(1, len(bad_ids)))
            good, ordered = camera_ids[: n - len(bad_ids)], []
            for i, cid in enumerate(good):
                ordered.append(cid)
                if (i + 1) % step == 0 and i // step < len(bad_ids):
                    ordered.append(bad_ids[i // step])
            ordered += [b for b in bad_ids if b not in ordered]
            faulty_ids = ordered
            plans.append(_plan(config, "bench-faulty", modes[-1], faulty_ids))
        settings = Settings(
            database={"url": f"sqlite:///{workdir / 'bench.db'}"},
            cameras=cameras,
            patrol_plans=plans,
            evidence={"clips": False},
            limits={"max_cameras": len(cameras) + 1, "max_patrol_concurrency": max(128, config.concurrency)},
            pipeline={"patrol_batch_slots": config.patrol_batch_slots},
        )
        service = Service(settings, detector)
        service.start()
        stack.callback(service.stop)
        server_procs = [psutil.Process(s.pid) for s in servers if s.pid is not None]
        budget = n * (config.open_timeout_s + config.keyframe_timeout_s) * config.cycles + 60
        before = None
        if live_ids:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and min(service.camera(c).frames_analysed for c in live_ids) < 5:
                time.sleep(0.2)
            before = _fps(service, live_ids, config.measure_s)
            say(f"{len(live_ids)} continuous camera(s): {before or 0:.2f} analysed fps each before the patrol")
        runs: dict[str, dict[str, Any]] = {}
        for plan in settings.patrol_plans:
            say(f"plan {plan.id}: {config.cycles} cycle(s) over {len(plan.select.camera_ids)} cameras, "
                f"{plan.concurrency_mode} concurrency up to {plan.concurrency}")
            runs[plan.id] = _run_plan(service, plan, live_ids, server_procs, budget)
            r = runs[plan.id]
            say(f"  {r['visits_per_min']} visits/min, {r['ok']} ok, {r['failed']} failed, p95 {r['p95_visit_s']} s, "
                f"continuous {r['continuous_fps_during']} fps, concurrency final {r['concurrency_final']}")
        after = _fps(service, live_ids, min(config.measure_s, 4.0)) if live_ids else None
        opened = _metric_total(service, "gridworker_incidents_opened_total")
        service.stop()
        crashed = [i for i, s in enumerate(servers) if not s.running]
        notes = [f"RTSP server {i} died: {servers[i].log_tail(400)}" for i in crashed]
        naive: dict[str, Any] = {}
        if config.naive_cameras > 0 and not crashed:
            say(f"naive patrol on {min(n, config.naive_cameras)} cameras")
            subset = [(cid, urls[cid]) for cid in camera_ids[: config.naive_cameras]]
            naive = run_naive_patrol(subset, detector, _analyzers([c for c, _ in subset]))
    main = runs[f"bench-{modes[-1]}"]
    naive_rate = naive.get("naive_visits_per_min")
    during = main["continuous_fps_during"]
    ratio = during / before if before and during is not None else None
    result: dict[str, Any] = {
        "cameras": n,
        "servers": n_servers,
        "concurrency": config.concurrency,
        "concurrency_mode": modes[-1],
        "keyframes": config.keyframes,
        "clips": origin,
        "phases": config.phases,
        "cycles": config.cycles,
        "patrol_batch_slots": service.pipeline.batcher.submit_max_per_batch,
        **{k: v for k, v in main.items() if k not in ("plan", "concurrency_mode", "cycles")},
        "cycle_s": main["last_cycle_s"],
        "continuous_cameras": len(live_ids),
        "continuous_fps_asked": config.continuous_fps if live_ids else None,
        "continuous_fps_before": _r(before, 2),
        "continuous_fps_after": _r(after, 2),
        "continuous_fps_ratio": _r(ratio, 3),
        "machine_cores": psutil.cpu_count() or 1,
        "incidents_opened": int(opened),
        "modes": {m: runs[f"bench-{m}"] for m in modes},
        **naive,
        "over_naive": _r(main["visits_per_min"] / naive_rate if naive_rate else None, 2),
        "target_visits_per_min": TARGET_VISITS_PER_MIN,
        "target_continuous_ratio": TARGET_CONTINUOUS_RATIO,
        "meets_target": bool(
            n >= TARGET_CAMERAS
            and main["visits_per_min"] >= TARGET_VISITS_PER_MIN
            and main["failed"] == 0
            and (ratio is None or ratio >= TARGET_CONTINUOUS_RATIO)
        ),
        "notes": notes,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    if bad_ids:
        faulty = runs["bench-faulty"]
        healthy_rate = main["visits_per_min"]
        live_ok = faulty["ok"]
        share = len(bad_ids) / n
        live_ratio = faulty["visits_per_min"] / healthy_rate if healthy_rate else None
        result["faults"] = {
            "dead": n_dead,
            "hung": n_hung,
            "live_cameras": n - len(bad_ids),
            "bad_share": _r(share, 3),
            "healthy_visits_per_min": healthy_rate,
            "live_visits_per_min": faulty["visits_per_min"],
            "live_ok": live_ok,
            "live_rate_ratio": _r(live_ratio, 3),
            "allowed_ratio": _r(1 - share, 3),
            "meets": bool(live_ratio is not None and live_ratio >= 1 - share),
            "run": faulty,
        }
    return result


def _metric_total(service: Service, name: str) -> float:
    """The sum of a labelled counter over its labels."""
    total = 0.0
    for family in service.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += float(sample.value)
    return total


def format_summary(result: dict[str, Any]) -> str:
    """A few human lines for standard error."""
    lines = [
        f"patrol: {result['cameras']} cameras, {result['servers']} RTSP server(s), concurrency up to {result['concurrency']}, "
        f"{result['keyframes']} keyframe(s) per glance, {result['cycles']} cycle(s); clips: {result['clips']}",
        f"  continuous cameras: {result['continuous_cameras']} at {result['continuous_fps_asked']} fps asked: "
        f"{result['continuous_fps_before']} analysed fps each before the patrol",
    ]
    for mode, r in result["modes"].items():
        lines += [
            f"  {mode:8s}: {r['visits_per_min']} visits/min ({r['ok']} ok, {r['failed']} failed {r['failed_by_kind'] or ''}) "
            f"in {r['wall_s']} s; visit p50 {r['p50_visit_s']} s, p95 {r['p95_visit_s']} s; connect p50 {r['p50_connect_s']} s",
            f"            continuous {r['continuous_fps_during']} fps during; concurrency final {r['concurrency_final']} "
            f"(peak {r['concurrency_peak']}, mean in flight {r['mean_in_flight']}); CPU {r['cpu_cores']} cores in "
            f"gridworker ({r['cpu_s_per_visit']} s/visit), {r['cpu_servers_cores']} in the RTSP servers, machine "
            f"{r['machine_busy']} busy; batches {r['batches']} (mean {r['mean_batch']})",
        ]
    faults = result.get("faults")
    if faults:
        lines.append(
            f"  faults: {faults['dead']} dead + {faults['hung']} hung of {result['cameras']}: live cameras "
            f"{faults['live_visits_per_min']} visits/min vs {faults['healthy_visits_per_min']} healthy -> "
            f"{faults['live_rate_ratio']} (allowed >= {faults['allowed_ratio']}): {'meets' if faults['meets'] else 'does not meet'}"
        )
    if result.get("naive_visits_per_min") is not None:
        lines.append(
            f"  naive sequential (OpenCV, batch 1) on {result['naive_cameras']} cameras: "
            f"{result['naive_visits_per_min']} visits/min (p50 {result['naive_p50_visit_s']} s) -> "
            f"over_naive {result['over_naive']}x"
        )
    verdict = "meets" if result["meets_target"] else "does not meet"
    lines.append(
        f"  target >= {TARGET_VISITS_PER_MIN:g} visits/min at N >= {TARGET_CAMERAS}, 0 failed, continuous >= "
        f"{TARGET_CONTINUOUS_RATIO:.0%} of their fps ({result['continuous_fps_ratio']}): {verdict}"
    )
    lines.extend(f"  note: {note}" for note in result.get("notes", []))
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)
