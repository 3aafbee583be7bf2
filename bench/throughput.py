"""``gridworker bench throughput``: how many live frames per second the pipeline analyses.

For each stream count N, one run starts N real RTSP cameras (Debian's gst-rtsp-server
looping H.264 clips in real time) and measures, on the same streams:

* ``ceiling_fps``   the sum-of-parts ceiling from decode and bare inference costs measured in
                    isolation (:mod:`gridworker.bench.parts`);
* ``e2e_fps``       gridworker's real Service, live frames only (:func:`run_gridworker`);
* ``naive_fps``     a thread-per-camera OpenCV + batch-1 baseline (:func:`run_naive`);
* ``ultralytics_fps`` Ultralytics' own streaming predict loop on a YOLOv8n ONNX, against
                    gridworker running the same ONNX (only where ultralytics is installed),
                    on whole frames (``e2e_yolo_fps``) and with motion gating and crops
                    (``e2e_yolo_crop_fps``: the model sees only what moved).

Definitions and how to read the numbers: docs/benchmarks.md.

Example::

    rows = run_throughput(ThroughputConfig(streams=[1], seconds=3))
    rows[0]["e2e_fps"] > 0          # True
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gridworker.models.base import Detector
from gridworker.models.config import DEFAULT_MODEL, DetectorConfig, Runtime, auto_inference_workers

from .parts import (
    BATCH_SIZES,
    Clip,
    DecodeCost,
    InferenceCost,
    ceiling,
    measure_decode,
    measure_inference,
    parts_cpu_per_frame,
    probe_clip,
    sample_frames,
)
from .pipelines import (
    PipelineResult,
    export_yolo_onnx,
    run_gridworker,
    run_naive,
    run_ultralytics,
    ultralytics_available,
)
from .timing import LIVE_AGE_S

__all__ = [
    "TARGET_OVER_CEILING",
    "TARGET_OVER_NAIVE",
    "TARGET_STREAMS",
    "BenchDetector",
    "ThroughputConfig",
    "default_media_dir",
    "format_table",
    "run_throughput",
    "target_verdict",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_STREAMS = 8
TARGET_OVER_CEILING = 0.85
TARGET_OVER_NAIVE = 1.5
SYNTHETIC_SIZE = (640, 360)
SYNTHETIC_FPS = 25.0
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv"}


@dataclass
class BenchDetector:
    """The detector a bench loads, as in the ``detector`` settings (the ``--model``, ``--threads``
    and ``--max-batch`` options of ``bench throughput`` and ``bench patrol``).

    Attributes:
        model: detector model (embedded name or path).
        threads: ONNX Runtime intra-op threads of each inference worker (pipeline and bare
            measurement alike); None: the usable cores shared out among the product's default
            inference workers, as the service does.
        max_batch: the detector's largest batch.
        runtime: what runs the model (``detector.runtime``); a comparison's Ultralytics side
            keeps ONNX Runtime, as it does.
    """

    model: str = DEFAULT_MODEL
    threads: int | None = None
    max_batch: int = 8
    runtime: Runtime = "onnxruntime"

    @property
    def workers(self) -> int:
        """The inference workers a service run with the product's pipeline defaults has."""
        return auto_inference_workers()

    def detector_settings(self) -> dict[str, Any]:
        """The ``detector`` settings section of a service run with this detector."""
        return {"model": self.model, "threads": self.threads, "max_batch": self.max_batch, "runtime": self.runtime}

    def detector_config(self, model: str | None = None) -> DetectorConfig:
        """This detector's config; ``model``: another model with the same threads and batch."""
        return DetectorConfig(
            model=self.model if model is None else model, threads=self.threads, max_batch=self.max_batch, runtime=self.runtime
        )


