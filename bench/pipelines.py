"""The pipelines the benchmark runs on the same RTSP streams, and what each one reports.

* :func:`run_gridworker` — gridworker's real :class:`~gridworker.service.Service`
  (readers → batcher → detector → tracker/zones/rules → incidents in SQLite);
* :func:`run_naive` — one thread per camera: ``cv2.VideoCapture`` read loop and batch-1
  inference in that thread, as a first prototype would do it;
* :func:`run_ultralytics` — Ultralytics' own ``predict(stream=True)`` loop over a
  ``.streams`` file (only where ``ultralytics`` is installed).

Every pipeline measures frame age the same way (see :mod:`gridworker.bench.timing`) and
counts only live frames (age at the end of analysis at most ``LIVE_AGE_S``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import supervision as sv
from gridworker.models.base import Detector

from .timing import LIVE_AGE_S, AgeLog, PtsCameraStream, SendClock, percentile

__all__ = ["BENCH_ZONES", "PipelineResult", "run_gridworker", "run_naive", "run_ultralytics"]

log = logging.getLogger(__name__)

# One zone over the lower 60 % of every camera with the three rule types, so rules and
# incidents (with their snapshots and SQLite writes) do their real work per frame.
BENCH_ZONES: list[dict[str, Any]] = [
    {
        "id": "road",
        "polygon": [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]],
        "rules": [
            {"type": "intrusion", "classes": ["person"], "min_duration_s": 1.0, "clear_after_s": 5.0},
            {"type": "crowd", "classes": ["person", "car"], "min_count": 3, "min_duration_s": 2.0, "clear_after_s": 5.0},
            {"type": "dwell", "min_duration_s": 5.0, "clear_after_s": 5.0},
        ],
    }
]


@dataclass
class PipelineResult:
    """What one pipeline did during its measurement window.

    Attributes:
        live_fps: analysed frames per second whose age was at most ``LIVE_AGE_S``.
        all_fps: analysed frames per second, live or not.
        mean_age_ms: mean age of the analysed frames at the end of their analysis (PTS-based).
        live_fraction: live frames / analysed frames.
        streams_live: streams that had a live frame analysed during the warm-up.
        extra: pipeline-specific figures (latency percentiles, RSS, batch sizes, ...).
        notes: what went wrong or was approximated.
    """

    live_fps: float = 0.0
    all_fps: float = 0.0
    mean_age_ms: float | None = None
    live_fraction: float | None = None
    streams_live: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _summarise(rows: list[tuple[Any, ...]], seconds: float, result: PipelineResult) -> None:
    """Fill live/all fps, mean age and live fraction from ``(stream, done, age, ...)`` rows."""
    ages = [r[2] for r in rows if r[2] is not None]
    live = sum(1 for a in ages if a <= LIVE_AGE_S)
    result.all_fps = len(rows) / seconds
    result.live_fps = live / seconds
    result.mean_age_ms = float(np.mean(ages)) * 1e3 if ages else None
    result.live_fraction = live / len(ages) if ages else None
    unknown = len(rows) - len(ages)
    if unknown:
        result.notes.append(f"{unknown} frame(s) without a PTS-based age were not counted as live")
    if ages:
        result.extra["min_age_ms"] = min(ages) * 1e3
        result.extra["p95_age_ms"] = (percentile(ages, 95) or 0.0) * 1e3
        if min(ages) < -0.05:
            result.notes.append(f"negative frame age ({min(ages) * 1e3:.0f} ms): the PTS anchor is off")


def _per_stream_live_fps(rows: list[tuple[Any, ...]], n: int, seconds: float) -> list[float]:
    """Live analysed frames per second of each stream."""
    counts = [0] * n
    for row in rows:
        if 0 <= row[0] < n and row[2] is not None and row[2] <= LIVE_AGE_S:
            counts[row[0]] += 1
    return [round(c / seconds, 2) for c in counts]


def _wait_warm(ages: AgeLog, n: int, timeout_s: float, settle_s: float, result: PipelineResult, what: str) -> None:
    """The warm-up: wait until every stream had a *live* frame analysed, then ``settle_s`` more.

    Every client first receives a backlog (the frames FFmpeg read while probing the stream
    at open, up to a few seconds' worth); the warm-up lets each pipeline work through it and
    reach its steady state, so the window measures that state and not the start-up. A
    pipeline that never catches up is measured anyway once ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(ages.streams_live()) < n:
        time.sleep(0.1)
    time.sleep(settle_s)
    seen, live = len(ages.streams_seen()), len(ages.streams_live())
    result.streams_live = live
    if seen < n:
        result.notes.append(f"only {seen}/{n} {what} delivered a frame within the {timeout_s:g} s warm-up")
    elif live < n:
        result.notes.append(f"only {live}/{n} {what} had a live frame within the {timeout_s:g} s warm-up (measured anyway)")


class _TimedDetector:
    """Wraps a detector to count batches and busy time (the pipeline sees no difference)."""

    def __init__(self, inner: Detector) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.busy_s = 0.0
        self.batches: list[int] = []

    @property
    def class_names(self) -> list[str]:
        return list(self._inner.class_names)

    @property
    def max_batch(self) -> int:
        return int(self._inner.max_batch)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        t = time.perf_counter()
        out = list(self._inner.detect(images))
        spent = time.perf_counter() - t
        with self._lock:
            self.busy_s += spent
            self.batches.append(len(images))
        return out

    def reset(self) -> tuple[float, list[int]]:
        with self._lock:
            busy, batches = self.busy_s, self.batches
            self.busy_s, self.batches = 0.0, []
        return busy, batches


class _PtsReaders:
    """Builds the service's readers as :class:`PtsCameraStream` (passed as ``Service(reader=...)``)
    and keeps them by camera id."""

    def __init__(self) -> None:
        self.made: dict[str, PtsCameraStream] = {}

    def __call__(self, camera_id: str, config: Any) -> PtsCameraStream:
        stream = PtsCameraStream(camera_id, config)
        self.made[camera_id] = stream
        return stream


def run_gridworker(
    urls: Sequence[str],
    rates: Sequence[float],
    detector: Detector,
    *,
    seconds: float,
    workdir: Path,
    detector_settings: dict[str, Any] | None = None,
    pipeline_settings: dict[str, Any] | None = None,
    camera_settings: dict[str, Any] | None = None,
    warmup_timeout_s: float = 30.0,
    settle_s: float = 1.0,
) -> PipelineResult:
    """Run gridworker's Service on ``urls`` and measure its live analysed rate.

    Args:
        urls: one RTSP URL per camera.
        rates: sampling rate (fps) per camera.
        detector: a loaded detector (shared, already warm).
        seconds: measurement window after the warm-up.
        workdir: where the SQLite database goes.
        detector_settings: the ``detector`` settings section (informational; the Service
            uses ``detector``).
        pipeline_settings: the ``pipeline`` settings section (e.g. ``batch_deadline_ms``);
            None keeps the product's defaults.
        camera_settings: more keys of every camera (e.g. ``{"motion": {"enabled": True}}``).
        warmup_timeout_s: longest wait for every camera's first live analysed frame.
        settle_s: extra wait after that.
    """
    from gridworker.service import Service
    from gridworker.settings import Settings

    result = PipelineResult()
    n = len(urls)
    db = workdir / f"bench-{n}-{int(time.time() * 1000)}.db"
    sections: dict[str, Any] = {
        "cameras": [
            {"id": f"cam{i}", "url": url, "fps": min(60.0, rate), "zones": BENCH_ZONES, **(camera_settings or {})}
            for i, (url, rate) in enumerate(zip(urls, rates, strict=True))
        ],
        "database": {"url": f"sqlite:///{db}"},
        "detector": detector_settings or {},
        "pipeline": pipeline_settings or {},
    }
    settings = Settings(**sections)
    timed = _TimedDetector(detector)
    ages = AgeLog()
    pts = _PtsReaders()
    readers = pts.made
    service = Service(settings, detector=timed, reader=pts)
    index = {f"cam{i}": i for i in range(n)}

    def observe(analysis: Any, latency_s: float) -> None:
        now = time.time()
        frame = analysis.frame
        sent = getattr(frame, "sent_ts", None)  # the reader's own estimate, where Frame has one
        if sent is None:
            reader = readers.get(frame.camera_id)
            sent = reader.sent_at(frame.seq) if reader is not None else None
        age = now - sent if sent is not None else None
        ages.add(index.get(frame.camera_id, -1), now, age, latency_s, now - frame.ts)

    service.observers.append(observe)
    rss0 = _rss()
    service.start()
    try:
        _wait_warm(ages, n, warmup_timeout_s, settle_s, result, "cameras")
        timed.reset()
        cpu0 = psutil.Process().cpu_times()
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        cpu1 = psutil.Process().cpu_times()
        busy, batches = timed.reset()
        rss1 = _rss()
        views = service.cameras()
        slack = [d for d in (r.min_packet_delay() for r in readers.values()) if d is not None]
    finally:
        service.stop()
        service.store.close()
    rows = ages.window(start, end)
    span = end - start
    _summarise(rows, span, result)
    latencies = [r[3] for r in rows]
    ts_ages = [r[4] for r in rows]
    p95 = percentile(latencies, 95)
    result.extra.update(
        {
            "p95_latency_ms": p95 * 1e3 if p95 is not None else None,
            "mean_age_ts_ms": float(np.mean(ts_ages)) * 1e3 if ts_ages else None,
            "anchor_slack_ms": float(np.mean(slack)) * 1e3 if slack else None,
            "rss_mb_per_stream": (rss1 - rss0) / n / 2**20,
            "mean_batch": float(np.mean(batches)) if batches else None,
            "infer_busy": busy / span,
            "cpu_cores_used": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / span,
            "frames_dropped": sum(v.health.frames_dropped for v in views),
            "reconnects": sum(v.health.reconnects for v in views),
            "per_camera_fps": _per_stream_live_fps(rows, n, span),
            "inferred_fraction": _inferred_fraction(views),
            "cropped_fraction": _cropped_fraction(views),
        }
    )
    return result


def _inferred_fraction(views: Sequence[Any]) -> float | None:
    """Live frames the model ran on / live frames analysed (the motion gate coasts the rest)."""
    inferred = sum(v.frames_inferred for v in views)
    total = inferred + sum(v.frames_coasted for v in views)
    return inferred / total if total else None


def _cropped_fraction(views: Sequence[Any]) -> float | None:
    """Inferred live frames the model saw only the moved part of / inferred live frames (``motion.crop``)."""
    inferred = sum(v.frames_inferred for v in views)
    return sum(v.frames_cropped for v in views) / inferred if inferred else None


def _naive_worker(
    index: int,
    url: str,
    detector: Detector,
    stop: threading.Event,
    ages: AgeLog,
    errors: list[str],
) -> None:
    import cv2

    clock = SendClock(t0=time.time(), p0=0.0)  # CAP_PROP_POS_MSEC counts from the first packet
    cap = cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 15000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000],
    )
    try:
        if not cap.isOpened():
            errors.append(f"stream {index}: cv2.VideoCapture could not open it")
            return
        failures = 0
        while not stop.is_set():
            ok, bgr = cap.read()
            if not ok:
                failures += 1
                if failures >= 3:
                    errors.append(f"stream {index}: read failed {failures} times")
                    return
                continue
            pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            clock.arrived(pts, time.time())  # read (decoded) now: anchors no later than its arrival
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            detector.detect([rgb])
            now = time.time()
            sent = clock.sent_at(pts)
            ages.add(index, now, now - sent if sent is not None else None)
    finally:
        cap.release()


