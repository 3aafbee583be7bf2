"""Creating ONNX Runtime sessions the one way gridworker uses them."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .config import Precision, Runtime, session_threads
from .errors import ModelFormatError, ModelNotFoundError
from .openvino_session import OpenVinoSession

__all__ = ["TensorInfo", "create_session", "literal_metadata", "tensor_info"]


def create_session(
    path: Path, threads: int | None = None, *, runtime: Runtime = "onnxruntime", precision: Precision = "auto", streams: int = 1
) -> ort.InferenceSession | OpenVinoSession:
    """Load an ONNX model for CPU inference.

    ``runtime="openvino"`` runs it with OpenVINO instead (:class:`~.openvino_session.OpenVinoSession`,
    ``precision`` and ``streams`` as there); what follows is ONNX Runtime's session (whose ``run``
    any number of threads may call at once).

    Sequential execution, ``intra_op_num_threads=threads`` (None: every usable core),
    ``inter_op_num_threads=1``,
    all graph optimisations, no busy-waiting worker threads. Build it once (at startup) and share it: ``run`` is
    thread-safe.

    Raises:
        ModelNotFoundError: ``path`` is not a file.
        ModelFormatError: ONNX Runtime cannot load it.
    """
    path = Path(path)
    if runtime == "openvino":
        return OpenVinoSession(path, session_threads(threads), precision, streams=streams)
    if runtime != "onnxruntime":
        raise ModelFormatError(f"unknown runtime {runtime!r}: onnxruntime or openvino")
    if not path.is_file():
        raise ModelNotFoundError(f"ONNX model file not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = session_threads(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # fatal only: a failed load or run raises its error (said once, by the caller); ONNX Runtime's own
    # ERROR line would go to stderr past the log's rate limit, once per failed batch
    options.log_severity_level = 4
    # The pipeline shares the cores with the stream decoders: worker threads that spin
    # while waiting for work burn CPU the decoders need (measured: ~0.25 core, same speed).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ModelFormatError(f"ONNX Runtime cannot load {path}: {exc}") from exc


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints for fixed dims, ``None`` for symbolic ones) and element type."""

    name: str
    shape: tuple[int | None, ...]
    type: str


def tensor_info(arg: Any) -> TensorInfo:
    """Normalise an ``onnxruntime.NodeArg`` (or anything with name/shape/type)."""
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorInfo(name=str(arg.name), shape=shape, type=str(arg.type))


def literal_metadata(session: Any) -> dict[str, Any]:
    """The model's ``metadata_props`` with Python-literal values parsed.

    Ultralytics stores e.g. ``names="{0: 'person', ...}"`` and ``imgsz="[640, 640]"``;
    values that are not literals stay strings. Only ``ast.literal_eval`` is used.
    """
    try:
        raw = dict(session.get_modelmeta().custom_metadata_map)
    except AttributeError:
        return {}
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed[key] = value
    return parsed
