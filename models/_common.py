"""Helpers shared by the detector families (private)."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TypedDict

import numpy as np
import supervision as sv

from .config import DetectorConfig
from .errors import ModelError, ModelFormatError

__all__ = [
    "WARMUP_FRAME",
    "BatchDetector",
    "DetectorOptions",
    "NonFiniteLog",
    "build_detections",
    "check_images",
    "chunks",
    "class_filter_ids",
    "detector_options",
    "finite_rows",
    "pad_batch",
    "run_failure",
    "static_batch",
]

log = logging.getLogger(__name__)

#: (height, width) of the 16:9 frame a warm-up runs besides the model's own size: the shape most
#: cameras send, which a dynamic-size YOLO model with ``rect`` runs at its own input shape
WARMUP_FRAME = (720, 1280)


class DetectorOptions(TypedDict):
    """What every detector family takes from a :class:`DetectorConfig` (its loader passes them on)."""

    confidence: float
    iou: float
    max_batch: int
    classes: list[str] | None


def detector_options(config: DetectorConfig) -> DetectorOptions:
    return DetectorOptions(confidence=config.confidence, iou=config.iou, max_batch=config.max_batch, classes=config.classes)


class NonFiniteLog:
    """Counts the boxes a detector drops because its model gave non-finite (NaN or inf)
    coordinates or scores, and says so: a warning with the count the first time, then at
    most one every ``interval`` seconds (the boxes dropped since the last one). One per
    detector; thread-safe.

    Example:
        >>> nonfinite = NonFiniteLog("fall.onnx")
        >>> nonfinite.dropped(3)   # logs: model fall.onnx: dropped 3 box(es) ...
        >>> nonfinite.total
        3
    """

    def __init__(self, model: str, interval: float = 60.0) -> None:
        self._model = model
        self._interval = float(interval)
        self._lock = threading.Lock()
        self._total = 0
        self._pending = 0
        self._last: float | None = None

    @property
    def total(self) -> int:
        """Boxes dropped since the detector was built."""
        return self._total

    def dropped(self, count: int) -> None:
        """Record ``count`` dropped boxes; warn unless a warning went out less than ``interval`` ago."""
        if count <= 0:
            return
        with self._lock:
            self._total += count
            self._pending += count
            now = time.monotonic()
            if self._last is not None and now - self._last < self._interval:
                return
            pending, total, self._pending, self._last = self._pending, self._total, 0, now
        log.warning(
            "model %s: dropped %d box(es) with non-finite (NaN or inf) coordinates or scores from its output "
            "(%d since it was loaded; at most one such warning every %gs): those frames lose those detections",
            self._model,
            pending,
            total,
            self._interval,
        )


class BatchDetector(ABC):
    """What the ONNX detectors share: their class names by id, the most images one run
    takes (``max_batch`` as configured, capped by a model exported with a fixed batch size)
    and the count of boxes dropped for non-finite values (:class:`NonFiniteLog`)."""

    _class_names: list[str]
    _max_batch: int
    _nonfinite: NonFiniteLog

    @property
    def class_names(self) -> list[str]:
        """Class names by class id (``""`` for ids the model does not use)."""
        return list(self._class_names)

    @property
    def max_batch(self) -> int:
        return self._max_batch

    @property
    def nonfinite_dropped(self) -> int:
        """Boxes dropped so far because the model gave NaN or inf coordinates or scores."""
        return self._nonfinite.total

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Detect objects in (H, W, 3) uint8 RGB images; one ``sv.Detections`` each.

        ``xyxy`` is (n, 4) float32 in that image's pixels, ``confidence`` (n,) float32,
        ``class_id`` (n,) int64, ``data["class_name"]`` (n,) str. The images run in chunks
        of ``max_batch``.
        """
        images = list(images)
        check_images(images)
        results: list[sv.Detections] = []
        for part in chunks(len(images), self._max_batch):
            results.extend(self._detect_batch(images[part]))
        return results

    @abstractmethod
    def _detect_batch(self, batch: list[np.ndarray]) -> list[sv.Detections]:
        """One model run over at most ``max_batch`` checked images."""

    def _warm_up(self, name: str, frames: Sequence[tuple[int, int]]) -> None:
        """Run the model once on a black frame of each (height, width) in ``frames`` (the shapes
        live frames will give it), so that a model that loads but cannot run at them is refused
        now, not on every live batch.

        Raises:
            ModelFormatError: a run failed (ONNX Runtime's error, in one line).
        """
        for height, width in dict.fromkeys(frames):
            try:
                self.detect([np.zeros((height, width, 3), dtype=np.uint8)])
            except ModelError:
                raise
            except Exception as exc:  # onnxruntime raises its own pybind exception types
                what = f"a test run on a {width}x{height} frame{self._input_note(height, width)}"
                raise run_failure(name, what, exc, self._run_hint(height, width)) from exc

    def _input_note(self, height: int, width: int) -> str:
        """How a frame of ``height x width`` reaches the model, for a warm-up error (e.g. `` (letterboxed to 384x640, ...)``)."""
        return ""

    def _run_hint(self, height: int, width: int) -> str:
        """What may help when a frame of ``height x width`` fails in the model (a warm-up error's end), or ``""``."""
        return ""