@contextlib.contextmanager
def _opencv_tcp() -> Iterator[None]:
    """RTSP over TCP for OpenCV's FFmpeg backend too (gridworker's reader uses TCP)."""
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    previous = os.environ.get(key)
    os.environ[key] = "rtsp_transport;tcp"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def run_naive(
    urls: Sequence[str],
    detector: Detector,
    *,
    seconds: float,
    warmup_timeout_s: float = 30.0,
    settle_s: float = 1.0,
) -> PipelineResult:
    """One thread per camera: ``cv2.VideoCapture`` read, RGB, batch-1 ``detect``, repeat.

    The detector is the same object gridworker uses, so preprocessing and inference cost the
    same per image; only the structure differs (no batching, no frame skipping).
    """
    result = PipelineResult()
    n = len(urls)
    ages = AgeLog()
    stop = threading.Event()
    errors: list[str] = []
    with _opencv_tcp():
        threads = [
            threading.Thread(
                target=_naive_worker, args=(i, url, detector, stop, ages, errors), name=f"naive-{i}", daemon=True
            )
            for i, url in enumerate(urls)
        ]
        for t in threads:
            t.start()
        try:
            _wait_warm(ages, n, warmup_timeout_s, settle_s, result, "streams")
            start = time.time()
            time.sleep(seconds)
            end = time.time()
        finally:
            stop.set()
            for t in threads:
                t.join(10.0)
                if t.is_alive():
                    result.notes.append(f"{t.name} did not stop within 10 s")
    result.notes.extend(errors)
    rows = ages.window(start, end)
    _summarise(rows, end - start, result)
    result.extra["per_camera_fps"] = _per_stream_live_fps(rows, n, end - start)
    return result


