"""``gridworker bench patrol``: how many camera visits per minute a glance patrol makes.

One invocation:

1. prepares the clips: every source clip (``../shared/media`` or ``--media``; generated
   clips otherwise) is remuxed (stream copy, no re-encode) into ``phases`` copies that start
   at different points of its keyframe interval. The test server starts a clip afresh for
   each RTSP session, so without this every glance would find a keyframe at once; with it a
   glance waits 0 .. one GOP for its first keyframe, as when joining a live camera;
2. serves N distinct camera URLs (mount points) from 1-4 gst-rtsp-server processes
   (``--servers``; several mounts share a clip);
3. runs one full cycle of a glance :class:`~gridworker.patrol.engine.PatrolRun` over the N
   cameras with ``--concurrency`` visits in flight. Each visit is a real RTSP session and a
   keyframe-only decode; its frame goes to one batch loop that runs the real default
   detector on frames of concurrent visits together, then a :class:`CameraAnalyzer` per
   camera (an intrusion and a crowd rule on a full-frame zone). A visit ends when its frame
   has been analysed;
4. runs the naive patrol on the first ``--naive-cameras`` cameras, one after the other:
   ``cv2.VideoCapture`` open, first frame, batch-1 inference, rules, release, next camera,
   and extrapolates its visits per minute.

Reports visits/min, cycle time, CPU use (this process, and the RTSP servers separately),
visit latency p50/p95, failed visits (by reason) and ``over_naive``. Definitions: docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import psutil

from gridworker.models.base import Detector

if TYPE_CHECKING:  # imported lazily at run time (the bench's start-up stays light)
    from gridworker.patrol.config import PatrolTarget
    from gridworker.patrol.engine import CameraOutcome
    from gridworker.streams.frame import Frame
    from gridworker.streams.rtsp_serve import RtspServerProcess
    from gridworker.vision.analyzer import CameraAnalyzer
    from gridworker.vision.config import ZoneConfig

__all__ = ["TARGET_CAMERAS", "TARGET_VISITS_PER_MIN", "PatrolBenchConfig", "format_summary", "run_patrol_bench"]

TARGET_VISITS_PER_MIN = 1000.0
TARGET_CAMERAS = 200
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv"}
REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SIZE = (640, 360)
SYNTHETIC_FPS = 25


@dataclass
class PatrolBenchConfig:
    """What ``bench patrol`` runs.

    Attributes:
        cameras: N, distinct camera URLs visited once each.
        media: folder of H.264 clips; None: ``../shared/media`` if present, else generated.
        synthetic: use generated clips even when media exists.
        concurrency: visits in flight at once.
        servers: RTSP server processes the mounts are spread over (0: 1 per 100 cameras, 1..4).
        phases: phase-shifted copies made of each clip.
        keyframes: keyframes per glance.
        naive_cameras: how many cameras the naive sequential patrol visits (0: skip it).
        model / threads / max_batch: the detector (as in the ``detector`` settings).
        open_timeout_s / keyframe_timeout_s: per-visit timeouts of the plan.
        stagger_s: least gap between two visit starts.
        clip_seconds: length of each phase copy (the server loops it).
    """

    cameras: int = 200
    media: Path | None = None
    synthetic: bool = False
    concurrency: int = 64
    servers: int = 0
    phases: int = 8
    keyframes: int = 1
    naive_cameras: int = 12
    model: str = "ssd_mobilenet_v2_coco"
    threads: int = 2
    max_batch: int = 8
    open_timeout_s: float = 10.0
    keyframe_timeout_s: float = 12.0
    stagger_s: float = 0.01
    clip_seconds: float = 30.0


# --------------------------------------------------------------------------- clips


def default_media_dir() -> Path | None:
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "media"
        if candidate.is_dir() and any(p.suffix.lower() in VIDEO_SUFFIXES for p in candidate.iterdir()):
            return candidate
    return None


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


def prepare_clips(config: PatrolBenchConfig, workdir: Path) -> tuple[list[Path], str]:
    """Phase-shifted copies of every source clip, and a description of the sources."""
    media = None if config.synthetic else (config.media or default_media_dir())
    if media is not None:
        sources = sorted(p for p in Path(media).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not sources:
            raise ValueError(f"no video clips in {media}")
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


# --------------------------------------------------------------------------- analysis


@dataclass
class _Job:
    camera_id: str
    frame: Frame
    done: Future[int]


@dataclass
class BatchStats:
    batches: int = 0
    frames: int = 0
    detections: int = 0
    active_verdicts: int = 0
    infer_s: float = 0.0


class BatchAnalyzer:
    """A bounded queue and one batch loop: detect frames of concurrent visits together, then rules.

    ``submit`` blocks while the queue is full (a visit keeps its slot until its frame is
    analysed), so the patrol can never outrun inference.
    """

    def __init__(self, detector: Detector, analyzers: dict[str, CameraAnalyzer], max_batch: int) -> None:
        self._detector = detector
        self._analyzers = analyzers
        self._max_batch = max_batch
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=max_batch * 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="patrol-bench-batch", daemon=True)
        self.stats = BatchStats()
        self._thread.start()

    def analyse(self, camera_id: str, frames: Sequence[Frame]) -> int:
        """Analyse a visit's frames; returns the number of detections. Blocks until done."""
        futures: list[Future[int]] = []
        for frame in frames:
            job = _Job(camera_id, frame, Future())
            self._queue.put(job)
            futures.append(job.done)
        return sum(f.result(timeout=120) for f in futures)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                t0 = time.perf_counter()
                results = self._detector.detect([job.frame.image for job in batch])
                self.stats.infer_s += time.perf_counter() - t0
                self.stats.batches += 1
                self.stats.frames += len(batch)
                for job, dets in zip(batch, results, strict=True):
                    analysis = self._analyzers[job.camera_id].analyze(job.frame, dets)
                    self.stats.detections += len(dets)
                    self.stats.active_verdicts += len(analysis.active)
                    job.done.set_result(len(dets))
            except Exception as exc:  # noqa: BLE001 - fail the visits of this batch, keep looping
                for job in batch:
                    if not job.done.done():
                        job.done.set_exception(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _scene() -> list[ZoneConfig]:
    from gridworker.vision.config import ZoneConfig

    return [
        ZoneConfig(
            id="area",
            rules=[
                {"type": "intrusion", "classes": ["person"]},
                {"type": "crowd", "classes": ["person"], "min_count": 3, "min_duration_s": 0},
            ],
        )
    ]


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


# --------------------------------------------------------------------------- the run


def run_patrol_bench(config: PatrolBenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result (see the module docstring).

    Raises:
        RtspServerUnavailable: gst-rtsp-server is not installed.
        ValueError: bad arguments or an empty media folder.
    """
    from gridworker.models.config import DetectorConfig
    from gridworker.models.loader import load_detector
    from gridworker.patrol import PatrolPlan, PatrolRun, PatrolTarget

    say = progress or (lambda message: None)
    if config.cameras < 1 or config.concurrency < 1:
        raise ValueError("cameras and concurrency must be at least 1")
    n = config.cameras
    n_servers = config.servers or max(1, min(4, math.ceil(n / 100)))
    with tempfile.TemporaryDirectory(prefix="bench-patrol-") as tmp:
        workdir = Path(tmp)
        clips, origin = prepare_clips(config, workdir)
        say(f"{len(clips)} phase-shifted clips from {origin}")
        camera_ids = [f"cam{i:04d}" for i in range(n)]
        mount_sets: list[dict[str, Path]] = [{} for _ in range(n_servers)]
        for i, cid in enumerate(camera_ids):
            # consecutive cameras use different clips and different servers
            mount_sets[i % n_servers][cid] = clips[(i * 7) % len(clips)]
        detector = load_detector(DetectorConfig(model=config.model, threads=config.threads, max_batch=config.max_batch))
        with _servers(mount_sets) as servers:
            urls = {cid: servers[i % n_servers].url(cid) for i, cid in enumerate(camera_ids)}
            say(f"{n} cameras on {n_servers} RTSP server(s); patrol, concurrency {config.concurrency}")
            analyzers = _analyzers(camera_ids)
            batcher = BatchAnalyzer(detector, analyzers, config.max_batch)
            plan = PatrolPlan(
                id="bench",
                cycles=1,
                concurrency=config.concurrency,
                keyframes=config.keyframes,
                open_timeout_s=config.open_timeout_s,
                keyframe_timeout_s=config.keyframe_timeout_s,
                stagger_s=config.stagger_s,
            )
            targets = [PatrolTarget(cid, urls[cid]) for cid in camera_ids]
            outcomes: list[CameraOutcome] = []
            lock = threading.Lock()

            def on_outcome(outcome: CameraOutcome) -> None:
                with lock:
                    outcomes.append(outcome)

            def visit(target: PatrolTarget, frames: Sequence[Frame]) -> None:
                batcher.analyse(target.camera_id, frames)

            run = PatrolRun(plan, targets, visit, on_outcome=on_outcome)
            me = psutil.Process()
            server_procs = [psutil.Process(s.pid) for s in servers if s.pid is not None]
            cpu0, srv0 = _cpu_s(me), [_cpu_s(p) for p in server_procs]
            t0 = time.monotonic()
            run.start()
            finished = run.wait(timeout=n * plan.visit_budget_s() + 60)
            wall = time.monotonic() - t0
            cpu = _cpu_s(me) - cpu0
            srv_cpu = sum(_cpu_s(p) - c for p, c in zip(server_procs, srv0, strict=True))
            status = run.status()
            if not finished:
                run.stop(10)
            batcher.close()
            crashed = [i for i, s in enumerate(servers) if not s.running]
            notes = [f"RTSP server {i} died: {servers[i].log_tail(400)}" for i in crashed]
            say(f"patrol: {status.ok}/{n} ok in {wall:.1f} s; naive patrol on {min(n, config.naive_cameras)} cameras")
            naive: dict[str, Any] = {}
            if config.naive_cameras > 0 and not crashed:
                subset = [(cid, urls[cid]) for cid in camera_ids[: config.naive_cameras]]
                naive = run_naive_patrol(subset, detector, _analyzers([c for c, _ in subset]))
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    latencies = [o.duration_s for o in ok]
    first_key = [o.first_keyframe_s for o in ok if o.first_keyframe_s is not None]
    connect = [o.connect_s for o in ok if o.connect_s is not None]
    decoded = sum(o.packets_decoded for o in outcomes)
    skipped = sum(o.packets_skipped for o in outcomes)
    cycle_s = status.last_cycle_s or wall
    visits_per_min = len(ok) / cycle_s * 60.0 if cycle_s > 0 else 0.0
    naive_rate = naive.get("naive_visits_per_min")
    cores = psutil.cpu_count() or 1
    stats = batcher.stats
    result: dict[str, Any] = {
        "cameras": n,
        "servers": n_servers,
        "concurrency": config.concurrency,
        "keyframes": config.keyframes,
        "clips": origin,
        "phases": config.phases,
        "visits": len(outcomes),
        "ok": len(ok),
        "failed": len(failed),
        "failed_by_kind": dict(Counter(o.error_kind or "error" for o in failed)),
        "failed_examples": [f"{o.camera_id}: {o.reason}" for o in failed[:5]],
        "cycle_s": _r(cycle_s, 2),
        "visits_per_min": _r(visits_per_min, 1),
        "p50_visit_s": _r(_pct(latencies, 50)),
        "p95_visit_s": _r(_pct(latencies, 95)),
        "p50_first_keyframe_s": _r(_pct(first_key, 50)),
        "p95_connect_s": _r(_pct(connect, 95)),
        "packets_decoded": decoded,
        "packets_skipped": skipped,
        "decoded_fraction": _r(decoded / (decoded + skipped) if decoded + skipped else None, 4),
        "cpu_s": _r(cpu, 2),
        "cpu_cores": _r(cpu / wall if wall > 0 else None, 3),
        "cpu_servers_cores": _r(srv_cpu / wall if wall > 0 else None, 3),
        "machine_cores": cores,
        "cpu_s_per_visit": _r(cpu / len(ok) if ok else None, 4),
        "batches": stats.batches,
        "mean_batch": _r(stats.frames / stats.batches if stats.batches else None, 2),
        "inference_s": _r(stats.infer_s, 2),
        "detections": stats.detections,
        "active_verdicts": stats.active_verdicts,
        **naive,
        "over_naive": _r(visits_per_min / naive_rate if naive_rate else None, 2),
        "target_visits_per_min": TARGET_VISITS_PER_MIN,
        "meets_target": bool(n >= TARGET_CAMERAS and visits_per_min >= TARGET_VISITS_PER_MIN),
        "notes": notes,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    return result


def format_summary(result: dict[str, Any]) -> str:
    """A few human lines for standard error."""
    lines = [
        f"patrol: {result['cameras']} cameras, {result['servers']} RTSP server(s), concurrency {result['concurrency']}, "
        f"{result['keyframes']} keyframe(s) per glance; clips: {result['clips']}",
        f"  one cycle: {result['cycle_s']} s -> {result['visits_per_min']} visits/min "
        f"({result['ok']} ok, {result['failed']} failed {result['failed_by_kind'] or ''})",
        f"  visit latency p50 {result['p50_visit_s']} s, p95 {result['p95_visit_s']} s "
        f"(first keyframe p50 {result['p50_first_keyframe_s']} s)",
        f"  packets decoded {result['packets_decoded']}, skipped undecoded {result['packets_skipped']}",
        f"  CPU: {result['cpu_cores']} cores in gridworker ({result['cpu_s_per_visit']} s/visit), "
        f"{result['cpu_servers_cores']} in the RTSP servers, of {result['machine_cores']}",
        f"  batches {result['batches']} (mean {result['mean_batch']}), detections {result['detections']}, "
        f"active verdicts {result['active_verdicts']}",
    ]
    if result.get("naive_visits_per_min") is not None:
        lines.append(
            f"  naive sequential (OpenCV, batch 1) on {result['naive_cameras']} cameras: "
            f"{result['naive_visits_per_min']} visits/min (p50 {result['naive_p50_visit_s']} s) -> "
            f"over_naive {result['over_naive']}x"
        )
    verdict = "meets" if result["meets_target"] else "does not meet"
    lines.append(f"  target >= {TARGET_VISITS_PER_MIN:g} visits/min at N >= {TARGET_CAMERAS}: {verdict}")
    lines.extend(f"  note: {note}" for note in result.get("notes", []))
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)

