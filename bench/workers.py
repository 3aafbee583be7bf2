"""``gridworker bench workers``: how the pipeline's inference is laid out over the cores, side by side.

Each layout is ``W x T``: ``W`` inference workers (``pipeline.inference_workers``), each model
run on ``T`` ONNX Runtime intra-op threads (``detector.threads``). The same N real RTSP
cameras (the ``../shared/media`` clips at their native rates, looped, assigned round-robin;
``media_width`` re-encodes them wider first) and the same model run gridworker's real Service
once per layout per round, the layouts in turns within each round, so a machine whose speed
drifts meets every layout alike. Per layout: live analysed fps (frames at most 1 s old), the
slowest camera's fps, frame age p95, CPU cores used, and ``over_first``: its mean live fps over
the first layout's (by default one worker of two threads, the defaults before 2026-12-05).

Example::

    gridworker bench workers --streams 8 --media-width 1280 --json
    gridworker bench workers --streams 18 --fps 2.5 --layouts 1x2,2x1,2x2 --model yolov8n-640.onnx
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridworker.models.config import DEFAULT_MODEL, auto_inference_workers, session_threads, usable_cores

from .pipelines import PipelineResult, run_gridworker
from .throughput import default_media_dir, media_clips

__all__ = ["Layout", "WorkersConfig", "default_layouts", "format_workers", "parse_layouts", "run_workers"]


@dataclass(frozen=True)
class Layout:
    """``workers`` inference threads, each model run on ``threads`` intra-op threads."""

    workers: int
    threads: int

    def __str__(self) -> str:
        return f"{self.workers}x{self.threads}"


def default_layouts(cores: int | None = None) -> list[Layout]:
    """One worker of two threads (the defaults before 2026-12-05; one thread on one core), then
    the product's default layout on these cores (at most 64 threads a run, the setting's bound).

    >>> [str(x) for x in default_layouts(2)], [str(x) for x in default_layouts(8)]
    (['1x2', '2x1'], ['1x2', '2x4'])
    """
    cores = usable_cores() if cores is None else cores
    auto = auto_inference_workers(cores)
    layouts = [Layout(1, min(2, cores)), Layout(auto, min(64, session_threads(None, auto, cores)))]
    return list(dict.fromkeys(layouts))


def parse_layouts(text: str) -> list[Layout]:
    """``"1x2,2x1"`` as layouts; ValueError naming the bad part (workers 1-8, threads 1-64).

    >>> [str(x) for x in parse_layouts("1x2, 2x1")]
    ['1x2', '2x1']
    """
    layouts = []
    for part in (p.strip() for p in text.split(",")):
        w, sep, t = part.partition("x")
        if not sep or not w.isdigit() or not t.isdigit() or not 1 <= int(w) <= 8 or not 1 <= int(t) <= 64:
            raise ValueError(f"layout {part!r}: expected WORKERSxTHREADS, workers 1-8 and threads 1-64 (e.g. 2x1)")
        layouts.append(Layout(int(w), int(t)))
    if not layouts or len(set(layouts)) != len(layouts):
        raise ValueError("layouts: at least one, each once")
    return layouts


@dataclass
class WorkersConfig:
    """What ``bench workers`` runs.

    Attributes:
        streams: cameras N.
        seconds: measurement window of each layout, each round.
        rounds: rounds (every layout once per round, in turns).
        media: folder of clips; None: ``../shared/media``.
        media_width: re-encode each clip this many px wide first (its first 30 s).
        fps: analysis rate per camera; None: each clip's native rate.
        model: the detector model (embedded name or ONNX path).
        layouts: the layouts compared; empty: :func:`default_layouts`.
        warmup_timeout_s: longest wait for every camera's first live analysed frame.
    """

    streams: int = 8
    seconds: float = 15.0
    rounds: int = 2
    media: Path | None = None
    media_width: int | None = None
    fps: float | None = None
    model: str = DEFAULT_MODEL
    layouts: list[Layout] = field(default_factory=list)
    warmup_timeout_s: float = 30.0


def _row(layout: Layout, runs: Sequence[PipelineResult]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        values = [r.extra[key] for r in runs if isinstance(r.extra.get(key), (int, float))]
        return round(statistics.fmean(values), 3) if values else None

    slowest = [min(r.extra["per_camera_fps"]) for r in runs if r.extra.get("per_camera_fps")]
    return {
        "layout": str(layout),
        "workers": layout.workers,
        "threads": layout.threads,
        "live_fps": [round(r.live_fps, 2) for r in runs],
        "mean_live_fps": round(statistics.fmean(r.live_fps for r in runs), 2),
        "min_camera_fps": round(min(slowest), 2) if slowest else None,
        "p95_age_ms": mean("p95_age_ms"),
        "cpu_cores_used": mean("cpu_cores_used"),
        "infer_busy": mean("infer_busy"),
        "notes": sorted({n for r in runs for n in r.notes}),
    }


def run_workers(config: WorkersConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every layout on the same cameras, in turns, ``rounds`` times; one JSON-able result."""
    from gridworker.models.config import DetectorConfig
    from gridworker.models.loader import load_detector
    from gridworker.streams.rtsp_serve import RtspServerProcess

    say = progress or (lambda _m: None)
    layouts = config.layouts or default_layouts()
    with tempfile.TemporaryDirectory(prefix="gw-bench-workers-") as tmp:
        work = Path(tmp)
        folder = config.media or default_media_dir()
        if folder is None:
            raise ValueError("no clips: pass --media DIR (../shared/media is absent)")
        clips = media_clips(folder, work, config.media_width)
        say("clips: " + ", ".join(f"{c.name} ({c.width}x{c.height} @ {c.fps:g})" for c in clips))
        detectors = {
            layout: load_detector(DetectorConfig(model=config.model, threads=layout.threads), workers=layout.workers) for layout in layouts
        }
        streams = list(itertools.islice(itertools.cycle(clips), config.streams))
        rates = [min(config.fps, c.fps) if config.fps else c.fps for c in streams]
        runs: dict[Layout, list[PipelineResult]] = {layout: [] for layout in layouts}
        with RtspServerProcess({f"cam{i}": c.path for i, c in enumerate(streams)}) as server:
            urls = [server.url(f"cam{i}") for i in range(config.streams)]
            for round_no in range(config.rounds):
                for layout in layouts:
                    result = run_gridworker(
                        urls, rates, detectors[layout], workdir=work, seconds=config.seconds,
                        pipeline_settings={"inference_workers": layout.workers}, warmup_timeout_s=config.warmup_timeout_s,
                    )  # fmt: skip
                    runs[layout].append(result)
                    say(f"round {round_no + 1}, {layout}: {result.live_fps:.1f} live fps")
    rows = [_row(layout, runs[layout]) for layout in layouts]
    first = rows[0]["mean_live_fps"]
    for row in rows:
        row["over_first"] = round(row["mean_live_fps"] / first, 3) if first else None
    return {
        "streams": config.streams,
        "cpu_cores": usable_cores(),
        "model": config.model,
        "media_width": config.media_width,
        "fps": config.fps,
        "seconds": config.seconds,
        "rounds": config.rounds,
        "layouts": rows,
    }


def format_workers(result: dict[str, Any]) -> str:
    """The layouts as a table, the first layout the base of ``over_first``."""
    lines = [
        f"{result['streams']} cameras, {result['cpu_cores']} usable cores, model {result['model']}, "
        f"{result['rounds']} round(s) of {result['seconds']:g} s per layout",
        f"{'layout':>7} {'live fps (each round)':>24} {'mean':>7} {'x first':>8} {'slowest cam':>12} {'p95 age ms':>11} {'cores':>6}",
    ]
    for row in result["layouts"]:
        each = ", ".join(f"{v:.1f}" for v in row["live_fps"])
        lines.append(
            f"{row['layout']:>7} {each:>24} {row['mean_live_fps']:>7.1f} {row['over_first'] or 0:>8.2f} "
            f"{row['min_camera_fps'] or 0:>12.2f} {row['p95_age_ms'] or 0:>11.0f} {row['cpu_cores_used'] or 0:>6.2f}"
        )
    return "\n".join(lines)
