"""Ultralytics YOLO detection models exported to ONNX.

Three output layouts are understood (``A`` anchors, ``nc`` classes, ``K`` kept boxes):

=============  ================  ==================================================
layout         shape             per row
=============  ================  ==================================================
``v8``         ``[N, 4+nc, A]``  cx, cy, w, h, then nc class scores (YOLOv8/11 raw head)
``v5``         ``[N, A, 5+nc]``  cx, cy, w, h, objectness, nc class scores (YOLOv5)
``end2end``    ``[N, K, 6]``     x1, y1, x2, y2, score, class (NMS inside the model)
=============  ================  ==================================================

Coordinates are in model-input pixels. Class names, input size and the end-to-end flag
come from the metadata Ultralytics writes into the ONNX file (``names``, ``imgsz``,
``end2end``, ``task``).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import supervision as sv

from ._common import WARMUP_FRAME, BatchDetector, NonFiniteLog, build_detections, class_filter_ids, detector_options
from ._common import finite_rows, pad_batch, run_failure, static_batch
from .config import DetectorConfig
from .errors import ModelFormatError
from .manifest import MAX_INPUT_SIDE
from .nms import nms
from .onnx_session import create_session, literal_metadata, tensor_info

__all__ = [
    "LetterboxParams",
    "YoloDetector",
    "YoloLayout",
    "decode_yolo",
    "infer_yolo_layout",
    "letterbox_params",
    "undo_letterbox",
]

PAD_VALUE = 114
DEFAULT_IMGSZ = 640
DEFAULT_STRIDE = 32  # YOLOv5/v8/11's largest stride: rect inputs are padded to a multiple of it
MAX_CANDIDATES = 2000
# Above this many rows a [N, rows, 6] output is a raw YOLOv5 head, not end-to-end boxes.
END2END_MAX_ROWS = 1000
# Most classes a model's ``names`` metadata may give (a larger class id is refused, not allocated).
MAX_CLASSES = 10_000


class YoloLayout(str, enum.Enum):
    """Layout of a YOLO model's first output (see the module docstring)."""

    V8 = "v8"
    V5 = "v5"
    END2END = "end2end"


