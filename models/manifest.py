"""The ``manifest.json`` that describes a model directory, and its integrity check.

A model directory holds ``manifest.json`` plus the files it names (``model.onnx``, for SSD
also ``anchors.npy``). Every file carries a sha256; :func:`load_manifest` refuses a
directory whose files do not match. The format is documented in ``docs/models.md``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ModelFormatError, ModelIntegrityError, ModelNotFoundError

__all__ = [
    "MANIFEST_NAME",
    "MAX_INPUT_SIDE",
    "AnchorsFile",
    "BoxCoder",
    "InputSpec",
    "Licence",
    "Manifest",
    "ModelFile",
    "load_manifest",
    "sha256_file",
]

MANIFEST_NAME = "manifest.json"
#: Largest model input height or width accepted (a manifest's ``input``, a YOLO model's ``imgsz``)
MAX_INPUT_SIDE = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFile(_Strict):
    """A file of the model directory and its expected sha256."""

    file: str = Field(description="File name inside the model directory (no path separators).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256 of the file.")

    @field_validator("file")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"must be a plain file name, got {value!r}")
        return value


class AnchorsFile(ModelFile):
    """SSD anchors saved with ``numpy.save``: (count, 4) float32."""

    layout: Literal["ycxchw"] = Field(
        default="ycxchw", description="Column order: ycenter, xcenter, height, width (normalised)."
    )
    count: int = Field(gt=0, description="Number of anchors (rows).")


class InputSpec(_Strict):
    """What the model's image input expects."""

    name: str = Field(description="Input tensor name.")
    layout: Literal["NHWC", "NCHW"]
    dtype: Literal["uint8", "float32"]
    height: int = Field(gt=0, le=MAX_INPUT_SIDE)
    width: int = Field(gt=0, le=MAX_INPUT_SIDE)
    colour: Literal["RGB", "BGR"] = "RGB"
    resize: Literal["stretch", "letterbox"] = Field(
        default="stretch", description="stretch: plain resize to height x width; letterbox: keep aspect, pad."
    )
    scaling: str = Field(
        default="none",
        description="Human-readable note on pixel scaling (uint8 inputs are fed unscaled).",
    )


class BoxCoder(_Strict):
    """Divisors of the SSD (Faster R-CNN) box coder."""

    y_scale: float = Field(gt=0)
    x_scale: float = Field(gt=0)
    h_scale: float = Field(gt=0)
    w_scale: float = Field(gt=0)


class Licence(_Strict):
    spdx: str = Field(description="SPDX identifier of the weights' licence.")
    text: str = Field(default="", description="Attribution; the NOTICE file has the details.")


class Manifest(_Strict):
    """Everything gridworker needs to run a model directory.

    Example:
        >>> from gridworker.models.loader import WEIGHTS_DIR   # models/weights
        >>> manifest = load_manifest(WEIGHTS_DIR / "ssd_mobilenet_v2_coco")
        >>> manifest.family, manifest.input.height
        ('ssd', 300)
    """

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    family: Literal["ssd", "yolo"]
    description: str = ""
    model: ModelFile
    anchors: AnchorsFile | None = None
    input: InputSpec | None = None
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="Output tensor names by role; SSD needs 'box_encodings' and 'class_scores'.",
    )
    box_coder: BoxCoder | None = None
    labels: list[str] = Field(
        default_factory=list,
        description="One label per score column (SSD: background first; unused ids are '').",
    )
    label_offset: int = Field(
        default=0, ge=0, description="Leading background columns: class_id = column - label_offset."
    )
    upstream_postprocess: dict[str, Any] | None = Field(
        default=None, description="The original model's own post-process settings, for reference only."
    )
    licence: Licence
    source: dict[str, str] = Field(default_factory=dict, description="Where the weights came from.")

    @model_validator(mode="after")
    def _family_requirements(self) -> Manifest:
        if self.family == "ssd":
            missing = [
                name
                for name, value in (("anchors", self.anchors), ("input", self.input), ("box_coder", self.box_coder))
                if value is None
            ]
            missing += [f"outputs.{role}" for role in ("box_encodings", "class_scores") if role not in self.outputs]
            if not self.labels:
                missing.append("labels")
            if missing:
                raise ValueError(f"an 'ssd' manifest needs {', '.join(missing)}")
            if self.label_offset >= len(self.labels):
                raise ValueError(f"label_offset {self.label_offset} leaves no labels of {len(self.labels)}")
        return self

    @property
    def class_names(self) -> list[str]:
        """Labels indexed by class id (background columns removed)."""
        return list(self.labels[self.label_offset :])

    def files(self) -> list[ModelFile]:
        """Every file the manifest pins, model first."""
        return [self.model] + ([self.anchors] if self.anchors is not None else [])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(directory: Path, *, verify: bool = True) -> Manifest:
    """Read and validate ``directory/manifest.json``; check its files' sha256.

    Args:
        directory: the model directory.
        verify: check every pinned file's sha256 (default); ``False`` only parses.

    Returns:
        The validated manifest.

    Raises:
        ModelNotFoundError: the directory, its manifest or a file it names is missing.
        ModelFormatError: the manifest is not valid JSON or does not match the schema.
        ModelIntegrityError: a file's sha256 differs from the manifest's.
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"no {MANIFEST_NAME} in model directory {directory}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from exc
    except RecursionError as exc:
        raise ModelFormatError(f"cannot read {path}: its JSON is nested too deeply to be a model manifest") from exc
    except (MemoryError, ValueError) as exc:  # too large for memory; or e.g. an integer of too many digits
        raise ModelFormatError(f"cannot read {path}: not a usable model manifest ({type(exc).__name__}: {exc})") from exc
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelFormatError(f"invalid manifest {path}:\n{exc}") from exc
    if verify:
        for ref in manifest.files():
            file_path = Path(directory) / ref.file
            if not file_path.is_file():
                raise ModelNotFoundError(f"{path} names {ref.file}, which is missing from {directory}")
            actual = sha256_file(file_path)
            if actual != ref.sha256:
                raise ModelIntegrityError(
                    f"sha256 mismatch for {file_path}: manifest says {ref.sha256}, file has {actual}. "
                    "The file is corrupt or was replaced; restore it (for the embedded model: "
                    "git checkout, or re-run models/tools/build_ssd_mobilenet_v2.sh)."
                )
    return manifest