@dataclass
class ThroughputConfig(BenchDetector):
    """What ``bench throughput`` measures and how long.

    Attributes:
        streams: stream counts N, one measurement each.
        seconds: measurement window per pipeline (after its warm-up).
        media: folder of H.264 clips (no B-frames); None: ``../shared/media`` if present,
            else generated clips.
        synthetic: use generated clips even when ``media`` exists.
        media_width: re-encode each media clip to this width first (height keeps the aspect;
            the first 30 s), e.g. 1280 for the Ultralytics comparison at 640 on real footage.
        fps: sampling rate per camera for gridworker; None: each clip's native rate.
        model / threads / max_batch: the detector (:class:`BenchDetector`).
        calibrate_s: time budget of each isolated part measurement.
        ultralytics: compare with Ultralytics where it is installed.
        ultralytics_seconds: window of each pipeline in that (slow) comparison.
        yolo_onnx: an existing YOLO ONNX export to use (else one is exported once).
        yolo_imgsz: input size of the YOLO comparison.
        warmup_timeout_s: longest wait for every stream's first live analysed frame.
        synthetic_seconds: length of a generated clip (it loops).
        synthetic_size: width and height of a generated clip (e.g. 1280x720 for the
            Ultralytics comparison at ``yolo_imgsz`` 640).
        batch_deadline_ms: gridworker's ``pipeline.batch_deadline_ms``; None keeps the
            product's default (the benchmark measures the product as configured).
    """

    streams: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    seconds: float = 20.0
    media: Path | None = None
    synthetic: bool = False
    media_width: int | None = None
    fps: float | None = None
    calibrate_s: float = 1.0
    ultralytics: bool = True
    ultralytics_seconds: float = 8.0
    yolo_onnx: Path | None = None
    yolo_imgsz: int = 320
    warmup_timeout_s: float = 30.0
    synthetic_seconds: float = 10.0
    synthetic_size: tuple[int, int] = SYNTHETIC_SIZE
    batch_deadline_ms: float | None = None


def default_media_dir() -> Path | None:
    """``../shared/media`` beside the repository, or beside the working directory."""
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "media"
        if candidate.is_dir() and any(p.suffix.lower() in VIDEO_SUFFIXES for p in candidate.iterdir()):
            return candidate
    return None


