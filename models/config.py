"""Configuration of the object detector (one section of gridworker's settings tree)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridworker.fields import Fraction, PositiveFraction

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_MODEL",
    "PRECISIONS",
    "RUNTIMES",
    "DetectorConfig",
    "NamedDetectorConfig",
    "Precision",
    "Runtime",
    "auto_inference_workers",
    "cgroup_cpu_limit",
    "session_threads",
    "usable_cores",
]

DEFAULT_MODEL = "ssd_mobilenet_v2_coco"
#: calibration frames ``gridworker models quantize`` takes by default (spread over the clips given)
DEFAULT_CALIBRATION_FRAMES = 48
DEFAULT_DETECTOR = "default"  # the id of the ``detector:`` section among a camera's ``detectors``
#: Most names in a detector's class filter (``classes``) and in all of a tiling's ``merge_classes``
#: groups: every detection of every frame is looked up in them.
MAX_FILTER_CLASSES = 1_000
#: Longest class name a filter may list (model labels are a few words: "dining table").
MAX_CLASS_NAME = 100

#: What runs an ONNX model (``detector.runtime``), and OpenVINO's precision (``detector.precision``).
Runtime = Literal["onnxruntime", "openvino"]
Precision = Literal["auto", "f32"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs the process's control group may use (a CFS quota: ``docker run --cpus 2``, a
    Kubernetes CPU limit), or None when it has no quota or none can be read. The smallest
    quota over the process's own group and every group above it (a limit set on a parent,
    as Kubernetes sets a pod's over its containers, binds the children too): cgroup v2
    ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "cpu.max").write_text("150000 100000")
    >>> cgroup_cpu_limit(folder, folder / "missing")
    1.5
    """
    candidates: list[Path] = []
    try:
        for line in membership.read_text(encoding="utf-8").splitlines():
            hierarchy, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            parts = [p for p in path.split("/") if p and p not in (".", "..")]
            groups = [Path(*parts[:n]) for n in range(len(parts), -1, -1)]  # own group first, root (Path()) last
            if hierarchy == "0" and not controllers:  # v2: the unified hierarchy
                candidates += [root / group / "cpu.max" for group in groups]
            elif "cpu" in controllers.split(","):  # v1
                for folder in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                    candidates += [folder / group / "cpu.cfs_quota_us" for group in groups]
    except OSError:
        pass
    candidates += [root / "cpu.max", root / "cpu" / "cpu.cfs_quota_us", root / "cpu,cpuacct" / "cpu.cfs_quota_us"]
    limits = [cpus for file in dict.fromkeys(candidates) if (cpus := _quota_cpus(file)) is not None]  # each file once
    return min(limits) if limits else None


def _quota_cpus(file: Path) -> float | None:
    """The CPUs one ``cpu.max`` or ``cpu.cfs_quota_us`` file allows; None for no quota
    (``max``, ``-1``) or a file that is missing or unreadable."""
    try:
        text = file.read_text(encoding="utf-8").split()
        if file.name == "cpu.max":
            quota, period = text[0], text[1] if len(text) > 1 else "100000"
        else:
            quota, period = text[0], (file.parent / "cpu.cfs_period_us").read_text(encoding="utf-8").split()[0]
        cpus = int(quota) / int(period)
    except (OSError, IndexError, ValueError, ZeroDivisionError):  # "max" and "-1" too
        return None
    return cpus if cpus > 0 else None


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask (a cpuset, ``taskset``), else
    ``os.cpu_count()``, and at most its control group's CPU quota rounded up (``--cpus``, a
    Kubernetes limit); at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def auto_inference_workers(cores: int | None = None) -> int:
    """Inference threads when ``pipeline.inference_workers`` is not set: 2 on two cores or more,
    so one thread prepares a batch (letterbox, decode of the outputs, NMS: Python, one core)
    while the other's model runs; 1 on one core.

    Measured on 2 cores (docs/benchmarks.md, "Two inference workers"): 2 workers of 1
    intra-op thread each analysed 1.20x the live frames of 1 worker of 2 threads with the
    embedded SSD, 1.31x with YOLOv8n.

    >>> auto_inference_workers(1), auto_inference_workers(2), auto_inference_workers(16)
    (1, 2, 2)
    """
    cores = usable_cores() if cores is None else cores
    return 2 if cores >= 2 else 1


