"""OpenVINO as the runtime of an ONNX model (``detector.runtime: openvino``).

On a CPU with native bfloat16 (Intel AMX: Sapphire Rapids and later) OpenVINO runs
convolutions in bfloat16 by default, which ONNX Runtime's CPU provider does not: measured on a
2-core Xeon with AMX (``gridworker bench runtimes``), a YOLOv8n/YOLOv8s export runs 2-3x
faster than ONNX Runtime in float32, and its boxes agree with float32's at F1 ~0.98. On a CPU
without it both run float32 and OpenVINO is about as fast as ONNX Runtime.

:class:`OpenVinoSession` offers the part of ``onnxruntime.InferenceSession`` the detectors
use (``get_inputs``, ``get_outputs``, ``get_modelmeta``, ``run``), so every detector runs on
either runtime unchanged. The model's inputs, outputs and metadata are read once with ONNX
Runtime (the ONNX file is the source of truth for both). OpenVINO compiles the model once per
input height and width it meets (the batch stays dynamic: static spatial shapes are what makes
it fast); past :data:`MAX_SHAPES` shapes (motion crops of many sizes) the rest share one
model compiled for any shape. Each thread runs its own inference requests, so several
inference workers may call :meth:`OpenVinoSession.run` at once.

The ``openvino`` package is optional (``pip install gridworker[openvino]``); without it this
runtime is refused with a clear error when the model is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from .errors import ModelFormatError, ModelNotFoundError

__all__ = ["MAX_SHAPES", "OpenVinoSession", "bf16_native", "openvino_available"]

#: Input shapes (height, width) compiled one by one; further shapes run on one dynamic model.
MAX_SHAPES = 32

Precision = Literal["auto", "f32"]


def openvino_available() -> str | None:
    """None when the ``openvino`` package imports; else why not (for the error a user sees)."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"the openvino package is not installed (pip install 'gridworker[openvino]'): {exc}"
    return None


def bf16_native() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 natively here (and so does under ``precision: auto``)."""
    if openvino_available() is not None:
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True, slots=True)
class _Arg:
    """What ``onnxruntime.NodeArg`` tells of a tensor (name, shape with symbolic dims as str, type)."""

    name: str
    shape: list[int | str | None]
    type: str


@dataclass(frozen=True, slots=True)
class _Meta:
    custom_metadata_map: dict[str, str]


class OpenVinoSession:
    """An ONNX model run by OpenVINO on the CPU, shaped like an ONNX Runtime session.

    Args:
        path: the ``.onnx`` file.
        threads: OpenVINO inference threads per run.
        precision: ``auto`` (OpenVINO's default: bfloat16 where the CPU has it natively,
            else float32) or ``f32`` (float32 everywhere).
        streams: runs that may go on at once (the inference workers calling :meth:`run`). A
            compiled model runs as many requests at once as it has streams (one stream: the
            second worker's run waits for the first), so it gets ``streams`` streams of
            ``threads`` threads each.

    Raises:
        ModelNotFoundError: ``path`` is not a file.
        ModelFormatError: the ``openvino`` package is missing, or OpenVINO or ONNX Runtime
            cannot read the model.
    """

    def __init__(self, path: Path, threads: int, precision: Precision = "auto", *, streams: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"ONNX model file not found: {path}")
        missing = openvino_available()
        if missing is not None:
            raise ModelFormatError(f"detector.runtime openvino: {missing}")
        import openvino as ov

        try:  # inputs, outputs and metadata as ONNX Runtime reads them (then let go of it)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 4
            probe = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            self._inputs = [_Arg(a.name, list(a.shape), a.type) for a in probe.get_inputs()]
            self._outputs = [_Arg(a.name, list(a.shape), a.type) for a in probe.get_outputs()]
            self._meta = _Meta(dict(probe.get_modelmeta().custom_metadata_map))
            del probe
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelFormatError(f"ONNX Runtime cannot read {path}: {exc}") from exc
        self.path = path
        self.threads = int(threads)
        self.streams = max(1, int(streams))
        self.precision: Precision = precision
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # openvino raises RuntimeError and its own types
            raise ModelFormatError(f"OpenVINO cannot read {path}: {exc}") from exc
        if len(self._model.inputs) != 1:
            raise ModelFormatError(f"{path}: the openvino runtime runs models with one input, this one has {len(self._model.inputs)}")
        self._lock = threading.Lock()  # guards _compiled (compiling is done under it, once per shape)
        self._compiled: dict[tuple[int, int] | None, Any] = {}  # (h, w) → CompiledModel; None: any shape
        self._local = threading.local()  # per thread: key → InferRequest

    # -- what the detectors call (as on an onnxruntime.InferenceSession) ------------------------
    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def get_modelmeta(self) -> _Meta:
        return self._meta

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch; the outputs named (None: all), in order, as float arrays.

        Raises:
            ModelFormatError: the feed is not the model's one 4-D input.
        """
        if len(feeds) != 1:
            raise ModelFormatError(f"the model has one input, {len(feeds)} fed")
        (x,) = feeds.values()
        if x.ndim != 4:
            raise ModelFormatError(f"expected a 4-D input, got shape {x.shape}")
        request = self._request((int(x.shape[2]), int(x.shape[3])))
        result = request.infer({0: x})
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        by_name = {o.name: i for i, o in enumerate(self._outputs)}
        out: list[np.ndarray] = []
        for name in names:
            if name not in by_name:
                raise ModelFormatError(f"the model has no output {name!r}")
            out.append(np.array(result[by_name[name]], copy=True))  # the request's buffer is reused by its next run
        return out

    # -- compiling ------------------------------------------------------------------------------
    def shapes_compiled(self) -> int:
        """How many input shapes have a model of their own (the dynamic one not counted)."""
        with self._lock:
            return sum(1 for key in self._compiled if key is not None)

    def _request(self, hw: tuple[int, int]) -> Any:
        requests: dict[tuple[int, int] | None, Any] | None = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        compiled, key = self._compiled_for(hw)
        request = requests.get(key)
        if request is None:
            request = requests[key] = compiled.create_infer_request()
        return request

    def _compiled_for(self, hw: tuple[int, int]) -> tuple[Any, tuple[int, int] | None]:
        """The model compiled for ``hw`` (or the dynamic one past :data:`MAX_SHAPES`), and its key."""
        import openvino as ov

        with self._lock:
            if hw in self._compiled:
                return self._compiled[hw], hw
            shaped = sum(1 for key in self._compiled if key is not None) < MAX_SHAPES
            key = hw if shaped else None
            if key not in self._compiled:
                model = self._model.clone()
                if key is not None:
                    shape = self._model.inputs[0].get_partial_shape()
                    model.reshape({0: ov.PartialShape([shape[0], shape[1], hw[0], hw[1]])})
                config: dict[str, Any] = {
                    "INFERENCE_NUM_THREADS": self.threads * self.streams,
                    "NUM_STREAMS": self.streams,
                    # two inference workers of one thread each must not be pinned to one core
                    "ENABLE_CPU_PINNING": False,
                }
                if self.precision == "f32":
                    config["INFERENCE_PRECISION_HINT"] = "f32"
                try:
                    self._compiled[key] = self._core.compile_model(model, "CPU", config)
                except Exception as exc:  # openvino raises RuntimeError and its own types
                    raise ModelFormatError(f"OpenVINO cannot compile {self.path} at {hw[0]}x{hw[1]}: {exc}") from exc
            return self._compiled[key], key