def ultralytics_available() -> str | None:
    """None if Ultralytics and torch import here, else why not."""
    try:
        import torch  # noqa: F401
        import ultralytics  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not here"
        return f"ultralytics/torch not importable ({type(exc).__name__}: {exc})"
    return None


def export_yolo_onnx(out: Path, imgsz: int = 320) -> Path:
    """An untrained YOLOv8n (built offline from ``yolov8n.yaml``) exported to ONNX.

    Same graph and cost as the real YOLOv8n; useless for accuracy, right for speed. Needs
    ``ultralytics``, ``torch``, ``onnx`` (and ``onnxslim``).
    """
    from ultralytics import YOLO

    out = Path(out)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yolo-export-") as tmp:
        previous = Path.cwd()
        os.chdir(tmp)  # the export writes next to the (yaml-built) model: keep it out of the repo
        try:
            model = YOLO("yolov8n.yaml")
            exported = Path(model.export(format="onnx", dynamic=True, imgsz=imgsz, verbose=False))
        finally:
            os.chdir(previous)
        if not exported.is_absolute():
            exported = Path(tmp) / exported
        exported.replace(out)
    return out


@contextlib.contextmanager
def _torchvision_or_stand_in(notes: list[str]) -> Iterator[None]:
    """Make ``import torchvision`` work for Ultralytics' predictor.

    Ultralytics imports torchvision for stream sources and then uses its NMS kernel. Where
    torchvision is installed but unusable (e.g. PyPI's CUDA build beside a CPU-only torch:
    "operator torchvision::nms does not exist"), a stand-in module whose ``ops.nms`` is
    Ultralytics' own ``TorchNMS.nms`` (documented to match torchvision exactly) is put in
    ``sys.modules`` for the duration of the run, and removed afterwards.
    """
    import importlib
    import sys
    import types

    try:
        importlib.import_module("torchvision")
    except Exception as exc:  # noqa: BLE001 - any failure means the real one is unusable
        from ultralytics.utils.nms import TorchNMS

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        stand_in = types.ModuleType("torchvision")
        stand_in.ops = types.SimpleNamespace(nms=TorchNMS.nms)  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stand_in
        notes.append(
            f"torchvision is unusable here ({type(exc).__name__}: {str(exc)[:80]}); "
            "ultralytics ran with its own TorchNMS in its place"
        )
        try:
            yield
        finally:
            if sys.modules.get("torchvision") is stand_in:
                del sys.modules["torchvision"]
        return
    yield


