"""Turn a :class:`DetectorConfig` into a ready :class:`Detector`."""

from __future__ import annotations

from pathlib import Path

from ._common import detector_options
from .base import Detector
from .config import DetectorConfig, session_threads
from .errors import ModelFormatError, ModelNotFoundError
from .manifest import MANIFEST_NAME, load_manifest
from .onnx_session import create_session, literal_metadata, tensor_info
from .ssd import SsdDetector
from .yolo import YoloDetector, infer_yolo_layout

__all__ = ["WEIGHTS_DIR", "embedded_models", "load_detector", "resolve_model"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Ultralytics writes these metadata keys into every exported ONNX file.
_ULTRALYTICS_KEYS = {"names", "stride", "imgsz", "task"}


def embedded_models() -> list[str]:
    """Names of the models shipped inside the package (``models/weights/<name>/``)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / MANIFEST_NAME).is_file())


def resolve_model(model: str) -> Path:
    """Path of an embedded model's directory, or of the given file/directory.

    Raises:
        ModelNotFoundError: neither an embedded model name nor an existing path.
    """
    embedded = WEIGHTS_DIR / model
    if "/" not in model and "\\" not in model and (embedded / MANIFEST_NAME).is_file():
        return embedded
    path = Path(model).expanduser()
    if path.exists():
        return path
    raise ModelNotFoundError(
        f"model {model!r} not found: not an embedded model ({', '.join(embedded_models()) or 'none'}) "
        "and no such file or directory"
    )


def load_detector(config: DetectorConfig | None = None, *, workers: int = 1) -> Detector:
    """Build the detector ``config.model`` names, with its session ready and warmed up.

    ``workers``: the inference threads that will run it at once (``pipeline.inference_workers``);
    an unset ``config.threads`` shares the usable cores out among them (:func:`session_threads`).

    * an embedded model name or a directory with ``manifest.json``: the manifest's
      ``family`` picks the detector; every file's sha256 is checked first;
    * a bare ``.onnx`` file: an Ultralytics YOLO export, recognised by its metadata or
      output shape.

    Raises:
        ModelNotFoundError: no such model, file or directory.
        ModelIntegrityError: a file's sha256 differs from its manifest.
        ModelFormatError: an unreadable manifest or a model of an unknown format.

    Example:
        >>> detector = load_detector(DetectorConfig())
        >>> detector.class_names[0]
        'person'
    """
    config = config or DetectorConfig()
    config = config.model_copy(update={"threads": session_threads(config.threads, workers)})
    path = resolve_model(config.model)
    if path.is_dir():
        manifest = load_manifest(path)
        if manifest.family == "ssd":
            return SsdDetector.from_directory(path, config, manifest=manifest, workers=workers)
        return YoloDetector.from_path(
            path / manifest.model.file, config, class_names=manifest.class_names or None, workers=workers
        )
    if path.suffix.lower() != ".onnx":
        raise ModelFormatError(f"{path}: expected an .onnx file or a model directory with {MANIFEST_NAME}")
    session = create_session(path, config.threads, runtime=config.runtime, precision=config.precision, streams=workers)
    metadata = literal_metadata(session)
    outputs = [tensor_info(o) for o in session.get_outputs()]
    output_names = {o.name for o in outputs}
    if {"box_encodings", "class_scores"} <= output_names:
        raise ModelFormatError(
            f"{path} looks like an SSD model cut before its post-process; load its directory "
            f"(with {MANIFEST_NAME} and the anchors) instead of the bare .onnx file"
        )
    if not (_ULTRALYTICS_KEYS & metadata.keys()):
        # No Ultralytics metadata: accept it only if the first output fits a YOLO layout.
        try:
            infer_yolo_layout(outputs[0].shape)
        except (ModelFormatError, IndexError) as exc:
            raise ModelFormatError(
                f"{path}: unknown model format (no Ultralytics metadata, outputs "
                f"{[(o.name, list(o.shape)) for o in outputs]}): {exc}"
            ) from exc
    return YoloDetector(session, rect=config.rect, name=str(path), **detector_options(config))
