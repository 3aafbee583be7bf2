"""SSD detectors whose ONNX graph ends before the box decoding (e.g. the embedded
``ssd_mobilenet_v2_coco``): anchors, box coder and NMS run here, in numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from ._common import BatchDetector, NonFiniteLog, build_detections, class_filter_ids, detector_options, finite_rows
from ._common import pad_batch, static_batch
from .config import DetectorConfig
from .errors import ModelFormatError
from .manifest import InputSpec, Manifest, load_manifest
from .onnx_session import create_session, tensor_info
from .ssd_codec import BoxCoderScales, best_class, decode_boxes, select_detections

__all__ = ["SsdDetector"]


class SsdDetector(BatchDetector):
    """SSD detector: one ONNX Runtime run per batch, decoding and NMS vectorised in numpy.

    Images of any size are stretched to the model's input size (SSD was trained that
    way), stacked into one uint8 batch and run at once (in chunks of ``max_batch``).
    Boxes are decoded against the anchors for the whole batch in one array operation,
    filtered by score and by the optional class filter, reduced by class-aware NMS and
    scaled back to each image's pixels. Boxes with a NaN or inf coordinate or score are
    dropped (the frame keeps its other boxes); a warning says how many, at most once a
    minute (``nonfinite_dropped`` counts them).

    Args:
        session: an ``onnxruntime.InferenceSession`` (or an object with the same
            ``get_inputs``/``get_outputs``/``run``) for the model the manifest describes.
        manifest: the model directory's validated manifest (family ``"ssd"``).
        anchors: (A, 4) float32 ``ycenter, xcenter, h, w``.
        confidence: score threshold.
        iou: NMS IoU threshold.
        max_batch: most images per ONNX run.
        classes: keep only these class names (``None``: all).
        max_det: most detections per image.
        warmup: run one inference now, so the first real call is not slow.

    Example:
        >>> from gridworker.models.loader import WEIGHTS_DIR   # models/weights
        >>> detector = SsdDetector.from_directory(WEIGHTS_DIR / "ssd_mobilenet_v2_coco")
        >>> rgb_image = np.zeros((360, 640, 3), dtype=np.uint8)   # (H, W, 3) uint8 RGB
        >>> [dets] = detector.detect([rgb_image])
        >>> dets.data["class_name"].tolist(), dets.xyxy.shape   # a black frame: no detections
        ([], (0, 4))
    """

    def __init__(
        self,
        session: Any,
        manifest: Manifest,
        anchors: np.ndarray,
        *,
        confidence: float = 0.4,
        iou: float = 0.5,
        max_batch: int = 8,
        classes: list[str] | None = None,
        max_det: int = 100,
        warmup: bool = True,
    ) -> None:
        if manifest.family != "ssd" or manifest.input is None or manifest.box_coder is None:
            raise ModelFormatError(f"model {manifest.name!r} is not an SSD model (family {manifest.family!r})")
        spec = manifest.input
        if spec.dtype != "uint8" or spec.resize != "stretch":
            raise ModelFormatError(
                f"SSD input {spec.dtype}/{spec.resize} not supported; only uint8 with 'stretch' resizing"
            )
        anchors = np.asarray(anchors, dtype=np.float32)
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise ModelFormatError(f"anchors must have shape (A, 4), got {anchors.shape}")
        inputs = {i.name: i for i in map(tensor_info, session.get_inputs())}
        outputs = {o.name: o for o in map(tensor_info, session.get_outputs())}
        if spec.name not in inputs:
            raise ModelFormatError(f"manifest input {spec.name!r} not in the model's inputs {sorted(inputs)}")
        _check_input_shape(manifest.name, spec, inputs[spec.name].shape)
        self._box_output = manifest.outputs["box_encodings"]
        self._score_output = manifest.outputs["class_scores"]
        for name in (self._box_output, self._score_output):
            if name not in outputs:
                raise ModelFormatError(f"manifest output {name!r} not in the model's outputs {sorted(outputs)}")
        box_anchors = outputs[self._box_output].shape[1:2]
        if box_anchors and box_anchors[0] not in (None, anchors.shape[0]):
            raise ModelFormatError(f"model has {box_anchors[0]} anchors, anchors file has {anchors.shape[0]}")
        columns = outputs[self._score_output].shape[-1:]
        if columns and columns[0] not in (None, len(manifest.labels)):
            raise ModelFormatError(f"model has {columns[0]} score columns, manifest has {len(manifest.labels)} labels")

        self._session = session
        self._manifest = manifest
        self._anchors = anchors
        self._input_name = spec.name
        self._size = (spec.height, spec.width)
        self._nchw = spec.layout == "NCHW"
        self._bgr = spec.colour == "BGR"
        coder = manifest.box_coder
        self._coder = BoxCoderScales(coder.y_scale, coder.x_scale, coder.h_scale, coder.w_scale)
        self._label_offset = manifest.label_offset
        self._class_names = manifest.class_names
        self._names_array = np.asarray(self._class_names, dtype=str)
        self._nonfinite = NonFiniteLog(manifest.name)
        self._keep_ids = class_filter_ids(classes, self._class_names)
        self._confidence = float(confidence)
        self._iou = float(iou)
        self._max_det = int(max_det)
        self._static_batch = static_batch(inputs[spec.name].shape)
        self._max_batch = int(max_batch) if self._static_batch is None else min(int(max_batch), self._static_batch)
        if warmup:  # every frame is stretched to the one input size: one run tells
            self._warm_up(repr(manifest.name), [(spec.height, spec.width)])

    @classmethod
    def from_directory(
        cls, directory: Path, config: DetectorConfig | None = None, *, manifest: Manifest | None = None, workers: int = 1
    ) -> SsdDetector:
        """Load an SSD model directory (manifest, model.onnx, anchors.npy), checking sha256s.
        ``workers``: the inference workers that will run it at once (OpenVINO's streams).

        Raises:
            ModelError: missing files, sha256 mismatch or a manifest that is not SSD.
        """
        config = config or DetectorConfig()
        directory = Path(directory)
        manifest = manifest or load_manifest(directory)
        if manifest.anchors is None:
            raise ModelFormatError(f"{directory}: an SSD manifest must name its anchors file")
        try:
            anchors = np.load(directory / manifest.anchors.file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"cannot read anchors {directory / manifest.anchors.file}: {exc}") from exc
        if anchors.shape != (manifest.anchors.count, 4):
            raise ModelFormatError(f"anchors have shape {anchors.shape}, manifest says ({manifest.anchors.count}, 4)")
        session = create_session(
            directory / manifest.model.file, config.threads, runtime=config.runtime, precision=config.precision, streams=workers
        )
        return cls(session, manifest, anchors, **detector_options(config))

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def _detect_batch(self, batch: list[np.ndarray]) -> list[sv.Detections]:
        tensor = pad_batch(self._preprocess(batch), self._static_batch)
        encodings, scores = self._session.run([self._box_output, self._score_output], {self._input_name: tensor})
        return self._postprocess(encodings[: len(batch)], scores[: len(batch)], batch)

    def _preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, H, W, 3) uint8 batch (or NCHW), each image stretched to the model size."""
        height, width = self._size
        batch = np.empty((len(images), height, width, 3), dtype=np.uint8)
        for i, image in enumerate(images):
            if image.shape[:2] == (height, width):
                batch[i] = image
            else:
                batch[i] = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        if self._bgr:
            batch = batch[..., ::-1]
        if self._nchw:
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch)

    def _postprocess(
        self, encodings: np.ndarray, scores: np.ndarray, images: list[np.ndarray]
    ) -> list[sv.Detections]:
        sizes = np.asarray([(image.shape[1], image.shape[0]) for image in images], dtype=np.float32)
        scale = np.tile(sizes, 2)[:, None, :]  # (n, 1, 4): w, h, w, h
        if self._keep_ids is None:
            real = scores[..., self._label_offset :]
        else:
            real = scores[..., self._keep_ids + self._label_offset]
        # Most anchors score below the threshold: rank classes and decode boxes only for
        # the anchors whose best score passes it (same result, a fraction of the work).
        best_all = real.max(axis=-1)  # (n, A)
        results = []
        for i in range(len(images)):
            cand = np.flatnonzero(~(best_all[i] < self._confidence))  # NaN scores too: dropped below, and counted
            best, column = best_class(real[i, cand], 0)
            class_id = column if self._keep_ids is None else self._keep_ids[column]
            with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN encodings: dropped and counted below
                boxes = decode_boxes(encodings[i, cand], self._anchors[cand], self._coder) * scale[i]  # (k, 4) pixels
            finite = finite_rows(boxes, best)
            if not finite.all():
                self._nonfinite.dropped(int(finite.size - np.count_nonzero(finite)))
                boxes, best, class_id = boxes[finite], best[finite], class_id[finite]
            keep = select_detections(
                boxes,
                best,
                class_id,
                confidence=self._confidence,
                iou=self._iou,
                max_det=self._max_det,
                max_candidates=1000,
            )
            xyxy = np.clip(boxes[keep], 0.0, scale[i])
            results.append(build_detections(xyxy, best[keep], class_id[keep], self._names_array, self._nonfinite))
        return results


def _check_input_shape(name: str, spec: InputSpec, shape: tuple[int | None, ...]) -> None:
    """Model ``name``'s manifest input ``spec`` (layout, height, width, 3 channels) against the
    ONNX input's ``shape`` (its fixed dims; ``None`` for a symbolic one).

    Raises:
        ModelFormatError: they differ (the model would fail on every frame).
    """

    def dims(layout: str) -> tuple[int, int, int]:
        return (spec.height, spec.width, 3) if layout == "NHWC" else (3, spec.height, spec.width)

    def fits(layout: str) -> bool:
        return len(shape) == 4 and all(got is None or got == want for got, want in zip(shape[1:], dims(layout)))

    if fits(spec.layout):
        return
    shown = "[" + ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape)) + "]"
    other = "NCHW" if spec.layout == "NHWC" else "NHWC"
    hint = f"; it fits layout {other}" if fits(other) else ""
    raise ModelFormatError(
        f"model {name!r}: manifest.json declares input {spec.name!r} {spec.layout} {spec.height}x{spec.width}"
        f" (shape [N, {', '.join(map(str, dims(spec.layout)))}]), but the model's input is {shown}{hint}"
    )
