"""Export Ultralytics YOLO weights to a dynamic-batch ONNX file (offline tool).

Needs the optional ``export`` extra (ultralytics, torch, onnx, onnxslim), which is never
needed at run time: the exported file runs with onnxruntime alone (:class:`YoloDetector`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ExportError

__all__ = ["EXPORT_REQUIREMENTS", "export_ultralytics"]

EXPORT_REQUIREMENTS = ("ultralytics", "torch", "onnx", "onnxslim")
INSTALL_HINT = (
    "install the export tools (CPU-only torch first, or pip pulls a multi-GB CUDA build): "
    "pip install torch==2.13.0 torchvision==0.28.0 && pip install 'gridworker[export]'"
)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _destination(weights: Path, out: Path | None) -> Path:
    if out is None:
        base = weights if weights.is_file() else Path.cwd() / weights.name
        return base.with_suffix(".onnx")
    out = Path(out)
    if out.is_dir() or str(out).endswith(("/", os.sep)):
        return out / f"{weights.stem}.onnx"
    return out


def export_ultralytics(weights: Path, out: Path | None = None, imgsz: int = 640) -> Path:
    """Export Ultralytics detection weights to ONNX with a dynamic batch dimension.

    Runs ``YOLO(weights).export(format="onnx", dynamic=True, imgsz=imgsz)`` on the CPU in
    a scratch directory (so nothing is written beside the weights or into the current
    directory), then moves the result to ``out``. Works offline once the export tools are
    installed. ultralytics is imported only here, lazily.

    Args:
        weights: a ``.pt`` file, or a model config such as ``yolov8n.yaml`` (an untrained
            model, useful for format and speed tests).
        out: the .onnx file to write, or an existing directory; default: beside
            ``weights`` (the current directory for a bare config name).
        imgsz: square input size recorded in the model (multiple of 32).

    Returns:
        The path of the written .onnx file.

    Raises:
        ExportError: the export tools are missing, ``weights`` does not exist, or the
            export failed.

    Example::

        export_ultralytics(Path("best.pt"), Path("fall.onnx"))    # PosixPath('fall.onnx')
    """
    missing = [name for name in EXPORT_REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"cannot export {weights}: missing {', '.join(missing)}; {INSTALL_HINT}")
    if imgsz <= 0 or imgsz % 32:
        raise ExportError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    weights = Path(weights)
    is_config = weights.suffix.lower() in (".yaml", ".yml")
    if not weights.is_file() and not is_config:
        raise ExportError(f"weights file not found: {weights}")
    destination = _destination(weights, out)

    from ultralytics import YOLO  # heavy: imports torch

    with tempfile.TemporaryDirectory(prefix="gw-export-") as scratch:
        scratch_path = Path(scratch)
        source = weights
        if weights.is_file():
            source = scratch_path / weights.name
            shutil.copy2(weights, source)
        try:
            with _working_directory(scratch_path):
                model = YOLO(str(source) if source.is_file() else weights.name)
                if getattr(model, "task", "detect") != "detect":
                    raise ExportError(f"{weights} is a {model.task!r} model; only detection models are supported")
                produced = model.export(format="onnx", dynamic=True, imgsz=imgsz, device="cpu", half=False, nms=False)
        except ExportError:
            raise
        except Exception as exc:  # ultralytics raises many kinds; wrap them with context
            raise ExportError(f"exporting {weights} to ONNX failed: {exc}") from exc
        produced_path = Path(produced)
        if not produced_path.is_absolute():
            produced_path = scratch_path / produced_path
        if not produced_path.is_file():
            raise ExportError(f"ultralytics reported {produced!r} but wrote no such file")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(produced_path), destination)
    return destination
