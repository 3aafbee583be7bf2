"""``gridworker bench decode``: what the decoder's cheap options save, and what they cost.

For each clip, measured side by side in one run (two interleaved repetitions, one decoder
thread each, as a camera's reader decodes):

* **full**: every frame decoded (the default);
* **keyframes**: ``keyframes_only`` (the decoder skips every non-key frame: ``skip_frame=NONKEY``);
* **skip_loop_filter**: every frame decoded without H.264's deblocking filter
  (``skip_loop_filter=all``), the usual trick for streams sampled well below their rate.

Speed is decoded frames per second of CPU-bound decoding (``*_over_full`` are the ratios of
the time a second of video costs). Accuracy: the embedded detector runs on the same sampled
frames decoded in full and without the loop filter; ``dets_per_frame_*`` and the mean IoU of
matched boxes say whether the cheaper pictures change what the model sees.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import av
import numpy as np
import supervision as sv

from gridworker.models.base import Detector

__all__ = ["decode_bench", "format_decode"]

Mode = Literal["full", "keyframes", "skip_loop_filter"]
MODES: tuple[Mode, ...] = ("full", "keyframes", "skip_loop_filter")


def _open(path: Path, mode: Mode) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.codec_context.thread_count = 1
    if mode == "keyframes":
        stream.codec_context.skip_frame = "NONKEY"
    elif mode == "skip_loop_filter":
        stream.codec_context.options = {"skip_loop_filter": "all"}
    return container, stream


def _decode_cost(path: Path, mode: Mode) -> tuple[int, float, float]:
    """(frames decoded, CPU seconds, seconds of video)."""
    container, stream = _open(path, mode)
    frames, last = 0, 0.0
    t0 = time.process_time()
    try:
        for frame in container.decode(stream):
            frames += 1
            last = max(last, float(frame.time or 0.0))
        for packet in container.demux(stream):  # keyframe mode: the rest of the stream is still read
            del packet
    finally:
        container.close()
    return frames, time.process_time() - t0, last


def _sampled(path: Path, mode: Mode, every: int, limit: int) -> list[np.ndarray]:
    container, stream = _open(path, mode)
    out: list[np.ndarray] = []
    try:
        for i, frame in enumerate(container.decode(stream)):
            if i % every == 0:
                out.append(frame.to_ndarray(format="rgb24"))
                if len(out) >= limit:
                    break
    finally:
        container.close()
    return out


def _matched_iou(a: list[sv.Detections], b: list[sv.Detections]) -> float | None:
    ious: list[float] = []
    for x, y in zip(a, b):
        if len(x) and len(y):
            ious.extend(float(v) for v in sv.box_iou_batch(x.xyxy, y.xyxy).max(axis=1))
    return round(statistics.fmean(ious), 3) if ious else None


def decode_bench(
    clips: list[Path], detector: Detector | None, *, repeats: int = 2, sample_every: int = 5, sample_limit: int = 40,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """One row per clip (see the module docstring for the keys)."""
    rows: list[dict[str, object]] = []
    for clip in clips:
        if progress is not None:
            progress(f"{clip.name}: decoding")
        cost: dict[Mode, list[float]] = {m: [] for m in MODES}
        frames: dict[Mode, int] = {}
        seconds = 0.0
        for _ in range(repeats):  # interleaved: a noisy neighbour hits every mode alike
            for mode in MODES:
                n, cpu, media = _decode_cost(clip, mode)
                frames[mode], seconds = n, max(seconds, media)
                cost[mode].append(cpu)
        per_s = {m: min(cost[m]) / max(seconds, 1e-9) for m in MODES}  # CPU seconds per second of video
        row: dict[str, object] = {
            "clip": clip.name,
            "video_s": round(seconds, 2),
            **{f"{m}_frames": frames[m] for m in MODES},
            **{f"{m}_cpu_per_video_s": round(per_s[m], 4) for m in MODES},
            "keyframes_over_full": round(per_s["keyframes"] / per_s["full"], 3) if per_s["full"] else None,
            "skip_loop_filter_over_full": round(per_s["skip_loop_filter"] / per_s["full"], 3) if per_s["full"] else None,
        }
        if detector is not None:
            if progress is not None:
                progress(f"{clip.name}: detections, full vs skip_loop_filter")
            full = detector.detect(_sampled(clip, "full", sample_every, sample_limit))
            cheap = detector.detect(_sampled(clip, "skip_loop_filter", sample_every, sample_limit))
            row["dets_per_frame_full"] = round(statistics.fmean(len(d) for d in full), 3) if full else None
            row["dets_per_frame_skip_loop_filter"] = round(statistics.fmean(len(d) for d in cheap), 3) if cheap else None
            row["matched_iou_skip_loop_filter"] = _matched_iou(full, cheap)
        rows.append(row)
    return rows


def format_decode(rows: list[dict[str, object]]) -> str:
    head = f"{'clip':32} {'video s':>7} {'keyframes/full':>14} {'no-deblock/full':>15} {'dets full':>9} {'dets no-deblock':>15} {'IoU':>5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['clip']!s:32} {r['video_s']!s:>7} {r['keyframes_over_full']!s:>14} {r['skip_loop_filter_over_full']!s:>15} "
            f"{r.get('dets_per_frame_full', '-')!s:>9} {r.get('dets_per_frame_skip_loop_filter', '-')!s:>15} "
            f"{r.get('matched_iou_skip_loop_filter', '-')!s:>5}"
        )
    return "\n".join(lines)