@contextlib.contextmanager
def _endless_captures(loaders_module: Any) -> Iterator[None]:
    """Wrap each ``cv2.VideoCapture(url)`` Ultralytics makes: it notes every read frame's PTS
    and time for the frame-age clock (``SendClock``), and reports no frame count: the test server's SDP carries the looped
    file's duration (``a=range:npt=now-30.16``), from which OpenCV derives a frame count,
    and Ultralytics' reader thread stops after that many frames. A real camera advertises
    no end, so this keeps Ultralytics reading as it would from one.
    """
    cv2_module = loaders_module.cv2
    original = cv2_module.VideoCapture

    class _EndlessCapture:
        """Wraps (not subclasses: a Python subclass of ``cv2.VideoCapture`` crashed the
        interpreter at garbage collection) a capture. Also notes the PTS of the last frame
        read, *in the reading thread*: ``CAP_PROP_POS_MSEC`` read from another thread
        stays 0 (seen with OpenCV 5.0)."""

        def __init__(self, *args: Any) -> None:
            self._cap = original(*args)
            self.last_pts_s: float | None = None
            self.clock = SendClock(t0=time.time(), p0=0.0)  # CAP_PROP_POS_MSEC counts from the first packet

        def get(self, prop: int) -> float:
            if prop == cv2_module.CAP_PROP_FRAME_COUNT:
                return 0.0
            return float(self._cap.get(prop))

        def retrieve(self, *args: Any) -> Any:
            out = self._cap.retrieve(*args)
            self._note()
            return out

        def read(self, *args: Any) -> Any:
            out = self._cap.read(*args)
            self._note()
            return out

        def _note(self) -> None:
            self.last_pts_s = self._cap.get(cv2_module.CAP_PROP_POS_MSEC) / 1000.0
            self.clock.arrived(self.last_pts_s, time.time())

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cap, name)

    class _Proxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(cv2_module, name)

        @staticmethod
        def VideoCapture(source: Any, *args: Any) -> Any:  # noqa: N802 - cv2's own name
            return _EndlessCapture(source, *args)

    loaders_module.cv2 = _Proxy()
    try:
        yield
    finally:
        loaders_module.cv2 = cv2_module