def infer_yolo_layout(
    shape: Sequence[int | None], num_classes: int | None = None, end2end: bool | None = None
) -> tuple[YoloLayout, int]:
    """Tell the output layout and class count from an output shape.

    Args:
        shape: the output's shape; ``None`` (or a non-positive value) for a symbolic dim.
        num_classes: class count from the metadata's ``names``, if known.
        end2end: the metadata's ``end2end`` flag, if present.

    Returns:
        ``(layout, num_classes)``; for ``end2end`` the class count is ``num_classes`` or 0.

    Raises:
        ModelFormatError: the shape fits no layout, or fits several and nothing decides.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 3:
        raise ModelFormatError(f"YOLO output must have rank 3, got shape {list(shape)}")
    _, rows, cols = dims

    def end2end_result() -> tuple[YoloLayout, int]:
        return YoloLayout.END2END, num_classes or 0

    if end2end is True:
        if cols not in (None, 6):
            raise ModelFormatError(f"end-to-end YOLO output must be [N, K, 6], got {list(shape)}")
        return end2end_result()
    if num_classes is not None:
        if rows == 4 + num_classes:
            return YoloLayout.V8, num_classes
        if cols == 5 + num_classes:
            if cols == 6 and end2end is None and rows is not None and rows <= END2END_MAX_ROWS:
                return end2end_result()
            return YoloLayout.V5, num_classes
        if cols == 6 and end2end is None:
            return end2end_result()
        raise ModelFormatError(
            f"YOLO output shape {list(shape)} fits no layout for {num_classes} classes "
            f"(expected [N, {4 + num_classes}, A], [N, A, {5 + num_classes}] or [N, K, 6])"
        )
    if cols == 6 and end2end is None and (rows is None or rows <= END2END_MAX_ROWS):
        return end2end_result()
    if rows is not None and cols is not None:
        if rows < cols and rows > 4:
            return YoloLayout.V8, rows - 4
        if cols > 5:
            return YoloLayout.V5, cols - 5
    elif rows is not None and rows > 4:
        return YoloLayout.V8, rows - 4
    elif cols is not None and cols > 5:
        return YoloLayout.V5, cols - 5
    raise ModelFormatError(f"cannot tell the YOLO layout of output shape {list(shape)}; pass layout=")


class Candidates(NamedTuple):
    """One image's scored boxes before NMS: model-input pixels; ``dropped``: boxes not kept
    because a coordinate, the score or (end-to-end) the class was NaN or inf."""

    xyxy: np.ndarray  # (k, 4) float32
    scores: np.ndarray  # (k,) float32
    class_ids: np.ndarray  # (k,) int64
    dropped: int = 0


def decode_yolo(
    output: np.ndarray,
    layout: YoloLayout,
    confidence: float,
    keep_ids: np.ndarray | None = None,
) -> list[Candidates]:
    """Decode a YOLO output for a whole batch at once.

    Args:
        output: the model's first output, in ``layout``.
        layout: see :class:`YoloLayout`.
        confidence: keep boxes scoring at least this (v5: objectness x class score).
        keep_ids: only consider these class ids (``None``: all).

    Returns:
        One :class:`Candidates` per image, boxes ``x1, y1, x2, y2`` in model-input pixels,
        in anchor order (not sorted, NMS not applied). A box with a NaN or inf coordinate,
        score or class is left out and counted in ``dropped`` (unless it scores below
        ``confidence``, or its class is filtered out, and would be left out anyway).
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim != 3:
        raise ModelFormatError(f"YOLO output must have rank 3, got shape {out.shape}")
    if layout is YoloLayout.END2END:
        if out.shape[2] < 6:
            raise ModelFormatError(f"end-to-end output needs 6 columns, got shape {out.shape}")
        xyxy = out[..., :4]
        scores = out[..., 4]
        raw_ids = out[..., 5]
        finite = finite_rows(xyxy, scores) & np.isfinite(raw_ids)
        # -1 (no class) for a non-finite id; clipped so the cast never overflows (out-of-range ids are dropped later)
        class_ids = np.rint(np.clip(np.where(finite, raw_ids, -1.0), -1.0, 2.0**31)).astype(np.int64)
        considered = ~(scores < confidence)  # NaN scores too: they are dropped, and counted
        if keep_ids is not None:
            considered &= np.isin(class_ids, keep_ids) | ~finite
    else:
        if layout is YoloLayout.V8:
            rows = out.transpose(0, 2, 1)  # (N, A, 4 + nc)
            class_scores = rows[..., 4:]
        elif layout is YoloLayout.V5:
            rows = out
            class_scores = rows[..., 5:] * rows[..., 4:5]
        else:  # pragma: no cover - enum is exhaustive
            raise ModelFormatError(f"unknown YOLO layout {layout!r}")
        if class_scores.shape[-1] == 0:
            raise ModelFormatError(f"YOLO output {out.shape} has no class columns for layout {layout.value}")
        if keep_ids is not None:
            class_scores = class_scores[..., keep_ids]
        column = np.argmax(class_scores, axis=-1)
        scores = np.take_along_axis(class_scores, column[..., None], axis=-1)[..., 0]
        class_ids = column if keep_ids is None else keep_ids[column]
        centre, size = rows[..., 0:2], rows[..., 2:4]
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=-1)
        finite = finite_rows(xyxy, scores)
        considered = ~(scores < confidence)  # NaN scores too: they are dropped, and counted
    mask = considered & finite
    dropped = np.count_nonzero(considered & ~finite, axis=-1)
    return [
        Candidates(xyxy[i][mask[i]], scores[i][mask[i]], class_ids[i][mask[i]].astype(np.int64), int(dropped[i]))
        for i in range(out.shape[0])
    ]


class LetterboxParams(NamedTuple):
    """How one image was letterboxed: scale ``ratio``, then padding ``left``/``top``."""

    ratio: float
    new_width: int
    new_height: int
    left: int
    top: int


