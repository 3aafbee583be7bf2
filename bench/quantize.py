"""``gridworker bench quantize``: an INT8 copy of a YOLO model against the model itself, on real clips.

The INT8 model is made by ``gridworker models quantize`` (:func:`gridworker.models.quantize.quantize_yolo`),
calibrated on frames of the same clips. The frames measured here are others: taken at other
times in each clip (between the calibration's), so the model is not judged on the frames that
set its ranges. A clip that gives no frame is listed under ``skipped`` with why.
Per clip, the same frames go through both models in turns (batches of ``batch``), so the machine's
noise falls on both alike:

* ``fp32_s`` / ``int8_s``: the models' time (``detect`` calls, wall clock) and ``int8_speedup``,
  their ratio;
* ``f1_vs_fp32``: how far the INT8 model's boxes agree with the float model's (matched one to one
  at IoU 0.5; 1.0 = the same boxes), with ``dets_per_frame`` of each.

``cpu`` says whether the CPU has VNNI, the instructions that make INT8 fast: without them expect
a speed-up near 1 (``../shared/REFERENCE.md``: 0.93-0.97 on an AVX2 EPYC).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gridworker.models.base import Detector
from gridworker.models.errors import QuantizeError
from gridworker.models.quantize import sample_frames

from .crops import f1_matched, f1_score, ratio

__all__ = ["cpu_int8_flags", "format_quantize", "quantize_bench"]


def cpu_int8_flags() -> list[str]:
    """The CPU's instruction sets that ONNX Runtime's INT8 kernels use, from /proc/cpuinfo."""
    wanted = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512bw", "avx2")
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in wanted if f in flags]


def quantize_bench(
    clips: Sequence[Path],
    fp32: Detector,
    int8: Detector,
    *,
    frames_per_clip: int = 16,
    batch: int = 4,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Both detectors on the same ``frames_per_clip`` frames of each clip; the figures of the module doc."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    totals = {"fp32_s": 0.0, "int8_s": 0.0, "matched": 0, "only_fp32": 0, "only_int8": 0, "frames": 0}
    for clip in clips:
        try:
            images = sample_frames([clip], frames_per_clip * 2)[1::2]  # between the calibration's times
        except QuantizeError as exc:
            skipped.append({"clip": clip.name, "reason": str(exc)})
            progress(f"{clip.name}: skipped ({exc})")
            continue
        spent = {"fp32": 0.0, "int8": 0.0}
        found: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            order = (("fp32", fp32), ("int8", int8)) if start % (2 * batch) == 0 else (("int8", int8), ("fp32", fp32))
            for name, detector in order:
                t0 = time.perf_counter()
                detections = detector.detect(chunk)
                spent[name] += time.perf_counter() - t0
                found[name].extend(np.asarray(d.xyxy) for d in detections)
        matched = only_fp32 = only_int8 = 0
        for a, b in zip(found["fp32"], found["int8"], strict=True):
            m, x, y = f1_matched(a, b)
            matched, only_fp32, only_int8 = matched + m, only_fp32 + x, only_int8 + y
        row = {
            "clip": clip.name,
            "frames": len(images),
            "fp32_s": round(spent["fp32"], 3),
            "int8_s": round(spent["int8"], 3),
            "int8_speedup": ratio(spent["fp32"], spent["int8"]),
            "dets_per_frame_fp32": round(statistics.fmean(len(b) for b in found["fp32"]), 3),
            "dets_per_frame_int8": round(statistics.fmean(len(b) for b in found["int8"]), 3),
            "f1_vs_fp32": f1_score(matched, only_fp32, only_int8),
        }
        rows.append(row)
        progress(f"{clip.name}: {row}")
        totals["fp32_s"] += spent["fp32"]
        totals["int8_s"] += spent["int8"]
        totals["frames"] += len(images)
        totals["matched"] += matched
        totals["only_fp32"] += only_fp32
        totals["only_int8"] += only_int8
    return {
        "cpu": cpu_int8_flags(),
        "clips": rows,
        "skipped": skipped,
        "frames": int(totals["frames"]),
        "fp32_s": round(totals["fp32_s"], 3),
        "int8_s": round(totals["int8_s"], 3),
        "int8_speedup": ratio(totals["fp32_s"], totals["int8_s"]),
        "f1_vs_fp32": f1_score(int(totals["matched"]), int(totals["only_fp32"]), int(totals["only_int8"])),
        "boxes_fp32": int(totals["matched"] + totals["only_fp32"]),
        "boxes_int8": int(totals["matched"] + totals["only_int8"]),
    }


def format_quantize(result: dict[str, Any]) -> str:
    lines = [f"cpu INT8 instructions: {', '.join(result['cpu']) or 'none found'}"]
    lines.append(f"{'clip':28s} {'frames':>6s} {'fp32 s':>8s} {'int8 s':>8s} {'speedup':>8s} {'dets fp32':>9s} {'dets int8':>9s} {'F1 vs fp32':>10s}")
    for r in result["clips"]:
        lines.append(
            f"{r['clip']:28s} {r['frames']:6d} {r['fp32_s']:8.2f} {r['int8_s']:8.2f} {r['int8_speedup']!s:>8s} "
            f"{r['dets_per_frame_fp32']:9.2f} {r['dets_per_frame_int8']:9.2f} {r['f1_vs_fp32']!s:>10s}"
        )
    lines.append(
        f"{'all':28s} {result['frames']:6d} {result['fp32_s']:8.2f} {result['int8_s']:8.2f} {result['int8_speedup']!s:>8s} "
        f"{'':9s} {'':9s} {result['f1_vs_fp32']!s:>10s}"
    )
    lines.append(f"boxes: fp32 {result['boxes_fp32']}, int8 {result['boxes_int8']}")
    lines.extend(f"skipped {s['clip']}: {s['reason']}" for s in result["skipped"])
    return "\n".join(lines)
