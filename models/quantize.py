"""Quantise an Ultralytics YOLO detection ONNX model to INT8 (offline tool, ``gridworker models quantize``).

On a CPU with VNNI (Intel since Cascade Lake, AMD since Zen 4) ONNX Runtime's INT8 kernels run a
YOLO model about twice as fast as float32; without VNNI they are no faster (measured: see
docs/models.md "INT8 models"). What it costs in detections depends on the model and the footage,
so ``gridworker bench quantize`` measures both on the site's own clips before anyone switches.

How it is done, with ONNX Runtime's own tools (``onnxruntime.quantization``):

* static quantisation, ``QOperator`` format: uint8 activations, int8 weights per channel;
* calibration on real frames from the site's clips (:func:`sample_frames`), letterboxed exactly
  as the detector feeds its model (:meth:`YoloDetector.input_tensor`), all into one input shape;
  activation ranges by the 99.99th percentile of each tensor's histogram (min/max let one bright
  pixel stretch a range; measured: agreement with float32 0.92 against 0.90), min/max when a
  tensor is too narrow for the histogram (untrained weights);
* the detect head's decoding stays in float (:func:`float_nodes`): its last layer writes box
  coordinates (0-640) and class scores (0-1) into one tensor, and one uint8 scale for both
  wipes out the scores. Its convolution blocks are quantised.

The model's metadata (class names, stride, ...) is kept, ``description`` gains " (INT8)" and
``gridworker_int8`` records how it was made. The result is checked by loading it and running it
once before it replaces ``out``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from .config import DEFAULT_CALIBRATION_FRAMES, DetectorConfig
from .errors import ModelError, QuantizeError

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__all__ = ["QuantizeResult", "float_nodes", "quantize_yolo", "sample_frames"]

log = logging.getLogger(__name__)

#: the percentile of each activation's histogram that sets its range
PERCENTILE = 99.99
#: calibration frames run at once (the calibrator holds all their activations; the histograms merge across chunks)
CALIBRATION_CHUNK = 4
#: most frames decoded after a seek on the way to a calibration frame (a long GOP's worth)
MAX_DECODED_PER_SEEK = 600
#: most frames decoded from a clip that has no duration to seek by
MAX_DECODED_PER_CLIP = 3000
MIN_IMGSZ, MAX_IMGSZ = 32, 4096
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
TOOLS_HINT = "needs onnx and onnxruntime's quantisation tools: pip install 'gridworker[export]'"


@dataclass(frozen=True, slots=True)
class QuantizeResult:
    """What :func:`quantize_yolo` wrote."""

    path: Path
    frames: int  # calibration frames used
    input_shape: tuple[int, int]  # (H, W) they were letterboxed into
    float_nodes: int  # nodes of the detect head left in float
    source_bytes: int
    size_bytes: int


def sample_frames(sources: Sequence[Path], count: int) -> list[np.ndarray]:
    """Up to ``count`` RGB frames from ``sources``: each image file's picture, and from the video
    files an equal share of the rest, evenly spaced through each clip.

    Raises:
        QuantizeError: no source gave a frame (each source's problem is named).
    """
    if count < 1:
        raise QuantizeError("count must be at least 1")
    images = sum(Path(s).suffix.lower() in IMAGE_SUFFIXES for s in sources)  # one frame each; the clips share the rest
    share = math.ceil(max(1, count - images) / max(1, len(sources) - images))
    frames: list[np.ndarray] = []
    problems: list[str] = []
    for source in sources:
        try:
            got = list(_frames_of(Path(source), share))
        except (OSError, av.FFmpegError, ValueError) as exc:
            problems.append(f"{Path(source).name}: {type(exc).__name__}: {exc}")
            continue
        if not got:
            problems.append(f"{Path(source).name}: no decodable frame")
        frames.extend(got)
    if not frames:
        detail = "; ".join(problems) if problems else "no clips given"
        raise QuantizeError(f"no calibration frames ({detail})")
    for problem in problems:
        log.warning("calibration: %s (skipped)", problem)
    return frames[:count]


def _frames_of(path: Path, share: int) -> Iterator[np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("not a readable image")
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        if stream.duration and stream.time_base:
            try:
                spread = list(_spread(container, stream, share))
            except av.FFmpegError as exc:  # a clip FFmpeg cannot seek in (EPERM on some MP4s): read it from the start
                log.debug("%s: cannot seek (%s); frames taken from the start", path.name, exc)
            else:
                yield from spread
                return
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        kept = 0  # no duration to seek by (or no seeking): the first frames, one a second at 25 fps
        for index, frame in enumerate(container.decode(stream)):
            if index >= MAX_DECODED_PER_CLIP or kept >= share:
                return
            if index % 25 == 12:
                kept += 1
                yield frame.to_ndarray(format="rgb24")


def _spread(container: av.container.InputContainer, stream: av.VideoStream, share: int) -> Iterator[np.ndarray]:
    """``share`` frames at evenly spaced times through the clip (seek to the keyframe before
    each, decode up to it); a time that lands on a frame already taken gives nothing."""
    assert stream.duration is not None
    start = stream.start_time or 0
    taken: set[int] = set()
    for k in range(share):
        target = start + int(stream.duration * (k + 0.5) / share)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        for decoded, frame in enumerate(container.decode(stream)):
            if frame.pts is None or frame.pts >= target or decoded >= MAX_DECODED_PER_SEEK:
                if frame.pts not in taken:
                    taken.add(frame.pts if frame.pts is not None else -k - 1)
                    yield frame.to_ndarray(format="rgb24")
                break


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes left in float: the detect head's (the graph's last ``/model.N/``
    module) except its convolution blocks that end in an activation (SiLU: a Conv feeding a
    Sigmoid). So the last convolutions of each branch, the distribution-focal decoding, the
    anchors and the concatenation of boxes with scores stay float.

    Raises:
        QuantizeError: the graph is not an Ultralytics export (no ``/model.N/`` node names).
    """
    modules = {int(m.group(1)) for node in graph.node if (m := re.match(r"/model\.(\d+)/", node.name))}
    if not modules:
        raise QuantizeError("not an Ultralytics YOLO export (its nodes are not named /model.N/...): quantise it with your own tools")
    head = f"/model.{max(modules)}/"
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    blocks = {
        node.name.rsplit("/", 2)[0] + "/"
        for node in graph.node
        if node.name.startswith(head) and node.op_type == "Conv" and any("Sigmoid" in consumers.get(out, []) for out in node.output)
    }
    return [node.name for node in graph.node if node.name.startswith(head) and not any(node.name.startswith(b) for b in blocks)]


def quantize_yolo(model: Path, out: Path, clips: Sequence[Path], *, frames: int = DEFAULT_CALIBRATION_FRAMES, imgsz: int | None = None) -> QuantizeResult:
    """Write an INT8 copy of the Ultralytics YOLO detection model ``model`` to ``out``,
    calibrated on ``frames`` frames of ``clips`` at the model's input size (or ``imgsz``).

    Raises:
        QuantizeError: the tools are missing, the model is not a YOLO detection export, no
            calibration frame could be read, or the quantised model does not run.
        ModelError: the model cannot be loaded at all.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise QuantizeError(f"{TOOLS_HINT} ({exc})") from exc
    from .yolo import YoloDetector

    model, out = Path(model), Path(out)
    _check_out(model, out)
    config = DetectorConfig(model=str(model))
    detector = YoloDetector.from_path(model, config)
    if imgsz is not None:
        if not MIN_IMGSZ <= imgsz <= MAX_IMGSZ or imgsz % detector.stride:
            raise QuantizeError(f"imgsz must be a multiple of the model's stride {detector.stride} from {MIN_IMGSZ} to {MAX_IMGSZ}, not {imgsz}")
        detector = detector.with_imgsz(imgsz)
    images = sample_frames(clips, frames)
    target = detector.target_size(images[0].shape[0], images[0].shape[1])
    chunk = min(CALIBRATION_CHUNK, len(images))
    tensors = [detector.input_tensor([image], target) for image in images[: len(images) - len(images) % chunk]]
    source = onnx.load(str(model))

    class Frames(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        """The calibration frames, read ``chunk`` at a time (ONNX Runtime's calibrator keeps every
        activation of what it reads at once: 350 MB a frame for YOLOv8s at 480x640)."""

        def __init__(self) -> None:
            self._input = detector.input_name
            self.set_range(0, len(tensors))

        def __len__(self) -> int:
            return len(tensors)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._left = iter(tensors[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._left, None)
            return None if tensor is None else {self._input: tensor}

    def quantize(prepared: Path, written: Path, method: CalibrationMethod, keep_float: list[str]) -> None:
        quantize_static(
            str(prepared), str(written), Frames(),
            quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=True, calibrate_method=method,
            extra_options={"CalibPercentile": PERCENTILE, "CalibStridedMinMax": chunk}, nodes_to_exclude=keep_float,
        )

    try:
        with tempfile.TemporaryDirectory(prefix="gw-int8-", dir=out.parent) as work:
            prepared, written = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
            method = "percentile"
            try:
                quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
                keep_float = float_nodes(onnx.load(str(prepared)).graph)
                try:
                    quantize(prepared, written, CalibrationMethod.Percentile, keep_float)
                except ValueError as exc:  # a tensor too narrow for the histogram's bins (untrained weights): min/max
                    log.warning("percentile calibration failed (%s); using min/max ranges", exc)
                    method = "minmax"
                    quantize(prepared, written, CalibrationMethod.MinMax, keep_float)
            except QuantizeError:
                raise
            except Exception as exc:  # onnxruntime's tools raise plain Exceptions and their own types
                raise QuantizeError(f"quantising {model.name} failed: {type(exc).__name__}: {exc}") from exc
            quantized = onnx.load(str(written))
            how = {"frames": len(tensors), "input": list(target), "ranges": method, "percentile": PERCENTILE, "from": model.name}
            _carry_metadata(source, quantized, how)
            onnx.save(quantized, str(written))
            try:
                YoloDetector.from_path(written, config)  # loads, reads its layout and runs once (warm-up)
            except ModelError as exc:
                raise QuantizeError(f"the quantised model does not run: {exc}") from exc
            written.replace(out)
    except OSError as exc:
        raise QuantizeError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return QuantizeResult(
        path=out, frames=len(tensors), input_shape=target, float_nodes=len(keep_float),
        source_bytes=model.stat().st_size, size_bytes=out.stat().st_size,
    )


def _check_out(model: Path, out: Path) -> None:
    """Refuse an ``out`` that cannot be written, before any work."""
    if model.resolve() == out.resolve():
        raise QuantizeError("out must not be the model itself")
    if out.is_dir():
        raise QuantizeError(f"out is a directory: {out} (name the .onnx file to write)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuantizeError(f"cannot write {out}: {exc.strerror or exc}") from exc
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise QuantizeError(f"cannot write {out}: its folder is not writable")


def _carry_metadata(source: onnx.ModelProto, quantized: onnx.ModelProto, how: dict[str, object]) -> None:
    """The source's metadata on the quantised model, its description marked INT8, and how it was made."""
    values = {p.key: p.value for p in source.metadata_props}
    values["description"] = f"{values.get('description', 'YOLO model')} (INT8)"
    values["gridworker_int8"] = json.dumps(how)
    del quantized.metadata_props[:]
    for key, value in values.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