def letterbox_params(height: int, width: int, target: tuple[int, int]) -> LetterboxParams:
    """Scale and padding that fit a ``height x width`` image into ``target`` = (H, W).

    The image is scaled by ``min(H / height, W / width)`` (up or down) and centred; odd
    padding puts the extra pixel on the bottom/right.
    """
    target_h, target_w = target
    ratio = min(target_h / height, target_w / width)
    new_w = max(1, min(target_w, int(round(width * ratio))))
    new_h = max(1, min(target_h, int(round(height * ratio))))
    left = int(round((target_w - new_w) / 2 - 0.1))
    top = int(round((target_h - new_h) / 2 - 0.1))
    return LetterboxParams(ratio, new_w, new_h, left, top)


def undo_letterbox(xyxy: np.ndarray, params: LetterboxParams, height: int, width: int) -> np.ndarray:
    """Map (k, 4) model-input boxes back to source pixels, clipped to the image.

    The boxes must be finite (:func:`decode_yolo` drops the others): the clip would turn an
    inf edge into the image's border, and it keeps a NaN.
    """
    offset = np.asarray([params.left, params.top, params.left, params.top], dtype=np.float32)
    limit = np.asarray([width, height, width, height], dtype=np.float32)
    boxes: np.ndarray = np.clip((np.asarray(xyxy, dtype=np.float32) - offset) / np.float32(params.ratio), 0.0, limit)
    return boxes


