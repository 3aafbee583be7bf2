"""``gridworker bench capacity``: how many real RTSP cameras one machine analyses in time.

A camera *keeps up* when it is analysed at ``min_fps`` or more (live frames: at most
``LIVE_AGE_S`` old when their analysis ended) and the frames analysed across all cameras
have an age p95 under ``max_age_ms``. For each pipeline the search doubles N from ``start``
while every camera keeps up, then bisects between the last N that passed and the first that
failed; the answer is the largest N that passed (``cameras_max``). Cameras are the clips of
``../shared/media`` (or generated street-like clips) at their native rates, looped, assigned
round-robin to the mount points of one local gst-rtsp-server.

The same search runs for gridworker (its Service, the camera's ``fps`` set to ``sample_fps``,
motion gating on or off), the naive loop (a thread per camera: read, detect, repeat) and,
when installed, Ultralytics' streaming predictor on a YOLO ONNX export (and gridworker on
that same ONNX), so ``over_ultralytics`` and ``over_naive`` are ratios of two searches on
the same machine in the same run. On a shared machine one window can fall short by chance,
so a failed trial is run again (``tries``, 2 by default) and N passes if any try does: every
pipeline alike, so the ratios stay fair. With ``--motion-crop`` gridworker's cameras also crop
(``motion.crop``: the model sees only the part that moved, at the whole frame's scale; it
applies to the YOLO model, whose input size is dynamic, not to the fixed 300x300 SSD), and
gridworker on the YOLO model is searched again on whole frames (``yolo_whole_``,
``over_ultralytics_whole_frames``): what the crops add, side by side. (The bench's cameras
have no zones, so the whole busy frame is watched and windows are seldom small.)

    gridworker bench capacity --json                       # default model, motion gating on
    gridworker bench capacity --no-motion --max-cameras 48  # every frame inferred
    gridworker bench capacity --motion-crop                 # the YOLO model on crops, and on whole frames
    gridworker bench capacity --runtime openvino            # gridworker's models on OpenVINO (bfloat16 on Intel AMX)
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridworker.models.base import Detector
from gridworker.models.config import DEFAULT_MODEL, Runtime

from .parts import Clip, probe_clip
from .pipelines import PipelineResult, export_yolo_onnx, run_gridworker, run_naive, run_ultralytics, ultralytics_available
from .throughput import default_media_dir, video_files

__all__ = ["CapacityConfig", "Trial", "run_capacity", "search"]


@dataclass(frozen=True, slots=True)
class CapacityConfig:
    model: str = DEFAULT_MODEL
    media: Path | None = None
    sample_fps: float = 2.5  # what each camera asks for (its ``fps``)
    min_fps: float = 2.0  # what each camera must get
    max_age_ms: float = 1000.0
    seconds: float = 15.0  # measurement window per trial
    warmup_timeout_s: float = 40.0
    start: int = 4
    max_cameras: int = 64
    motion: bool = True
    motion_crop: bool = False  # with motion: infer only the moved part (models with a dynamic input)
    threads: int | None = None  # None: the cores shared out among the inference workers
    naive: bool = True
    ultralytics: bool = True
    yolo_imgsz: int = 640
    yolo_onnx: Path | None = None  # an existing YOLO ONNX for the comparison (e.g. an INT8 copy); else YOLOv8n is exported
    runtime: Runtime = "onnxruntime"  # what runs gridworker's models (detector.runtime); Ultralytics runs the ONNX on ONNX Runtime
    tries: int = 2  # trials of an N that fails before it counts as failed (every pipeline alike)


@dataclass(frozen=True, slots=True)
class Trial:
    """One pipeline on N cameras: did every camera keep up?"""

    cameras: int
    per_camera_fps_min: float
    p95_age_ms: float | None
    ok: bool
    rss_mb_per_stream: float | None = None
    inferred_fraction: float | None = None
    anchor_slack_ms: float | None = None  # mean RTSP set-up time of the connections (gridworker only)
    notes: tuple[str, ...] = ()
    tries: int = 1  # trials run at this N (more than 1: the earlier ones failed)

    @classmethod
    def of(cls, n: int, result: PipelineResult, config: CapacityConfig) -> Trial:
        fps = result.extra.get("per_camera_fps") or [0.0] * n
        low = min(fps) if len(fps) == n else 0.0
        p95 = result.extra.get("p95_age_ms")
        ok = low >= config.min_fps and p95 is not None and p95 < config.max_age_ms
        return cls(n, round(low, 2), None if p95 is None else round(p95, 1), ok,
                   _r(result.extra.get("rss_mb_per_stream")), _r(result.extra.get("inferred_fraction"), 3),
                   _r(result.extra.get("anchor_slack_ms"), 1), tuple(result.notes))  # fmt: skip


def _r(v: Any, digits: int = 2) -> float | None:
    return round(float(v), digits) if isinstance(v, (int, float)) else None


def confirmed(trial: Callable[[int], Trial], tries: int) -> Callable[[int], Trial]:
    """``trial``, run again while it fails, ``tries`` times at most: N fails only when every
    try does (a busy moment of a shared machine is not the pipeline's limit). The trial
    returned is the first that passed, else the last, with ``tries`` set to the count run."""

    def run(n: int) -> Trial:
        for attempt in range(1, max(1, tries) + 1):
            t = trial(n)
            if t.ok:
                break
        return dataclasses.replace(t, tries=attempt)

    return run


def search(trial: Callable[[int], Trial], start: int, cap: int) -> tuple[Trial | None, list[Trial]]:
    """The largest N in [1, cap] for which ``trial(N).ok``, assuming it passes below some N
    and fails above: doubling from ``start``, then bisection. Returns the best passing trial
    (None when even the smallest tried fails) and every trial in the order run."""
    tried: dict[int, Trial] = {}

    def run(n: int) -> Trial:
        if n not in tried:
            tried[n] = trial(n)
        return tried[n]

    n = max(1, min(start, cap))
    if not run(n).ok:  # go down: halve until one passes
        hi = n
        while n > 1:
            n = max(1, n // 2)
            if run(n).ok:
                break
            hi = n
        else:
            return None, list(tried.values())
        lo = n
    else:
        lo = n
        while lo < cap:
            n = min(cap, lo * 2)
            if not run(n).ok:
                break
            lo = n
        else:
            return tried[lo], list(tried.values())
        hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(mid).ok:
            lo = mid
        else:
            hi = mid
    return tried[lo], list(tried.values())


@dataclass
class _Setup:
    clips: list[Clip]
    work: Path
    detector: Detector
    yolo_onnx: Path | None = None
    yolo_detector: Detector | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def _served(setup: _Setup, n: int) -> Iterator[tuple[list[str], list[float]]]:
    from gridworker.streams.rtsp_serve import RtspServerProcess

    streams = list(itertools.islice(itertools.cycle(setup.clips), n))
    with RtspServerProcess({f"cam{i}": c.path for i, c in enumerate(streams)}) as server:
        yield [server.url(f"cam{i}") for i in range(n)], [c.fps for c in streams]


def _with_server(setup: _Setup, n: int, run: Callable[[list[str], list[float]], PipelineResult]) -> PipelineResult:
    with _served(setup, n) as (urls, rates):
        result = run(urls, rates)
    gc.collect()
    return result


def run_capacity(config: CapacityConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Search each pipeline's camera capacity; one JSON-able result with the ratios."""
    from gridworker.models.config import DetectorConfig, auto_inference_workers
    from gridworker.models.loader import load_detector
    from gridworker.streams.clips import synthetic_clip

    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="gw-capacity-") as tmp:
        work = Path(tmp)
        folder = config.media or default_media_dir()
        paths = video_files(folder) if folder is not None else []
        if not paths:
            paths = [synthetic_clip(work / "street.mp4", seconds=10, size=(1280, 720), fps=25)]
        clips = [probe_clip(p) for p in paths]
        say("clips: " + ", ".join(f"{c.name} ({c.width}x{c.height} @ {c.fps:g})" for c in clips))
        workers = auto_inference_workers()  # the product's default pipeline, which run_gridworker keeps
        detector = load_detector(DetectorConfig(model=config.model, threads=config.threads, runtime=config.runtime), workers=workers)
        setup = _Setup(clips, work, detector)
        skipped = None if config.ultralytics else "disabled (--no-ultralytics)"
        skipped = skipped or ultralytics_available()
        if skipped is None:
            try:
                setup.yolo_onnx = config.yolo_onnx or export_yolo_onnx(work / f"yolov8n-{config.yolo_imgsz}.onnx", config.yolo_imgsz)
                setup.yolo_detector = load_detector(
                    DetectorConfig(model=str(setup.yolo_onnx), threads=config.threads, runtime=config.runtime), workers=workers
                )
            except Exception as exc:  # noqa: BLE001 - the comparison is optional
                skipped = f"YOLO ONNX export failed: {type(exc).__name__}: {exc}"
        crop = config.motion and config.motion_crop
        camera = {"motion": {"enabled": True, "crop": crop}} if config.motion else {}

        def gridworker(det: Detector, label: str, settings: dict[str, Any] = camera) -> Callable[[int], Trial]:
            def trial(n: int) -> Trial:
                result = _with_server(setup, n, lambda urls, rates: run_gridworker(
                    urls, [config.sample_fps] * len(urls), det, workdir=work, camera_settings=settings,
                    seconds=config.seconds, warmup_timeout_s=config.warmup_timeout_s))  # fmt: skip
                t = Trial.of(n, result, config)
                say(f"{label} N={n}: min {t.per_camera_fps_min} fps/camera, p95 age {t.p95_age_ms} ms -> {'ok' if t.ok else 'too slow'}")
                return t

            return confirmed(trial, config.tries)

        def other(label: str, run: Callable[[list[str]], PipelineResult]) -> Callable[[int], Trial]:
            def trial(n: int) -> Trial:
                t = Trial.of(n, _with_server(setup, n, lambda urls, rates: run(urls)), config)
                say(f"{label} N={n}: min {t.per_camera_fps_min} fps/camera, p95 age {t.p95_age_ms} ms -> {'ok' if t.ok else 'too slow'}")
                return t

            return confirmed(trial, config.tries)

        out: dict[str, Any] = {"cpu_cores": os.cpu_count(), "model": config.model, "runtime": config.runtime, "motion": config.motion, "motion_crop": crop,
                               "sample_fps": config.sample_fps, "min_fps": config.min_fps, "max_age_ms": config.max_age_ms, "tries": config.tries}  # fmt: skip
        best, trials = search(gridworker(detector, "gridworker"), config.start, config.max_cameras)
        out.update(_summary("", best, trials))
        if config.naive:
            best_naive, naive_trials = search(
                other("naive", lambda urls: run_naive(urls, detector, seconds=config.seconds, warmup_timeout_s=config.warmup_timeout_s)),
                max(1, config.start // 2), config.max_cameras,
            )
            out.update(_summary("naive_", best_naive, naive_trials))
            out["over_naive"] = _over(best, best_naive)
        if setup.yolo_detector is not None and setup.yolo_onnx is not None:
            onnx = setup.yolo_onnx
            best_u, u_trials = search(
                other("ultralytics", lambda urls: run_ultralytics(
                    urls, onnx, workdir=work, imgsz=config.yolo_imgsz, seconds=config.seconds, warmup_timeout_s=config.warmup_timeout_s)),
                max(1, config.start // 2), config.max_cameras,
            )  # fmt: skip
            best_y, y_trials = search(gridworker(setup.yolo_detector, "gridworker (yolo)"), config.start, config.max_cameras)
            out.update(_summary("ultralytics_", best_u, u_trials))
            out.update(_summary("yolo_", best_y, y_trials))
            out["over_ultralytics"] = _over(best_y, best_u)
            if crop:  # the same model on whole frames (gating only), side by side: what the crops add
                whole = {"motion": {"enabled": True, "crop": False}}
                best_w, w_trials = search(gridworker(setup.yolo_detector, "gridworker (yolo, whole frames)", whole), config.start, config.max_cameras)
                out.update(_summary("yolo_whole_", best_w, w_trials))
                out["over_ultralytics_whole_frames"] = _over(best_w, best_u)
        else:
            out["ultralytics_skipped"] = skipped
    return out


def _over(a: Trial | None, b: Trial | None) -> float | None:
    if a is None or b is None or b.cameras == 0:
        return None
    return round(a.cameras / b.cameras, 2)


def _summary(prefix: str, best: Trial | None, trials: list[Trial]) -> dict[str, Any]:
    return {
        f"{prefix}cameras_max": best.cameras if best else 0,
        f"{prefix}per_camera_fps_min": best.per_camera_fps_min if best else None,
        f"{prefix}p95_age_ms": best.p95_age_ms if best else None,
        f"{prefix}rss_mb_per_stream": best.rss_mb_per_stream if best else None,
        f"{prefix}inferred_fraction": best.inferred_fraction if best else None,
        f"{prefix}trials": [
            {"cameras": t.cameras, "per_camera_fps_min": t.per_camera_fps_min, "p95_age_ms": t.p95_age_ms, "ok": t.ok, "tries": t.tries,
             **({"anchor_slack_ms": t.anchor_slack_ms} if t.anchor_slack_ms is not None else {})} for t in trials
        ],
    }


def format_capacity(r: dict[str, Any]) -> str:
    lines = [f"capacity on {r['cpu_cores']} cores: every camera >= {r['min_fps']:g} fps, frame age p95 < {r['max_age_ms']:g} ms"]
    labels = (
        ("", "gridworker"), ("naive_", "naive loop"), ("ultralytics_", "ultralytics"), ("yolo_", "gridworker (same YOLO ONNX)"),
        ("yolo_whole_", "gridworker (YOLO, whole frames)"),
    )
    for prefix, label in labels:
        if f"{prefix}cameras_max" in r:
            lines.append(
                f"  {label:28s} {r[f'{prefix}cameras_max']:3d} cameras  (min {r[f'{prefix}per_camera_fps_min']} fps/camera, "
                f"p95 age {r[f'{prefix}p95_age_ms']} ms, inferred {r[f'{prefix}inferred_fraction']})"
            )
    for key in ("over_naive", "over_ultralytics", "over_ultralytics_whole_frames"):
        if key in r:
            lines.append(f"  {key}: {r[key]}")
    if r.get("ultralytics_skipped"):
        lines.append(f"  ultralytics: {r['ultralytics_skipped']}")
    return "\n".join(lines)