def run_failure(name: str, what: str, exc: BaseException, hint: str = "") -> ModelFormatError:
    """``ModelFormatError``: ``what`` failed in model ``name``: the error in one line (its first and
    last 200 characters when longer: ONNX Runtime ends with the shapes), then ``hint``."""
    text = " ".join(str(exc).split())  # ONNX Runtime's messages run over several lines
    if len(text) > 400:
        text = f"{text[:200]} ... {text[-200:]}"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ModelFormatError(f"model {name}: {what} failed, so it cannot run ({detail}){'; ' + hint if hint else ''}")


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise ``ValueError`` unless every image is (H, W, 3) uint8 with H, W > 0."""
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image {index}: expected a numpy array, got {type(image).__name__}")
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image {index}: expected shape (H, W, 3), got {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image {index}: expected dtype uint8, got {image.dtype}")


def chunks(count: int, size: int) -> Iterator[slice]:
    """Slices ``[0, size), [size, 2 size), ...`` covering ``range(count)``."""
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def finite_rows(xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(..., ) bool: which boxes have four finite coordinates (``xyxy`` (..., 4)) and a finite score."""
    finite: np.ndarray = np.isfinite(xyxy).all(axis=-1) & np.isfinite(scores)
    return finite


def build_detections(
    xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray, class_names: np.ndarray, nonfinite: NonFiniteLog
) -> sv.Detections:
    """``sv.Detections`` in the :class:`~gridworker.models.base.Detector` contract.

    The decoders drop non-finite boxes already; any left (NaN or inf coordinates or score)
    are dropped here too and counted in ``nonfinite``, so one bad box never fails the batch.

    Args:
        xyxy: (n, 4) boxes in source pixels.
        confidence: (n,) scores.
        class_id: (n,) class ids.
        class_names: (n_classes,) str array; ``class_names[class_id]`` names each box.
        nonfinite: the detector's count of dropped boxes.
    """
    boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(confidence, dtype=np.float32).reshape(-1)
    ids = np.asarray(class_id, dtype=np.int64).reshape(-1)
    finite = finite_rows(boxes, scores)
    if not finite.all():
        nonfinite.dropped(int(finite.size - np.count_nonzero(finite)))
        boxes, scores, ids = boxes[finite], scores[finite], ids[finite]
    return sv.Detections(
        xyxy=boxes,
        confidence=scores,
        class_id=ids,
        data={"class_name": class_names[ids] if ids.size else np.zeros((0,), dtype=class_names.dtype)},
    )


def class_filter_ids(names: list[str] | None, class_names: Sequence[str]) -> np.ndarray | None:
    """Class ids kept by a name filter; ``None`` keeps all.

    Raises:
        ModelError: a requested name is not one of the model's classes.
    """
    if names is None:
        return None
    index = {name: i for i, name in enumerate(class_names) if name}
    unknown = [name for name in names if name not in index]
    if unknown:
        known = ", ".join(sorted(index))
        raise ModelError(f"unknown class name(s) {unknown} in the class filter; this model knows: {known}")
    return np.asarray(sorted(index[name] for name in names), dtype=np.int64)


def static_batch(shape: Sequence[int | None]) -> int | None:
    """The fixed batch size of an input shape, or ``None`` when the batch dim is symbolic."""
    return shape[0] if shape and isinstance(shape[0], int) else None


def pad_batch(batch: np.ndarray, size: int | None) -> np.ndarray:
    """Zero-pad ``batch`` along axis 0 to ``size`` rows (for static-batch models)."""
    if size is None or batch.shape[0] == size:
        return batch
    padded = np.zeros((size,) + batch.shape[1:], dtype=batch.dtype)
    padded[: batch.shape[0]] = batch
    return padded