def video_files(folder: Path) -> list[Path]:
    """The video clips in ``folder`` (by suffix), sorted by name; ValueError when there are none."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"no video clips ({', '.join(sorted(VIDEO_SUFFIXES))}) in {folder}")
    return paths


def media_clips(media: Path, workdir: Path, width: int | None = None) -> list[Clip]:
    """The clips of ``media`` (:func:`video_files`), or with ``width`` each re-encoded that many
    px wide into ``workdir`` first (its first 30 s; the height keeps the aspect)."""
    paths = video_files(media)
    if width is not None:
        from gridworker.streams.clips import transcode_h264

        paths = [transcode_h264(p, workdir / f"{p.name}-{width}.mp4", max_seconds=30.0, scale_width=width) for p in paths]
    return [probe_clip(p) for p in paths]


def _clips(config: ThroughputConfig, workdir: Path) -> tuple[list[Clip], str]:
    """The clips to serve, and where they came from."""
    media = None if config.synthetic else (config.media or default_media_dir())
    if media is not None:
        width = config.media_width
        return media_clips(media, workdir, width), f"{media}, re-encoded {width} px wide" if width is not None else str(media)
    from gridworker.streams.clips import synthetic_clip

    width, height = config.synthetic_size
    path = synthetic_clip(workdir / "synthetic.mp4", seconds=config.synthetic_seconds, size=(width, height), fps=SYNTHETIC_FPS)
    return [probe_clip(path)], f"synthetic {width}x{height} @ {SYNTHETIC_FPS:g} fps"


def _model_file(model: str) -> Path:
    """The .onnx file behind a detector model name or path."""
    from gridworker.models.loader import resolve_model
    from gridworker.models.manifest import load_manifest

    path = Path(resolve_model(model))
    if path.is_dir():
        return path / str(load_manifest(path).model.file)
    return path


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _reader_lag_ms(result: PipelineResult) -> float | None:
    """Mean time frames waited in the client before being decoded: PTS age minus decode-time
    age (the PTS age is anchored on the least-delayed packet, bench/timing.py). What
    ``Frame.ts`` alone does not see."""
    age, age_ts = result.mean_age_ms, result.extra.get("mean_age_ts_ms")
    if age is None or age_ts is None:
        return None
    return float(age - age_ts)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _r(value: float | None, digits: int = 2) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), digits)


def _guarded(server: Any, label: str, notes: list[str], run: Callable[[], PipelineResult]) -> PipelineResult:
    """Run one pipeline; if the RTSP server died meanwhile, restart it and run once more.

    A dead server makes every camera of that run fail, so the figures would measure the
    server, not the pipeline. The restart keeps the port, so the URLs stay valid.
    """
    result = PipelineResult()
    for attempt in (1, 2):
        if not server.running:
            server.restart()
        result = run()
        if server.running:
            return result
        reason = (server.log_tail(400).strip().splitlines() or ["no log"])[-1]
        if attempt == 1:
            notes.append(f"{label}: the RTSP server died during the run ({reason}); restarted, run repeated")
        else:
            notes.append(f"{label}: the RTSP server died again ({reason}); these figures are unreliable")
            server.restart()
    return result


@dataclass
class _Setup:
    """Everything measured or loaded once per benchmark run, shared by all stream counts."""

    config: ThroughputConfig
    workdir: Path
    clips: list[Clip]
    detector: Detector
    detector_settings: dict[str, Any]
    pipeline_settings: dict[str, Any]
    decode: dict[Path, DecodeCost]
    timing_batches: list[int]
    timing_images: list[np.ndarray]
    yolo_onnx: Path | None
    yolo_detector: Detector | None
    ultralytics_skipped: str | None
    say: Callable[[str], None]


def _prepare(config: ThroughputConfig, workdir: Path, counts: list[int], say: Callable[[str], None]) -> _Setup:
    """Clips, detector(s) and the decode timings (they do not depend on N; inference is timed per N)."""
    from gridworker.models.loader import load_detector

    clips, source = _clips(config, workdir)
    say(f"clips: {source}: " + ", ".join(f"{c.name} ({c.width}x{c.height} @ {c.fps:g})" for c in clips))
    detector_settings = config.detector_settings()
    pipeline_settings = {} if config.batch_deadline_ms is None else {"batch_deadline_ms": config.batch_deadline_ms}
    detector = load_detector(config.detector_config(), workers=config.workers)
    images = sample_frames(clips[0], count=max(BATCH_SIZES))
    detector.detect(images[: detector.max_batch])  # grow the arena before any RSS baseline

    decode: dict[Path, DecodeCost] = {}
    for clip in itertools.islice(itertools.cycle(clips), min(max(counts), len(clips))):
        cost = decode[clip.path] = measure_decode(clip, budget_s=config.calibrate_s)
        say(f"decode {clip.name}: {cost.decode_s * 1e3:.2f} ms/frame + {cost.convert_s * 1e3:.2f} ms RGB")
    # bare inference is timed beside each N's gridworker window (_measure), not here
    # each camera has one frame in flight: a batch of W workers' takes at most N / W of them
    batches = [b for b in BATCH_SIZES if b <= min(max(1, max(counts) // config.workers), detector.max_batch)]

    skipped = None if config.ultralytics else "disabled (--no-ultralytics)"
    skipped = skipped or ultralytics_available()
    yolo_onnx: Path | None = None
    yolo_detector: Detector | None = None
    if skipped is None:
        try:
            yolo_onnx = config.yolo_onnx or export_yolo_onnx(workdir / f"yolov8n-{config.yolo_imgsz}.onnx", config.yolo_imgsz)
            yolo_detector = load_detector(config.detector_config(str(yolo_onnx)), workers=config.workers)
        except Exception as exc:  # noqa: BLE001 - the comparison is optional
            skipped = f"YOLO ONNX export/load failed: {type(exc).__name__}: {exc}"
    if skipped is not None:
        say(f"ultralytics comparison skipped: {skipped}")
    return _Setup(
        config, workdir, clips, detector, detector_settings, pipeline_settings, decode, batches, images,
        yolo_onnx, yolo_detector, skipped, say,
    )  # fmt: skip


def _time_inference(setup: _Setup, when: str) -> InferenceCost:
    """Bare inference timed now, at every batch size the run can use."""
    config = setup.config
    cost = measure_inference(
        _model_file(config.model), setup.timing_images, threads=config.threads,
        batches=setup.timing_batches, budget_s=config.calibrate_s, workers=config.workers,
    )  # fmt: skip
    setup.say(f"bare inference {when}, ms/image: " + ", ".join(f"b{b}={t * 1e3:.1f}" for b, t in cost.per_image_s.items()))
    return cost


def _measure(setup: _Setup, n: int) -> dict[str, Any]:
    """All pipelines on N streams of one RTSP server; one result row."""
    from gridworker.streams.rtsp_serve import RtspServerProcess

    from gridworker.settings import PipelineConfig

    config, say = setup.config, setup.say
    streams = list(itertools.islice(itertools.cycle(setup.clips), n))
    rates = [min(config.fps, c.fps) if config.fps else c.fps for c in streams]
    mounts = {f"cam{i}": c.path for i, c in enumerate(streams)}
    notes: list[str] = []
    ultra: PipelineResult | None = None
    e2e_yolo: PipelineResult | None = None
    e2e_crop: PipelineResult | None = None
    common: dict[str, Any] = {
        "workdir": setup.workdir,
        "pipeline_settings": setup.pipeline_settings,
        "warmup_timeout_s": config.warmup_timeout_s,
    }
    with RtspServerProcess(mounts) as server:
        urls = [server.url(name) for name in mounts]
        load_before = os.getloadavg()[0]
        before = _time_inference(setup, "before gridworker")
        say(f"N={n}: gridworker pipeline, {config.seconds:g} s")
        e2e = _guarded(
            server, "gridworker", notes,
            functools.partial(
                run_gridworker, urls, rates, setup.detector, seconds=config.seconds,
                detector_settings=setup.detector_settings, **common,
            ),
        )  # fmt: skip
        after = _time_inference(setup, "after gridworker")
        gc.collect()
        say(f"N={n}: naive pipeline, {config.seconds:g} s")
        naive = _guarded(
            server, "naive", notes,
            functools.partial(run_naive, urls, setup.detector, seconds=config.seconds, warmup_timeout_s=config.warmup_timeout_s),
        )  # fmt: skip
        gc.collect()
        if setup.yolo_detector is not None and setup.yolo_onnx is not None:
            say(f"N={n}: ultralytics vs gridworker on {setup.yolo_onnx.name}, {config.ultralytics_seconds:g} s each")
            try:
                ultra = _guarded(
                    server, "ultralytics", notes,
                    functools.partial(
                        run_ultralytics, urls, setup.yolo_onnx, seconds=config.ultralytics_seconds,
                        workdir=setup.workdir, imgsz=config.yolo_imgsz,
                    ),
                )  # fmt: skip
                e2e_yolo = _guarded(
                    server, "gridworker (yolo)", notes,
                    functools.partial(
                        run_gridworker, urls, rates, setup.yolo_detector, seconds=config.ultralytics_seconds,
                        detector_settings={**setup.detector_settings, "model": str(setup.yolo_onnx)}, **common,
                    ),
                )  # fmt: skip
                # the same model with motion gating and crops (the model sees only what moved)
                e2e_crop = _guarded(
                    server, "gridworker (yolo, motion crops)", notes,
                    functools.partial(
                        run_gridworker, urls, rates, setup.yolo_detector, seconds=config.ultralytics_seconds,
                        detector_settings={**setup.detector_settings, "model": str(setup.yolo_onnx)},
                        camera_settings={"motion": {"enabled": True, "crop": True}}, **common,
                    ),
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the comparison is optional
                notes.append(f"ultralytics comparison failed: {type(exc).__name__}: {exc}")
                ultra = e2e_yolo = e2e_crop = None
            gc.collect()
    # The ceiling's inference part is timed right before and right after gridworker's window and
    # averaged: on a shared machine whose speed drifts, a ceiling timed minutes earlier (once per
    # run) moved the ratio by more than the pipeline's own overhead.
    bracket = InferenceCost.mean([before, after])
    max_batch = setup.detector.max_batch
    ceil = ceiling(streams, setup.decode, bracket, fps=config.fps, max_batch=max_batch, workers=config.workers)
    ceil_before, ceil_after = (
        ceiling(streams, setup.decode, c, fps=config.fps, max_batch=max_batch, workers=config.workers) for c in (before, after)
    )
    drift = abs(ceil_before.fps - ceil_after.fps) / max(ceil.fps, 1e-9)
    if drift > 0.10:
        notes.append(
            f"the machine's speed changed during gridworker's window (ceiling {ceil_before.fps:.1f} before, "
            f"{ceil_after.fps:.1f} after): e2e_over_ceiling is unreliable, run again"
        )
    cpu_per_frame = parts_cpu_per_frame(streams, setup.decode, bracket, e2e.all_fps, e2e.extra.get("mean_batch") or 1)
    row: dict[str, Any] = {
        "streams": n,
        "runtime": config.runtime,
        "offered_fps": _r(ceil.offered_fps),
        "sampled_fps": _r(ceil.sampled_fps),
        "ceiling_fps": _r(ceil.fps),
        "ceiling_analysed_only_fps": _r(ceil.analysed_only_fps),
        "ceiling_before_fps": _r(ceil_before.fps),
        "ceiling_after_fps": _r(ceil_after.fps),
        "decode_ms": _r(ceil.decode_ms, 3),
        "convert_ms": _r(ceil.convert_ms, 3),
        "decode_load": _r(ceil.decode_load, 3),
        "infer_ms": _r(ceil.infer_ms, 2),
        "infer_batch": ceil.infer_batch,
        "e2e_fps": _r(e2e.live_fps),
        "e2e_all_fps": _r(e2e.all_fps),
        "e2e_live_fraction": _r(e2e.live_fraction, 3),
        "e2e_mean_age_ms": _r(e2e.mean_age_ms, 1),
        "e2e_mean_age_ts_ms": _r(e2e.extra.get("mean_age_ts_ms"), 1),
        "e2e_anchor_slack_ms": _r(e2e.extra.get("anchor_slack_ms"), 1),
        "e2e_reader_lag_ms": _r(_reader_lag_ms(e2e), 1),
        "p95_latency_ms": _r(e2e.extra.get("p95_latency_ms"), 1),
        "rss_mb_per_stream": _r(e2e.extra.get("rss_mb_per_stream"), 2),
        "e2e_mean_batch": _r(e2e.extra.get("mean_batch")),
        "e2e_infer_busy": _r(e2e.extra.get("infer_busy"), 3),
        "e2e_cpu_cores": _r(e2e.extra.get("cpu_cores_used"), 2),
        "e2e_cpu_ms_per_frame": _r(_ms(_ratio(e2e.extra.get("cpu_cores_used"), e2e.all_fps))),
        "parts_cpu_ms_per_frame": _r(_ms(cpu_per_frame)),
        "e2e_frames_dropped": e2e.extra.get("frames_dropped"),
        "e2e_reconnects": e2e.extra.get("reconnects"),
        "e2e_per_camera_fps": e2e.extra.get("per_camera_fps"),
        "naive_fps": _r(naive.live_fps),
        "naive_all_fps": _r(naive.all_fps),
        "naive_mean_age_ms": _r(naive.mean_age_ms, 1),
        "naive_live_fraction": _r(naive.live_fraction, 3),
        "naive_per_camera_fps": naive.extra.get("per_camera_fps"),
        "e2e_over_ceiling": _r(_ratio(e2e.live_fps, ceil.fps), 3),
        "e2e_over_naive": _r(_ratio(e2e.live_fps, naive.live_fps), 3),
        "batch_deadline_ms": PipelineConfig(**setup.pipeline_settings).batch_deadline_ms,
        "seconds": config.seconds,
        "load_before": _r(load_before),
    }
    if ultra is not None and e2e_yolo is not None:
        row.update(
            {
                "ultralytics_fps": _r(ultra.live_fps),
                "ultralytics_all_fps": _r(ultra.all_fps),
                "ultralytics_mean_age_ms": _r(ultra.mean_age_ms, 1),
                "e2e_yolo_fps": _r(e2e_yolo.live_fps),
                "e2e_over_ultralytics": _r(_ratio(e2e_yolo.live_fps, ultra.live_fps), 3),
            }
        )
        notes += [f"ultralytics: {m}" for m in ultra.notes] + [f"gridworker (yolo): {m}" for m in e2e_yolo.notes]
        if e2e_crop is not None:
            if any(c.path.name == "synthetic.mp4" for c in setup.clips) and (e2e_crop.extra.get("inferred_fraction") or 0.0) < 0.5:
                notes.append(
                    "motion crops: the motion gate sees little change in the generated clips (a square whose grey level "
                    "is near the background's, a bar thinner than a pixel of the gate's small picture), so most frames "
                    "are coasted: not a measure of real footage; use --media (with --media-width)"
                )
            row.update(
                {
                    "e2e_yolo_crop_fps": _r(e2e_crop.live_fps),
                    "e2e_yolo_crop_inferred_fraction": e2e_crop.extra.get("inferred_fraction"),
                    "e2e_yolo_crop_cropped_fraction": e2e_crop.extra.get("cropped_fraction"),
                    "e2e_yolo_crop_over_ultralytics": _r(_ratio(e2e_crop.live_fps, ultra.live_fps), 3),
                }
            )
            notes += [f"gridworker (yolo, motion crops): {m}" for m in e2e_crop.notes]
    elif setup.ultralytics_skipped is not None:
        notes.append(f"ultralytics comparison skipped: {setup.ultralytics_skipped}")
    notes += [f"gridworker: {m}" for m in e2e.notes] + [f"naive: {m}" for m in naive.notes]
    row["notes"] = notes
    say(
        f"N={n}: ceiling {row['ceiling_fps']} fps, gridworker {row['e2e_fps']} fps live "
        f"(age {row['e2e_mean_age_ms']} ms), naive {row['naive_fps']} fps live (age {row['naive_mean_age_ms']} ms)"
    )
    return row


def run_throughput(config: ThroughputConfig, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run the whole benchmark; one result dict per stream count (see docs/benchmarks.md).

    Raises:
        RtspServerUnavailable: Debian's gst-rtsp-server is not installed.
        ValueError: bad stream counts or an empty media folder.
    """
    say = progress or (lambda msg: log.info("%s", msg))
    counts = sorted({int(n) for n in config.streams})
    if not counts or counts[0] < 1:
        raise ValueError(f"stream counts must be positive integers, got {config.streams}")
    with tempfile.TemporaryDirectory(prefix="gridworker-bench-") as tmp:
        setup = _prepare(config, Path(tmp), counts, say)
        return [_measure(setup, n) for n in counts]


