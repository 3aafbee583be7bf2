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
input shape it meets but the batch (which stays dynamic: fixed spatial shapes are what make it
fast), a compile at a time per shape, outside the lock runs take; past :data:`MAX_SHAPES`
shapes (motion crops of many sizes) the rest share one model compiled for any shape. Each thread runs its own inference requests, so several
inference workers may call :meth:`OpenVinoSession.run` at once.

The ``openvino`` package is optional (``pip install gridworker[openvino]``); without it this
runtime is refused with a clear error when the model is loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .config import Precision
from .errors import ModelFormatError, ModelNotFoundError

__all__ = ["MAX_SHAPES", "OpenVinoSession", "bf16_native", "openvino_available"]

log = logging.getLogger(__name__)

#: Input shapes compiled one by one; further shapes run on one dynamic model. Each compiled
#: model holds its own copy of the weights, working memory and threads (measured: ~40 MB for a
#: YOLOv8s at batch 1, far more at larger batches and sizes), so the bound is low.
MAX_SHAPES = 6

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
        self._output_index = {o.name: i for i, o in enumerate(self._outputs)}
        self.path = path
        self.threads = int(threads)
        self.streams = max(1, int(streams))
        self.precision: Precision = precision
        self._core = ov.Core()
        # OpenVINO's bindings set up their NumPy interface on first use, once per process; two
        # inference workers making their first run at the same moment were seen deadlocking in
        # that set-up (both threads parked in pybind11's one-time initialisation). Do it here,
        # on the loading thread, before any worker can run.
        ov.Tensor(np.zeros((1,), dtype=np.float32))
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # openvino raises RuntimeError and its own types
            raise ModelFormatError(f"OpenVINO cannot read {path}: {exc}") from exc
        if len(self._model.inputs) != 1:
            raise ModelFormatError(f"{path}: the openvino runtime runs models with one input, this one has {len(self._model.inputs)}")
        self._lock = threading.Lock()  # guards _compiled and _compiling (never held while compiling)
        self._compiled: dict[tuple[int, ...] | None, Any] = {}  # input shape but the batch → CompiledModel; None: any shape
        self._compiling: dict[tuple[int, ...] | None, threading.Event] = {}  # shapes being compiled → set when done
        self._local = threading.local()  # per thread: key → InferRequest
        self._input_type = self._inputs[0].type if self._inputs else ""
        self._said_capped = False

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
        if len(feeds) != 1 or self._inputs[0].name not in feeds:
            raise ModelFormatError(f"the model has one input, {self._inputs[0].name!r}; fed {sorted(feeds)}")
        x = feeds[self._inputs[0].name]
        if x.ndim != 4:
            raise ModelFormatError(f"expected a 4-D input, got shape {x.shape}")
        want = _ONNX_TYPES.get(self._input_type)
        if want is not None and x.dtype != want:  # OpenVINO would convert it silently; ONNX Runtime refuses
            raise ModelFormatError(f"the model's input is {self._input_type}, fed {x.dtype}")
        request = self._request(tuple(int(d) for d in x.shape[1:]))
        result = request.infer({0: x})
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        by_name = self._output_index
        out: list[np.ndarray] = []
        for name in names:
            if name not in by_name:
                raise ModelFormatError(f"the model has no output {name!r}")
            out.append(np.asarray(result[by_name[name]]))  # (infer returns copies, not the request's buffers)
        return out

    # -- compiling ------------------------------------------------------------------------------
    def shapes_compiled(self) -> int:
        """How many input shapes have a model of their own (the dynamic one not counted)."""
        with self._lock:
            return _shaped(self._compiled)

    def _request(self, shape: tuple[int, ...]) -> Any:
        requests: dict[tuple[int, ...] | None, Any] | None = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        compiled, key = self._compiled_for(shape)
        request = requests.get(key)
        if request is None:
            request = requests[key] = compiled.create_infer_request()
        return request

    def _compiled_for(self, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...] | None]:
        """The model compiled for ``shape`` (the input's dims but the batch), or the dynamic one
        past :data:`MAX_SHAPES`, and its key. A shape is compiled once, by the first run that
        needs it; runs of shapes already compiled never wait for it."""
        compiled = self._compiled.get(shape)  # (a dict read: no lock on the hot path)
        if compiled is not None:
            return compiled, shape
        with self._lock:
            shaped = _shaped(self._compiled) + _shaped(self._compiling)
            key = shape if shape in self._compiling or shaped < MAX_SHAPES else None
            if key in self._compiled:
                return self._compiled[key], key
            done = self._compiling.get(key)
            mine = done is None
            if mine:
                done = self._compiling[key] = threading.Event()
        assert done is not None
        if not mine:
            done.wait()
            with self._lock:
                if key not in self._compiled:
                    raise ModelFormatError(f"OpenVINO could not compile {self.path} for input {shape}")
                return self._compiled[key], key
        try:
            compiled = self._compile(key)
            with self._lock:
                self._compiled[key] = compiled
        finally:
            with self._lock:
                del self._compiling[key]
            done.set()
        return compiled, key

    def _compile(self, key: tuple[int, ...] | None) -> Any:
        import openvino as ov

        model = self._model.clone()
        if key is not None:
            batch = self._model.inputs[0].get_partial_shape()[0]
            model.reshape({0: ov.PartialShape([batch, *key])})
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": self.threads * self.streams,
            "NUM_STREAMS": self.streams,
            # two inference workers of one thread each must not be pinned to one core
            "ENABLE_CPU_PINNING": False,
        }
        if self.precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            compiled = self._core.compile_model(model, "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError and its own types
            raise ModelFormatError(f"OpenVINO cannot compile {self.path} for input {key or 'of any shape'}: {exc}") from exc
        got = (int(compiled.get_property("NUM_STREAMS")), int(compiled.get_property("INFERENCE_NUM_THREADS")))
        if got != (self.streams, self.threads * self.streams) and not self._said_capped:
            self._said_capped = True  # OpenVINO caps streams and threads at the cores it has
            log.info(
                "OpenVINO runs %s with %d stream(s) and %d thread(s) in all (asked: %d x %d): capped at this machine's cores",
                self.path.name, got[0], got[1], self.streams, self.threads,
            )
        return compiled


def _shaped(models: Mapping[tuple[int, ...] | None, object]) -> int:
    """How many of ``models`` are for one input shape (the key None, any shape, not counted)."""
    return sum(1 for key in models if key is not None)


#: ONNX element types of the inputs the detectors feed, and the numpy dtype each must be.
_ONNX_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(float16)": np.dtype(np.float16),
}
