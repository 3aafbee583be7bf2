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

__all__ = ["cpu_int8_flags", "format_quantize", "format_side_by_side", "quantize_bench", "side_by_side"]


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
    result = side_by_side(clips, fp32, int8, ("fp32", "int8"), frames_per_clip=frames_per_clip, batch=batch, progress=progress)
    return {"cpu": cpu_int8_flags(), **result}


def side_by_side(
    clips: Sequence[Path],
    reference: Detector,
    candidate: Detector,
    labels: tuple[str, str],
    *,
    frames_per_clip: int = 16,
    batch: int = 4,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Two detectors on the same ``frames_per_clip`` frames of each clip, in turns (batches of
    ``batch``, the order swapped every batch): per clip and in all, each one's time
    (``{label}_s``), the candidate's speed-up (``{candidate}_speedup``), boxes per frame and
    the F1 of the candidate's boxes against the reference's (``f1_vs_{reference}``; matched
    one to one at IoU 0.5). ``labels``: (reference, candidate)."""
    ref, cand = labels
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    totals = {"ref_s": 0.0, "cand_s": 0.0, "matched": 0, "only_ref": 0, "only_cand": 0, "frames": 0}
    for clip in clips:
        try:
            images = sample_frames([clip], frames_per_clip * 2)[1::2]  # between the calibration's times
        except QuantizeError as exc:
            skipped.append({"clip": clip.name, "reason": str(exc)})
            progress(f"{clip.name}: skipped ({exc})")
            continue
        spent = {ref: 0.0, cand: 0.0}
        found: dict[str, list[np.ndarray]] = {ref: [], cand: []}
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            order = ((ref, reference), (cand, candidate)) if start % (2 * batch) == 0 else ((cand, candidate), (ref, reference))
            for name, detector in order:
                t0 = time.perf_counter()
                detections = detector.detect(chunk)
                spent[name] += time.perf_counter() - t0
                found[name].extend(np.asarray(d.xyxy) for d in detections)
        matched = only_ref = only_cand = 0
        for a, b in zip(found[ref], found[cand], strict=True):
            m, x, y = f1_matched(a, b)
            matched, only_ref, only_cand = matched + m, only_ref + x, only_cand + y
        row = {
            "clip": clip.name,
            "frames": len(images),
            f"{ref}_s": round(spent[ref], 3),
            f"{cand}_s": round(spent[cand], 3),
            f"{cand}_speedup": ratio(spent[ref], spent[cand]),
            f"dets_per_frame_{ref}": round(statistics.fmean(len(b) for b in found[ref]), 3),
            f"dets_per_frame_{cand}": round(statistics.fmean(len(b) for b in found[cand]), 3),
            f"f1_vs_{ref}": f1_score(matched, only_ref, only_cand),
        }
        rows.append(row)
        progress(f"{clip.name}: {row}")
        totals["ref_s"] += spent[ref]
        totals["cand_s"] += spent[cand]
        totals["frames"] += len(images)
        totals["matched"] += matched
        totals["only_ref"] += only_ref
        totals["only_cand"] += only_cand
    return {
        "clips": rows,
        "skipped": skipped,
        "frames": int(totals["frames"]),
        f"{ref}_s": round(totals["ref_s"], 3),
        f"{cand}_s": round(totals["cand_s"], 3),
        f"{cand}_speedup": ratio(totals["ref_s"], totals["cand_s"]),
        f"f1_vs_{ref}": f1_score(int(totals["matched"]), int(totals["only_ref"]), int(totals["only_cand"])),
        f"boxes_{ref}": int(totals["matched"] + totals["only_ref"]),
        f"boxes_{cand}": int(totals["matched"] + totals["only_cand"]),
    }


def format_quantize(result: dict[str, Any]) -> str:
    lines = [f"cpu INT8 instructions: {', '.join(result['cpu']) or 'none found'}"]
    return "\n".join(lines + format_side_by_side(result, ("fp32", "int8")))


def format_side_by_side(result: dict[str, Any], labels: tuple[str, str]) -> list[str]:
    """:func:`side_by_side`'s table, one line per clip and one for all."""
    ref, cand = labels
    lines = [f"{'clip':28s} {'frames':>6s} {ref + ' s':>12s} {cand + ' s':>12s} {'speedup':>8s} {'dets ' + ref:>16s} {'dets ' + cand:>16s} {'F1 vs ' + ref:>17s}"]
    for r in result["clips"]:
        lines.append(
            f"{r['clip']:28s} {r['frames']:6d} {r[f'{ref}_s']:12.2f} {r[f'{cand}_s']:12.2f} {r[f'{cand}_speedup']!s:>8s} "
            f"{r[f'dets_per_frame_{ref}']:16.2f} {r[f'dets_per_frame_{cand}']:16.2f} {r[f'f1_vs_{ref}']!s:>17s}"
        )
    lines.append(
        f"{'all':28s} {result['frames']:6d} {result[f'{ref}_s']:12.2f} {result[f'{cand}_s']:12.2f} {result[f'{cand}_speedup']!s:>8s} "
        f"{'':16s} {'':16s} {result[f'f1_vs_{ref}']!s:>17s}"
    )
    lines.append(f"boxes: {ref} {result[f'boxes_{ref}']}, {cand} {result[f'boxes_{cand}']}")
    lines.extend(f"skipped {s['clip']}: {s['reason']}" for s in result["skipped"])
    return lines