class YoloDetector(BatchDetector):
    """Runs an Ultralytics-exported YOLO detection ONNX model.

    Images are letterboxed (aspect kept, grey 114 padding) into one (N, 3, H, W) float32
    batch scaled to [0, 1] and run at once; a model exported with a fixed batch size runs
    in chunks of that size (one at a time for batch 1). Outputs are decoded for the whole
    batch, filtered, reduced by class-aware NMS (not for end-to-end models, which already
    did it) and mapped back to each image's pixels.

    Args:
        session: an ``onnxruntime.InferenceSession`` or an object with the same
            ``get_inputs``/``get_outputs``/``run``/``get_modelmeta``.
        class_names: overrides the names in the model's metadata.
        confidence: score threshold.
        iou: NMS IoU threshold.
        max_batch: most images per ONNX run (capped by a fixed batch dimension).
        classes: keep only these class names (``None``: all).
        layout: force an output layout instead of inferring it.
        imgsz: input size (H, W) or an int, for models whose input size is symbolic and
            whose metadata has no ``imgsz``. This or the metadata's must be at most
            ``MAX_INPUT_SIDE`` (4096) and a multiple of the model's stride.
        max_det: most detections per image.
        rect: for a model with a dynamic input size, letterbox each image to the stride
            (``imgsz`` on the long side, the short side padded to a multiple of the stride)
            instead of a square; images of one target shape run together.
        warmup: run one inference now.
        name: how log messages name the model (default: the metadata's ``description``).

    Boxes with a NaN or inf coordinate or score are dropped (the frame keeps its other
    boxes); a warning says how many, at most once a minute (``nonfinite_dropped`` counts them).

    Raises:
        ModelFormatError: a model or metadata gridworker cannot run: an unknown layout or
            task, more than ``MAX_CLASSES`` (10,000) classes, an input size out of bounds.

    Example::

        detector = YoloDetector.from_path(Path("fall.onnx"), DetectorConfig(confidence=0.25))
        detector.class_names            # ['Normal', 'Fall']
        [dets] = detector.detect([rgb_image])
    """

    def __init__(
        self,
        session: Any,
        *,
        class_names: Sequence[str] | None = None,
        confidence: float = 0.4,
        iou: float = 0.5,
        max_batch: int = 8,
        classes: list[str] | None = None,
        layout: YoloLayout | str | None = None,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        warmup: bool = True,
        rect: bool = True,
        name: str | None = None,
    ) -> None:
        self._session = session
        metadata = literal_metadata(session)
        description = metadata.get("description")
        self._name = name or (description if isinstance(description, str) else "YOLO model")
        self._nonfinite = NonFiniteLog(self._name)
        self._warmup = bool(warmup)
        task = metadata.get("task")
        if isinstance(task, str) and task != "detect":
            raise ModelFormatError(f"YOLO model task is {task!r}; only 'detect' models are supported")
        inputs = [tensor_info(i) for i in session.get_inputs()]
        outputs = [tensor_info(o) for o in session.get_outputs()]
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFormatError(f"expected one NCHW image input, got {[(i.name, i.shape) for i in inputs]}")
        self._input = inputs[0]
        self._output_name = outputs[0].name
        if self._input.shape[1] not in (None, 3):
            raise ModelFormatError(f"expected 3 input channels (NCHW), got input shape {self._input.shape}")
        self._input_dtype = np.float16 if "float16" in self._input.type else np.float32
        stride = metadata.get("stride")
        self._stride = int(stride) if isinstance(stride, int) and stride > 0 else DEFAULT_STRIDE
        self._size = self._input_size(metadata, imgsz)
        self._rect = bool(rect) and not all(isinstance(d, int) for d in self._input.shape[2:4])

        names = list(class_names) if class_names is not None else names_from_metadata(metadata.get("names"))
        end2end = metadata.get("end2end") if isinstance(metadata.get("end2end"), bool) else None
        self._static_batch = static_batch(self._input.shape)
        self._max_batch = int(max_batch) if self._static_batch is None else min(int(max_batch), self._static_batch)
        if layout is not None:
            self._layout = YoloLayout(layout)
            num_classes = len(names) if names else None
        else:
            try:
                self._layout, num_classes = infer_yolo_layout(outputs[0].shape, len(names) if names else None, end2end)
            except ModelFormatError:
                # Symbolic dims everywhere: look at a real output instead.
                try:
                    probe = self._run(self._preprocess([np.zeros((*self._size, 3), dtype=np.uint8)])[0], 1)
                except Exception as exc:  # onnxruntime raises its own pybind exception types
                    size = f"{self._size[0]}x{self._size[1]}"
                    raise run_failure(self._name, f"a test run at its input size {size} (to read its output layout)", exc) from exc
                self._layout, num_classes = infer_yolo_layout(probe.shape, len(names) if names else None, end2end)
        if num_classes is not None and num_classes > MAX_CLASSES:
            raise ModelFormatError(f"YOLO output has {num_classes} class columns; at most {MAX_CLASSES} classes are supported")
        if not names:
            if not num_classes:
                raise ModelFormatError("end-to-end YOLO model without 'names' metadata: pass class_names=")
            names = [f"class{i}" for i in range(num_classes)]
        self._class_names = names
        self._names_array = np.asarray(names, dtype=str)
        self._keep_ids = class_filter_ids(classes, names)
        self._confidence = float(confidence)
        self._iou = float(iou)
        self._max_det = int(max_det)
        if warmup:
            self._warm_up(self._name, self._warmup_frames())

    @classmethod
    def from_path(
        cls, path: Path, config: DetectorConfig | None = None, *, class_names: Sequence[str] | None = None, workers: int = 1
    ) -> YoloDetector:
        """Load an Ultralytics-exported ``.onnx`` file with settings from ``config``; ``workers``:
        the inference workers that will run it at once (OpenVINO's streams)."""
        config = config or DetectorConfig()
        session = create_session(Path(path), config.threads, runtime=config.runtime, precision=config.precision, streams=workers)
        return cls(session, class_names=class_names, rect=config.rect, name=str(path), **detector_options(config))

    def with_imgsz(self, imgsz: int) -> YoloDetector:
        """This detector at another input size (the long side with ``rect``), sharing its ONNX
        session: a camera's own ``imgsz``. Only for models exported with a dynamic input size.
        A detector built with ``warmup`` runs the new size once, as loading does (the square and
        a 16:9 frame), so a model that cannot run at it is refused here, not on live frames.

        Raises:
            ModelFormatError: the model's input size is fixed, or it fails at this size.
        """
        if all(isinstance(d, int) for d in self._input.shape[2:4]):
            raise ModelFormatError(f"the model's input size is fixed at {self._size[0]}x{self._size[1]}: export it with dynamic axes")
        resized = copy.copy(self)
        resized._size = (int(imgsz), int(imgsz))
        if self._warmup:
            resized._warm_up(f"{self._name} at imgsz {int(imgsz)}", resized._warmup_frames())
        return resized

    def _warmup_frames(self) -> list[tuple[int, int]]:
        """Frames (height, width) whose model inputs are those live frames will mostly take: the
        square input size and, with ``rect``, a 16:9 frame's letterbox (one frame per input shape)."""
        frames: dict[tuple[int, int], tuple[int, int]] = {}
        for height, width in (self._size, WARMUP_FRAME):
            frames.setdefault(self.target_size(height, width), (height, width))
        return list(frames.values())

    def _input_note(self, height: int, width: int) -> str:
        target = self.target_size(height, width)
        return f" (letterboxed to {target[0]}x{target[1]}, height x width)"

    def _run_hint(self, height: int, width: int) -> str:
        if self._rect and self.target_size(height, width) != self._size:
            return "a model that runs only at its square input size needs `rect: false` in its detector config"
        return ""

    @property
    def layout(self) -> YoloLayout:
        return self._layout

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width)."""
        return self._size

    @property
    def input_name(self) -> str:
        """The model's input tensor name."""
        return self._input.name

    @property
    def stride(self) -> int:
        """The model's largest stride: its input sides are multiples of it."""
        return self._stride

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The model input (H, W) an image of ``height x width`` is letterboxed into: the
        square input size, or with ``rect`` the scaled image padded to the stride."""
        if not self._rect:
            return self._size
        size_h, size_w = self._size
        ratio = min(size_h / height, size_w / width)
        new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
        return new_h + (size_h - new_h) % self._stride, new_w + (size_w - new_w) % self._stride

    def input_tensor(self, images: Sequence[np.ndarray], target: tuple[int, int]) -> np.ndarray:
        """The (n, 3, H, W) model input of RGB ``images`` letterboxed into ``target``, exactly
        as :meth:`detect` feeds the model (what INT8 calibration must see)."""
        return self._preprocess(list(images), target)[0]

    def _detect_batch(self, batch: list[np.ndarray]) -> list[sv.Detections]:
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(batch):
            groups.setdefault(self.target_size(image.shape[0], image.shape[1]), []).append(i)
        results: list[sv.Detections | None] = [None] * len(batch)
        for target, members in groups.items():  # one model run per input shape
            images = [batch[i] for i in members]
            tensor, params = self._preprocess(images, target)
            output = self._run(tensor, len(images))
            with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN outputs: dropped and counted
                candidates = decode_yolo(output, self._layout, self._confidence, self._keep_ids)
            self._nonfinite.dropped(sum(cand.dropped for cand in candidates))
            for i, image, param, cand in zip(members, images, params, candidates):
                results[i] = self._finish(image, param, cand)
        return [r for r in results if r is not None]

    def _run(self, tensor: np.ndarray, count: int) -> np.ndarray:
        feed = pad_batch(tensor, self._static_batch)
        (output,) = self._session.run([self._output_name], {self._input.name: feed})
        return np.asarray(output)[:count]

    def _preprocess(self, images: list[np.ndarray], target: tuple[int, int] | None = None) -> tuple[np.ndarray, list[LetterboxParams]]:
        """Letterbox into one (n, 3, H, W) batch scaled to [0, 1]; (H, W) = ``target`` or the input size."""
        height, width = target or self._size
        canvas = np.full((len(images), height, width, 3), PAD_VALUE, dtype=np.uint8)
        params = []
        for i, image in enumerate(images):
            p = letterbox_params(image.shape[0], image.shape[1], (height, width))
            if (p.new_height, p.new_width) != image.shape[:2]:
                image = cv2.resize(image, (p.new_width, p.new_height), interpolation=cv2.INTER_LINEAR)
            canvas[i, p.top : p.top + p.new_height, p.left : p.left + p.new_width] = image
            params.append(p)
        tensor = np.empty((len(images), 3, height, width), dtype=self._input_dtype)
        np.multiply(canvas.transpose(0, 3, 1, 2), np.float32(1.0 / 255.0), out=tensor, casting="unsafe")
        return tensor, params

    def _finish(self, image: np.ndarray, params: LetterboxParams, cand: Candidates) -> sv.Detections:
        if cand.scores.size > MAX_CANDIDATES:
            top = np.argpartition(-cand.scores, MAX_CANDIDATES - 1)[:MAX_CANDIDATES]
            cand = Candidates(cand.xyxy[top], cand.scores[top], cand.class_ids[top])
        if self._layout is YoloLayout.END2END:
            keep = np.argsort(-cand.scores, kind="stable")[: self._max_det]
        else:
            keep = nms(cand.xyxy, cand.scores, self._iou, class_ids=cand.class_ids, max_det=self._max_det)
        xyxy = undo_letterbox(cand.xyxy[keep], params, image.shape[0], image.shape[1])
        class_ids = cand.class_ids[keep]
        valid = (class_ids >= 0) & (class_ids < len(self._class_names))
        return build_detections(xyxy[valid], cand.scores[keep][valid], class_ids[valid], self._names_array, self._nonfinite)

    def _input_size(self, metadata: dict[str, Any], imgsz: int | tuple[int, int] | None) -> tuple[int, int]:
        """Input (H, W): the model's fixed size, else ``imgsz``, else the metadata's ``imgsz``, else 640.

        Raises:
            ModelFormatError: a side above ``MAX_INPUT_SIDE``, or a given size not a multiple of the stride.
        """
        fixed = self._input.shape[2:4]
        if all(isinstance(d, int) for d in fixed):
            return _checked_size(int(fixed[0]), int(fixed[1]), "the model's fixed input size", 1)  # type: ignore[arg-type]
        for source, value in (("imgsz", imgsz), ("the model's 'imgsz' metadata", metadata.get("imgsz"))):
            if isinstance(value, int) and value > 0:
                return _checked_size(value, value, source, self._stride)
            if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
                return _checked_size(int(value[0]), int(value[1]), source, self._stride)
        return DEFAULT_IMGSZ, DEFAULT_IMGSZ


def _checked_size(height: int, width: int, source: str, stride: int) -> tuple[int, int]:
    """``(height, width)`` when each side is at most ``MAX_INPUT_SIDE`` and a multiple of ``stride``.

    Raises:
        ModelFormatError: it is not (the warm-up alone would allocate a tensor of that size).
    """
    if max(height, width) > MAX_INPUT_SIDE or height % stride or width % stride:
        rule = f"at most {MAX_INPUT_SIDE}" + (f" and a multiple of the stride {stride}" if stride > 1 else "")
        raise ModelFormatError(f"{source} is {height}x{width}: each side must be {rule}")
    return height, width


def names_from_metadata(value: Any) -> list[str]:
    """Class names from Ultralytics' ``names`` metadata (a dict id -> name, or a list).

    Raises:
        ModelFormatError: a class id of ``MAX_CLASSES`` or more (or more names than that).
    """
    if isinstance(value, dict) and value and all(isinstance(k, int) and k >= 0 for k in value):
        size = max(value) + 1
        if size > MAX_CLASSES:
            raise ModelFormatError(f"the model's 'names' metadata has class id {size - 1}; at most {MAX_CLASSES} classes are supported")
        return [str(value.get(i, f"class{i}")) for i in range(size)]
    if isinstance(value, (list, tuple)) and value:
        if len(value) > MAX_CLASSES:
            raise ModelFormatError(f"the model's 'names' metadata has {len(value)} names; at most {MAX_CLASSES} classes are supported")
        return [str(v) for v in value]
    return []