def session_threads(threads: int | None, workers: int = 1, cores: int | None = None) -> int:
    """ONNX Runtime intra-op threads of one model run: ``threads`` when set, else the usable
    cores shared out among ``workers`` concurrent runs (at least 1).

    >>> session_threads(3, workers=2, cores=8), session_threads(None, workers=2, cores=2), session_threads(None, workers=2, cores=8)
    (3, 1, 4)
    """
    if threads is not None:
        return threads
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


class DetectorConfig(BaseModel):
    """How to load and run the object detector.

    Example:
        >>> config = DetectorConfig(model="ssd_mobilenet_v2_coco", confidence=0.5)
        >>> config.threads is None  # the usable cores shared out among the inference workers
        True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        default=DEFAULT_MODEL,
        title="Model",
        description=(
            "Name of an embedded model (see `gridworker.models.embedded_models()`), or a path "
            "to an .onnx file (Ultralytics YOLO export) or to a directory holding manifest.json."
        ),
        min_length=1,
    )
    threads: int | None = Field(
        default=None,
        title="Threads",
        description=(
            "ONNX Runtime intra-op threads used by one inference (inter-op is always 1). None (the default): the "
            "cores this process may use divided by pipeline.inference_workers (1 each on 2 cores)."
        ),
        ge=1,
        le=64,
    )
    runtime: Runtime = Field(
        default="onnxruntime",
        title="Runtime",
        description=(
            "What runs the ONNX model: ONNX Runtime (float32), or OpenVINO (pip install 'gridworker[openvino]'), "
            "which on CPUs with Intel AMX runs it in bfloat16, 2-3x faster, boxes agreeing with float32's at F1 ~0.98 "
            "(measure yours: gridworker bench runtimes)."
        ),
    )
    precision: Precision = Field(
        default="auto",
        title="Precision (openvino)",
        description=(
            "runtime openvino only: auto (bfloat16 where the CPU runs it natively, else float32) or f32 (float32 "
            "everywhere, as ONNX Runtime)."
        ),
    )
    confidence: Fraction = Field(
        default=0.4,
        title="Confidence threshold",
        description="Detections scoring below this are dropped.",
    )
    iou: PositiveFraction = Field(
        default=0.5,
        title="NMS IoU threshold",
        description="Class-aware NMS drops a box overlapping a better one of its class by more than this IoU.",
    )
    max_batch: int = Field(
        default=8,
        title="Maximum batch",
        description="Most images sent to the model in one run; larger requests are split.",
        ge=1,
        le=64,
    )
    rect: bool = Field(
        default=True,
        title="Rectangular letterbox",
        description=(
            "YOLO models exported with dynamic input size: letterbox each frame to the stride instead of a square "
            "(a 16:9 frame at 640 runs at 384x640, about 0.6 of the square's cost, as Ultralytics' stream predictor "
            "does); frames of one shape are batched together. Models with a fixed input size always use it."
        ),
    )
    classes: list[str] | None = Field(
        default=None,
        title="Class filter",
        description="Keep only detections of these class names (None keeps every class).",
        min_length=1,
        max_length=MAX_FILTER_CLASSES,
    )

    @field_validator("classes")
    @classmethod
    def _strip_classes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [name.strip() for name in value]
        if any(not name for name in cleaned):
            raise ValueError("class names must not be empty")
        if any(len(name) > MAX_CLASS_NAME for name in cleaned):
            raise ValueError(f"class names are at most {MAX_CLASS_NAME} characters")
        return list(dict.fromkeys(cleaned))


class NamedDetectorConfig(DetectorConfig):
    """One more model a site runs beside the default one (``detectors:``), e.g. its own fall or
    garbage model; cameras pick models by ``id`` (``detectors: [default, fall]``).

    Example:
        >>> NamedDetectorConfig(id="fall", model="/srv/models/fall.onnx").id
        'fall'
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="How cameras and rules name this model.")

    @field_validator("id")
    @classmethod
    def _not_default(cls, value: str) -> str:
        if value == DEFAULT_DETECTOR:
            raise ValueError(f"{DEFAULT_DETECTOR!r} is the detector: section's id")
        return value