_COLUMNS: list[tuple[str, str, str]] = [
    ("streams", "N", "{:d}"),
    ("offered_fps", "offered", "{:.0f}"),
    ("ceiling_fps", "ceiling", "{:.1f}"),
    ("e2e_fps", "e2e", "{:.1f}"),
    ("naive_fps", "naive", "{:.1f}"),
    ("e2e_over_ceiling", "e2e/ceil", "{:.2f}"),
    ("e2e_over_naive", "e2e/naive", "{:.2f}"),
    ("p95_latency_ms", "p95 ms", "{:.0f}"),
    ("e2e_mean_age_ms", "age e2e", "{:.0f}"),
    ("naive_mean_age_ms", "age naive", "{:.0f}"),
    ("naive_live_fraction", "naive live", "{:.0%}"),
    ("rss_mb_per_stream", "MB/stream", "{:.1f}"),
    ("ultralytics_fps", "ultralytics", "{:.1f}"),
    ("e2e_over_ultralytics", "e2e/ultra", "{:.2f}"),
    ("e2e_yolo_crop_over_ultralytics", "crops/ultra", "{:.2f}"),
]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the main figures (fps are live frames per second)."""
    columns = [c for c in _COLUMNS if any(c[0] in r for r in rows)]
    cells = [[title for _, title, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            line.append("-" if value is None else fmt.format(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def target_verdict(rows: Sequence[dict[str, Any]]) -> str | None:
    """One line on the target at ``TARGET_STREAMS`` streams, or None if N=8 was not run."""
    row = next((r for r in rows if r["streams"] == TARGET_STREAMS), None)
    if row is None:
        return None
    over_ceiling, over_naive = row.get("e2e_over_ceiling"), row.get("e2e_over_naive")
    ok_ceiling = over_ceiling is not None and over_ceiling >= TARGET_OVER_CEILING
    naive_dead = row.get("naive_fps") == 0 and (row.get("e2e_fps") or 0) > 0  # no live naive frame at all
    ok_naive = (over_naive is not None and over_naive >= TARGET_OVER_NAIVE) or naive_dead
    return (
        f"target at {TARGET_STREAMS} streams: e2e >= {TARGET_OVER_CEILING:.0%} of ceiling "
        f"[{'PASS' if ok_ceiling else 'FAIL'}: {over_ceiling}], e2e >= {TARGET_OVER_NAIVE:g}x naive "
        f"[{'PASS' if ok_naive else 'FAIL'}: {over_naive}]"
    )


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    return json.dumps(list(rows), indent=2, default=default)


def live_definition() -> str:
    return f"live = frame age at the end of analysis <= {LIVE_AGE_S:g} s (age from the stream's PTS)"