def run_ultralytics(
    urls: Sequence[str],
    onnx_path: Path,
    *,
    seconds: float,
    workdir: Path,
    imgsz: int = 320,
    warmup_timeout_s: float = 60.0,
    settle_s: float = 1.0,
) -> PipelineResult:
    """Ultralytics' ``YOLO(onnx).predict(source=<.streams file>, stream=True)`` loop.

    Ultralytics reads each stream in its own thread (``LoadStreams``, OpenCV, latest frame
    only) and runs the whole set as one batch. Frame age uses the PTS of the newest frame
    each reader thread had retrieved when the batch was taken (the analysed frame, give or
    take one), anchored like gridworker's (bench/timing.py: ``SendClock``) on that stream's reads.
    """
    from ultralytics import YOLO
    from ultralytics.data import loaders

    result = PipelineResult()
    n = len(urls)
    source_file = workdir / f"bench-{n}.streams"
    source_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    model = YOLO(str(onnx_path), task="detect")
    taken: dict[int, float] = {}  # stream -> send time of its newest frame when the batch was taken
    ages = AgeLog()
    original_next = loaders.LoadStreams.__next__

    def next_with_pts(self: Any) -> Any:
        batch = original_next(self)
        for i, cap in enumerate(self.caps):
            pts, clock = getattr(cap, "last_pts_s", None), getattr(cap, "clock", None)
            sent = clock.sent_at(pts) if isinstance(clock, SendClock) and pts is not None else None
            if sent is not None:
                taken[i] = sent
        return batch

    window: tuple[float, float] | None = None
    with _opencv_tcp(), _endless_captures(loaders), _torchvision_or_stand_in(result.notes):
        loaders.LoadStreams.__next__ = next_with_pts
        results = model.predict(source=str(source_file), stream=True, imgsz=imgsz, verbose=False)
        try:
            warm_deadline = time.monotonic() + warmup_timeout_s
            settle_until: float | None = None
            for r_index, res in enumerate(results):
                now = time.time()
                i = r_index % n  # one result per stream, in stream order, per batch
                sent = taken.get(i)
                ages.add(i, now, now - sent if sent is not None else None)
                del res
                if window is None:
                    mono = time.monotonic()
                    if settle_until is None and (len(ages.streams_live()) >= n or mono > warm_deadline):
                        settle_until = mono + settle_s
                    if settle_until is not None and mono >= settle_until:
                        window = (now, now + seconds)
                elif now >= window[1]:
                    break
        finally:
            loaders.LoadStreams.__next__ = original_next
            with contextlib.suppress(Exception):
                getattr(results, "close", lambda: None)()
            with contextlib.suppress(Exception):
                dataset = model.predictor.dataset if model.predictor is not None else None
                if dataset is not None and hasattr(dataset, "close"):
                    dataset.close()
    if window is None:
        result.notes.append("ultralytics delivered no result in time")
        return result
    result.streams_live = len(ages.streams_live())
    if result.streams_live < n:
        result.notes.append(f"only {result.streams_live}/{n} streams had a live frame within the {warmup_timeout_s:g} s warm-up")
    rows = ages.window(*window)
    _summarise(rows, window[1] - window[0], result)
    result.extra["per_camera_fps"] = _per_stream_live_fps(rows, n, window[1] - window[0])
    result.notes.append("ultralytics frame age is taken from each stream's newest PTS when the batch is formed (±1 frame)")
    return result

